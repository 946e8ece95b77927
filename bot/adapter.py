"""What a platform adapter provides: a few primitives and an honest declaration of limits.

Adapters turn platform events into :class:`~confab.bot.messages.Message` objects and
hand them to the router; everything else (streaming, splitting, edit pacing)
is written once in :mod:`confab.bot.streaming` on top of :meth:`Adapter.send` and
:meth:`Adapter.edit`.
"""

from __future__ import annotations

import argparse
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Protocol

from pydantic import BaseModel

from confab.bot.errors import ConfabError, Unsupported
from confab.bot.messages import Attachment, Message, SentMessage
from confab.bot.pacing import WriteWindow
from confab.bot.skill import SkillInfo

MessageHandler = Callable[[Message, "Adapter"], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What an adapter can do; using an undeclared capability raises ``Unsupported``."""

    edit: bool = True
    threads: bool = False
    history: bool = True
    typing: bool = False
    downloads: bool = False  # ``Adapter.download`` reads attachments' bytes


class AttachmentTooLarge(ConfabError):
    """An attachment is larger than the caller will read (``max_bytes``)."""

    def __init__(self, attachment: Attachment, max_bytes: int, *, found: str = "") -> None:
        """``found`` says for the log what showed the size (the declared size if empty)."""
        found = found or f"{attachment.size} bytes declared"
        super().__init__(
            f"The file {attachment.name} is too large for me to read "
            f"(the limit is {_readable_size(max_bytes)}).",
            f"attachment {attachment.id or attachment.name!r}: {found}, over max_bytes {max_bytes}",
        )
        self.attachment = attachment
        self.max_bytes = max_bytes


class AttachmentUnavailable(ConfabError):
    """The platform did not hand over an attachment's bytes: gone, not allowed, unreachable."""


def check_declared_size(attachment: Attachment, max_bytes: int) -> None:
    """Raise :class:`AttachmentTooLarge` when the platform's declared size passes
    ``max_bytes``, before anything is downloaded."""
    if attachment.size > max_bytes:
        raise AttachmentTooLarge(attachment, max_bytes)


def _readable_size(size: int) -> str:
    for unit, scale in (("MB", 1 << 20), ("KB", 1 << 10)):
        if size >= scale:
            return f"{size / scale:.3g} {unit}"
    return f"{size} bytes"


@dataclass(frozen=True, slots=True)
class Limits:
    """Platform rules the reply stream honours. ``None`` means no length cap."""

    max_message_chars: int | None = None
    min_edit_interval_s: float = 0.0


class ChannelLog(Protocol):
    """Stored channel messages, for adapters whose platform keeps no history (the console)."""

    async def messages(
        self,
        platform: str,
        channel: str,
        *,
        thread: str | None = None,
        since: datetime | None = None,
        limit: int = 200,
    ) -> list[Message]: ...


class EmptyChannelLog:
    """A channel log with nothing in it: for adapters tested, or used by a CLI tool,
    without storage."""

    async def messages(self, platform: str, channel: str, **_: object) -> list[Message]:
        return []


@dataclass(frozen=True, slots=True)
class AdapterContext:
    """What the app hands an adapter when it builds one; ``skills`` are the installed
    skills, for platforms that register commands (Discord and Slack slash commands)."""

    config: BaseModel
    bot_name: str
    channel_log: ChannelLog
    skills: Sequence[SkillInfo] = ()


class AdapterTool(ABC):
    """A command an adapter adds to the CLI as ``confab <platform> <name>``: set-up help
    that needs the platform's own knowledge (Slack's app manifest, say)."""

    name: ClassVar[str]
    help: ClassVar[str]

    @abstractmethod
    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Declare the command's options."""

    @abstractmethod
    def run(self, args: argparse.Namespace, context: AdapterContext) -> int:
        """Do it, printing to stdout; the exit status. Raise ``ConfabError`` to refuse."""


class Adapter(ABC):
    """One platform connection.

    ``run`` delivers every incoming message to ``handler`` and returns when the
    platform session ends (for the console: when the person quits).
    """

    platform: ClassVar[str]
    config_model: ClassVar[type[BaseModel]]
    capabilities: ClassVar[Capabilities] = Capabilities()
    limits: ClassVar[Limits] = Limits()
    tools: ClassVar[tuple[type[AdapterTool], ...]] = ()  # ``confab <platform> …`` commands

    def __init__(self, context: AdapterContext) -> None:
        self.context = context

    @abstractmethod
    async def run(self, handler: MessageHandler) -> None:
        """Receive messages until the session ends; hand each to ``handler``."""

    async def stop(self) -> None:  # noqa: B027 - optional hook
        """Leave the platform; ``run`` returns soon after."""

    @property
    def status(self) -> str:
        """The platform connection in a word or two for ``/healthz``: ``"ok"`` while it
        serves, else what it is doing (``"connecting"``, ``"disconnected"``). The app
        counts an adapter whose ``run`` has ended as down whatever this says, so this
        default, ``"ok"``, means: running is healthy. Adapters that watch a connection
        say more."""
        return "ok"

    @property
    def healthy(self) -> bool:
        """Whether the platform connection serves now (see :attr:`status`)."""
        return self.status == "ok"

    @abstractmethod
    async def send(
        self, channel: str, text: str, *, thread: str | None = None, reply_to: str | None = None
    ) -> SentMessage:
        """Post a new message; raises ``MessageTooLong`` past ``limits.max_message_chars``.

        ``reply_to`` is the id of the incoming message being answered, for
        platforms that answer in a particular way (a Discord interaction's
        response, a reply reference); others ignore it. Raises
        :class:`~confab.bot.errors.CannotPost` where the bot may not post, and
        :class:`~confab.bot.errors.RateLimited` as :meth:`edit` does.
        """

    @abstractmethod
    async def edit(self, sent: SentMessage, text: str) -> None:
        """Replace the text of a message this adapter sent.

        Raises :class:`~confab.bot.errors.RateLimited` when the platform keeps refusing
        for its rate limit, :class:`~confab.bot.errors.CannotPost` when the channel no
        longer takes the bot's messages.
        """

    def write_window(self, channel: str, *, thread: str | None, edit: bool) -> WriteWindow | None:
        """The window a send (or, with ``edit``, an edit) to this place counts against,
        shared by every answer there: the platform's per-channel or per-workspace
        rate limit. None where only each answer's ``limits.min_edit_interval_s`` applies."""
        return None

    @abstractmethod
    async def history(
        self,
        channel: str,
        *,
        thread: str | None = None,
        since: datetime | None = None,
        limit: int = 100,
    ) -> list[Message]:
        """Recent messages of a channel or thread, oldest first."""

    async def download(self, attachment: Attachment, *, max_bytes: int) -> bytes:
        """The bytes of an attachment of a message this adapter produced.

        Raises :class:`AttachmentTooLarge` past ``max_bytes`` (checked on the declared
        size before downloading, and again while reading), :class:`AttachmentUnavailable`
        when the platform refuses or cannot be reached, and ``Unsupported`` where the
        platform has no files (``capabilities.downloads`` is false).
        """
        raise Unsupported(
            "I can't read files here.", f"{self.platform} adapter: download {attachment.name!r}"
        )

    def http_application(self) -> tuple[str, Any] | None:
        """A path and an aiohttp ``web.Application`` the app's HTTP server (``[web]``)
        mounts there (the web chat's page), or None for an adapter without pages."""
        return None

    async def link(self, channel: str, message_id: str, *, thread: str | None = None) -> str | None:
        """A URL that opens this message on the platform, or None where there is none
        (the console, a message the platform cannot point to). Never raises."""
        return None
