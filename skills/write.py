"""``write``: poems, stories, haiku, limericks and song lyrics about a topic.

``!write haiku about autumn rain --tone wistful --length short`` asks the model
for the form with its rules spelt out, sampling more freely than for answers.
Haiku and limericks are written whole and cut to their shape (three lines,
five lines) before anyone sees them; the other forms stream as they are written.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass, replace
from typing import Literal, cast

from pydantic import Field

from confab.bot.skill import (
    ChatMessage,
    GenerationParams,
    GenerationSettings,
    PromptTemplates,
    Skill,
    SkillContext,
)

PROMPTS = PromptTemplates.load(__package__, "write.toml")

Length = Literal["short", "medium", "long"]
FORMS = ("poem", "story", "haiku", "limerick", "lyrics")
FORM_ALIASES = {"song": "lyrics"}
FIXED_FORMS = ("haiku", "limerick")
LENGTHS: tuple[Length, ...] = ("short", "medium", "long")
MAX_TOPIC_CHARS = 300
MAX_TONE_CHARS = 80
MIN_NEW_TOKENS = 48
NOTHING_WRITTEN = "I couldn't write that one; try another topic."


class WriteConfig(GenerationSettings):
    """``[skills.write]``: how much and how freely the model writes.

    ``max_new_tokens`` is the budget of a long piece; medium gets half, short a quarter.
    """

    max_new_tokens: int = Field(400, gt=0, le=8192)
    temperature: float = Field(0.5, ge=0.0, le=2.0)
    # Measured better than the bundled model (bench/quality.py); the channel's
    # model answers where it is not installed.
    model: str | None = Field("qwen2.5-coder-0.5b", max_length=200)
    default_length: Length = "medium"


class BadRequest(Exception):
    """What is wrong with a ``write`` request, as a sentence for whoever typed it."""


@dataclass(frozen=True, slots=True)
class WriteRequest:
    """A parsed ``write`` command: what to write, about what, and how."""

    form: str
    topic: str
    tone: str | None = None
    length: Length = "medium"


# Phones turn quotes curly and "--" into a dash; both are meant the plain way.
_QUOTES = {'"': '"', "“": "”", "„": "“", "'": "'", "‘": "’"}
_OPTION = re.compile(r"(?:--|[—–])([A-Za-z][\w-]*)")


def split_words(text: str) -> list[str]:
    """The words of ``text``, a quoted phrase counting as one word (without its quotes).

    Unlike :func:`shlex.split`, a single quote is an apostrophe (``dog's``,
    ``'tis``) unless a matching one ends a later word; an unclosed double quote
    raises :class:`BadRequest`.
    """
    words: list[str] = []
    rest = text.strip()
    while rest:
        opener = rest[0]
        if opener in _QUOTES:
            closer = re.compile(re.escape(_QUOTES[opener]) + r"(?=\s|$)")
            end = closer.search(rest, 1)
            if end is not None:
                words.append(" ".join(rest[1 : end.start()].split()))
                rest = rest[end.end() :].lstrip()
                continue
            if opener not in "'‘":
                raise BadRequest(f"A quote ({opener}) is never closed.")
        word = rest.split(maxsplit=1)
        words.append(word[0])
        rest = word[1] if len(word) > 1 else ""
    return words


def parse_request(args: str, default_length: Length = "medium") -> WriteRequest:
    """``FORM [about] TOPIC`` with ``--tone TONE`` and ``--length LENGTH`` anywhere."""
    tone: str | None = None
    length = default_length
    rest: list[str] = []
    words = iter(split_words(args))
    for word in words:
        option = _OPTION.fullmatch(word)
        if option is None:
            rest.append(word)
            continue
        name = option.group(1).lower()
        if name not in ("tone", "length"):
            raise BadRequest(f"I don't know the option {_code(word)}.")
        value = next(words, None)
        if value is None or not value.strip() or _OPTION.fullmatch(value):
            raise BadRequest(f"`--{name}` needs a value after it.")
        if name == "tone":
            tone = " ".join(value.split())
            if len(tone) > MAX_TONE_CHARS:
                raise BadRequest(f"Keep the tone under {MAX_TONE_CHARS} characters.")
        elif value.lower() in LENGTHS:
            length = cast(Length, value.lower())
        else:
            raise BadRequest(f"`--length` is short, medium or long, not {_code(value)}.")
    if len(rest) > 1 and rest[0].lower() in ("a", "an"):
        rest = rest[1:]
    if not rest:
        raise BadRequest("Tell me what to write, and about what.")
    asked = rest[0].lower().rstrip(":,.")
    form = FORM_ALIASES.get(asked, asked)
    if form not in FORMS:
        raise BadRequest(f"{_code(rest[0])} is not a form I know.")
    topic_words = rest[1:]
    if topic_words and topic_words[0].lower() == "about":
        topic_words = topic_words[1:]
    topic = " ".join(" ".join(topic_words).split())
    if not topic:
        raise BadRequest(f"What should the {form} be about?")
    if len(topic) > MAX_TOPIC_CHARS:
        raise BadRequest(
            f"That topic is {len(topic)} characters long; keep it under {MAX_TOPIC_CHARS}."
        )
    return WriteRequest(form, topic, tone, length)


def _code(word: str) -> str:
    return "`" + word.replace("`", "")[:40] + "`"


def usage(prefix: str, problem: str | None = None) -> str:
    """The usage reply, after the sentence saying what was wrong (if any)."""
    lines = [problem] if problem else []
    lines += [
        f"Usage: `{prefix}write FORM [about] TOPIC [--tone TONE] [--length short|medium|long]`",
        "Forms: poem, story, haiku, limerick, lyrics (or song). "
        "Put a tone of several words in quotes.",
        f'Example: `{prefix}write haiku about autumn rain --tone "quiet and sad"`',
    ]
    return "\n".join(lines)


def build_prompt(request: WriteRequest, system_prompt: str) -> list[ChatMessage]:
    """The system prompt, then one user turn: the form, its rules, the tone and length."""
    form = request.form
    what = PROMPTS.render(f"{form}_what")
    sentences = [
        PROMPTS.render("request", what=what, topic=request.topic.rstrip(".!? ")),
        PROMPTS.render(f"{form}_rules"),
    ]
    if request.tone:
        sentences.append(PROMPTS.render("tone", tone=request.tone.rstrip(".!? ")))
    if form not in FIXED_FORMS:
        sentences.append(PROMPTS.render(f"length_{request.length}"))
    return [ChatMessage("system", system_prompt), ChatMessage("user", " ".join(sentences))]


def token_budget(request: WriteRequest, max_new_tokens: int) -> int:
    """Tokens for the answer: all of ``max_new_tokens`` when long, half medium, a quarter
    short. A haiku is always short and a limerick never long."""
    length = request.length
    if request.form == "haiku":
        length = "short"
    elif request.form == "limerick" and length == "long":
        length = "medium"
    share = {"short": max_new_tokens // 4, "medium": max_new_tokens // 2, "long": max_new_tokens}
    return min(max_new_tokens, max(MIN_NEW_TOKENS, share[length]))


# What small models put around a poem: list markers, syllable counts, quotes,
# and before it a title or a "Here is your haiku:".
_MARKER = re.compile(r"^(?:[-*•]\s+|>\s*|\d+[.)]\s+|line \d+:\s*)", re.IGNORECASE)
_COUNT = re.compile(r"\s*\(\s*\d+(?:\s*syllables?)?\s*\)$", re.IGNORECASE)
_CHATTER = re.compile(r"(?:here(?:['’]s| is| are)|sure|certainly|of course|okay)\b", re.IGNORECASE)
_TITLE = re.compile(r"title\b", re.IGNORECASE)
_BOLD_ONLY = re.compile(r"(\*\*|__)[^*_]+\1")
_SLASH = re.compile(r"\s+/\s*|\s*/\s+")


def piece_lines(text: str) -> list[str]:
    """The lines of a model's answer, without the preamble and decoration around them."""
    lines: list[str] = []
    for raw in text.splitlines():
        stripped = raw.strip()
        line = _COUNT.sub("", _MARKER.sub("", stripped)).strip().strip('"“”').strip()
        if not any(character.isalpha() for character in line):
            continue
        if not lines and _CHATTER.match(line):
            # "Here is a haiku: Leaves fall ..." keeps what follows the colon.
            line = line.partition(":")[2].strip()
        if not lines and (
            not line
            or line.endswith(":")
            or stripped.startswith("#")
            or _TITLE.match(line)
            or _BOLD_ONLY.fullmatch(stripped)
        ):
            continue
        lines.append(line)
    return lines


def syllables(word: str) -> int:
    """An estimate: groups of vowels, less a silent final e (``change``, ``leaves``)."""
    letters = re.sub(r"[^a-z]", "", word.lower())
    if not letters:
        return 1 if any(character.isdigit() for character in word) else 0
    count = len(re.findall(r"[aeiouy]+", letters))
    silent_e = letters.endswith("e") and not letters.endswith(("le", "ee"))
    silent_ending = re.search(r"[^aeiouytd]ed$|[^aeiouysxzh]es$", letters) is not None
    if count > 1 and (silent_e or silent_ending):
        count -= 1
    return max(1, count)


_OPEN_END = re.compile(r"[,;:\u2013\u2014-]+$")


def _closed(line: str) -> str:
    """``line`` without a dangling comma or dash: the last line of a piece ends it."""
    return _OPEN_END.sub("", line.rstrip()).rstrip() or line


def shape_haiku(text: str) -> str:
    """Three lines: the answer's first three, or its words laid out 5/7/5 when it gave
    fewer lines (a haiku on one line, or with slashes, is common). The last line
    never ends on a comma or dash."""
    lines = [part for line in piece_lines(text) for part in _SLASH.split(line) if part]
    if len(lines) >= 3:
        return "\n".join([*lines[:2], _closed(lines[2])])
    words = " ".join(lines).split()
    if len(words) < 3:
        return "\n".join(lines)
    counts = list(itertools.accumulate(syllables(word) for word in words))

    def before(cut: int) -> int:  # syllables of words[:cut]
        return counts[cut - 1]

    def cost(cut: int) -> float:  # near 17 syllables, better at the end of a sentence
        ends_sentence = words[cut - 1].endswith((".", "!", "?")) or cut == len(words)
        return abs(before(cut) - 17) - (4 if ends_sentence else 0)

    end = len(words)
    if counts[-1] > 17 + 7:  # a paragraph, not a haiku on one line: keep about 17
        end = min(range(3, len(words) + 1), key=cost)
    first, second = min(
        ((i, j) for i in range(1, end - 1) for j in range(i + 1, end)),
        key=lambda cuts: abs(before(cuts[0]) - 5) + abs(before(cuts[1]) - 12),
    )
    parts = [" ".join(part) for part in (words[:first], words[first:second], words[second:end])]
    return "\n".join([*parts[:2], _closed(parts[2])])


def shape_limerick(text: str) -> str:
    """At most five lines, the preamble left out, the last one closed."""
    lines = piece_lines(text)[:5]
    return "\n".join([*lines[:-1], _closed(lines[-1])]) if lines else ""


LIMERICK_LINES = 5


async def _or_apology(pieces: AsyncIterable[str]) -> AsyncIterator[str]:
    """The model's text as it comes (less leading blank space), or an apology when
    it came back empty."""
    written = False
    async for piece in pieces:
        if not written:
            piece = piece.lstrip()
            written = bool(piece)
        if piece:
            yield piece
    if not written:
        yield NOTHING_WRITTEN


class WriteSkill(Skill):
    """Creative writing for chat users: a poem, story, haiku, limerick or lyrics on request."""

    name = "write"
    help = "Write a poem, story, haiku, limerick or song lyrics about a topic."
    usage = (
        "poem|story|haiku|limerick|lyrics [about] <topic> "
        "[--tone TONE] [--length short|medium|long]"
    )
    config_model = WriteConfig

    async def run(self, ctx: SkillContext) -> None:
        config: WriteConfig = ctx.config or WriteConfig()
        if not ctx.args.strip():
            await ctx.reply(usage(ctx.prefix))
            return
        try:
            request = parse_request(ctx.args, config.default_length)
        except BadRequest as problem:
            await ctx.reply(usage(ctx.prefix, str(problem)))
            return
        messages = build_prompt(request, PROMPTS.render("system"))
        params: GenerationParams = config.params(ctx.model.default_params)
        params = replace(params, max_new_tokens=token_budget(request, config.max_new_tokens))
        if request.form not in FIXED_FORMS:
            await ctx.reply_stream(_or_apology(ctx.model.stream(messages, params)))
            return
        # Generated whole, so nobody sees the chatter that the cut removes.
        text = await ctx.model.complete(messages, params)
        if request.form == "haiku":
            await ctx.reply(shape_haiku(text) or NOTHING_WRITTEN)
            return
        shaped = shape_limerick(text)
        if len(shaped.splitlines()) < LIMERICK_LINES:  # short of a limerick: one more try
            retry = replace(params, seed=(params.seed or 0) + 1)
            again = shape_limerick(await ctx.model.complete(messages, retry))
            shaped = max(shaped, again, key=lambda piece: len(piece.splitlines()))
        lines = len(shaped.splitlines())
        if shaped and lines < LIMERICK_LINES:
            shaped += f"\n\n(Only {lines} lines came out; a limerick has five.)"
        await ctx.reply(shaped or NOTHING_WRITTEN)
