"""The knowledge base's tables: documents, chunks with their vectors, full-text search,
and the turns the indexer has yet to read.

A chunk of messages and its turns are kept in step here: deleting a turn
(``forget``, retention) deletes every chunk that holds it, in the same
transaction, and sends that chunk's other turns back to the indexer, which
builds them a new chunk without the deleted words (:func:`drop_chunks_of_turns`).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Executable,
    Integer,
    and_,
    column,
    delete,
    func,
    or_,
    select,
    table,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from confab.storage.database import Database
from confab.storage.records import StoredDocument
from confab.storage.sql import aware, utcnow
from confab.storage.tables import ConversationRow, KnowledgeChunkRow, KnowledgeDocumentRow, TurnRow

# SQLite's FTS5 table (migration 0007), outside the models.
FTS = table("knowledge_fts", column("rowid", Integer))
PAGE = 5000
# Full-text search leaves out words in more than this share of the chunks (at
# least COMMON_MIN of them), keeping the KEPT_RAREST rarest words of a query
# and searching MOST_WORDS at most; word counts are remembered for WORD_COUNTS_S.
COMMON_SHARE = 0.02
COMMON_MIN = 50
KEPT_RAREST = 2
MOST_WORDS = 4  # and at most this many, the rarest
WORD_COUNTS_S = 60.0  # vectors read per query while loading the in-process index
# Words too common to say anything about which passage answers.
_STOPWORDS = (
    "a an and are as at be but by can did do does for from had has have how i if in is it its "
    "me my of on or our so that the their them there they this to was we were what when where "
    "which who why will with you your about any all been into just more not only out over than "
    "then these those up us very would could should"
)
STOPWORDS = frozenset(_STOPWORDS.split())


@dataclass(frozen=True, slots=True)
class PendingTurn:
    """A stored turn the indexer has to read, with where it was said."""

    id: int
    conversation_id: int
    platform: str
    channel: str
    thread: str
    direct: bool
    role: str
    author_name: str
    text: str
    addressed: bool
    command: str | None
    platform_message_id: str | None
    created_at: datetime
    chunk_id: int | None = None


@dataclass(frozen=True, slots=True)
class NewChunk:
    """A chunk to store: for messages, ``turns`` are the ids it is made of."""

    text: str
    embedding: bytes
    started_at: datetime
    ended_at: datetime
    heading: str = ""
    platform: str = ""
    channel: str = ""
    thread: str = ""
    direct: bool = False
    message_id: str | None = None
    authors: str = ""
    turns: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class StoredChunk:
    id: int
    document_id: int | None
    platform: str
    channel: str
    thread: str
    direct: bool
    heading: str
    text: str
    message_id: str | None
    authors: str
    started_at: datetime
    ended_at: datetime
    embedding: bytes


@dataclass(frozen=True, slots=True)
class Readable:
    """Whose chunks a search may return: a channel's own messages (its threads and, for a
    DM, the DM itself), other channels' messages except DMs, and documents by id."""

    platform: str
    channel: str
    shared: tuple[tuple[str, str], ...] = ()
    documents: tuple[int, ...] = ()


def owner_key(document_id: int | None, platform: str, channel: str, direct: bool) -> str:
    """What scope is checked by in the in-process index: one key per document, and one
    per channel, split by whether it is a DM."""
    if document_id is not None:
        return f"d:{document_id}"
    return f"m:{platform}:{channel}:{int(direct)}"


def search_words(query: str) -> list[str]:
    """The words of a query worth searching for, in order, without repeats."""
    words = re.findall(r"[^\W_]+", query.lower())
    return list(dict.fromkeys(w for w in words if w not in STOPWORDS and len(w) > 1))


def _readable(scope: Readable) -> ColumnElement[bool]:
    chunks = KnowledgeChunkRow
    own = and_(chunks.platform == scope.platform, chunks.channel == scope.channel)
    shared = [
        and_(chunks.platform == p, chunks.channel == c, chunks.direct.is_(False))
        for p, c in scope.shared
    ]
    messages = and_(chunks.document_id.is_(None), or_(own, *shared))
    if not scope.documents:
        return messages
    return or_(messages, chunks.document_id.in_(scope.documents))


# What the in-process index needs of a chunk: its vector and whose it is.
_VECTORS = select(
    KnowledgeChunkRow.id,
    KnowledgeChunkRow.document_id,
    KnowledgeChunkRow.platform,
    KnowledgeChunkRow.channel,
    KnowledgeChunkRow.direct,
    KnowledgeChunkRow.embedding,
)


def _chunk(row: Any) -> StoredChunk:
    return StoredChunk(
        id=row.id,
        document_id=row.document_id,
        platform=row.platform,
        channel=row.channel,
        thread=row.thread,
        direct=row.direct,
        heading=row.heading,
        text=row.text,
        message_id=row.message_id,
        authors=row.authors,
        started_at=aware(row.started_at),
        ended_at=aware(row.ended_at),
        embedding=row.embedding,
    )


def _document(row: KnowledgeDocumentRow, chunks: int = 0) -> StoredDocument:
    return StoredDocument(
        id=row.id,
        source=row.source,
        name=row.name,
        kind=row.kind,
        title=row.title,
        sha256=row.sha256,
        size=row.size,
        channels=tuple(row.channels) if row.channels is not None else None,
        added_by=row.added_by,
        added_at=aware(row.added_at),
        chunks=chunks,
    )


def _chunk_values(chunk: NewChunk, document_id: int | None = None) -> dict[str, Any]:
    return {
        "document_id": document_id,
        "platform": chunk.platform,
        "channel": chunk.channel,
        "thread": chunk.thread,
        "direct": chunk.direct,
        "heading": chunk.heading,
        "text": chunk.text,
        "message_id": chunk.message_id,
        "authors": chunk.authors,
        "started_at": chunk.started_at,
        "ended_at": chunk.ended_at,
        "embedding": chunk.embedding,
    }


async def drop_chunks_of_turns(session: AsyncSession, chunk_ids: Iterable[int | None]) -> None:
    """Delete these chunks (of turns being deleted) and send their other turns back to
    the indexer. Call it with the ``knowledge_chunk_id`` of every deleted turn."""
    doomed = sorted({i for i in chunk_ids if i is not None})
    for start in range(0, len(doomed), 500):
        part = doomed[start : start + 500]
        await session.execute(
            update(TurnRow)
            .where(TurnRow.knowledge_chunk_id.in_(part))
            .values(indexed=False, knowledge_chunk_id=None)
        )
        await session.execute(delete(KnowledgeChunkRow).where(KnowledgeChunkRow.id.in_(part)))


class KnowledgeStore:
    """Documents and chunks on SQLite or PostgreSQL; searches them by words."""

    def __init__(self, database: Database) -> None:
        self._database = database
        # How many chunks hold a word, remembered a while (see lexical()).
        self._word_counts: dict[str, int] = {}
        self._total = 0
        self._counted_at = -WORD_COUNTS_S

    @property
    def dialect(self) -> str:
        return self._database.dialect

    # -- what the indexer reads and writes -----------------------------------------

    async def pending_turns(self, limit: int) -> list[PendingTurn]:
        """The oldest turns not read yet, oldest first."""
        query = (
            select(TurnRow, ConversationRow)
            .join(ConversationRow, ConversationRow.id == TurnRow.conversation_id)
            .where(TurnRow.indexed.is_(False))
            .order_by(TurnRow.id)
            .limit(limit)
        )
        async with self._database.reading() as session:
            rows = (await session.execute(query)).all()
        return [_pending(turn, conversation) for turn, conversation in rows]

    async def latest_chunk(
        self, conversation_id: int, before_turn: int
    ) -> tuple[StoredChunk, list[PendingTurn]] | None:
        """The chunk holding the newest indexed turn of a conversation before a turn,
        with its turns (a new message may extend it)."""
        last = (
            select(func.max(TurnRow.id))
            .where(
                TurnRow.conversation_id == conversation_id,
                TurnRow.id < before_turn,
                TurnRow.knowledge_chunk_id.is_not(None),
            )
            .scalar_subquery()
        )
        async with self._database.reading() as session:
            chunk_id = await session.scalar(
                select(TurnRow.knowledge_chunk_id).where(TurnRow.id == last)
            )
            if chunk_id is None:
                return None
            chunk = await session.get(KnowledgeChunkRow, chunk_id)
            if chunk is None:
                return None
            rows = (
                await session.execute(
                    select(TurnRow, ConversationRow)
                    .join(ConversationRow, ConversationRow.id == TurnRow.conversation_id)
                    .where(TurnRow.knowledge_chunk_id == chunk_id)
                    .order_by(TurnRow.id)
                )
            ).all()
        return _chunk(chunk), [_pending(t, c) for t, c in rows]

    async def save_chunks(
        self, chunks: Sequence[NewChunk], *, read: Sequence[int], replacing: Sequence[int] = ()
    ) -> list[int | None]:
        """Store new chunks of messages and mark ``read`` turns as read, in one transaction.

        ``replacing`` are chunks the new ones take the place of (extended with
        newer messages). A chunk some of whose turns were deleted meanwhile
        (``forget``) is not stored (its id comes back None) and its remaining turns
        stay to be read again, so no chunk ever holds words that were forgotten.
        """
        ids: list[int | None] = []
        async with self._database.writing() as session:
            if replacing:
                await session.execute(
                    update(TurnRow)
                    .where(TurnRow.knowledge_chunk_id.in_(replacing))
                    .values(knowledge_chunk_id=None)
                )
                await session.execute(
                    delete(KnowledgeChunkRow).where(KnowledgeChunkRow.id.in_(replacing))
                )
            if read:
                await session.execute(
                    update(TurnRow).where(TurnRow.id.in_(read)).values(indexed=True)
                )
            for chunk in chunks:
                row = KnowledgeChunkRow(**_chunk_values(chunk))
                session.add(row)
                await session.flush()
                claimed = await session.execute(
                    update(TurnRow)
                    .where(TurnRow.id.in_(chunk.turns), TurnRow.knowledge_chunk_id.is_(None))
                    .values(indexed=True, knowledge_chunk_id=row.id)
                )
                if claimed.rowcount != len(chunk.turns):  # type: ignore[attr-defined]
                    await session.execute(
                        update(TurnRow)
                        .where(TurnRow.knowledge_chunk_id == row.id)
                        .values(indexed=False, knowledge_chunk_id=None)
                    )
                    await session.delete(row)
                    ids.append(None)
                else:
                    ids.append(row.id)
        return ids

    async def chunks_of_turns(self, turn_ids: Sequence[int]) -> dict[int, int]:
        """turn id -> the chunk that holds it, for the turns that are in one."""
        async with self._database.reading() as session:
            rows = (
                await session.execute(
                    select(TurnRow.id, TurnRow.knowledge_chunk_id).where(
                        TurnRow.id.in_(list(turn_ids)), TurnRow.knowledge_chunk_id.is_not(None)
                    )
                )
            ).all()
        return {row.id: row.knowledge_chunk_id for row in rows}

    async def pending_count(self) -> int:
        async with self._database.reading() as session:
            found = await session.scalar(
                select(func.count()).select_from(TurnRow).where(TurnRow.indexed.is_(False))
            )
        return int(found or 0)

    # -- documents -------------------------------------------------------------------

    async def document(self, source: str) -> StoredDocument | None:
        async with self._database.reading() as session:
            row = await session.scalar(
                select(KnowledgeDocumentRow).where(KnowledgeDocumentRow.source == source)
            )
        return _document(row) if row is not None else None

    async def put_document(
        self, values: dict[str, Any], chunks: Sequence[NewChunk]
    ) -> tuple[StoredDocument, list[int], list[int]]:
        """Store a document with its chunks, replacing one from the same source, in one
        transaction. Returns it, the new chunk ids and the ids of the chunks replaced."""
        async with self._database.writing() as session:
            old = await session.scalar(
                select(KnowledgeDocumentRow).where(KnowledgeDocumentRow.source == values["source"])
            )
            replaced: list[int] = []
            if old is not None:
                replaced = list(await self._delete_document(session, old.id))
            row = KnowledgeDocumentRow(**values, added_at=utcnow())
            session.add(row)
            await session.flush()
            ids = []
            for chunk in chunks:
                piece = KnowledgeChunkRow(**_chunk_values(chunk, row.id))
                session.add(piece)
                await session.flush()
                ids.append(piece.id)
        return _document(row, len(ids)), ids, replaced

    async def documents(self) -> list[StoredDocument]:
        """Every document with its number of chunks, by name."""
        counts = (
            select(KnowledgeChunkRow.document_id, func.count().label("n"))
            .where(KnowledgeChunkRow.document_id.is_not(None))
            .group_by(KnowledgeChunkRow.document_id)
            .subquery()
        )
        query = (
            select(KnowledgeDocumentRow, func.coalesce(counts.c.n, 0))
            .outerjoin(counts, counts.c.document_id == KnowledgeDocumentRow.id)
            .order_by(KnowledgeDocumentRow.name, KnowledgeDocumentRow.id)
        )
        async with self._database.reading() as session:
            rows = (await session.execute(query)).all()
        return [_document(row, count) for row, count in rows]

    async def remove_documents(self, name_or_source: str) -> tuple[list[StoredDocument], list[int]]:
        """Delete the documents with this source or (file) name; return them and the ids
        of their chunks."""
        where = or_(
            KnowledgeDocumentRow.source == name_or_source,
            KnowledgeDocumentRow.name == name_or_source,
        )
        async with self._database.writing() as session:
            rows = (await session.scalars(select(KnowledgeDocumentRow).where(where))).all()
            gone: list[int] = []
            for row in rows:
                gone.extend(await self._delete_document(session, row.id))
        return [_document(row) for row in rows], gone

    async def _delete_document(self, session: AsyncSession, document_id: int) -> Sequence[int]:
        ids = (
            await session.scalars(
                delete(KnowledgeChunkRow)
                .where(KnowledgeChunkRow.document_id == document_id)
                .returning(KnowledgeChunkRow.id)
            )
        ).all()
        await session.execute(
            delete(KnowledgeDocumentRow).where(KnowledgeDocumentRow.id == document_id)
        )
        return ids

    async def document_channels(self) -> dict[int, tuple[str, ...] | None]:
        """Every document's scope: the channels it answers in, None for everywhere."""
        async with self._database.reading() as session:
            rows = (
                await session.execute(
                    select(KnowledgeDocumentRow.id, KnowledgeDocumentRow.channels)
                )
            ).all()
        return {row.id: tuple(row.channels) if row.channels is not None else None for row in rows}

    # -- reading chunks --------------------------------------------------------------

    async def vectors(self, after_id: int = 0) -> list[tuple[int, str, bytes]]:
        """(id, owner, embedding) of the chunks past ``after_id``, by id, a page at a time."""
        chunks = KnowledgeChunkRow
        where = chunks.id > after_id
        return await self._vectors(_VECTORS.where(where).order_by(chunks.id).limit(PAGE))

    async def vectors_of(self, ids: Sequence[int]) -> list[tuple[int, str, bytes]]:
        """(id, owner, embedding) of these chunks, those that exist."""
        found: list[tuple[int, str, bytes]] = []
        for start in range(0, len(ids), 500):
            part = list(ids[start : start + 500])
            found.extend(await self._vectors(_VECTORS.where(KnowledgeChunkRow.id.in_(part))))
        return found

    async def _vectors(self, query: Executable) -> list[tuple[int, str, bytes]]:
        async with self._database.reading() as session:
            rows = (await session.execute(query)).all()
        return [
            (r.id, owner_key(r.document_id, r.platform, r.channel, r.direct), r.embedding)
            for r in rows
        ]

    async def chunk_ids(self) -> set[int]:
        async with self._database.reading() as session:
            return set((await session.scalars(select(KnowledgeChunkRow.id))).all())

    async def chunks(self, ids: Sequence[int], scope: Readable) -> dict[int, StoredChunk]:
        """The chunks with these ids that still exist and ``scope`` may read."""
        if not ids:
            return {}
        query = select(KnowledgeChunkRow).where(
            KnowledgeChunkRow.id.in_(list(ids)), _readable(scope)
        )
        async with self._database.reading() as session:
            rows = (await session.scalars(query)).all()
        return {row.id: _chunk(row) for row in rows}

    async def lexical(self, query: str, scope: Readable, limit: int) -> list[int]:
        """Chunk ids that ``scope`` may read, best full-text match first (any word).

        Words found in more than :data:`COMMON_SHARE` of all chunks are left out (the
        two rarest words are always kept): they say little about which chunk answers,
        and ranking every chunk that has one is what makes a search slow.
        """
        words = await self._telling(search_words(query))
        if not words:
            return []
        readable = _readable(scope)
        if self.dialect == "sqlite":
            match = " OR ".join(f'"{word}"' for word in words)
            statement = (
                select(KnowledgeChunkRow.id)
                .join(FTS, FTS.c.rowid == KnowledgeChunkRow.id)
                .where(text("knowledge_fts MATCH :match"), readable)
                .order_by(text("bm25(knowledge_fts)"))
                .limit(limit)
            )
            values = {"match": match}
        else:
            statement = (
                select(KnowledgeChunkRow.id)
                .where(text("search_vector @@ to_tsquery('english', :match)"), readable)
                .order_by(text("ts_rank_cd(search_vector, to_tsquery('english', :match)) DESC"))
                .limit(limit)
            )
            values = {"match": " | ".join(words)}
        async with self._database.reading() as session:
            return list((await session.scalars(statement, values)).all())

    async def _telling(self, words: list[str]) -> list[str]:
        if len(words) <= KEPT_RAREST:
            return words
        now = time.monotonic()
        if now - self._counted_at > WORD_COUNTS_S:
            self._word_counts.clear()
            self._total = await self.count()
            self._counted_at = now
        unknown = [w for w in words if w not in self._word_counts]
        if unknown:
            self._word_counts.update(await self._chunks_with(unknown))
        common = max(COMMON_MIN, COMMON_SHARE * self._total)
        rarest = sorted(words, key=lambda w: self._word_counts[w])
        return [
            w for n, w in enumerate(rarest) if n < KEPT_RAREST or self._word_counts[w] <= common
        ]

    async def _chunks_with(self, words: list[str]) -> dict[str, int]:
        """How many chunks hold each word (one statement for all of them)."""
        if self.dialect == "sqlite":
            each = "(SELECT count(*) FROM knowledge_fts WHERE knowledge_fts MATCH :w{n})"
            values = {f"w{n}": f'"{w}"' for n, w in enumerate(words)}
        else:
            each = (
                "(SELECT count(*) FROM knowledge_chunks "
                "WHERE search_vector @@ to_tsquery('english', :w{n}))"
            )
            values = {f"w{n}": w for n, w in enumerate(words)}
        statement = text("SELECT " + ", ".join(each.format(n=n) for n in range(len(words))))
        async with self._database.reading() as session:
            row = (await session.execute(statement, values)).one()
        return dict(zip(words, (int(c) for c in row), strict=True))

    async def pgvector_available(self) -> bool:
        """Whether this PostgreSQL server offers the pgvector extension (never on SQLite)."""
        if self.dialect != "postgresql":
            return False
        async with self._database.reading() as session:
            found = await session.scalar(
                text("SELECT count(*) FROM pg_available_extensions WHERE name = 'vector'")
            )
        return bool(found)

    async def count(self) -> int:
        async with self._database.reading() as session:
            found = await session.scalar(select(func.count()).select_from(KnowledgeChunkRow))
        return int(found or 0)


def _pending(turn: TurnRow, conversation: ConversationRow) -> PendingTurn:
    return PendingTurn(
        id=turn.id,
        conversation_id=turn.conversation_id,
        platform=conversation.platform,
        channel=conversation.channel,
        thread=conversation.thread,
        direct=bool(conversation.direct),
        role=turn.role,
        author_name=turn.author_name,
        text=turn.text,
        addressed=turn.addressed,
        command=turn.command,
        platform_message_id=turn.platform_message_id,
        created_at=aware(turn.created_at),
        chunk_id=turn.knowledge_chunk_id,
    )


__all__ = [
    "KnowledgeStore",
    "NewChunk",
    "PendingTurn",
    "Readable",
    "StoredChunk",
    "StoredDocument",
    "drop_chunks_of_turns",
    "owner_key",
    "search_words",
]
