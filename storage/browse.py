"""Conversations as an operator browses them: by platform and channel, and by what was said.

Read-only, for the admin page: each conversation with its size and last activity,
the turns of one, and the turns whose text holds some words.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, and_, func, select

from confab.storage.conversations import StoredTurn, stored_turn
from confab.storage.database import Database
from confab.storage.sql import aware
from confab.storage.tables import ChannelSettingsRow, ConversationRow, TurnRow

LISTED_AT_MOST = 200


@dataclass(frozen=True, slots=True)
class ConversationSummary:
    """One conversation (a channel, or a thread of it) with its turn count and last turn."""

    id: int
    platform: str
    channel: str
    thread: str | None
    direct: bool
    turns: int
    last_at: datetime | None


@dataclass(frozen=True, slots=True)
class FoundTurn:
    """A turn whose text matched a search, with the conversation it belongs to."""

    conversation: ConversationSummary
    turn: StoredTurn


def _summary(row: ConversationRow, turns: int, last_at: datetime | None) -> ConversationSummary:
    return ConversationSummary(
        id=row.id,
        platform=row.platform,
        channel=row.channel,
        thread=row.thread or None,
        direct=row.direct,
        turns=turns,
        last_at=aware(last_at) if last_at is not None else None,
    )


def _words_in(text: str) -> ColumnElement[bool]:
    """Every word of ``text`` appears in the turn, case-insensitively (a LIKE pattern
    whose wildcards in the words are taken literally)."""
    clauses = []
    for word in text.split()[:8]:
        escaped = word.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        clauses.append(func.lower(TurnRow.text).like(f"%{escaped}%", escape="\\"))
    return and_(*clauses)


class ConversationBrowser:
    """Lists and searches the stored conversations of every platform."""

    def __init__(self, database: Database) -> None:
        self._database = database

    async def conversations(
        self, *, platform: str | None = None, limit: int = LISTED_AT_MOST
    ) -> list[ConversationSummary]:
        """Conversations, the most recently active first; only ``platform``'s if given."""
        counts = (
            select(
                TurnRow.conversation_id,
                func.count(TurnRow.id).label("turns"),
                func.max(TurnRow.created_at).label("last_at"),
            )
            .group_by(TurnRow.conversation_id)
            .subquery()
        )
        query = select(ConversationRow, counts.c.turns, counts.c.last_at).join(
            counts, counts.c.conversation_id == ConversationRow.id
        )
        if platform:
            query = query.where(ConversationRow.platform == platform)
        query = query.order_by(counts.c.last_at.desc(), ConversationRow.id.desc()).limit(limit)
        async with self._database.reading() as session:
            rows = (await session.execute(query)).all()
        return [_summary(row, turns, last_at) for row, turns, last_at in rows]

    async def conversation(
        self, conversation_id: int, *, limit: int = 200
    ) -> tuple[ConversationSummary | None, list[StoredTurn]]:
        """One conversation and its latest ``limit`` turns, oldest first."""
        async with self._database.reading() as session:
            row = await session.get(ConversationRow, conversation_id)
            if row is None:
                return None, []
            turns = (
                await session.scalars(
                    select(TurnRow)
                    .where(TurnRow.conversation_id == conversation_id)
                    .order_by(TurnRow.id.desc())
                    .limit(limit)
                )
            ).all()
        last_at = turns[0].created_at if turns else None
        return _summary(row, len(turns), last_at), [stored_turn(t) for t in reversed(turns)]

    async def search(
        self, text: str, *, platform: str | None = None, limit: int = 50
    ) -> list[FoundTurn]:
        """Turns holding every word of ``text``, newest first."""
        if not text.split():
            return []
        query = (
            select(TurnRow, ConversationRow)
            .join(ConversationRow, ConversationRow.id == TurnRow.conversation_id)
            .where(_words_in(text))
        )
        if platform:
            query = query.where(ConversationRow.platform == platform)
        query = query.order_by(TurnRow.id.desc()).limit(limit)
        async with self._database.reading() as session:
            rows = (await session.execute(query)).all()
        return [
            FoundTurn(_summary(conversation, 0, None), stored_turn(turn))
            for turn, conversation in rows
        ]

    async def platforms(self) -> list[str]:
        """Every platform with a stored conversation."""
        async with self._database.reading() as session:
            found = await session.scalars(
                select(ConversationRow.platform).distinct().order_by(ConversationRow.platform)
            )
            return list(found)

    async def channels(self) -> list[tuple[str, str]]:
        """(platform, channel) of every channel with a conversation or settings."""
        async with self._database.reading() as session:
            talked = await session.execute(
                select(ConversationRow.platform, ConversationRow.channel).distinct()
            )
            configured = await session.execute(
                select(ChannelSettingsRow.platform, ChannelSettingsRow.channel)
            )
            return sorted({(p, c) for p, c in talked} | {(p, c) for p, c in configured})
