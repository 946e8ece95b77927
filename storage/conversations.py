"""Conversations and their turns: the bot's memory of what was said where.

A turn that ``append`` returned is committed: it survives the process being
killed the next moment. Appends and the reads of recent turns go through the
database's write queue (batched, in order, retried while the database is away);
the other operations first wait for what the write queue holds to be written.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    Executable,
    Select,
    Table,
    and_,
    bindparam,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import BindParameter

from confab.storage.database import Database
from confab.storage.errors import AlreadyProcessed
from confab.storage.events import event_mark, event_values
from confab.storage.knowledge import drop_chunks_of_turns
from confab.storage.records import Forgotten
from confab.storage.sql import aware, dialect_of, in_utc, upsert_for, utcnow
from confab.storage.tables import ConversationRow, TurnRow
from confab.storage.users import user_upsert, user_values
from confab.storage.write_queue import RETRYING, Facts

RETENTION_BATCH = 1000  # rows per transaction, so a large clean-up never holds the lock long


@dataclass(frozen=True, slots=True)
class ConversationKey:
    """A thread, or a channel outside threads, on one platform."""

    platform: str
    channel: str
    thread: str | None = None
    # Recorded with the conversation when it is first stored; not part of its identity.
    direct: bool = field(default=False, compare=False)


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


def stored_turn(row: Any) -> StoredTurn:
    """A row of `turns` as the frozen value the rest of the bot sees."""
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


class ConversationStore:
    """Appends turns and reads them back, on SQLite or PostgreSQL alike."""

    def __init__(self, database: Database) -> None:
        self._database = database

    @property
    def database(self) -> Database:
        return self._database

    async def _conversation_id(self, session: AsyncSession, key: ConversationKey) -> int:
        # Insert-or-ignore then select: atomic under concurrent first messages.
        await session.execute(_conversation_upsert(dialect_of(session)), _new(key))
        found = await session.scalar(FIND, _where(key))
        assert found is not None
        return found

    async def append(self, key: ConversationKey, **turn: Any) -> StoredTurn:
        """Store one turn at the end of the conversation, committed, and return it.

        Takes the arguments of :meth:`append_nowait`. A person's turn also
        records them as a user (display name kept current); a bot's turn names
        the turn it answers in ``reply_to``. With ``event_id`` (the platform's id
        of the message) the event is marked processed in the same transaction,
        and a second delivery of it raises :class:`AlreadyProcessed` with nothing
        written, in any process.
        """
        return await self.append_nowait(key, **turn)

    def append_nowait(
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
        retry_s: float | None = None,
    ) -> asyncio.Future[StoredTurn]:
        """Queue the turn behind every write submitted before it; the future resolves
        once it is committed (see :meth:`append`).

        For a turn nobody needs to wait for, such as the bot's answer once it
        has been shown: its place in the conversation is fixed now, and reads
        submitted later see it. ``retry_s`` is how long it is retried while the
        database is unreachable.
        """
        values = {
            "role": role,
            "author_id": author_id,
            "author_name": author_name,
            "text": text,
            "addressed": addressed,
            "skill": skill,
            "command": command,
            "token_count": token_count,
            "platform_message_id": platform_message_id,
            "created_at": in_utc(created_at) if created_at else utcnow(),
            "reply_to_id": reply_to.id if reply_to else None,
            "reply_to_author_id": reply_to.author_id if reply_to else None,
        }
        future: asyncio.Future[StoredTurn] = self._database.write_queue.submit(
            partial(_append, key, values, event_id),  # type: ignore[arg-type]  # fails as given
            writes=True,
            retry_s=retry_s,
        )
        return future

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
        those after the latest :meth:`reset_memory`. Sees every turn appended
        before the call, committed or still queued.
        """
        query = _newest_query(since_reset, before_id is not None, addressed_only, skill is not None)
        values = {"limit": limit, "before_id": before_id, "skill": skill}
        rows = await self._database.write_queue.submit(
            partial(_newest, key, query, values), writes=False
        )
        newest_first: list[StoredTurn] = []
        spent = 0
        for row in rows:
            spent += row.token_count
            if max_tokens is not None and spent > max_tokens:
                break
            newest_first.append(stored_turn(row))
        return newest_first[::-1]

    async def reset_memory(self, key: ConversationKey, *, after: StoredTurn) -> None:
        """Start the bot's memory of this conversation afresh after the turn ``after``.

        Nothing is deleted: earlier turns stay for summaries and exports, and
        :meth:`recent` with ``since_reset`` no longer returns them.
        """
        await self._database.write_queue.barrier()
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
        await self._database.write_queue.barrier()
        async with self._database.reading() as session:
            conversation = await session.scalar(FIND, _where(key))
            if conversation is None:
                return []
            query = select(TurnRow).where(TurnRow.conversation_id == conversation)
            if since is not None:
                query = query.where(TurnRow.created_at >= in_utc(since))
            rows = (await session.scalars(query.order_by(TurnRow.id.desc()).limit(limit))).all()
        return [stored_turn(row) for row in reversed(rows)]

    # -- privacy and retention ---------------------------------------------------

    async def forget_author(self, platform: str, author_id: str) -> Forgotten:
        """Delete every turn this person wrote on ``platform``, and the bot's replies to them."""
        theirs = _authored_by(platform, author_id)
        await self._database.write_queue.barrier()
        async with self._database.writing() as session:
            replies = await _delete_turns(session, TurnRow.id.in_(_answers_to(platform, author_id)))
            messages = await _delete_turns(session, TurnRow.id.in_(theirs))
            await _settle_memory_marks(session)
        return Forgotten(messages=messages, replies=replies)

    async def forget_channel(self, platform: str, channel: str) -> Forgotten:
        """Delete every turn of a channel, its threads included."""
        in_channel = select(ConversationRow.id).where(
            ConversationRow.platform == platform, ConversationRow.channel == channel
        )
        counts = {}
        await self._database.write_queue.barrier()
        async with self._database.writing() as session:
            for role in ("user", "assistant"):
                counts[role] = await _delete_turns(
                    session, and_(TurnRow.role == role, TurnRow.conversation_id.in_(in_channel))
                )
            await _settle_memory_marks(session)
        return Forgotten(messages=counts["user"], replies=counts["assistant"])

    async def delete_before(self, cutoff: datetime) -> int:
        """Delete every turn stored before ``cutoff``; return how many went."""
        older = select(TurnRow.id).where(TurnRow.created_at < in_utc(cutoff))
        total = 0
        await self._database.write_queue.barrier()
        while True:
            async with self._database.writing() as session:
                deleted = await _delete_turns(session, TurnRow.id.in_(older.limit(RETENTION_BATCH)))
                await _settle_memory_marks(session)
            total += deleted
            if deleted < RETENTION_BATCH:
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
        await self._database.write_queue.barrier()
        async with self._database.reading() as session:
            rows: Sequence[Any] = (await session.execute(query)).all()
        return [
            (ConversationKey(c.platform, c.channel, c.thread or None), stored_turn(t))
            for c, t in rows
        ]


FIND = select(ConversationRow.id).where(
    ConversationRow.platform == bindparam("platform"),
    ConversationRow.channel == bindparam("channel"),
    ConversationRow.thread == bindparam("thread"),
)
INSERT_TURN = insert(cast(Table, TurnRow.__table__)).returning(TurnRow.id)


def _where(key: ConversationKey) -> dict[str, Any]:
    return {"platform": key.platform, "channel": key.channel, "thread": key.thread or ""}


def _new(key: ConversationKey) -> dict[str, Any]:
    return {**_where(key), "created_at": utcnow(), "direct": key.direct}


@functools.cache
def _conversation_upsert(dialect: str) -> Executable:
    """Insert-or-ignore, then look it up: atomic under concurrent first messages."""
    return upsert_for(dialect, ConversationRow.__table__).on_conflict_do_nothing()


# -- on the write queue's thread (see confab.storage.write_queue) ------------------------


def _conversation(connection: Connection, facts: Facts, key: ConversationKey) -> int:
    """The conversation's id, created if new; an id once known never changes."""
    known = facts.get(key)
    if known is None:
        connection.execute(_conversation_upsert(connection.dialect.name), _new(key))
        known = facts[key] = connection.scalar(FIND, _where(key))
    assert known is not None
    return int(known)


def _append(
    key: ConversationKey,
    values: dict[str, Any],
    event_id: str | None,
    connection: Connection,
    facts: Facts,
) -> StoredTurn | AlreadyProcessed:
    retrying = bool(facts.get(RETRYING))
    if event_id is not None:
        marked = connection.execute(
            event_mark(connection.dialect.name), event_values(key.platform, event_id)
        )
        if marked.first() is None:
            # Marked already: a replay, or this very write, committed before its
            # connection failed and now tried again.
            ours = _written_before(connection, facts, key, values) if retrying else None
            return ours or AlreadyProcessed(f"{key.platform} event {event_id}")
    elif retrying and (ours := _written_before(connection, facts, key, values)):
        return ours
    if values["role"] == "user":
        person = ("user", key.platform, values["author_id"])
        if facts.get(person) != values["author_name"]:
            connection.execute(
                user_upsert(connection.dialect.name),
                user_values(key.platform, values["author_id"], values["author_name"]),
            )
            facts[person] = values["author_name"]
    conversation = _conversation(connection, facts, key)
    turn_id = connection.scalar(INSERT_TURN, {"conversation_id": conversation, **values})
    assert turn_id is not None
    return StoredTurn(id=turn_id, **values)  # values: every other field of a turn


@functools.cache
def _newest_query(
    since_reset: bool, before: bool, addressed_only: bool, of_skill: bool
) -> Select[Any]:
    """The newest turns of a conversation, newest first, for one shape of :meth:`recent`.

    Built once per shape; it takes ``conversation``, ``limit`` and, where the
    shape needs them, ``before_id`` and ``skill``.
    """
    turns = cast(Table, TurnRow.__table__)
    # The columns of a StoredTurn, not the knowledge indexer's bookkeeping.
    columns = [turns.c[name] for name in StoredTurn.__slots__] + [turns.c.conversation_id]
    query = select(*columns).where(turns.c.conversation_id == bindparam("conversation"))
    if since_reset:
        mark = select(ConversationRow.memory_after_id).where(
            ConversationRow.id == turns.c.conversation_id
        )
        query = query.where(turns.c.id > func.coalesce(mark.scalar_subquery(), 0))
    if before:
        # Before a turn: and the answers to earlier questions, which a question that
        # waited its turn in a busy channel was stored ahead of.
        before_id: BindParameter[int] = bindparam("before_id")
        answered_earlier = and_(turns.c.role == "assistant", turns.c.reply_to_id < before_id)
        query = query.where(or_(turns.c.id < before_id, answered_earlier))
    if addressed_only:
        query = query.where(turns.c.addressed.is_(True))
    if of_skill:
        query = query.where(turns.c.skill == bindparam("skill"))
    return query.order_by(turns.c.id.desc()).limit(bindparam("limit"))


def _written_before(
    connection: Connection, facts: Facts, key: ConversationKey, values: dict[str, Any]
) -> StoredTurn | None:
    """The turn ``values`` describe, if a try whose commit went unacknowledged stored it:
    same conversation, author, role and creation time (taken once, before the first try)."""
    turns = cast(Table, TurnRow.__table__)
    found = connection.execute(
        select(turns.c.id).where(
            turns.c.conversation_id == _conversation(connection, facts, key),
            turns.c.role == values["role"],
            turns.c.author_id == values["author_id"],
            turns.c.created_at == values["created_at"],
        )
    ).first()
    return StoredTurn(id=found.id, **values) if found is not None else None


def _newest(
    key: ConversationKey,
    query: Select[Any],
    values: dict[str, Any],
    connection: Connection,
    facts: Facts,
) -> Sequence[Any]:
    conversation = facts.get(key)
    if conversation is None:
        conversation = connection.scalar(FIND, _where(key))
        if conversation is None:
            return []
        facts[key] = conversation
    return connection.execute(query, {**values, "conversation": conversation}).all()


async def _delete_turns(session: AsyncSession, which: ColumnElement[bool]) -> int:
    """Delete turns and every knowledge chunk that holds one of them; return how many.

    The chunk ids come back from the DELETE itself: on PostgreSQL a turn the
    indexer is putting in a chunk right now is locked, and its new chunk id is
    what is returned once the indexer commits.
    """
    chunk_ids = (
        await session.scalars(delete(TurnRow).where(which).returning(TurnRow.knowledge_chunk_id))
    ).all()
    await drop_chunks_of_turns(session, chunk_ids)
    return len(chunk_ids)


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
