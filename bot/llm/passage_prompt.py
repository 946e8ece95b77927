"""Retrieved passages as a model sees them: the retrieval arm of ``confab model eval``.

The wording is that of ``ask``'s notes (the ``knowledge`` template of
skills/qa.toml, with each passage noted as skills/qa.py does), so the arm
measures what retrieval gives the bot's answers; ``bot`` may not import
``skills``, so the text is repeated here and the two should change together.
"""

from __future__ import annotations

from collections.abc import Sequence
from string import Template

from bot.knowledge.passage import Passage
from bot.llm.backend import ChatMessage
from bot.llm.dataset import Chat

NOTES = Template(
    "Notes from this team's chat history and documents:\n"
    "$passages\n"
    "Answer the question from these notes when they answer it, and say what the "
    "notes say. If they do not answer it, say so."
)


def note(number: int, passage: Passage) -> str:
    """One passage as a numbered line, with where it comes from."""
    where = passage.document or f"#{passage.channel}"
    if passage.heading and passage.document:
        where = f"{where}, {passage.heading}"
    return f"[{number}] ({where}) {passage.text}"


def notes(passages: Sequence[Passage]) -> str:
    """The block ``ask`` adds to its system prompt for ``passages``; "" for none."""
    if not passages:
        return ""
    lines = "\n".join(note(number, p) for number, p in enumerate(passages, start=1))
    return NOTES.substitute(passages=lines)


def with_notes(chat: Chat, block: str) -> Chat:
    """``chat`` with ``block`` added to its system message (one first, if it has none)."""
    if not block:
        return chat
    first, *rest = chat.messages
    if first.role == "system":
        messages = (ChatMessage("system", f"{first.content}\n\n{block}"), *rest)
    else:
        messages = (ChatMessage("system", block), *chat.messages)
    return Chat(messages, chat.where)
