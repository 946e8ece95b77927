"""The ``[discord]`` config section."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator


class DiscordConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # The environment variable that holds the bot token (never the token itself).
    token_env: str = "CONFAB_DISCORD_TOKEN"
    # Slash commands are synced to these guilds at start (instant), or globally
    # when empty (Discord may take up to an hour to show them).
    command_guild_ids: list[int] = Field(default_factory=list)
    sync_commands: bool = True
    admin_user_ids: list[int] = Field(default_factory=list)
    admin_role_ids: list[int] = Field(default_factory=list)
    command_prefix: str = Field("!", min_length=1, max_length=5)
    edit_interval_s: float = Field(1.0, ge=0.2, le=60.0)
    reply_in_thread: bool = False
    # For an HTTP rate-limit proxy or a gateway proxy in front of Discord.
    api_base_url: str = ""
    gateway_url: str = ""

    @field_validator("api_base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("must be empty or an http(s):// URL ending in the API version")
        return value.rstrip("/")

    @field_validator("gateway_url")
    @classmethod
    def _ws_url(cls, value: str) -> str:
        if value and not value.startswith(("ws://", "wss://")):
            raise ValueError("must be empty or a ws(s):// URL")
        return value.rstrip("/")
