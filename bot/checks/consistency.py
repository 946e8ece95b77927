"""Self-consistency: a fact the model knows comes back the same when it is asked again;
an invented one changes every time.

For a factual question :func:`checked_stream` generates the answer and, in the
same batch, a few short samples at a higher temperature (the batch engine makes
them cost little more than the answer alone). The answer is held back until the
samples are in: when they agree with it, it streams on; when they disagree,
the person reads that the bot is not sure instead of a confident invention. A
model too slow to finish the samples within ``hold_s`` streams the answer at
once and adds a warning after it when the samples disagree, so the first words
never wait more than ``hold_s``.

Agreement is judged on the answers' first sentences: the share of samples
that name one of the answer's key terms (names, numbers, identifiers not in
the question, as the task score of ``confab model eval`` finds them), or, when
the answer names none, that share enough of its content words.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace

from confab.bot.llm.answer_check import FUNCTION_WORDS, key_terms, normalised
from confab.bot.llm.backend import ChatMessage, GenerationParams, ModelBackend

log = logging.getLogger(__name__)

UNSURE = (
    "I'm not sure about that: I don't have reliable information on it, and when I "
    "check my answer I get different ones each time, so I'd rather not guess."
)
DOUBT = "\n\n⚠️ I'm not sure about this: asked again, I gave different answers, so it may be wrong."
_QUESTION_START = re.compile(
    r"^(?:who|what|when|where|which|whose|how|why|is|are|was|were|did|does|do|has|have|had"
    r"|can|could|tell me|describe|explain|give me|name|list)\b",
    re.IGNORECASE,
)
_FIRST_SENTENCE = re.compile(r"(?<=[.!?])\s")
# Where _FIRST_SENTENCE splits, as stop strings for the samples.
SENTENCE_ENDS = tuple(end + space for end in ".!?" for space in (" ", "\n"))
_WORD = re.compile(r"[a-z0-9][a-z0-9'-]*")
# Content words that say nothing about which fact an answer states.
_CHATTER = FUNCTION_WORDS | frozenset(
    [
        "sure",
        "well",
        "yes",
        "also",
        "like",
        "known",
        "called",
        "named",
        "based",
        "located",
        "famous",
        "great",
        "important",
        "really",
        "actually",
        "however",
        "generally",
        "typically",
        "usually",
        "often",
        "used",
        "refers",
        "term",
    ]
)


@dataclass(frozen=True, slots=True)
class ConsistencySettings:
    """How many samples, how long, how freely, and how much agreement is enough."""

    samples: int = 3
    sample_tokens: int = 32
    temperature: float = 0.6
    agreement: float = 0.5  # share of samples that must agree with the answer
    hold_s: float = 1.5  # longest the answer waits for the samples before it streams
    overlap: float = 0.25  # content-word overlap that counts as agreeing, without key terms


def worth_checking(question: str) -> bool:
    """Whether ``question`` asks for a fact about something it names: a question
    with a name, number or identifier in it ("Who wrote Dune?"), not chat ("thanks!")
    nor a question about the conversation ("what is my name?")."""
    text = question.strip()
    if not text or len(text) > 300 or "\n" in text:
        return False
    if not (text.endswith("?") or _QUESTION_START.match(text)):
        return False
    # The first word is capitalised whatever it is: only the rest can name something.
    # Numbers alone ("186 euros for 6 of us") are a sum to do, not a thing to know.
    terms = key_terms(text.partition(" ")[2])
    return any(not term.replace(".", "").replace(",", "").isdigit() for term in terms)


def first_sentence(text: str) -> str:
    """The answer's first sentence (at most 40 words)."""
    sentence = _FIRST_SENTENCE.split(text.strip(), maxsplit=1)[0]
    return " ".join(sentence.split()[:40])


def _content_words(text: str, question: str) -> set[str]:
    asked = set(_WORD.findall(normalised(question)))
    return {
        word.removesuffix("'s")
        for word in _WORD.findall(normalised(text))
        if word not in _CHATTER and word not in asked and len(word) > 2
    }


def agreement(answer: str, samples: Sequence[str], question: str, overlap: float = 0.25) -> float:
    """The share of ``samples`` that state what ``answer`` states (first sentences)."""
    if not samples:
        return 1.0
    main = first_sentence(answer)
    asked = set(_WORD.findall(normalised(question)))
    terms = [t for t in key_terms(main) if t not in asked and t not in _CHATTER]
    words = _content_words(main, question)
    agreeing = 0
    numbers = [term for term in terms if any(c.isdigit() for c in term)]
    for sample in samples:
        other = first_sentence(sample)
        if terms:
            text = normalised(other)
            shared = [t for t in terms if re.search(rf"(?<!\w){re.escape(t)}(?!\w)", text)]
            # An invented fact keeps the name it was asked about and changes the
            # number: a sample that states other numbers contradicts the answer.
            contradicts = (
                bool(numbers)
                and not any(t in shared for t in numbers)
                and bool(re.search(r"\d", text))
            )
            agreeing += len(shared) * 2 >= len(terms) and not contradicts
        elif words:
            theirs = _content_words(other, question)
            agreeing += len(words & theirs) / max(len(words | theirs), 1) >= overlap
        else:
            agreeing += 1  # nothing to compare: an answer of function words only
    return agreeing / len(samples)


async def checked_stream(
    model: ModelBackend,
    messages: Sequence[ChatMessage],
    params: GenerationParams,
    settings: ConsistencySettings = ConsistencySettings(),
    question: str = "",
) -> AsyncIterator[str]:
    """The answer to ``messages``, checked against a few samples generated beside it.

    When the samples are in within ``settings.hold_s``, the answer is held back until
    then and replaced by :data:`UNSURE` if they disagree. A slower model does not keep
    the asker waiting longer: the answer streams, and :data:`DOUBT` follows it when
    the samples, once in, disagree.
    """
    pieces: asyncio.Queue[str | None] = asyncio.Queue()

    async def answer() -> None:
        try:
            async for piece in model.stream(messages, params):
                await pieces.put(piece)
        finally:
            await pieces.put(None)

    sample_params = replace(
        params,
        temperature=settings.temperature,
        max_new_tokens=min(settings.sample_tokens, params.max_new_tokens),
        # Only a sample's first sentence is compared: it ends there, and the answer
        # waits for the longest first sentence instead of every sample's 32 tokens.
        stop=(*params.stop, *SENTENCE_ENDS),
    )
    main = asyncio.create_task(answer())
    sampling = asyncio.ensure_future(
        asyncio.gather(
            *(
                model.complete(messages, replace(sample_params, seed=(params.seed or 0) + n))
                for n in range(1, settings.samples + 1)
            )
        )
    )
    try:
        await asyncio.wait([sampling], timeout=settings.hold_s)
        shown: list[str] = []
        ended = False
        if sampling.done():
            samples = sampling.result()
            # The answer so far: enough for its first sentence, or all of it.
            while not ended and not _begun("".join(shown)):
                piece = await pieces.get()
                ended = piece is None
                if piece is not None:
                    shown.append(piece)
            if agreement("".join(shown), samples, question, settings.overlap) < settings.agreement:
                main.cancel()
                yield UNSURE
                return
            for piece in shown:
                yield piece
        while not ended and (piece := await pieces.get()) is not None:
            shown.append(piece)
            yield piece
        await main  # raises what the answer's stream raised
        try:
            samples = await sampling
        except Exception as error:  # the answer is whole; only its check is lost
            log.warning("the samples checking an answer failed: %s", error)
            return
        if agreement("".join(shown), samples, question, settings.overlap) < settings.agreement:
            yield DOUBT
    finally:
        for task in (main, sampling):
            if not task.done():
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


def _begun(text: str) -> bool:
    """Whether an answer has its first sentence (of four words or more)."""
    return bool(_FIRST_SENTENCE.search(text)) and len(text.split()) >= 4
