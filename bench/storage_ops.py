"""What one stored message costs on SQLite: the write queue's hand-off, and the writes of a
question and of an answer (each its own transaction, as in a sequential round trip).

    .venv/bin/python bench/storage_ops.py [--count 2000] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any

from confab.storage.conversations import ConversationKey, _append
from confab.storage.database import Database
from confab.storage.sql import utcnow

KEY = ConversationKey("bench", "c")


def turn(role: str) -> dict[str, Any]:
    return {
        "role": role,
        "author_id": "ada",
        "author_name": "Ada",
        "text": "How fast is this?",
        "addressed": True,
        "skill": "ping",
        "command": "ping",
        "token_count": 4,
        "platform_message_id": None,
        "created_at": utcnow(),
        "reply_to_id": None,
        "reply_to_author_id": None,
    }


async def timed(count: int, one: Callable[[int], Awaitable[Any]]) -> float:
    """Microseconds per awaited operation, one after another."""
    started = time.perf_counter()
    for n in range(count):
        await one(n)
    return (time.perf_counter() - started) / count * 1e6


async def run(folder: Path, count: int) -> dict[str, float]:
    database = Database(f"sqlite+aiosqlite:///{folder / 'bench.db'}")
    await database.upgrade()
    write_queue = database.write_queue

    def question(n: int) -> Awaitable[Any]:
        return write_queue.submit(partial(_append, KEY, turn("user"), f"e{n}"), writes=True)

    def answer(_n: int) -> Awaitable[Any]:
        return write_queue.submit(partial(_append, KEY, turn("assistant"), None), writes=True)

    def nothing(_n: int) -> Awaitable[Any]:
        return write_queue.submit(lambda _connection, _facts: None, writes=False)

    await timed(100, question)  # the conversation and the person are known from here on
    figures = {
        "hand-off only": await timed(count, nothing),
        "question (event mark + turn)": await timed(count, lambda n: question(count + n)),
        "answer (turn)": await timed(count, answer),
    }
    await database.close()
    return figures


async def main(args: argparse.Namespace) -> None:
    runs = []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory() as folder:
            runs.append(await run(Path(folder), args.count))
    for name in runs[0]:
        values = [figures[name] for figures in runs]
        print(
            f"{name:30s} median {statistics.median(values):6.0f} µs  (runs: "
            + ", ".join(f"{v:.0f}" for v in values)
            + ")"
        )
    print(f"({args.count} operations each, awaited one at a time, SQLite WAL)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=3)
    asyncio.run(main(parser.parse_args()))
