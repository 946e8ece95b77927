"""``summarise``: what was said in this channel or thread, in a few bullet points.

The window is the last N messages or a time span. A history longer than the
model's context window is summarised map-reduce: cut into chunks by token
budget, each chunk summarised (concurrently: they share the model engine, which
batches them), then the chunk summaries merged into one.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from pydantic import Field

from confab.bot.errors import SkillError
from confab.bot.skill import (
    ChatMessage,
    GenerationParams,
    GenerationSettings,
    Message,
    ModelBackend,
    PromptTemplates,
    Skill,
    SkillContext,
)
from confab.skills.summary_facts import KeyFact, key_facts, missing_facts

log = logging.getLogger(__name__)

TEMPLATES = PromptTemplates.load(__package__, "summarise.toml")
SPAN = re.compile(r"^([0-9]{1,5})\s*(m|mins?|minutes?|h|hrs?|hours?|d|days?)$")
UNITS = {"m": ("minute", 1), "h": ("hour", 60), "d": ("day", 1440)}
MIN_ROOM = 64  # tokens of chat a prompt must have room for
MAX_REDUCE_ROUNDS = 4


class SummariseConfig(GenerationSettings):
    max_new_tokens: int | None = Field(256, gt=0, le=8192)
    # Measured better than the bundled model (bench/quality.py); the channel's
    # model answers where it is not installed.
    model: str | None = Field("qwen2.5-coder-0.5b", max_length=200)
    # `!summarise` alone: the last this many messages.
    default_messages: int = Field(50, ge=1, le=10_000)
    # The most messages one summary reads, whatever was asked.
    max_messages: int = Field(500, ge=1, le=10_000)
    # Chat tokens per chunk when a history does not fit one prompt.
    chunk_tokens: int = Field(1500, ge=100, le=100_000)
    # Chunks summarised at the same time.
    max_parallel: int = Field(4, ge=1, le=64)
    # Decisions, owners and dates the summary left out are added after it, up to this many.
    max_added_facts: int = Field(8, ge=0, le=50)


@dataclass(frozen=True, slots=True)
class Window:
    """What to summarise: the last ``count`` messages, or those ``since`` a time."""

    label: str
    count: int | None = None
    since: datetime | None = None


class SummariseSkill(Skill):
    name = "summarise"
    aliases = ("summarize", "tldr")
    help = "Summarise this channel or thread: the last N messages, or a time span."
    usage = "[N | 30m | 2h | 1d | today]"
    config_model = SummariseConfig

    async def run(self, ctx: SkillContext) -> None:
        config: SummariseConfig = ctx.config or SummariseConfig()
        window = await _window(ctx, config)
        if window is None:
            await ctx.reply(_usage(ctx.prefix, config))
            return
        wanted = min(window.count or config.max_messages, config.max_messages)
        # One more than wanted: the platform's history holds this command too.
        read = await ctx.history.read(limit=wanted + 1, since=window.since)
        read = [m for m in read if m.id is None or m.id != ctx.message.id][-wanted:]
        said = [m for m in read if not m.from_self and m.command is None and m.text.strip()]
        if not said:
            await ctx.reply(f"There is nothing to summarise in {window.label}.")
            return
        label = window.label
        if window.since is not None and len(read) >= wanted:
            label += f" (the newest {_count(wanted, 'message')})"
        summary = Summariser(ctx.model, config)
        chunks = summary.chunks([_line(m) for m in said])
        # The chunks are summarised before anything is posted, so a failure
        # among them is one clear error, not a header left without a summary.
        prompt = await summary.final_prompt(chunks)
        header = f"**Summary of {label}** ({_count(len(said), 'message')}"
        header += f", in {len(chunks)} parts)\n\n" if len(chunks) > 1 else ")\n\n"
        facts = key_facts([(m.author.name, m.text) for m in said])[-config.max_added_facts :]
        if not config.max_added_facts:
            facts = []
        await ctx.reply_stream(_prefixed(header, summary.stream(prompt), facts))


class Summariser:
    """Summaries of transcript lines that fit the model's window, however many there are."""

    def __init__(self, model: ModelBackend, config: SummariseConfig) -> None:
        self._model = model
        self._config = config
        self._params: GenerationParams = config.params(model.default_params)
        self._slots = asyncio.Semaphore(config.max_parallel)

    def _room(self, template: str, **values: object) -> int:
        """Tokens of chat a prompt from ``template`` can hold."""
        empty = self._prompt(template, **values, transcript="", summaries="")
        room = self._model.context_window - self._params.max_new_tokens
        room -= self._model.count_tokens(empty)
        room = room * 19 // 20  # pieces counted apart can take a few more tokens joined
        if room < MIN_ROOM:
            raise SkillError(
                "The model's context window is too small for a summary.",
                f"{room} tokens left for chat in a {template} prompt",
            )
        return room

    def _prompt(self, template: str, **values: object) -> list[ChatMessage]:
        text = TEMPLATES.render(template, **values)
        return [ChatMessage("system", TEMPLATES.render("system")), ChatMessage("user", text)]

    def chunks(self, lines: Sequence[str]) -> list[list[str]]:
        """The lines in one chunk if they fit a single prompt, else cut by token budget."""
        if self._tokens(lines) <= self._room("single"):
            return [list(lines)]
        budget = min(self._config.chunk_tokens, self._room("map", part=999, parts=999))
        return _pack(lines, budget, self._model.count_text)

    def _tokens(self, lines: Sequence[str]) -> int:
        return sum(self._model.count_text(line) + 1 for line in lines)

    async def final_prompt(self, chunks: list[list[str]]) -> list[ChatMessage]:
        """The prompt of the summary itself: over the chat when it is one chunk, else over
        the chunks' summaries (generated here)."""
        if len(chunks) == 1:
            return self._prompt("single", transcript="\n".join(chunks[0]))
        return await self._reduce_to_one(await self._map(chunks))

    def stream(self, prompt: list[ChatMessage]) -> AsyncIterator[str]:
        """The summary as the model writes it."""
        return self._model.stream(prompt, self._params)

    async def _map(self, chunks: list[list[str]]) -> list[str]:
        log.info("summarising %d chunks concurrently", len(chunks))
        return await self._complete_all(
            self._prompt("map", part=n, parts=len(chunks), transcript="\n".join(chunk))
            for n, chunk in enumerate(chunks, 1)
        )

    async def _reduce_to_one(self, summaries: list[str]) -> list[ChatMessage]:
        """The final prompt over the chunk summaries, merging groups of them first while
        they are too many for one prompt."""
        room = self._room("reduce")
        for _ in range(MAX_REDUCE_ROUNDS):
            parts = _numbered(summaries)
            if self._tokens(parts) <= room:
                break
            groups = _pack(parts, room, self._model.count_text)
            if len(groups) == len(parts):  # no two fit together: merging gains nothing
                break
            summaries = await self._complete_all(
                self._prompt("reduce", summaries="\n\n".join(group)) for group in groups
            )
        parts = _numbered(summaries)
        if self._tokens(parts) > room:  # still too long: each part keeps its share
            share = room // len(parts)
            parts = [_cut(part, share, self._model.count_text) for part in parts]
        return self._prompt("reduce", summaries="\n\n".join(parts))

    async def _complete_all(self, prompts: Iterable[list[ChatMessage]]) -> list[str]:
        """Whole answers to every prompt, generated concurrently; one failure cancels all
        and is raised as itself (a busy model stays "busy", not a task group error)."""
        try:
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(self._complete(prompt)) for prompt in prompts]
        except* Exception as failures:
            raise failures.exceptions[0] from None
        return [task.result() for task in tasks]

    async def _complete(self, prompt: list[ChatMessage]) -> str:
        async with self._slots:
            return await self._model.complete(prompt, self._params)


def _numbered(summaries: Sequence[str]) -> list[str]:
    return [f"Part {n}:\n{text.strip()}" for n, text in enumerate(summaries, 1)]


def _pack(lines: Sequence[str], budget: int, count: Callable[[str], int]) -> list[list[str]]:
    """Consecutive lines grouped so each group takes at most ``budget`` tokens.

    A single line over the budget is cut to fit: a summary may lose the end of
    one very long message, never a whole message.
    """
    groups: list[list[str]] = []
    current: list[str] = []
    spent = 0
    for line in lines:
        cut = _cut(line, budget, count)
        tokens = count(cut) + 1
        if current and spent + tokens > budget:
            groups.append(current)
            current, spent = [], 0
        current.append(cut)
        spent += tokens
    if current:
        groups.append(current)
    return groups


def _cut(line: str, budget: int, count: Callable[[str], int]) -> str:
    """``line``, shortened with an ellipsis if it takes more than ``budget`` tokens."""
    if count(line) + 1 <= budget:
        return line
    low, high = 0, len(line)  # the longest prefix that fits, by binary search
    while low < high:
        middle = (low + high + 1) // 2
        if count(line[:middle].rstrip() + "…") + 1 <= budget:
            low = middle
        else:
            high = middle - 1
    return line[:low].rstrip() + "…"


def _line(message: Message) -> str:
    return f"{message.author.name}: {' '.join(message.text.split())}"


async def _prefixed(
    header: str, pieces: AsyncIterator[str], facts: Sequence[KeyFact] = ()
) -> AsyncIterator[str]:
    """The header, the model's summary as bullets, then the key facts it left out."""
    yield header
    bullets = Bullets()
    shown: list[str] = []
    async for piece in pieces:
        if text := bullets.feed(piece):
            shown.append(text)
            yield text
    last = bullets.close()
    shown.append(last)
    yield last or ("" if facts else NO_SUMMARY)
    missing = missing_facts("".join(shown), facts)
    if missing:
        lines = "\n".join(fact.bullet for fact in missing)
        yield (
            "\n\n" if "".join(shown).strip() else ""
        ) + f"**Decisions, owners and dates**\n{lines}"


NO_SUMMARY = "The model gave no summary; please try again."
FIRST_LINE_HOLD = 200  # characters of a first line held back to see if it is a preamble
_MARKER = re.compile(r"^\s*(?:[-*•+]|\d{1,2}[.)])\s+")
_HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*$")
_INTERJECTION = re.compile(r"^(?:sure|okay|ok|certainly|of course)\W*$", re.IGNORECASE)
_SENTENCE_END = re.compile(r"(?<![Ee]\.g\.)(?<!\bi\.e\.)(?<=[.!?])\s+(?=[A-Z0-9\"'*(])")


class Bullets:
    """A summary's text as bullet points, while it streams.

    Small models often answer in prose however the prompt asks: a line that is
    not a list item becomes one bullet per sentence (sent as each sentence
    ends), list items keep their text under a "- ", headings become bold lines,
    and a preamble ("Sure! Here is a summary:") is dropped. The result does not
    depend on how the text was cut into pieces.
    """

    def __init__(self) -> None:
        self._line = ""
        self._sent = False

    def feed(self, piece: str) -> str:
        out = []
        self._line += piece
        while "\n" in self._line:
            line, self._line = self._line.split("\n", 1)
            out.append(self._finish(line))
        # Sentences of a prose line go out as they end; a first line waits for its
        # end (or a good length), since it may be a preamble.
        line = self._line
        if (self._sent or len(line) > FIRST_LINE_HOLD) and not self._special(line):
            *done, self._line = _SENTENCE_END.split(line)
            out += [self._bullet(sentence) for sentence in done]
        return "".join(out)

    def close(self) -> str:
        """The rest of the text; empty if the model wrote nothing worth showing at all."""
        line, self._line = self._line, ""
        return self._finish(line)

    @staticmethod
    def _special(line: str) -> bool:
        stripped = line.lstrip()
        return len(stripped) < 3 or bool(_MARKER.match(line)) or stripped.startswith("#")

    def _finish(self, line: str) -> str:
        text = line.strip()
        if not text or (not self._sent and text.endswith(":")):
            return ""
        if heading := _HEADING.match(text):
            return self._emit(f"**{heading[1]}**") if heading[1] else ""
        if _MARKER.match(text):
            return self._bullet(_MARKER.sub("", text))
        sentences = _SENTENCE_END.split(text)
        if not self._sent:
            sentences = [s for s in sentences if not _INTERJECTION.match(s)]
        return "".join(self._bullet(sentence) for sentence in sentences)

    def _bullet(self, text: str) -> str:
        text = text.strip()
        return self._emit(f"- {text}") if text else ""

    def _emit(self, line: str) -> str:
        separator = "\n" if self._sent else ""
        self._sent = True
        return separator + line


async def _window(ctx: SkillContext, config: SummariseConfig) -> Window | None:
    """The window the arguments ask for; None when they are not understood."""
    wanted = ctx.args.strip().lower()
    if not wanted:
        return Window(
            f"the last {_count(config.default_messages, 'message')}", count=config.default_messages
        )
    if re.fullmatch(r"[0-9]+", wanted):
        digits = wanted.lstrip("0") or "0"
        # More digits than any count: int() would refuse past 4,300 of them.
        count = int(digits) if len(digits) <= 9 else config.max_messages + 1
        if count == 0:
            return None
        if count > config.max_messages:
            return Window(
                f"the last {_count(config.max_messages, 'message')} (the most I read)",
                count=config.max_messages,
            )
        return Window(f"the last {_count(count, 'message')}", count=count)
    if wanted == "today":
        settings = await ctx.channel.settings()
        zone = ZoneInfo(settings.timezone or "UTC")
        midnight = datetime.now(zone).replace(hour=0, minute=0, second=0, microsecond=0)
        return Window("today", since=midnight.astimezone(UTC))
    span = SPAN.match(wanted)
    if span is None or int(span[1]) == 0:
        return None
    unit, minutes = UNITS[span[2][0]]
    amount = int(span[1])
    if amount * minutes > 366 * 1440:
        return None
    since = datetime.now(UTC) - timedelta(minutes=amount * minutes)
    label = f"the last {unit}" if amount == 1 else f"the last {amount} {unit}s"
    return Window(label, since=since)


def _count(number: int, noun: str) -> str:
    return f"1 {noun}" if number == 1 else f"{number:,} {noun}s"


def _usage(prefix: str, config: SummariseConfig) -> str:
    return (
        f"Usage: `{prefix}summarise` (the last {config.default_messages} messages), "
        f"`{prefix}summarise 100` (the last 100, up to {config.max_messages}), "
        f"`{prefix}summarise 30m`, `2h`, `1d` or `today` (a time span)."
    )
