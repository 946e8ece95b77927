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

from abc import ABC, abstractmethod
from collections.abc import (
    AsyncIterable,
    Awaitable,
    Callable,
    Collection,
    Iterable,
    Mapping,
    Sequence,
)
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Protocol
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field

from confab.bot.arguments import Arg, declaration_problems, usage_of
from confab.bot.knowledge.agreement import agrees_with_any, telling_words
from confab.bot.knowledge.passage import Passage, Quote
from confab.bot.llm.backend import ChatMessage, GenerationParams, ModelBackend
from confab.bot.llm.context import label_speakers
from confab.bot.messages import NAME_PATTERN, Message
from confab.bot.prompts import PromptTemplates
from confab.bot.scheduling.jobs import ScheduledJob
from confab.bot.skill_state import SkillState, StateScope

if TYPE_CHECKING:
    from confab.bot.skill_lifecycle import SkillApp
from confab.storage.records import ChannelSettings, Forgotten, StoredDocument

__all__ = [
    "ChannelControls",
    "ChannelHistory",
    "ChannelSettings",
    "ChatMessage",
    "ConversationMemory",
    "Forgotten",
    "GenerationParams",
    "GenerationSettings",
    "Knowledge",
    "Message",
    "ModelBackend",
    "Passage",
    "Privacy",
    "PromptTemplates",
    "Quote",
    "Schedule",
    "ScheduledJob",
    "Skill",
    "SkillContext",
    "SkillInfo",
    "SkillState",
    "StateScope",
    "StoredDocument",
    "agrees_with_any",
    "label_speakers",
    "telling_words",
]


# Never switched off in a channel (``!skills``), so an admin can always undo the switches.
ALWAYS_ON = frozenset({"help", "skills"})


def switched_off_of(enabled: Sequence[str] | None, installed: Iterable[str]) -> frozenset[str]:
    """The installed skills a channel's ``enabled_skills`` setting leaves out (None:
    none), :data:`ALWAYS_ON` excepted."""
    if enabled is None:
        return frozenset()
    return frozenset(name for name in installed if name not in enabled and name not in ALWAYS_ON)


def enabled_after(
    installed: Sequence[str], switched_off: Collection[str], names: Sequence[str], *, on: bool
) -> list[str] | None:
    """A channel's ``enabled_skills`` once ``names`` are switched on (or off): None when
    that leaves every installed skill on."""
    now_on = [name for name in installed if name not in switched_off]
    if on:
        now_on += [name for name in names if name not in now_on]
    else:
        now_on = [name for name in now_on if name not in names]
    return None if len(now_on) == len(installed) else now_on


class Skill(ABC):
    """Base class of every skill, built-in or third-party."""

    name: ClassVar[str]
    help: ClassVar[str]
    usage: ClassVar[str] = ""
    # What the skill takes, declared once (see confab.bot.arguments): the router
    # parses it into ``ctx.options`` and answers bad input with the usage; help and
    # slash commands are made from it. None: free text in ``ctx.args``, as ``usage`` says.
    arguments: ClassVar[tuple[Arg, ...] | None] = None
    aliases: ClassVar[tuple[str, ...]] = ()
    config_model: ClassVar[type[BaseModel] | None] = None
    # False for a skill that never calls ctx.model: it answers while the model is
    # still loading at start (ctx.model then waits for it, should the skill call it).
    uses_model: ClassVar[bool] = True
    # Only admins may run the skill at all.
    admin_only: ClassVar[bool] = False
    # Sub-commands only admins may run, the router enforces them: "set" (that
    # first word of the arguments), or "timezone NAME" (that word followed by
    # anything; the word alone stays open to everyone).
    admin_commands: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: BaseModel | None = None) -> None:
        self.config = config

    @abstractmethod
    async def run(self, ctx: SkillContext) -> None:
        """Answer ``ctx.message`` through ``ctx.reply`` or ``ctx.reply_stream``."""

    async def start(self, app: SkillApp) -> None:  # noqa: B027 (a hook: empty by design)
        """Optional: called once before the first message (start background tasks,
        open clients); see :mod:`confab.bot.skill_lifecycle`."""

    async def stop(self) -> None:  # noqa: B027
        """Optional: called once at shutdown, after the last answer (bounded in time)."""

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
        if cls.arguments is not None:
            if not isinstance(cls.arguments, tuple) or not all(
                isinstance(argument, Arg) for argument in cls.arguments
            ):
                problems.append("arguments must be a tuple of Arg")
            else:
                problems.extend(declaration_problems(cls.arguments))
        if cls.config_model is not None and not issubclass(cls.config_model, BaseModel):
            problems.append("config_model must be a pydantic model")
        problems.extend(
            f"admin command {entry!r} must be a lowercase word, optionally followed by a name"
            for entry in cls.admin_commands
            if not NAME_PATTERN.match(entry.partition(" ")[0]) or entry.count(" ") > 1
        )
        return problems

    @classmethod
    def admin_command(cls, args: str) -> str | None:
        """The declared admin-only command that ``args`` invokes, if any
        (``""`` for an admin-only skill), else None."""
        if cls.admin_only:
            return ""
        words = args.split(maxsplit=1)  # any whitespace: "set\n<text>" is "set"
        if not words:
            return None
        for entry in cls.admin_commands:
            word, _, takes_name = entry.partition(" ")
            if words[0].lower() == word and (not takes_name or len(words) > 1):
                return word
        return None


@dataclass(frozen=True, slots=True)
class SkillInfo:
    """A skill's declaration as ``help`` and the router see it."""

    name: str
    help: str
    usage: str
    aliases: tuple[str, ...]
    admin_only: bool = False
    admin_commands: tuple[str, ...] = ()
    arguments: tuple[Arg, ...] | None = None  # declared; None: free text

    @classmethod
    def of(cls, skill: type[Skill]) -> SkillInfo:
        arguments = skill.arguments
        usage = skill.usage or (usage_of(arguments) if arguments is not None else "")
        return cls(
            skill.name,
            skill.help,
            usage,
            tuple(skill.aliases),
            skill.admin_only,
            tuple(skill.admin_commands),
            tuple(arguments) if arguments is not None else None,
        )


class GenerationSettings(BaseModel):
    """Config keys every model-using skill offers: unset means the model's default.

    Subclass it for a skill's ``config_model``; :meth:`params` applies the keys
    that are set to the model's defaults.
    """

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    max_new_tokens: int | None = Field(None, gt=0, le=8192)
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    # A model of its own for this skill (a name from `confab model list`); unset,
    # the channel's model answers.
    model: str | None = Field(None, max_length=200)

    def params(self, defaults: GenerationParams) -> GenerationParams:
        changes: dict[str, Any] = {}
        if self.max_new_tokens is not None:
            changes["max_new_tokens"] = self.max_new_tokens
        if self.temperature is not None:
            changes["temperature"] = self.temperature
        return replace(defaults, **changes)


class ConversationMemory:
    """The current conversation (this thread, or this channel outside threads) as the
    skill answering it remembers it: its own earlier exchanges, since the last reset."""

    def __init__(
        self,
        load: Callable[[int, int | None], Awaitable[list[ChatMessage]]],
        reset: Callable[[], Awaitable[None]],
    ) -> None:
        self._load = load
        self._reset = reset

    async def recent(self, max_turns: int = 20, max_tokens: int | None = None) -> list[ChatMessage]:
        """Up to ``max_turns`` turns before this message (oldest first), within
        ``max_tokens`` if given. User turns carry their author in ``name``."""
        return await self._load(max_turns, max_tokens)

    async def reset(self) -> None:
        """Forget the conversation so far, for every skill: the next message starts afresh.

        Nothing is deleted (summaries still see it); it only leaves the memory.
        """
        await self._reset()


class ChannelHistory(Protocol):
    """What was said in the current channel or thread, read from the platform."""

    async def read(self, *, limit: int, since: datetime | None = None) -> list[Message]:
        """The newest ``limit`` messages (since ``since`` if given), oldest first.

        Messages that ran a command (``!ask ...``) have ``command`` set; the
        bot's own have ``from_self``. Raises :class:`confab.bot.errors.Unsupported`
        where the platform keeps no history.
        """
        ...


class Schedule(Protocol):
    """Scheduled jobs of the current channel. Errors are :class:`confab.bot.errors.ConfabError`
    with a sentence for the user (a bad schedule lists the forms that work)."""

    async def add(self, text: str) -> ScheduledJob:
        """``<when> <skill> [args]``: run a skill here on a timetable (admins only)."""
        ...

    async def remind(self, text: str) -> ScheduledJob:
        """``in 2h <text>`` or ``at HH:MM <text>``: remind the author here, once."""
        ...

    def jobs(self) -> list[ScheduledJob]:
        """This channel's jobs, soonest first."""
        ...

    async def remove(self, job_id: str) -> ScheduledJob:
        """Remove a job of this channel (its owner's or, for admins, anyone's)."""
        ...

    async def pause(self, job_id: str, *, paused: bool = True) -> ScheduledJob:
        """Pause a job of this channel (``paused=False``: resume it), as :meth:`remove`
        allows; a paused job keeps its place and runs again once resumed."""
        ...

    async def zone(self) -> ZoneInfo:
        """The channel's timezone (its settings, else ``bot.timezone``)."""
        ...


class ChannelControls(Protocol):
    """The current channel's settings (``timezone``, ``system_prompt`` override ...)."""

    async def settings(self) -> ChannelSettings:
        """The channel's settings; a channel never configured has the defaults."""
        ...

    async def set_timezone(self, name: str | None) -> ChannelSettings:
        """Set the channel's timezone (an IANA name); None restores ``bot.timezone``.

        Raises :class:`confab.bot.errors.NotAllowed` unless the author is an admin, and
        :class:`confab.bot.errors.SkillError` for a name that is not a timezone.
        """
        ...

    async def set_system_prompt(self, prompt: str | None) -> ChannelSettings:
        """Set the channel's own system prompt (``ask`` answers with it); None clears it.

        Raises :class:`confab.bot.errors.NotAllowed` unless the author is an admin.
        """
        ...

    async def set_training_optin(self, optin: bool) -> ChannelSettings:
        """Let this channel's conversations be exported for fine-tuning, or stop it.

        Raises :class:`confab.bot.errors.NotAllowed` unless the author is an admin.
        """
        ...

    async def set_enabled_skills(self, names: Sequence[str] | None) -> ChannelSettings:
        """Let only these skills answer here (``help`` and ``skills`` always do); None:
        every skill.

        Raises :class:`confab.bot.errors.NotAllowed` unless the author is an admin.
        """
        ...


class Privacy(Protocol):
    """What the author of the message being answered may have the bot forget.

    Each call deletes at once and says how much went. ``forget_channel``
    raises :class:`confab.bot.errors.NotAllowed` unless the author is an admin
    (``router.admins``), whichever skill calls it.
    """

    async def forget_author(self) -> Forgotten:
        """Every stored turn of the author on this platform, and the bot's replies to them."""
        ...

    async def forget_channel(self) -> Forgotten:
        """Every stored turn of this channel, its threads included."""
        ...


class Knowledge(Protocol):
    """The team's knowledge as the author of this message may read it: this channel's
    history (its threads included), the channels in ``[knowledge] shared_channels``
    (never a DM), and the documents whose scope includes this channel."""

    @property
    def enabled(self) -> bool:
        """False where the knowledge base is switched off: searches find nothing."""
        ...

    async def search(self, query: str, *, limit: int | None = None) -> list[Passage]:
        """The passages that best match ``query``, best first (no model involved)."""
        ...

    async def relevant(self, query: str) -> list[Passage]:
        """The passages relevant enough to answer ``query`` from (``[knowledge]
        min_similarity``), at most ``max_passages``, best first; often none."""
        ...

    async def quotes(self, passages: Sequence[Passage], question: str) -> list[Quote]:
        """Each passage's line (a message, or a document's sentence) that best answers
        ``question``, the closest first."""
        ...

    async def source(self, passage: Passage) -> str:
        """One line naming where a passage comes from: a link where the platform has
        one, who said it and when, or a document's name and heading."""
        ...

    async def add_attachment(self, *, everywhere: bool = False) -> list[str]:
        """Add the files attached to this message (admins only), for this channel or
        everywhere; one line per file saying what happened. Raises
        :class:`confab.bot.errors.NotAllowed` for others."""
        ...

    async def documents(self) -> list[StoredDocument]:
        """The documents that answer in this channel."""
        ...

    async def remove(self, name: str) -> list[StoredDocument]:
        """Remove documents by name (admins only); returns what was removed."""
        ...


class NoKnowledge:
    """The knowledge of a context built without one (tests, tools): nothing in it."""

    enabled = False

    async def search(self, query: str, *, limit: int | None = None) -> list[Passage]:
        return []

    async def relevant(self, query: str) -> list[Passage]:
        return []

    async def quotes(self, passages: Sequence[Passage], question: str) -> list[Quote]:
        return [Quote(p, p.text, 0.0) for p in passages]

    async def source(self, passage: Passage) -> str:
        return passage.heading

    async def add_attachment(self, *, everywhere: bool = False) -> list[str]:
        from confab.bot.errors import SkillError

        raise SkillError("The knowledge base is switched off here.")

    async def documents(self) -> list[StoredDocument]:
        return []

    async def remove(self, name: str) -> list[StoredDocument]:
        return []


@dataclass(frozen=True, slots=True)
class SkillContext:
    """Everything a skill may use while answering one message."""

    message: Message
    args: str  # the text after the command, as typed
    config: Any
    model: ModelBackend
    memory: ConversationMemory
    skills: Sequence[SkillInfo]
    prefix: str
    bot_name: str
    privacy: Privacy
    history: ChannelHistory
    channel: ChannelControls
    schedule: Schedule
    _reply_stream: Callable[[AsyncIterable[str]], Awaitable[str]]
    # Whether the author is an admin here (``router.admins``, or a platform role).
    admin: bool = False
    knowledge: Knowledge = field(default_factory=NoKnowledge)
    # The declared arguments' values, by name (defaults filled in); empty for a
    # skill that declares none.
    options: Mapping[str, Any] = field(default_factory=dict)
    # The skill's own key-value store: ``state.channel``, ``state.user``,
    # ``state.everywhere`` (see confab.bot.skill_state).
    state: SkillState | None = None
    # The skills an admin switched off in this channel (``!skills``): help leaves them out.
    switched_off: frozenset[str] = frozenset()

    async def reply(self, text: str) -> None:
        """Answer with a complete text (split across messages if the platform needs it)."""

        async def single() -> AsyncIterable[str]:
            yield text

        await self._reply_stream(single())

    async def reply_stream(self, chunks: AsyncIterable[str]) -> str:
        """Answer with text as it arrives (a model stream); return the whole text."""
        return await self._reply_stream(chunks)
