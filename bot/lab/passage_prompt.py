"""Retrieved passages as a model is shown them: the retrieval arm of ``confab model eval``.

The wording is that of ``ask`` (the ``knowledge`` template of skills/qa.toml,
in place of the question); ``bot`` may not import ``skills``, so the template
is repeated here and the two should change together. Each passage is shown by
:meth:`Passage.as_note`, as in ``ask``, the best one last, next to the question
(measured with the bundled model on the Tarnwick held-out set: a small model
reads what is nearest it, and a file name in the label was given as the answer).
"""

from __future__ import annotations

from collections.abc import Sequence
from string import Template

from confab.bot.knowledge.passage import Passage
from confab.bot.lab.dataset import Chat
from confab.bot.llm.backend import ChatMessage

QUESTION_WITH_NOTES = Template(
    "Notes from this team's chat history and documents:\n"
    "$passages\n"
    "\n"
    "Using these notes, answer: $question"
)


def with_passages(chat: Chat, passages: Sequence[Passage]) -> Chat:
    """``chat`` with its last question asked after ``passages`` (given best first, shown
    best last); unchanged when there are none."""
    asked = next(
        (i for i in range(len(chat.messages) - 1, -1, -1) if chat.messages[i].role == "user"),
        None,
    )
    if not passages or asked is None:
        return chat
    nearest_last = list(reversed(passages))
    lines = "\n".join(p.as_note(number) for number, p in enumerate(nearest_last, start=1))
    question = chat.messages[asked]
    text = QUESTION_WITH_NOTES.substitute(passages=lines, question=question.content)
    messages = list(chat.messages)
    messages[asked] = ChatMessage("user", text, name=question.name)
    return Chat(tuple(messages), chat.where)
