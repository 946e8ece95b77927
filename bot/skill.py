"""The skill API: what a skill declares, and what it gets when it runs.

A skill is a plain class. Its declaration is data (name, aliases, help, usage,
config model) that the router, ``help`` and config validation read; its
behaviour is one coroutine, :meth:`Skill.run`::

    class Echo(Skill):
        name = "echo"
        help = "Repeat what you said."
        usage = "<text>"

        async def run(self, ctx: SkillContext) -> None:
            await ctx.reply(ctx.args or "Nothing to echo.")

Register it in your package's ``pyproject.toml``::

    [project.entry-points."confab.skills"]
    echo = "my_package.echo:Echo"
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import AsyncIterable, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from pydantic import BaseModel

from bot.llm.backend import ChatMessage, GenerationParams, ModelBackend
from bot.messages import Message
from storage.conversations import Forgotten

__all__ = [
    "ChatMessage",
    "ConversationMemory",
    "Forgotten",
    "GenerationParams",
    "ModelBackend",
    "Privacy",
    "Skill",
    "SkillContext",
    "SkillInfo",
]

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")


class Skill(ABC):
    """Base class of every skill, built-in or third-party."""

    name: ClassVar[str]
    help: ClassVar[str]
    usage: ClassVar[str] = ""
    aliases: ClassVar[tuple[str, ...]] = ()
    config_model: ClassVar[type[BaseModel] | None] = None

    def __init__(self, config: BaseModel | None = None) -> None:
        self.config = config

    @abstractmethod
    async def run(self, ctx: SkillContext) -> None:
        """Answer ``ctx.message`` through ``ctx.reply`` or ``ctx.reply_stream``."""

    @classmethod
    def declaration_problems(cls) -> list[str]:
        """What is wrong with this class's declaration (empty when it is usable)."""
        problems = []
        name = getattr(cls, "name", None)
        if not isinstance(name, str) or not NAME_PATTERN.match(name):
            problems.append(f"name {name!r} must be lowercase letters, digits, '-' or '_'")
        if not isinstance(getattr(cls, "help", None), str) or not cls.help.strip():
            problems.append("help must be a one-line description")
        problems.extend(
            f"alias {alias!r} is not a valid command name"
            for alias in cls.aliases
            if not NAME_PATTERN.match(alias)
        )
        if cls.config_model is not None and not issubclass(cls.config_model, BaseModel):
            problems.append("config_model must be a pydantic model")
        return problems


@dataclass(frozen=True, slots=True)
class SkillInfo:
    """A skill's declaration as ``help`` and the router see it."""

    name: str
    help: str
    usage: str
    aliases: tuple[str, ...]

    @classmethod
    def of(cls, skill: type[Skill]) -> SkillInfo:
        return cls(skill.name, skill.help, skill.usage, tuple(skill.aliases))


class ConversationMemory:
    """The turns of the current conversation before the message being answered."""

    def __init__(self, load: Callable[[int, int | None], Awaitable[list[ChatMessage]]]) -> None:
        self._load = load

    async def recent(self, max_turns: int = 20, max_tokens: int | None = None) -> list[ChatMessage]:
        """Up to ``max_turns`` turns (oldest first), within ``max_tokens`` if given."""
        return await self._load(max_turns, max_tokens)


class Privacy(Protocol):
    """What the author of the message being answered may have the bot forget.

    Each call deletes at once and says how much went. ``forget_channel``
    raises :class:`bot.errors.NotAllowed` unless the author is an admin
    (``router.admins``), whichever skill calls it.
    """

    async def forget_author(self) -> Forgotten:
        """Every stored turn of the author on this platform, and the bot's replies to them."""
        ...

    async def forget_channel(self) -> Forgotten:
        """Every stored turn of this channel, its threads included."""
        ...


@dataclass(frozen=True, slots=True)
class SkillContext:
    """Everything a skill may use while answering one message."""

    message: Message
    args: str
    config: Any
    model: ModelBackend
    memory: ConversationMemory
    skills: Sequence[SkillInfo]
    prefix: str
    privacy: Privacy
    _reply_stream: Callable[[AsyncIterable[str]], Awaitable[str]]

    async def reply(self, text: str) -> None:
        """Answer with a complete text (split across messages if the platform needs it)."""

        async def single() -> AsyncIterable[str]:
            yield text

        await self._reply_stream(single())

    async def reply_stream(self, chunks: AsyncIterable[str]) -> str:
        """Answer with text as it arrives (a model stream); return the whole text."""
        return await self._reply_stream(chunks)
