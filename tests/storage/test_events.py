"""De-duplicating platform events: the first delivery wins, once, across processes."""

from __future__ import annotations

import asyncio
import json
import sys
from asyncio.subprocess import PIPE
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import update

from confab.storage.database import Database
from confab.storage.events import EventLog
from confab.storage.tables import ProcessedEventRow

ROOT = Path(__file__).resolve().parents[2]


async def test_an_event_is_new_once_per_platform(database: Database) -> None:
    events = EventLog(database)
    assert await events.mark_event_processed("slack", "Ev1") is True
    assert await events.mark_event_processed("slack", "Ev1") is False
    assert await events.mark_event_processed("discord", "Ev1") is True
    assert await events.mark_event_processed("slack", "Ev2") is True


async def test_of_many_concurrent_attempts_exactly_one_wins(db_url: str) -> None:
    # Three engines are three separate sets of connections, as three bot processes have.
    databases = [Database(db_url) for _ in range(3)]
    await databases[0].upgrade()
    logs = [EventLog(database) for database in databases]
    results = await asyncio.gather(
        *(logs[attempt % 3].mark_event_processed("slack", "retry-me") for attempt in range(30))
    )
    assert results.count(True) == 1
    for database in databases:
        await database.close()


async def test_processes_racing_on_the_same_events_mark_each_exactly_once(
    database: Database, db_url: str
) -> None:
    count, processes = 40, 2
    children = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.storage.mark_events",
            db_url,
            str(count),
            cwd=ROOT,
            stdin=PIPE,
            stdout=PIPE,
        )
        for _ in range(processes)
    ]
    for child in children:
        assert child.stdout is not None
        assert await asyncio.wait_for(child.stdout.readline(), 30) == b"ready\n"
    for child in children:  # go, all at once
        assert child.stdin is not None
        child.stdin.write(b"go\n")
    outputs = await asyncio.wait_for(asyncio.gather(*(c.communicate() for c in children)), 60)
    assert [child.returncode for child in children] == [0] * processes
    every_win = [event for out, _ in outputs for event in json.loads(out)]
    assert sorted(every_win) == sorted(f"e{index}" for index in range(count))


async def test_events_older_than_the_cutoff_are_pruned(database: Database) -> None:
    events = EventLog(database)
    for event in ("old", "new"):
        await events.mark_event_processed("discord", event)
    two_days_ago = datetime.now(UTC) - timedelta(days=2)
    async with database.writing() as session:
        await session.execute(
            update(ProcessedEventRow)
            .where(ProcessedEventRow.event_id == "old")
            .values(processed_at=two_days_ago)
        )
    assert await events.prune(datetime.now(UTC) - timedelta(days=1)) == 1
    # Pruned: a replay that late counts as new; the recent one is still known.
    assert await events.mark_event_processed("discord", "old") is True
    assert await events.mark_event_processed("discord", "new") is False
