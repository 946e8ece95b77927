"""Values storage hands to the rest of the bot that plugins see too, kept apart from
the SQLAlchemy code so that the public face (``confab``) loads no database code."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class ChannelSettings:
    """A channel's overrides; ``None`` means the default (every skill, the skill's own
    prompt, UTC)."""

    system_prompt: str | None = None
    enabled_skills: tuple[str, ...] | None = None
    timezone: str | None = None
    training_optin: bool = False  # its conversations may be exported for fine-tuning
    model: str | None = None  # the registry name or path of the model that answers here


@dataclass(frozen=True, slots=True)
class Forgotten:
    """What a deletion removed: people's turns, and the bot's replies."""

    messages: int
    replies: int


@dataclass(frozen=True, slots=True)
class StoredDocument:
    """A document in the knowledge base, as `!kb list` shows it."""

    id: int
    source: str
    name: str
    kind: str
    title: str
    sha256: str
    size: int
    channels: tuple[str, ...] | None
    added_by: str
    added_at: datetime
    chunks: int = 0


# Whose a skill's state is (see storage.skill_state).
GLOBAL_SCOPE = "global"


def channel_scope(platform: str, channel: str) -> str:
    return f"channel:{platform}:{channel}"


def user_scope(platform: str, user_id: str) -> str:
    return f"user:{platform}:{user_id}"
