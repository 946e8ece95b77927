"""The knowledge base of one process: its tables, index, sentence model, indexer and search."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

import numpy as np

from confab.bot.config import KnowledgeConfig
from confab.bot.knowledge.documents import ReadDocument, passages
from confab.bot.knowledge.embedding import DIMENSIONS, Embedder
from confab.bot.knowledge.indexer import Indexer
from confab.bot.knowledge.passage import Passage, Quote, Where
from confab.bot.knowledge.search import Retriever
from confab.bot.knowledge.vectors import VectorIndex, encode
from confab.storage.database import Database
from confab.storage.knowledge import KnowledgeStore, NewChunk, Readable
from confab.storage.records import StoredDocument

log = logging.getLogger(__name__)

# Lines this close (cosine) to the best one count as equally good: the latest wins.
QUOTE_TIE = 0.05
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9`“\"(])")


@dataclass(frozen=True, slots=True)
class Added:
    """What adding one document did."""

    document: StoredDocument
    outcome: Literal["added", "replaced", "unchanged"]


class KnowledgeBase:
    """Built by the app (and ``confab kb``) over the same database as everything else."""

    def __init__(
        self, database: Database, config: KnowledgeConfig, embedder: Embedder | None = None
    ) -> None:
        self.config = config
        self.store = KnowledgeStore(database)
        self.index = VectorIndex(DIMENSIONS)
        self._warming: asyncio.Task[None] | None = None
        self._owns_embedder = embedder is None  # one handed in is closed by its owner
        self.embedder = embedder or Embedder()
        self.retriever = Retriever(
            self.store, self.index, self.embedder, shared_channels=config.shared_channels
        )
        self.indexer = Indexer(
            self.store,
            self.index,
            self.embedder,
            gap=timedelta(minutes=config.chunk_gap_minutes),
            every_s=config.index_every_s,
        )

    async def load(self) -> None:
        """Read every stored vector into the in-process index."""
        added = await self.index.load(self.store)
        log.info("knowledge index loaded: %d chunks", added)
        if await self.store.pgvector_available():
            # Detected, not used: no machine this was built on had it to test against.
            log.info("pgvector is installed on this server; vectors are searched in-process")

    async def start(self) -> None:
        """Load the index and start indexing new messages in the background."""
        await self.load()
        self.indexer.start()

    def warm(self) -> None:
        """Load the sentence model in the background, so the first question does not
        wait for it (the app calls it once the language model is loaded). Only when
        there is something to search: otherwise it would take the CPU from the first
        answers for nothing, and it loads when the first messages are indexed."""
        if self._warming is None and len(self.index):
            self._warming = asyncio.create_task(self._warm(), name="sentence-model")

    async def _warm(self) -> None:
        try:
            await self.embedder.encode(["warm up"])
        except Exception:  # said where it is used; the bot answers without it
            log.exception("the sentence model failed to load")

    async def close(self) -> None:
        await self.indexer.stop()
        if self._warming is not None:
            await asyncio.gather(self._warming, return_exceptions=True)
        if self._owns_embedder:
            await self.embedder.close()

    async def search(self, query: str, where: Where, *, limit: int | None = None) -> list[Passage]:
        return await self.retriever.search(query, where, limit=limit or self.config.search_results)

    async def search_documents(self, query: str, *, limit: int | None = None) -> list[Passage]:
        """Every document's passages, whatever their scope, and no history (for operators)."""
        every = tuple(d.id for d in await self.store.documents())
        return await self.retriever.search_in(
            query, Readable("", "", (), every), limit=limit or self.config.search_results
        )

    async def quotes(self, passages: Sequence[Passage], question: str) -> list[Quote]:
        """Each passage's line closest in meaning to ``question`` (a statement rather
        than a question; of lines about as close, the latest, as a correction comes after
        what it corrects), closest first."""
        lines = [_lines(p) for p in passages]
        flat = [line for each in lines for line in each]
        if not flat:
            return []
        vectors = await self.embedder.encode([question, *flat])
        closeness = vectors[1:] @ vectors[0]
        quotes, start = [], 0
        for passage, own in zip(passages, lines, strict=True):
            if own:
                scores = closeness[start : start + len(own)]
                near_best = np.flatnonzero(scores >= scores.max() - QUOTE_TIE)
                pick = int(near_best[-1])
                quotes.append(Quote(passage, own[pick], float(scores[pick])))
            start += len(own)
        return sorted(quotes, key=lambda q: -q.closeness)

    # -- documents -------------------------------------------------------------------

    async def add(
        self,
        document: ReadDocument,
        *,
        source: str,
        channels: Sequence[str] | None = None,
        added_by: str,
    ) -> Added:
        """Add a document, or replace the one from the same source if it changed.

        Its passages and their vectors are written in one transaction, so a
        failure leaves either the old version or the new one, never a part.
        """
        scope = tuple(sorted(channels)) if channels else None
        old = await self.store.document(source)
        if old is not None and old.sha256 == document.sha256 and old.channels == scope:
            return Added(old, "unchanged")
        pieces = passages(document)
        vectors = await self.embedder.encode(
            [f"{document.title}: {p.heading}\n{p.text}" if p.heading else p.text for p in pieces]
        )
        now = datetime.now(UTC)
        chunks = [
            NewChunk(
                text=p.text, heading=p.heading, embedding=encode(v), started_at=now, ended_at=now
            )
            for p, v in zip(pieces, vectors, strict=True)
        ]
        values = {
            "source": source,
            "name": document.name[:255],
            "kind": document.kind,
            "title": document.title,
            "sha256": document.sha256,
            "size": document.size,
            "channels": list(scope) if scope else None,
            "added_by": added_by[:255],
        }
        stored, ids, replaced = await self.store.put_document(values, chunks)
        self.retriever.documents_changed()
        self.index.remove(replaced)
        if ids:
            self.index.add(ids, [f"d:{stored.id}"] * len(ids), vectors)
        return Added(stored, "replaced" if old is not None else "added")

    async def remove(self, name_or_source: str) -> list[StoredDocument]:
        removed, chunk_ids = await self.store.remove_documents(name_or_source)
        self.retriever.documents_changed()
        self.index.remove(chunk_ids)
        return removed

    async def documents(self) -> list[StoredDocument]:
        return await self.store.documents()


def _lines(passage: Passage) -> list[str]:
    """What a passage can be quoted by: its messages, or a document's sentences."""
    if passage.from_messages:
        lines = [" ".join(line.split()) for line in passage.text.splitlines() if line.strip()]
    else:
        lines = [s for s in SENTENCE_END.split(" ".join(passage.text.split())) if s]
    return [line for line in lines if not line.endswith("?")] or lines
