"""Hybrid search: sentence vectors and the database's full-text search, fused.

Each ranks up to ``candidates`` chunks the asker may read; reciprocal rank
fusion (RRF, k=60, the full-text list at half weight) merges the two lists, so
a passage found by both ranks above one found by either alone, and neither
score scale has to be calibrated against the other. Full text catches what
sentence vectors blur (identifiers, error codes, rare names). The similarity
that ``ask`` thresholds on is the cosine of the question's vector and the
passage's, whichever list found it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import numpy as np

from confab.bot.knowledge.embedding import Embedder
from confab.bot.knowledge.passage import Passage, Where
from confab.bot.knowledge.vectors import VectorIndex, decode
from confab.storage.knowledge import KnowledgeStore, Readable, StoredChunk, owner_key

RRF_K = 60
CANDIDATES = 50
# Below this cosine a vector "match" is noise (unrelated sentences score about
# 0 to 0.1); counted anyway, a noise match plus a word match would outrank a
# strong match by meaning alone.
DENSE_FLOOR = 0.1
SCOPES_S = 5.0  # how long the documents' scopes are read once for every search
# Words count half as much as meaning: on bench/retrieval.py's labelled set,
# meaning alone finds 38 of 39 answers and words alone 30; among 2,000 chunks of
# random words from the same vocabulary, equal weights found 35, half weight 37.
LEXICAL_WEIGHT = 0.5


def fuse(
    dense: Sequence[int], lexical: Sequence[int], *, lexical_weight: float = LEXICAL_WEIGHT
) -> dict[int, float]:
    """Weighted reciprocal rank fusion: each id scores the sum of weight/(k + rank)."""
    scores: dict[int, float] = {}
    for ranking, weight in ((dense, 1.0), (lexical, lexical_weight)):
        for rank, chunk_id in enumerate(ranking, start=1):
            scores[chunk_id] = scores.get(chunk_id, 0.0) + weight / (RRF_K + rank)
    return scores


class Retriever:
    """Finds the passages that answer a question, within what its asker may read."""

    def __init__(
        self,
        store: KnowledgeStore,
        index: VectorIndex,
        embedder: Embedder,
        *,
        shared_channels: Sequence[str] = (),
        mode: str = "hybrid",
    ) -> None:
        self._store = store
        self._index = index
        self._embedder = embedder
        self._shared = tuple(
            (name.partition(":")[0], name.partition(":")[2]) for name in shared_channels
        )
        self.mode = mode  # "hybrid", "dense" or "lexical" (the last two for measuring)
        self._scopes: dict[int, tuple[str, ...] | None] | None = None
        self._scopes_at = 0.0

    async def readable(self, where: Where) -> Readable:
        """What a question asked here may be answered from."""
        here = f"{where.platform}:{where.channel}"
        documents = tuple(
            sorted(
                doc_id
                for doc_id, channels in (await self._document_scopes()).items()
                if channels is None or here in channels
            )
        )
        shared = tuple(s for s in self._shared if s != (where.platform, where.channel))
        return Readable(where.platform, where.channel, shared, documents)

    async def _document_scopes(self) -> dict[int, tuple[str, ...] | None]:
        """Every document's channels, read again after :data:`SCOPES_S` (or
        :meth:`documents_changed`). A document removed meanwhile is never shown all
        the same: its chunks are gone from the table that every search reads back."""
        now = time.monotonic()
        if self._scopes is None or now - self._scopes_at > SCOPES_S:
            self._scopes = await self._store.document_channels()
            self._scopes_at = now
        return self._scopes

    def documents_changed(self) -> None:
        self._scopes = None

    async def search(
        self, query: str, where: Where, *, limit: int = 5, candidates: int = CANDIDATES
    ) -> list[Passage]:
        """The best ``limit`` passages for ``query`` asked at ``where``, best first."""
        if not query.strip() or (not len(self._index) and not await self._store.count()):
            return []  # nothing stored yet: no question needs embedding
        return await self.search_in(
            query, await self.readable(where), limit=limit, candidates=candidates
        )

    async def search_in(
        self, query: str, scope: Readable, *, limit: int = 5, candidates: int = CANDIDATES
    ) -> list[Passage]:
        """:meth:`search` within an explicit scope."""
        # The database searches the words while the question is embedded (two threads).
        words = (
            asyncio.ensure_future(self._store.lexical(query, scope, candidates))
            if self.mode in ("hybrid", "lexical")
            else None
        )
        try:
            vector = (await self._embedder.encode([query]))[0]
            dense: list[int] = []
            if self.mode in ("hybrid", "dense"):
                nearest = await self._index.nearest_async(vector, _owners(scope), candidates)
                dense = [i for i, similarity in nearest if similarity >= DENSE_FLOOR]
            lexical = await words if words is not None else []
        finally:
            if words is not None and not words.done():
                words.cancel()
        scores = fuse(dense, lexical)
        ranked = sorted(scores, key=lambda i: -scores[i])[: limit * 2]
        # Read back from the table: what was deleted or is out of scope is never shown.
        rows = await self._store.chunks(ranked, scope)
        titles = await self._document_names([r.document_id for r in rows.values()])
        found = [_passage(rows[i], scores[i], vector, titles) for i in ranked if i in rows]
        return found[:limit]

    async def _document_names(self, ids: Sequence[int | None]) -> dict[int, tuple[str, str]]:
        wanted = {i for i in ids if i is not None}
        if not wanted:
            return {}
        return {d.id: (d.name, d.title) for d in await self._store.documents() if d.id in wanted}


def _owners(scope: Readable) -> set[str]:
    owners = {
        owner_key(None, scope.platform, scope.channel, False),
        owner_key(None, scope.platform, scope.channel, True),
    }
    owners.update(owner_key(None, p, c, False) for p, c in scope.shared)
    owners.update(owner_key(d, "", "", False) for d in scope.documents)
    return owners


def _passage(
    chunk: StoredChunk, score: float, query: np.ndarray, titles: dict[int, tuple[str, str]]
) -> Passage:
    name, title = titles.get(chunk.document_id, (None, None)) if chunk.document_id else (None, None)
    return Passage(
        id=chunk.id,
        text=chunk.text,
        heading=chunk.heading,
        similarity=float(decode(chunk.embedding) @ query),
        score=score,
        started_at=chunk.started_at,
        document=name,
        document_title=title,
        platform=chunk.platform,
        channel=chunk.channel,
        thread=chunk.thread or None,
        message_id=chunk.message_id,
        authors=chunk.authors,
    )
