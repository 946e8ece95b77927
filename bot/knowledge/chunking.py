"""Which stored messages go into the knowledge base, and how they are cut into chunks.

A chunk is a run of nearby messages of one channel or thread: consecutive
messages at most ``gap`` apart, up to a size the sentence model reads whole.
What people say among themselves counts (decisions are made in it); what is
said to the bot does not: it is the conversation's memory already, and the bot
never cites itself, a command, or a question as if it were an answer.
"""

from __future__ import annotations

from datetime import timedelta

from confab.storage.knowledge import PendingTurn

MAX_CHARS = 900  # about the 256 word pieces the sentence model reads
MAX_TURNS = 8


def worth_indexing(turn: PendingTurn) -> bool:
    """A person's message to the others that says something (not to the bot, no command)."""
    return (
        turn.role == "user"
        and not turn.addressed
        and turn.command is None
        and bool(turn.text.strip())
    )


def line(turn: PendingTurn) -> str:
    return f"{turn.author_name}: {' '.join(turn.text.split())}"


def fits(run: list[PendingTurn], turn: PendingTurn, gap: timedelta) -> bool:
    """Whether ``turn`` continues ``run``: soon enough after it, and room left."""
    if not run or run[-1].conversation_id != turn.conversation_id:
        return False
    if turn.created_at - run[-1].created_at > gap or len(run) >= MAX_TURNS:
        return False
    return sum(len(line(t)) + 1 for t in run) + len(line(turn)) <= MAX_CHARS


def runs(turns: list[PendingTurn], gap: timedelta) -> list[list[PendingTurn]]:
    """The turns (of one conversation, in order) cut into runs of nearby messages."""
    cut: list[list[PendingTurn]] = []
    for turn in turns:
        if cut and fits(cut[-1], turn, gap):
            cut[-1].append(turn)
        else:
            cut.append([turn])
    return cut


def chunk_text(run: list[PendingTurn]) -> str:
    """One line per message, ``Author: text``, as the model and ``!search`` show it."""
    return "\n".join(line(turn) for turn in run)


def heading(turn: PendingTurn) -> str:
    """Where it was said: ``#channel``, or ``#channel (thread)``."""
    return f"#{turn.channel}" + (" (thread)" if turn.thread else "")


def authors(run: list[PendingTurn]) -> str:
    return ", ".join(dict.fromkeys(turn.author_name for turn in run))
