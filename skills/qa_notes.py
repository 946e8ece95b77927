"""``ask`` with the team's knowledge: the passages that match a question go next to it,
and the answer ends with its sources.

A small model often answers past the notes it is shown. So the answer is
checked before it is shown against each note's line that best answers the
question (:mod:`confab.bot.knowledge.agreement`); an answer that agrees with none is
replaced by the closest of those lines, quoted with who said it and when: the
bot then says what the record says instead of guessing. The answer
is held until it is complete (answers from notes are short).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from confab.bot.skill import (
    ChatMessage,
    GenerationParams,
    Passage,
    PromptTemplates,
    SkillContext,
    agrees_with_any,
    telling_words,
)

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
        # The best passage last, next to the question: a small model reads it best there.
        lines = [p.as_note(n) for n, p in enumerate(reversed([*shown, passage]), start=1)]
        text = TEMPLATES.render("knowledge", passages="\n".join(lines), question=asked.content)
        candidate = ChatMessage("user", text, name=asked.name)
        if ctx.model.count_tokens([system, candidate]) > budget:
            break
        shown.append(passage)
        with_them = candidate
    return with_them, shown


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
    quotes = await ctx.knowledge.quotes(shown, question)
    fallback = quotes[0] if quotes else None
    if fallback is not None and not agrees_with_any(answer, [fallback.line], question):
        answer = _quoted(fallback.passage, fallback.line)
    used = [p for p in shown if telling_words(answer, question) & telling_words(p.text, question)]
    best = [fallback.passage] if fallback is not None else shown[:1]
    sources = [f"{n}. {await ctx.knowledge.source(p)}" for n, p in enumerate(used or best, 1)]
    yield answer + "\n\nSources:\n" + "\n".join(sources)


def _quoted(passage: Passage, line: str) -> str:
    if passage.document:
        return f"{passage.document} says: “{line}”"
    author, _, said = line.partition(": ")
    when = f"{passage.started_at:%d %b}".lstrip("0")
    if not said:
        return f"In #{passage.channel} ({when}): “{line}”"
    return f"{author} said in #{passage.channel} ({when}): “{said}”"
