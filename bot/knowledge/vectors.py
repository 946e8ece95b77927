"""The in-process vector index: every chunk's sentence vector in one matrix.

Used where the database has no vector search of its own (SQLite; PostgreSQL
without pgvector). It loads from the chunks table at start and is kept in step
with it: the indexer adds what it stores, :meth:`VectorIndex.sync` picks up
chunks other processes stored and drops those deleted anywhere. A search
never trusts it alone: the chunks it names are read back from the table, so a
deleted chunk is never returned even before the index hears of it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection, Sequence

import numpy as np

from confab.storage.knowledge import KnowledgeStore

log = logging.getLogger(__name__)

COMPACT_WHEN_DEAD = 0.2  # share of removed rows at which the matrix is rebuilt
THREAD_FROM_ROWS = 20_000  # past this, a search runs off the event loop


def decode(embedding: bytes) -> np.ndarray:
    """A stored vector (float16, little-endian) as float32."""
    return np.frombuffer(embedding, dtype="<f2").astype(np.float32)


def encode(vector: np.ndarray) -> bytes:
    """A unit vector as stored: float16, little-endian (half the bytes of float32)."""
    return np.asarray(vector, dtype="<f2").tobytes()


class VectorIndex:
    """Nearest chunks by cosine similarity (vectors are unit length: a dot product),
    among the chunks whose owner (see :func:`confab.storage.knowledge.owner_key`) is readable."""

    def __init__(self, dimensions: int) -> None:
        self.dimensions = dimensions
        self._matrix = np.zeros((0, dimensions), dtype=np.float32)
        self._ids = np.zeros(0, dtype=np.int64)
        self._owners = np.zeros(0, dtype=np.int32)
        self._alive = np.zeros(0, dtype=bool)
        self._codes: dict[str, int] = {}
        self._rows: dict[int, int] = {}  # chunk id -> row
        self._dead = 0
        self.max_id = 0

    def __len__(self) -> int:
        return len(self._rows)

    @property
    def ram_bytes(self) -> int:
        """What the index holds in RAM (matrix, ids, owners, row map)."""
        arrays = self._matrix.nbytes + self._ids.nbytes + self._owners.nbytes + self._alive.nbytes
        return arrays + len(self._rows) * 100  # a dict entry with two ints, roughly

    def add(self, ids: Sequence[int], owners: Sequence[str], vectors: np.ndarray) -> None:
        """Add chunks (ids not yet in the index; one already there is replaced)."""
        if not len(ids):
            return
        self.remove([i for i in ids if i in self._rows])
        codes = np.array([self._codes.setdefault(o, len(self._codes)) for o in owners], np.int32)
        start = len(self._ids)
        self._matrix = np.concatenate([self._matrix, np.asarray(vectors, dtype=np.float32)])
        self._ids = np.concatenate([self._ids, np.asarray(ids, dtype=np.int64)])
        self._owners = np.concatenate([self._owners, codes])
        self._alive = np.concatenate([self._alive, np.ones(len(ids), dtype=bool)])
        for offset, chunk_id in enumerate(ids):
            self._rows[int(chunk_id)] = start + offset
        self.max_id = max(self.max_id, int(max(ids)))

    def remove(self, ids: Collection[int]) -> None:
        for chunk_id in ids:
            row = self._rows.pop(int(chunk_id), None)
            if row is not None:
                self._alive[row] = False
                self._dead += 1
        if self._dead and self._dead > COMPACT_WHEN_DEAD * len(self._ids):
            self._compact()

    def _compact(self) -> None:
        keep = self._alive
        self._matrix = self._matrix[keep]
        self._ids = self._ids[keep]
        self._owners = self._owners[keep]
        self._alive = np.ones(len(self._ids), dtype=bool)
        self._rows = {int(chunk_id): row for row, chunk_id in enumerate(self._ids)}
        self._dead = 0

    def nearest(
        self, query: np.ndarray, owners: Collection[str], k: int
    ) -> list[tuple[int, float]]:
        """Up to ``k`` (chunk id, similarity) pairs, most similar first."""
        codes = [self._codes[o] for o in owners if o in self._codes]
        if not codes or not len(self._ids):
            return []
        # One snapshot: add() and remove() replace arrays, never change them in place
        # (but for the alive flags, which only ever turn off).
        matrix, ids, owner_of, alive = self._matrix, self._ids, self._owners, self._alive
        readable = np.isin(owner_of, np.asarray(codes, dtype=np.int32)) & alive
        rows = np.flatnonzero(readable)
        if not len(rows):
            return []
        scores = matrix[rows] @ np.asarray(query, dtype=np.float32)
        best = np.argpartition(-scores, k - 1)[:k] if len(rows) > k else np.arange(len(rows))
        best = best[np.argsort(-scores[best])]
        return [(int(ids[rows[i]]), float(scores[i])) for i in best]

    async def nearest_async(
        self, query: np.ndarray, owners: Collection[str], k: int
    ) -> list[tuple[int, float]]:
        """:meth:`nearest`, on a worker thread once the index is large."""
        if len(self._ids) < THREAD_FROM_ROWS:
            return self.nearest(query, owners, k)
        return await asyncio.to_thread(self.nearest, query, owners, k)

    async def load(self, store: KnowledgeStore) -> int:
        """Read the chunks stored after the newest one held; return how many were added."""
        added = 0
        while True:
            page = await store.vectors(self.max_id)
            if not page:
                return added
            self.add(
                [row[0] for row in page],
                [row[1] for row in page],
                np.stack([decode(row[2]) for row in page]),
            )
            added += len(page)

    async def sync(self, store: KnowledgeStore) -> tuple[int, int]:
        """Match the table exactly: drop chunks deleted anywhere, add any missing (another
        process may commit a lower id after a higher one). Returns (added, removed)."""
        stored = await store.chunk_ids()
        gone = set(self._rows) - stored
        self.remove(gone)
        missing = stored - set(self._rows)
        added = 0
        if missing:
            rows = await store.vectors_of(sorted(missing))
            if rows:
                self.add(
                    [row[0] for row in rows],
                    [row[1] for row in rows],
                    np.stack([decode(row[2]) for row in rows]),
                )
                added = len(rows)
        return added, len(gone)
