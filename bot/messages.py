"""The platform-neutral message every adapter produces and the router consumes."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
"""What a command (a skill's name or alias) may look like."""


@dataclass(frozen=True, slots=True)
class Author:
    """Who wrote a message, as the platform names them.

    ``admin`` is set by an adapter that knows the platform's own admins (say,
    Discord roles); ``router.admins`` names admins on every platform.
    """

    id: str
    name: str
    is_bot: bool = False
    admin: bool = False


@dataclass(frozen=True, slots=True)
class Message:
    """One incoming chat message, free of platform objects.

    ``addressed`` is set by the adapter when the bot was spoken to (a mention, a
    DM, a reply in a bot thread); the mention itself is already removed from
    ``text``. ``command`` and ``args`` are filled in by an adapter for native
    slash commands, and by the router for prefixed commands such as ``!ask``;
    ``text`` then still starts with the command as typed (``/ask what?``).
    """

    platform: str
    channel: str
    author: Author
    text: str
    thread: str | None = None
    addressed: bool = False
    from_self: bool = False
    id: str | None = None
    command: str | None = None
    args: str = ""
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def with_command(self, command: str, args: str) -> Message:
        """A copy that carries the parsed command and its argument text."""
        return replace(self, command=command, args=args)


def args_after_command(text: str) -> str:
    """What follows the command word of a command message's text."""
    parts = text.split(maxsplit=1)
    return parts[1].strip() if len(parts) > 1 else ""


def parse_command(text: str, prefixes: list[str]) -> tuple[str, str] | None:
    """``'!ask what?'`` -> ``('ask', 'what?')`` for a known prefix; None otherwise.

    The arguments keep their line breaks (code arrives that way).
    """
    stripped = text.lstrip()
    for prefix in sorted(prefixes, key=len, reverse=True):
        after = stripped[len(prefix) :]
        if not stripped.startswith(prefix) or not after or after[0].isspace():
            continue
        word = after.split(maxsplit=1)[0].lower()
        if NAME_PATTERN.match(word):
            return word, args_after_command(after)
    return None


@dataclass(frozen=True, slots=True)
class SentMessage:
    """A handle to a message the bot posted, for later edits."""

    id: str
    channel: str
    thread: str | None = None
