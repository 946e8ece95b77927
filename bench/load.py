"""Load: many people in shared channels talk to the bot at once, on SQLite and PostgreSQL.

Each simulated user belongs to one channel and sends their messages in order,
a random think time (0 to --think-ms) after their previous one, without waiting
for its answer; every message is handled as its own task, as the Discord and
Slack adapters' frameworks dispatch events. The model is the scripted backend:
each answer streams in --chunks chunks, --chunk-delay-ms apart. Then it checks
that every message got exactly one reply (the answer or a busy notice) and that
each conversation stores every person's messages once, in the order they sent
them, each answer once, after its question. Exit status 1 when anything was
lost, duplicated, out of order, failed, unfinished or not sent in time.

messages/s is messages handled over the time from the first sent to the last
handled: with the default short think time everyone sends within a fraction
of a second, so it is the bot's capacity and the latencies are mostly queueing;
with a long --think-ms it is the offered rate and the latencies are the bot's own.

    .venv/bin/python bench/load.py [--users 200] [--channels 50] [--messages 5]
        [--db sqlite|postgresql|both] [--time-limit 120] [--router KEY=VALUE ...]

PostgreSQL: a database of this run's own on $PGHOST:$PGPORT as $PGUSER
(127.0.0.1:5432, postgres), dropped afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]

from confab.bot.config import RouterConfig

# The load scenario and its checks live with the tests, which run a smaller one.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.bot.load_driver import LoadPlan, LoadReport, load_router_config, run_load

PG_HOST = os.environ.get("PGHOST", "127.0.0.1")
PG_PORT = int(os.environ.get("PGPORT", "5432"))
PG_USER = os.environ.get("PGUSER", "postgres")


async def _admin(statement: str) -> None:
    connection = await asyncpg.connect(
        host=PG_HOST, port=PG_PORT, user=PG_USER, database="postgres", timeout=10
    )
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@contextlib.asynccontextmanager
async def fresh_postgresql() -> AsyncIterator[str]:
    """The URL of a new, empty PostgreSQL database, dropped when the block ends."""
    name = f"confab_load_{os.getpid()}_{secrets.token_hex(4)}"
    await _admin(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+asyncpg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def run_on(database: str, plan: LoadPlan, config: RouterConfig) -> LoadReport:
    with tempfile.TemporaryDirectory() as folder:
        if database == "sqlite":
            url = f"sqlite+aiosqlite:///{Path(folder) / 'load.db'}"
            return await run_load(plan, url, Path(folder), router_config=config, database=database)
        async with fresh_postgresql() as url:
            return await run_load(plan, url, Path(folder), router_config=config, database=database)


async def main(args: argparse.Namespace) -> int:
    plan = LoadPlan(
        users=args.users,
        channels=args.channels,
        messages=args.messages,
        think_s=args.think_ms / 1000,
        model_chunk_delay_s=args.chunk_delay_ms / 1000,
        answer_chunks=args.chunks,
        time_limit_s=args.time_limit,
        grace_s=args.grace,
        seed=args.seed,
    )
    config = load_router_config(plan, **args.router)
    print(f"router config: {config.model_dump()}")
    print(
        f"think time 0-{args.think_ms:g} ms between one user's messages (not waiting for "
        f"answers); scripted answers in {args.chunks} chunks, {args.chunk_delay_ms:g} ms apart; "
        f"seed {args.seed}"
    )
    databases = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    ok = True
    for database in databases:
        report = await run_on(database, plan, config)
        print("\n".join(report.lines()), flush=True)
        ok = ok and report.verdict() == "ok"
    return 0 if ok else 1


def router_setting(text: str) -> tuple[str, object]:
    key, equals, value = text.partition("=")
    if not equals or not key:
        raise argparse.ArgumentTypeError(f"{text!r}: expected KEY=VALUE")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--channels", type=int, default=50)
    parser.add_argument("--messages", type=int, default=5, help="per user")
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument(
        "--time-limit", type=float, default=120.0, help="seconds per database; no send after it"
    )
    parser.add_argument(
        "--grace", type=float, default=10.0, help="seconds for replies in flight at the limit"
    )
    parser.add_argument("--think-ms", type=float, default=20.0)
    parser.add_argument("--chunks", type=int, default=4)
    parser.add_argument("--chunk-delay-ms", type=float, default=2.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--router",
        type=router_setting,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a [router] setting (JSON value), e.g. rate limits; repeatable",
    )
    arguments = parser.parse_args()
    arguments.router = dict(arguments.router)
    sys.exit(asyncio.run(main(arguments)))
