"""``ask`` with the team's knowledge: the passages that match a question go next to it,
and the answer ends with its sources.

A small model often answers past the notes it is shown. So the answer is
checked before it is shown against the notes' line that best answers the
question: it must repeat that line's numbers, or where it has none, one of its
telling words (five letters or more), leaving out what the question says. An
answer that does not is replaced by that line, quoted with who said it and
when: the bot then says what the record says instead of guessing. The answer
is held until it is complete (answers from notes are short).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence

from bot.skill import ChatMessage, GenerationParams, Passage, PromptTemplates, SkillContext

TEMPLATES = PromptTemplates.load(__package__, "qa.toml")


async def with_passages(
    ctx: SkillContext, system: ChatMessage, asked: ChatMessage, max_new_tokens: int
) -> tuple[ChatMessage, list[Passage]]:
    """The question preceded by the relevant passages that fit in half the room left
    for the prompt (history gets the rest), and those passages. In the question, not
    the system prompt: a small model reads what is next to the question."""
    found = await ctx.knowledge.relevant(asked.content)
    budget = (ctx.model.context_window - max_new_tokens) // 2
    shown: list[Passage] = []
    with_them = asked
    for passage in found:
        lines = [_note(n, p) for n, p in enumerate([*shown, passage], start=1)]
        text = TEMPLATES.render("knowledge", passages="\n".join(lines), question=asked.content)
        candidate = ChatMessage("user", text, name=asked.name)
        if ctx.model.count_tokens([system, candidate]) > budget:
            break
        shown.append(passage)
        with_them = candidate
    return with_them, shown


def _note(number: int, passage: Passage) -> str:
    where = passage.document or f"#{passage.channel}"
    if passage.heading and passage.document:
        where = f"{where}, {passage.heading}"
    return f"[{number}] ({where}) {passage.text}"


async def answered_from_notes(
    ctx: SkillContext,
    messages: Sequence[ChatMessage],
    params: GenerationParams,
    shown: list[Passage],
    question: str,
) -> AsyncIterator[str]:
    """The model's answer if it agrees with the best line of the notes, else that line
    quoted; then the sources it draws on."""
    answer = "".join([piece async for piece in ctx.model.stream(messages, params)]).strip()
    best = shown[0]
    line = await ctx.knowledge.quote(best, question)
    if not agrees(answer, line, question):
        answer = _quoted(best, line)
    used = [p for p in shown if telling_words(answer, question) & telling_words(p.text, question)]
    sources = [f"{n}. {await ctx.knowledge.source(p)}" for n, p in enumerate(used or [best], 1)]
    yield answer + "\n\nSources:\n" + "\n".join(sources)


def _quoted(passage: Passage, line: str) -> str:
    if passage.document:
        return f"{passage.document} says: “{line}”"
    author, _, said = line.partition(": ")
    when = f"{passage.started_at:%d %b}".lstrip("0")
    if not said:
        return f"In #{passage.channel} ({when}): “{line}”"
    return f"{author} said in #{passage.channel} ({when}): “{said}”"


def agrees(answer: str, line: str, question: str) -> bool:
    """Whether ``answer`` says what ``line`` says: its numbers, where it has any the
    question does not, else at least one of its telling words."""
    numbers = {w for w in telling_words(line, question) if w.isdigit()}
    said = telling_words(answer, question)
    if numbers:
        return bool(numbers & said)
    return bool(said & telling_words(line, question))


def telling_words(text: str, question: str = "") -> set[str]:
    """The words of ``text`` that carry a fact (numbers, words of five letters or more),
    except those the question already says."""

    def words(of: str) -> set[str]:
        return {w for w in re.findall(r"[^\W_]+", of.lower()) if w.isdigit() or len(w) >= 5}

    return words(text) - words(question)
