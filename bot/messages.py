"""The platform-neutral message every adapter produces and the router consumes."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_-]{0,31}\Z")
"""What a command (a skill's name or alias) may look like (``\\Z``: no newline after)."""


def clean_text(text: str) -> str:
    """``text`` as every database and platform takes it: NUL characters (which
    PostgreSQL text cannot hold) dropped, and UTF-16 surrogates (which UTF-8 cannot
    encode; JSON's ``"\\ud800"`` decodes to one) joined where they form a pair and
    replaced with U+FFFD where they do not. Any other text comes back unchanged.
    """
    if "\x00" in text:
        text = text.replace("\x00", "")
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return text


def _clean_fields(instance: Author | Attachment | Message) -> None:
    """Set every text field of a (frozen) message, author or attachment to its
    :func:`clean_text`."""
    kind: type = type(instance)
    for name in _field_names(kind):
        value = getattr(instance, name)
        if isinstance(value, str):
            cleaned = clean_text(value)
            if cleaned is not value:
                object.__setattr__(instance, name, cleaned)


@functools.cache
def _field_names(kind: type) -> tuple[str, ...]:
    """Looked up once per class: every message is made through here."""
    return tuple(each.name for each in fields(kind))


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

    def __post_init__(self) -> None:
        _clean_fields(self)


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file that came with a message, as the platform describes it.

    ``size`` is the size the platform declares, in bytes; ``url`` is where the
    platform serves it (it may need the bot's credentials, or may expire): read the
    bytes through :meth:`confab.bot.adapter.Adapter.download`, never by fetching ``url``.
    ``id`` is the platform's id of the file and ``content_type`` its MIME type,
    each ``""`` when the platform gave none.
    """

    name: str
    size: int
    url: str
    id: str = ""
    content_type: str = ""

    def __post_init__(self) -> None:
        _clean_fields(self)


@dataclass(frozen=True, slots=True)
class Message:
    """One incoming chat message, free of platform objects.

    ``addressed`` is set by the adapter when the bot was spoken to (a mention, a
    DM, a reply in a bot thread); the mention itself is already removed from
    ``text``. ``direct`` is set for a message in a private conversation (a DM),
    whose content must never be shown in a channel. ``attachments`` are the
    files that came with the message. ``command`` and ``args`` are filled in by
    an adapter for native slash commands, and by the router for prefixed
    commands such as ``!ask``; ``text`` then still starts with the command as
    typed (``/ask what?``). ``command_prefix`` is how commands are typed where a
    native command came from (``/``, or ``/confab `` for Slack's umbrella command),
    so answers name commands the way the person can type them; empty, the
    router's own prefix (``!``) is meant.

    Every text field holds text that can be stored and sent as it is: a message
    is made with :func:`clean_text` applied to each, whichever adapter makes it.
    """

    platform: str
    channel: str
    author: Author
    text: str
    thread: str | None = None
    addressed: bool = False
    direct: bool = False
    from_self: bool = False
    id: str | None = None
    command: str | None = None
    args: str = ""
    command_prefix: str = ""
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    attachments: tuple[Attachment, ...] = ()

    def __post_init__(self) -> None:
        _clean_fields(self)

    def with_command(self, command: str, args: str) -> Message:
        """A copy that carries the parsed command and its argument text."""
        return replace(self, command=command, args=args)


def typed_mention(bot_name: str) -> re.Pattern[str]:
    """``@<bot name>`` typed as text (the console, the web chat), any case, not inside
    a word or an e-mail address."""
    return re.compile(rf"(?<![\w@])@{re.escape(bot_name)}\b", re.IGNORECASE)


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
