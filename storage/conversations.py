"""Conversations and their turns: the bot's memory of what was said where.

Each write is one transaction, committed before the call returns: a turn that
``append`` returned survives the process being killed the next moment.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import CursorResult, Select, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.database import Database
from storage.errors import AlreadyProcessed
from storage.events import mark_event
from storage.sql import aware, in_utc, upsert, utcnow
from storage.tables import ConversationRow, TurnRow
from storage.users import record_user

RETENTION_BATCH = 1000  # rows per transaction, so a large clean-up never holds the lock long


@dataclass(frozen=True, slots=True)
class ConversationKey:
    """A thread, or a channel outside threads, on one platform."""

    platform: str
    channel: str
    thread: str | None = None


@dataclass(frozen=True, slots=True)
class StoredTurn:
    id: int
    role: str
    author_id: str
    author_name: str
    text: str
    addressed: bool
    skill: str | None
    command: str | None
    token_count: int
    created_at: datetime
    platform_message_id: str | None = None
    reply_to_id: int | None = None
    reply_to_author_id: str | None = None


@dataclass(frozen=True, slots=True)
class Forgotten:
    """What a deletion removed: people's turns, and the bot's replies."""

    messages: int
    replies: int


def _turn(row: TurnRow) -> StoredTurn:
    return StoredTurn(
        id=row.id,
        role=row.role,
        author_id=row.author_id,
        author_name=row.author_name,
        text=row.text,
        addressed=row.addressed,
        skill=row.skill,
        command=row.command,
        token_count=row.token_count,
        created_at=aware(row.created_at),
        platform_message_id=row.platform_message_id,
        reply_to_id=row.reply_to_id,
        reply_to_author_id=row.reply_to_author_id,
    )


def _deleted(result: Any) -> int:
    assert isinstance(result, CursorResult)
    return result.rowcount


class ConversationStore:
    """Appends turns and reads them back, on SQLite or PostgreSQL alike."""

    def __init__(self, database: Database) -> None:
        self._database = database

    async def _conversation_id(self, session: AsyncSession, key: ConversationKey) -> int:
        # Insert-or-ignore then select: atomic under concurrent first messages.
        values = {
            "platform": key.platform,
            "channel": key.channel,
            "thread": key.thread or "",
            "created_at": utcnow(),
        }
        await session.execute(
            upsert(session, ConversationRow).values(values).on_conflict_do_nothing()
        )
        found = await self._find(session, key)
        assert found is not None
        return found

    async def _find(self, session: AsyncSession, key: ConversationKey) -> int | None:
        return await session.scalar(
            select(ConversationRow.id).where(
                ConversationRow.platform == key.platform,
                ConversationRow.channel == key.channel,
                ConversationRow.thread == (key.thread or ""),
            )
        )

    async def append(
        self,
        key: ConversationKey,
        *,
        role: str,
        author_id: str,
        author_name: str,
        text: str,
        addressed: bool = True,
        skill: str | None = None,
        command: str | None = None,
        token_count: int = 0,
        platform_message_id: str | None = None,
        created_at: datetime | None = None,
        reply_to: StoredTurn | None = None,
        event_id: str | None = None,
    ) -> StoredTurn:
        """Store one turn at the end of the conversation, committed, and return it.

        A person's turn also records them as a user (display name kept current);
        a bot's turn names the turn it answers in ``reply_to``. With ``event_id``
        (the platform's id of the message) the event is marked processed in the
        same transaction, and a second delivery of it raises
        :class:`AlreadyProcessed` with nothing written, in any process.
        """
        async with self._database.writing() as session:
            if event_id is not None and not await mark_event(session, key.platform, event_id):
                raise AlreadyProcessed(f"{key.platform} event {event_id}")
            if role == "user":
                await record_user(session, key.platform, author_id, author_name)
            row = TurnRow(
                conversation_id=await self._conversation_id(session, key),
                role=role,
                author_id=author_id,
                author_name=author_name,
                text=text,
                addressed=addressed,
                skill=skill,
                command=command,
                token_count=token_count,
                platform_message_id=platform_message_id,
                created_at=in_utc(created_at) if created_at else utcnow(),
                reply_to_id=reply_to.id if reply_to else None,
                reply_to_author_id=reply_to.author_id if reply_to else None,
            )
            session.add(row)
            await session.flush()
            return _turn(row)

    async def recent(
        self,
        key: ConversationKey,
        *,
        limit: int = 50,
        max_tokens: int | None = None,
        before_id: int | None = None,
        addressed_only: bool = True,
        skill: str | None = None,
        since_reset: bool = False,
    ) -> list[StoredTurn]:
        """The newest turns, oldest first: at most ``limit``, within ``max_tokens``.

        ``skill`` keeps only the turns that skill handled; ``since_reset`` only
        those after the latest :meth:`reset_memory`.
        """
        async with self._database.reading() as session:
            conversation = await self._find(session, key)
            if conversation is None:
                return []
            query = select(TurnRow).where(TurnRow.conversation_id == conversation)
            if since_reset:
                start = await session.scalar(
                    select(ConversationRow.memory_after_id).where(
                        ConversationRow.id == conversation
                    )
                )
                if start is not None:
                    query = query.where(TurnRow.id > start)
            if before_id is not None:
                query = query.where(TurnRow.id < before_id)
            if addressed_only:
                query = query.where(TurnRow.addressed.is_(True))
            if skill is not None:
                query = query.where(TurnRow.skill == skill)
            rows = (await session.scalars(query.order_by(TurnRow.id.desc()).limit(limit))).all()
        newest_first: list[StoredTurn] = []
        spent = 0
        for row in rows:
            spent += row.token_count
            if max_tokens is not None and spent > max_tokens:
                break
            newest_first.append(_turn(row))
        return newest_first[::-1]

    async def reset_memory(self, key: ConversationKey, *, after: StoredTurn) -> None:
        """Start the bot's memory of this conversation afresh after the turn ``after``.

        Nothing is deleted: earlier turns stay for summaries and exports, and
        :meth:`recent` with ``since_reset`` no longer returns them.
        """
        async with self._database.writing() as session:
            conversation = await self._conversation_id(session, key)
            await session.execute(
                update(ConversationRow)
                .where(ConversationRow.id == conversation)
                .values(memory_after_id=after.id)
            )

    async def channel_messages(
        self,
        key: ConversationKey,
        *,
        since: datetime | None = None,
        limit: int = 200,
    ) -> list[StoredTurn]:
        """Everything said in a channel or thread (chatter too), oldest first."""
        async with self._database.reading() as session:
            conversation = await self._find(session, key)
            if conversation is None:
                return []
            query = select(TurnRow).where(TurnRow.conversation_id == conversation)
            if since is not None:
                query = query.where(TurnRow.created_at >= in_utc(since))
            rows = (await session.scalars(query.order_by(TurnRow.id.desc()).limit(limit))).all()
        return [_turn(row) for row in reversed(rows)]

    # -- privacy and retention ---------------------------------------------------

    async def forget_author(self, platform: str, author_id: str) -> Forgotten:
        """Delete every turn this person wrote on ``platform``, and the bot's replies to them."""
        theirs = _authored_by(platform, author_id)
        async with self._database.writing() as session:
            replies = await session.execute(
                delete(TurnRow).where(TurnRow.id.in_(_answers_to(platform, author_id)))
            )
            messages = await session.execute(delete(TurnRow).where(TurnRow.id.in_(theirs)))
            await _settle_memory_marks(session)
        return Forgotten(messages=_deleted(messages), replies=_deleted(replies))

    async def forget_channel(self, platform: str, channel: str) -> Forgotten:
        """Delete every turn of a channel, its threads included."""
        in_channel = select(ConversationRow.id).where(
            ConversationRow.platform == platform, ConversationRow.channel == channel
        )
        counts = {}
        async with self._database.writing() as session:
            for role in ("user", "assistant"):
                result = await session.execute(
                    delete(TurnRow).where(
                        TurnRow.role == role, TurnRow.conversation_id.in_(in_channel)
                    )
                )
                counts[role] = _deleted(result)
            await _settle_memory_marks(session)
        return Forgotten(messages=counts["user"], replies=counts["assistant"])

    async def delete_before(self, cutoff: datetime) -> int:
        """Delete every turn stored before ``cutoff``; return how many went."""
        older = select(TurnRow.id).where(TurnRow.created_at < in_utc(cutoff))
        total = 0
        while True:
            async with self._database.writing() as session:
                result = await session.execute(
                    delete(TurnRow).where(TurnRow.id.in_(older.limit(RETENTION_BATCH)))
                )
                await _settle_memory_marks(session)
            total += _deleted(result)
            if _deleted(result) < RETENTION_BATCH:
                return total

    async def by_author(
        self, platform: str, author_id: str
    ) -> list[tuple[ConversationKey, StoredTurn]]:
        """This person's turns on ``platform`` and the bot's replies to them, oldest first."""
        theirs = _authored_by(platform, author_id)
        query = (
            select(ConversationRow, TurnRow)
            .join(TurnRow, TurnRow.conversation_id == ConversationRow.id)
            .where(TurnRow.id.in_(theirs) | TurnRow.id.in_(_answers_to(platform, author_id)))
            .order_by(TurnRow.id)
        )
        async with self._database.reading() as session:
            rows: Sequence[Any] = (await session.execute(query)).all()
        return [
            (ConversationKey(c.platform, c.channel, c.thread or None), _turn(t)) for c, t in rows
        ]


async def _settle_memory_marks(session: AsyncSession) -> None:
    """Move each memory reset mark onto a turn that still exists, after deletions.

    The mark hides turns up to an id; the newest remaining turn at or before it
    hides the same ones. Left on a deleted id, the mark could hide new turns on
    SQLite, which reuses the ids of deleted rows at the end of a table.
    """
    newest_before_mark = (
        select(func.max(TurnRow.id))
        .where(
            TurnRow.conversation_id == ConversationRow.id,
            TurnRow.id <= ConversationRow.memory_after_id,
        )
        .scalar_subquery()
    )
    await session.execute(
        update(ConversationRow)
        .where(ConversationRow.memory_after_id.is_not(None))
        .values(memory_after_id=newest_before_mark)
    )


def _answers_to(platform: str, author_id: str) -> Select[int]:
    return _turns_on(platform).where(
        TurnRow.role == "assistant", TurnRow.reply_to_author_id == author_id
    )


def _authored_by(platform: str, author_id: str) -> Select[int]:
    return _turns_on(platform).where(TurnRow.role == "user", TurnRow.author_id == author_id)


def _turns_on(platform: str) -> Select[int]:
    """Ids of the turns in ``platform``'s conversations."""
    on_platform = select(ConversationRow.id).where(ConversationRow.platform == platform)
    return select(TurnRow.id).where(TurnRow.conversation_id.in_(on_platform))
