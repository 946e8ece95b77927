"""The background indexer: reads newly stored messages in batches and stores their chunks.

It runs as its own task, never on the path that answers a message: a message
is searchable a few seconds after it was stored. What it has read is marked in
the turns table, so a restart carries on where it stopped (and the first start
after the upgrade reads the whole stored history).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, replace
from datetime import timedelta

import numpy as np

from confab.bot.knowledge.chunking import authors, chunk_text, fits, heading, runs, worth_indexing
from confab.bot.knowledge.embedding import Embedder
from confab.bot.knowledge.vectors import VectorIndex, encode
from confab.storage.errors import StorageUnavailable
from confab.storage.knowledge import KnowledgeStore, NewChunk, PendingTurn, owner_key

log = logging.getLogger(__name__)

BATCH = 256  # turns read per round
SYNC_EVERY = 30  # rounds between full checks of the index against the table


@dataclass(frozen=True, slots=True)
class IndexRound:
    read: int  # turns read
    chunks: int  # chunks stored


class Indexer:
    """Keeps the chunks of stored messages (and the in-process index) up to date."""

    def __init__(
        self,
        store: KnowledgeStore,
        index: VectorIndex,
        embedder: Embedder,
        *,
        gap: timedelta,
        every_s: float,
        batch: int = BATCH,
    ) -> None:
        self._store = store
        self._index = index
        self._embedder = embedder
        self._gap = gap
        self._every_s = every_s
        self._batch = batch
        self._task: asyncio.Task[None] | None = None
        self.rounds = 0
        self.idle = asyncio.Event()  # set whenever nothing is left to read

    async def run_once(self) -> IndexRound:
        """Read one batch of pending turns; store their chunks."""
        pending = await self._store.pending_turns(self._batch)
        if not pending:
            return IndexRound(0, 0)
        chunks: list[NewChunk] = []
        replacing: list[int] = []
        # By conversation, in order: channels active at once interleave their turns.
        conversations: dict[int, list[PendingTurn]] = {}
        for turn in pending:
            conversations.setdefault(turn.conversation_id, []).append(turn)
        for group in conversations.values():
            worth = [turn for turn in group if worth_indexing(turn)]
            if not worth:
                continue
            cut = runs(worth, self._gap)
            # A message soon after the conversation's last chunk extends it.
            earlier = await self._store.latest_chunk(worth[0].conversation_id, worth[0].id)
            if earlier is not None:
                chunk, members = earlier
                joined = members[:]
                for turn in cut[0]:
                    if not fits(joined, turn, self._gap):
                        break
                    joined.append(turn)
                else:
                    cut[0] = joined
                    replacing.append(chunk.id)
            chunks.extend(self._unembedded(run) for run in cut)
        vectors = await self._embedder.encode([c.text for c in chunks])
        chunks = [replace(c, embedding=encode(v)) for c, v in zip(chunks, vectors, strict=True)]
        ids = await self._store.save_chunks(
            chunks, read=[turn.id for turn in pending], replacing=replacing
        )
        self._index.remove(replacing)
        stored = [(i, c, v) for i, c, v in zip(ids, chunks, vectors, strict=True) if i is not None]
        if stored:
            self._index.add(
                [i for i, _, _ in stored],
                [owner_key(None, c.platform, c.channel, c.direct) for _, c, _ in stored],
                np.stack([v for _, _, v in stored]),
            )
        return IndexRound(len(pending), len(stored))

    def _unembedded(self, run: list[PendingTurn]) -> NewChunk:
        first = run[0]
        return NewChunk(
            text=chunk_text(run),
            embedding=b"",
            started_at=first.created_at,
            ended_at=run[-1].created_at,
            heading=heading(first),
            platform=first.platform,
            channel=first.channel,
            thread=first.thread,
            direct=first.direct,
            message_id=first.platform_message_id,
            authors=authors(run),
            turns=tuple(turn.id for turn in run),
        )

    async def catch_up(self) -> int:
        """Read everything pending now; return how many turns were read."""
        total = 0
        while (done := await self.run_once()).read:
            total += done.read
        return total

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="knowledge-indexer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        try:
            backlog = await self._store.pending_count()
        except StorageUnavailable:  # said by the first round below
            backlog = 0
        if backlog:
            log.info("knowledge: %d stored messages to index", backlog)
        while True:
            try:
                done = await self.run_once()
                if self.rounds % SYNC_EVERY == 0:
                    added, removed = await self._index.sync(self._store)
                    if added or removed:
                        log.info("knowledge index: %d chunks added, %d dropped", added, removed)
            except StorageUnavailable as error:
                log.warning("knowledge indexing paused, the database is unreachable: %s", error)
                done = IndexRound(0, 0)
            except Exception:
                log.exception("knowledge indexing failed; trying again in %.0f s", self._every_s)
                done = IndexRound(0, 0)
            self.rounds += 1
            if done.read < self._batch:  # caught up: wait for new messages
                self.idle.set()
                await asyncio.sleep(self._every_s)
                self.idle.clear()
