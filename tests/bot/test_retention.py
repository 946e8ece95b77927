"""The daily retention job: old turns and processed events go, recent ones stay."""

from __future__ import annotations

import asyncio
import io
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text, update

from confab.adapters.console import ConsoleAdapter
from confab.bot.adapter import AdapterContext
from confab.bot.app import App
from confab.bot.plugins import discover_adapters, discover_skills
from confab.bot.retention import RetentionJob, RetentionPass
from confab.bot.testing import ScriptedBackend
from confab.storage.conversations import ConversationKey, ConversationStore
from confab.storage.database import Database
from confab.storage.events import EventLog
from confab.storage.tables import ProcessedEventRow
from tests.helpers import console_config

DM = ConversationKey("console", "dm")


async def seed(database: Database, now: datetime) -> ConversationStore:
    """Turns 40, 20 and 0 days old; one event two days old and one fresh."""
    store = ConversationStore(database)
    for age in (40, 20, 0):
        await store.append(
            DM,
            role="user",
            author_id="ada",
            author_name="Ada",
            text=f"{age} days ago",
            created_at=now - timedelta(days=age),
        )
    events = EventLog(database)
    await events.mark_event_processed("slack", "old")
    await events.mark_event_processed("slack", "new")
    async with database.writing() as session:
        await session.execute(
            update(ProcessedEventRow)
            .where(ProcessedEventRow.event_id == "old")
            .values(processed_at=now - timedelta(days=2))
        )
    return store


async def texts(store: ConversationStore) -> list[str]:
    return [turn.text for turn in await store.channel_messages(DM)]


async def test_a_pass_deletes_turns_past_retention_and_events_past_a_day(db_url: str) -> None:
    database = Database(db_url)
    await database.upgrade()
    now = datetime.now(UTC)
    store = await seed(database, now)
    job = RetentionJob(store, EventLog(database), retention_days=30)
    assert await job.run_once(now) == RetentionPass(turns_deleted=1, events_pruned=1)
    assert await texts(store) == ["20 days ago", "0 days ago"]
    assert await EventLog(database).mark_event_processed("slack", "new") is False
    await database.close()


async def test_zero_days_keeps_every_turn_but_still_prunes_events(db_url: str) -> None:
    database = Database(db_url)
    await database.upgrade()
    now = datetime.now(UTC)
    store = await seed(database, now)
    job = RetentionJob(store, EventLog(database), retention_days=0)
    assert await job.run_once(now) == RetentionPass(turns_deleted=0, events_pruned=1)
    assert await texts(store) == ["40 days ago", "20 days ago", "0 days ago"]
    await database.close()


async def test_the_app_runs_the_job_at_start_and_stops_it(db_url: str) -> None:
    database = Database(db_url)
    await database.upgrade()
    store = await seed(database, datetime.now(UTC))
    config = console_config(db_url)
    config.storage.retention_days = 7

    def console(context: AdapterContext) -> ConsoleAdapter:
        stdin = io.StringIO("!ping\n")
        return ConsoleAdapter(context, stdin=stdin, stdout=io.StringIO(), interactive=False)

    app = App(
        config,
        skills=discover_skills(),
        adapters=discover_adapters(),
        enabled=["console"],
        model=ScriptedBackend(),
        adapter_factories={"console": console},
    )
    await app.start()
    job = app.retention
    assert job is not None
    await asyncio.wait_for(job.passed.wait(), 10)
    assert await texts(store) == ["0 days ago"]
    await app.stop()
    assert app.retention is None and job.passes == 1
    await database.close()


async def test_a_failed_pass_is_logged_and_the_job_keeps_going(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    database = Database(db_url)
    await database.upgrade()
    async with database.writing() as session:
        await session.execute(text("DROP TABLE processed_events"))
    job = RetentionJob(
        ConversationStore(database), EventLog(database), 1, every=timedelta(seconds=0.01)
    )
    job.start()
    while job.passes < 2:
        job.passed.clear()
        await asyncio.wait_for(job.passed.wait(), 10)
    await job.stop()
    failures = [r for r in caplog.records if "the retention pass failed" in r.getMessage()]
    assert len(failures) >= 2
    await database.close()
