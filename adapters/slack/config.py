"""The ``[slack]`` config section."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

SLACK_API = "https://slack.com/api/"
EVENTS_PATH = "/slack/events"  # where HTTP mode takes Slack's events and commands
PRIVATE_FLAG = "--private"  # a slash command's word for an answer only the asker sees


class SlackConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # "socket": Socket Mode, no public URL needed; "http": Slack posts to
    # http://HOST:PORT/slack/events, each request checked against the signing secret.
    mode: Literal["socket", "http"] = "socket"
    # Environment variables holding the secrets (never the secrets themselves).
    bot_token_env: str = "CONFAB_SLACK_BOT_TOKEN"
    app_token_env: str = "CONFAB_SLACK_APP_TOKEN"
    signing_secret_env: str = "CONFAB_SLACK_SIGNING_SECRET"
    host: str = "127.0.0.1"
    port: int = Field(3000, ge=1, le=65535)
    # "per_skill": /ask, /summarise, /code ... ; "umbrella": /confab ask ...
    command_style: Literal["per_skill", "umbrella"] = "per_skill"
    command_name: str = Field("confab", pattern=r"^[a-z0-9_-]{1,31}$")
    max_message_chars: int = Field(3000, ge=100, le=39_000)
    edit_interval_s: float = Field(1.2, ge=0.2, le=60.0)
    admin_user_ids: list[str] = Field(default_factory=list)
    # Every Web API call goes here (GovSlack, a proxy, tests); "" is Slack's own.
    api_base_url: str = ""

    @field_validator("api_base_url")
    @classmethod
    def _api_url(cls, value: str) -> str:
        if not value:
            return value
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be empty or an http(s):// URL")
        return value.rstrip("/") + "/"  # slack_sdk joins method names onto it

    @property
    def web_api_url(self) -> str:
        return self.api_base_url or SLACK_API
