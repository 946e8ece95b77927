"""Conversations and their turns: the bot's memory of what was said where."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from storage.database import Database
from storage.tables import ConversationRow, TurnRow


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


def _aware(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes; everything is stored in UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


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
        created_at=_aware(row.created_at),
        platform_message_id=row.platform_message_id,
    )


class ConversationStore:
    """Appends turns and reads them back, on SQLite or PostgreSQL alike."""

    def __init__(self, database: Database) -> None:
        self._sessions = database.sessions

    async def _conversation_id(self, session: AsyncSession, key: ConversationKey) -> int:
        # Insert-or-ignore then select: atomic under concurrent first messages.
        values = {
            "platform": key.platform,
            "channel": key.channel,
            "thread": key.thread or "",
            "created_at": datetime.now(UTC),
        }
        dialect = session.get_bind().dialect.name
        insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
        await session.execute(insert(ConversationRow).values(values).on_conflict_do_nothing())
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
    ) -> StoredTurn:
        """Store one turn at the end of the conversation and return it."""
        async with self._sessions.begin() as session:
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
                created_at=created_at or datetime.now(UTC),
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
    ) -> list[StoredTurn]:
        """The newest turns, oldest first: at most ``limit``, within ``max_tokens``.

        ``skill`` keeps only the turns that skill handled.
        """
        async with self._sessions() as session:
            conversation = await self._find(session, key)
            if conversation is None:
                return []
            query = select(TurnRow).where(TurnRow.conversation_id == conversation)
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

    async def channel_messages(
        self,
        key: ConversationKey,
        *,
        since: datetime | None = None,
        limit: int = 200,
    ) -> list[StoredTurn]:
        """Everything said in a channel or thread (chatter too), oldest first."""
        async with self._sessions() as session:
            conversation = await self._find(session, key)
            if conversation is None:
                return []
            query = select(TurnRow).where(TurnRow.conversation_id == conversation)
            if since is not None:
                query = query.where(TurnRow.created_at >= since.astimezone(UTC))
            rows = (await session.scalars(query.order_by(TurnRow.id.desc()).limit(limit))).all()
        return [_turn(row) for row in reversed(rows)]
