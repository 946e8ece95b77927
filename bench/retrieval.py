"""Knowledge retrieval: recall on a labelled history, indexing throughput, query latency
at 10k and 100k chunks on SQLite and PostgreSQL, and the in-process index's RAM.

    .venv/bin/python bench/retrieval.py [--sizes 10000,100000] [--databases sqlite,postgresql]
                                        [--queries 3] [--index-messages 3000]

- Recall@5: the labelled set bench/retrieval_cases/team_history.toml (49 questions
  over 298 messages in 6 channels), each asked in its channel; a question counts
  when a passage holding one of its answering messages is among the first five.
  "scope" questions must never be shown the message they name (another channel's,
  or a DM's); "nowhere" questions have no answer: their best similarity shows
  where ``[knowledge] min_similarity`` must sit.
- Indexing: people's messages stored first, then the indexer reads them all
  (chunking, the sentence model, the writes); messages per second.
- Latency: the labelled chunks among N synthetic ones (text of words drawn from
  the labelled history's vocabulary, so full-text search has real work; random
  unit vectors) all readable from the asking channel, the worst case; every
  question ``--queries`` times through the whole search (question embedding,
  vector index, full-text search, fusion, reading the rows back).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import resource
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from confab.bot.config import KnowledgeConfig
from confab.bot.knowledge.base import KnowledgeBase
from confab.bot.knowledge.embedding import DIMENSIONS, Embedder
from confab.bot.knowledge.labelled import LabelledHistory, LabelledMessage, load, plant
from confab.bot.knowledge.passage import Where
from confab.bot.knowledge.vectors import encode
from confab.storage.conversations import ConversationStore
from confab.storage.database import Database
from confab.storage.tables import KnowledgeChunkRow

PG = os.environ.get("CONFAB_BENCH_PG", "postgresql+asyncpg://postgres@127.0.0.1:5432")
THRESHOLDS = (0.3, 0.35, 0.4, 0.45, 0.5)


@asynccontextmanager
async def fresh_database(kind: str) -> AsyncIterator[Database]:
    """An empty, migrated database of this run's own, removed afterwards."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as folder:
            database = Database(f"sqlite+aiosqlite:///{folder}/bench.db")
            await database.upgrade()
            try:
                yield database
            finally:
                await database.close()
        return
    import asyncpg

    name = f"confab_bench_{os.getpid()}_{secrets.token_hex(3)}"
    admin = await asyncpg.connect("postgresql://postgres@127.0.0.1:5432/postgres")
    await admin.execute(f'CREATE DATABASE "{name}"')
    database = Database(f"{PG}/{name}")
    try:
        await database.upgrade()
        yield database
    finally:
        await database.close()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def labelled_base(
    database: Database, history: LabelledHistory, embedder: Embedder, **settings: object
) -> tuple[KnowledgeBase, dict[str, int]]:
    """The labelled history stored and indexed; key -> the chunk holding that message."""
    keys = await plant(ConversationStore(database), history.messages)
    base = KnowledgeBase(database, KnowledgeConfig(**settings), embedder)  # type: ignore[arg-type]
    await base.load()
    await base.indexer.catch_up()
    chunks = await base.store.chunks_of_turns(list(keys.values()))
    return base, {key: chunks[turn] for key, turn in keys.items() if turn in chunks}


async def recall(
    base: KnowledgeBase, history: LabelledHistory, chunk_of: dict[str, int]
) -> dict[str, object]:
    """Recall@5 and the similarities that set the threshold, for the current mode."""
    hits = total = leaks = 0
    answered_sims: list[float] = []  # the answering passage's similarity
    unanswerable_best: list[float] = []  # the best similarity where nothing answers
    misses = []
    for question in history.questions:
        found = await base.search(question.text, Where("console", question.channel), limit=5)
        ids = {p.id: p.similarity for p in found}
        leaks += sum(chunk_of.get(key) in ids for key in question.forbidden)
        if question.kind == "answered":
            total += 1
            wanted = [chunk_of[key] for key in question.answers if key in chunk_of]
            sims = [ids[i] for i in wanted if i in ids]
            if sims:
                hits += 1
                answered_sims.append(max(sims))
            else:
                misses.append(question.text)
        elif found:
            unanswerable_best.append(max(ids.values()))
    return {
        "hits": hits,
        "total": total,
        "leaks": leaks,
        "answered": answered_sims,
        "unanswerable": unanswerable_best,
        "misses": misses,
    }


async def bench_recall(embedder: Embedder) -> None:
    history = load()
    async with fresh_database("sqlite") as database:
        base, chunk_of = await labelled_base(database, history, embedder)
        count = await base.store.count()
        kinds = {
            k: sum(q.kind == k for q in history.questions) for k in ("answered", "scope", "nowhere")
        }
        print(
            f"\n== recall@5: {len(history.messages)} messages -> {count} chunks; "
            f"{len(history.questions)} questions ({kinds})"
        )
        results = {}
        for mode in ("hybrid", "dense", "lexical"):
            base.retriever.mode = mode
            result = await recall(base, history, chunk_of)
            results[mode] = result
            print(
                f"{mode:8} recall@5 {result['hits']}/{result['total']} = "
                f"{result['hits'] / result['total']:.3f}   scope leaks {result['leaks']}"
            )
        hybrid = results["hybrid"]
        for miss in hybrid["misses"]:  # type: ignore[attr-defined]
            print(f"  hybrid miss: {miss}")
        answered: list[float] = hybrid["answered"]  # type: ignore[assignment]
        unanswerable: list[float] = hybrid["unanswerable"]  # type: ignore[assignment]
        print("min_similarity   answers kept (of found)   unanswerable questions shown anything")
        for t in THRESHOLDS:
            kept = sum(s >= t for s in answered)
            shown = sum(s >= t for s in unanswerable)
            answers = f"{kept}/{len(answered)}"
            print(f"  {t:.2f}           {answers:26}{shown}/{len(unanswerable)}")
        await base.close()


def synthetic_texts(history: LabelledHistory, count: int, seed: int = 0) -> list[str]:
    words = [w for m in history.messages for w in re.findall(r"[A-Za-z]{3,}", m.text)]
    rng = random.Random(seed)
    names = ["Ana", "Bob", "Gus", "Maya", "Farah", "Lee"]
    return [
        "\n".join(
            f"{rng.choice(names)}: {' '.join(rng.choices(words, k=rng.randint(5, 14)))}"
            for _ in range(rng.randint(2, 5))
        )
        for _ in range(count)
    ]


async def add_synthetic(database: Database, history: LabelledHistory, count: int) -> None:
    """``count`` chunks in the labelled channels, written in bulk."""
    channels = sorted({m.channel for m in history.messages if not m.direct})
    rng = np.random.default_rng(0)
    texts = synthetic_texts(history, count)
    moment = datetime(2026, 10, 1, tzinfo=UTC)
    table = KnowledgeChunkRow.__table__
    for start in range(0, count, 5000):
        vectors = rng.standard_normal((min(5000, count - start), DIMENSIONS)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        rows = [
            {
                "document_id": None,
                "platform": "console",
                "channel": channels[(start + n) % len(channels)],
                "thread": "",
                "direct": False,
                "heading": "",
                "text": texts[start + n],
                "message_id": None,
                "authors": "",
                "started_at": moment + timedelta(minutes=start + n),
                "ended_at": moment + timedelta(minutes=start + n),
                "embedding": encode(vector),
            }
            for n, vector in enumerate(vectors)
        ]
        async with database.writing() as session:
            await session.execute(table.insert(), rows)
    if database.dialect == "postgresql":  # as autovacuum would after a bulk load
        async with database.engine.connect() as connection:
            await connection.execute(text("COMMIT"))
            await connection.execute(text("ANALYZE knowledge_chunks"))


async def bench_latency(embedder: Embedder, kind: str, sizes: list[int], queries: int) -> None:
    history = load()
    async with fresh_database(kind) as database:
        base, chunk_of = await labelled_base(database, history, embedder)
        have = 0
        for size in sizes:
            started = time.perf_counter()
            await add_synthetic(database, history, size - have)
            have = size
            insert_s = time.perf_counter() - started
            ram_before = _rss_mb()
            fresh = KnowledgeBase(database, KnowledgeConfig(), embedder)
            started = time.perf_counter()
            await fresh.load()
            load_s = time.perf_counter() - started
            timings = []
            for _ in range(queries):
                for question in history.questions:
                    began = time.perf_counter()
                    await fresh.search(question.text, Where("console", question.channel), limit=5)
                    timings.append((time.perf_counter() - began) * 1000)
            result = await recall(fresh, history, chunk_of)
            timings.sort()
            p50 = statistics.median(timings)
            p95 = timings[int(0.95 * (len(timings) - 1))]
            index_mib = fresh.index.ram_bytes / 2**20
            rss = _rss_mb() - ram_before
            print(
                f"{kind:10} {len(fresh.index):>7} chunks  p50 {p50:5.1f} ms  p95 {p95:5.1f} ms  "
                f"recall@5 {result['hits']}/{result['total']}  index {index_mib:6.1f} MiB "
                f"(RSS +{rss:.0f} MiB)  load {load_s:.1f} s  insert {insert_s:.0f} s"
            )
        await base.close()


def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def bench_indexing(embedder: Embedder, kind: str, messages: int) -> None:
    history = load()
    copies = []
    rounds = -(-messages // len(history.messages))
    for n in range(rounds):
        copies.extend(
            LabelledMessage(
                channel=f"{m.channel}-{n}",
                direct=m.direct,
                author=m.author,
                minute=m.minute,
                thread=m.thread,
                text=m.text,
            )
            for m in history.messages
        )
    copies = copies[:messages]
    async with fresh_database(kind) as database:
        await plant(ConversationStore(database), tuple(copies))
        base = KnowledgeBase(database, KnowledgeConfig(), embedder)
        started = time.perf_counter()
        read = await base.indexer.catch_up()
        took = time.perf_counter() - started
        chunks = await base.store.count()
        print(
            f"{kind:10} indexed {read} messages into {chunks} chunks in {took:.1f} s: "
            f"{read / took:.0f} messages/s"
        )
        await base.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--queries", type=int, default=3, help="rounds of the 49 questions")
    parser.add_argument("--index-messages", type=int, default=3000)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    kinds = [k for k in args.databases.split(",") if k]
    print(f"load average {os.getloadavg()[0]:.2f}, {os.cpu_count()} cores")
    embedder = Embedder()
    embedder.encode_now(["warm up"])
    await bench_recall(embedder)
    print("\n== indexing (people's messages -> chunks with vectors)")
    for kind in kinds:
        await bench_indexing(embedder, kind, args.index_messages)
    print("\n== query latency (whole search: embedding, vectors, full text, fusion, rows)")
    for kind in kinds:
        await bench_latency(embedder, kind, sizes, args.queries)
    await embedder.close()


if __name__ == "__main__":
    asyncio.run(main())
