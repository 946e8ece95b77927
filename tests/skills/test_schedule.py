"""``!schedule`` and ``!remind``: jobs added in chat, kept in the database, run on time."""

from __future__ import annotations

import asyncio
import io
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import text

from confab.adapters.console import ConsoleAdapter, ConsoleConfig
from confab.bot.adapter import AdapterContext
from confab.bot.audit import Audit
from confab.bot.channel_log import StoredChannelLog
from confab.bot.config import RouterConfig, SchedulerConfig
from confab.bot.messages import Author, Message
from confab.bot.scheduling.channel_schedule import ChannelSchedule
from confab.bot.scheduling.jobs import JobSpec
from confab.bot.scheduling.runner import JobScheduler
from confab.bot.testing import ChatHarness, ScriptedBackend
from confab.skills.ping import PingSkill
from confab.skills.schedule import RemindSkill, ScheduleSkill
from confab.skills.summarise import SummariseSkill
from confab.storage.conversations import ConversationKey, ConversationStore
from confab.storage.database import Database
from confab.storage.events import EventLog

SKILLS = [ScheduleSkill, RemindSkill, PingSkill]
ADMINS = RouterConfig(admins=["test:boss"])


def harness(tmp_path: Path, url: str | None = None, **options: object) -> ChatHarness:
    return ChatHarness(
        SKILLS,
        tmp_path,
        router_config=ADMINS,
        database_url=url,
        scheduler=SchedulerConfig(**options),  # type: ignore[arg-type]
        timezone="Europe/Paris",
    )


async def wait_until(condition, seconds: float = 8.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.05)


def ping_every(seconds: float, channel: str = "general") -> tuple[JobSpec, IntervalTrigger]:
    spec = JobSpec("test", channel, None, "boss", "boss", skill="ping")
    return spec, IntervalTrigger(seconds=seconds, timezone=UTC)


async def test_an_admin_adds_lists_and_removes_a_daily_job(tmp_path: Path) -> None:
    async with harness(tmp_path) as chat:
        added = await chat.ask("!schedule add daily 09:00 ping", author="boss", channel="c")
        assert added.startswith("Scheduled `")
        assert "`ping`, daily at 09:00" in added and "(Europe/Paris)" in added
        job_id = added.split("`")[1]
        listing = await chat.ask("!schedule list", author="ada", channel="c")
        assert f"- `{job_id}` next " in listing and "by boss" in listing
        assert await chat.ask("!schedule list", channel="elsewhere") == (
            "No jobs are scheduled in this channel."
        )
        assert await chat.ask(f"!schedule remove {job_id}", author="boss", channel="c") == (
            f"Removed `{job_id}`: `ping`."
        )
        assert await chat.ask("!schedule list", channel="c") == (
            "No jobs are scheduled in this channel."
        )


async def test_channel_jobs_are_for_admins_and_jobs_for_their_owners(tmp_path: Path) -> None:
    async with harness(tmp_path) as chat:
        refused = await chat.ask("!schedule add every 30m ping", author="ada", channel="c")
        assert refused == "Only an admin can run `!schedule add`."
        reminder = await chat.ask("!remind in 2h stand-up notes", author="ada", channel="c")
        assert reminder.startswith("I'll remind you ")
        job_id = reminder.rsplit("`", 2)[1]
        assert await chat.ask(f"!schedule remove {job_id}", author="bob", channel="c") == (
            "Only its owner or an admin can remove that job."
        )
        assert await chat.ask(f"!schedule remove {job_id}", author="ada", channel="c") == (
            f"Removed `{job_id}`: reminder: stand-up notes."
        )


async def test_a_paused_job_runs_again_once_resumed_and_each_change_is_audited(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="confab.audit")
    async with harness(tmp_path) as chat:
        assert chat.scheduler is not None
        job = chat.scheduler.add(*ping_every(0.3), "every 0.3 s")
        assert await chat.ask(f"!schedule pause {job.id}", author="ada", channel="general") == (
            "Only its owner or an admin can pause that job."
        )
        paused = await chat.ask(f"!schedule pause {job.id}", author="boss", channel="general")
        assert paused == f"Paused `{job.id}`: `ping`; paused."
        chat.adapter.posted.clear()
        await asyncio.sleep(1.0)
        assert [p.text for p in chat.adapter.posted] == []
        assert f"- `{job.id}` paused: `ping`" in await chat.ask("!schedule list", channel="general")
        resumed = await chat.ask(f"!schedule resume {job.id}", author="boss", channel="general")
        assert resumed.startswith(f"Resumed `{job.id}`: `ping`; next ")
        await wait_until(lambda: [p for p in chat.adapter.posted if p.text == "pong"])
        assert f"test:boss (chat): paused job {job.id} in test:general" in caplog.text
        assert f"test:boss (chat): resumed job {job.id} in test:general" in caplog.text


@pytest.mark.parametrize(
    ("command", "answer_starts"),
    [
        ("!schedule add someday ping", "I can't read"),
        ("!schedule add daily 25:00 ping", ""),
        ('!schedule add "61 * * * *" ping', ""),
        ("!schedule add daily 09:00 nosuch", "There is no command `nosuch` to schedule."),
        ('!schedule add "0 9 1 * 1" ping', "give a day of the month or a day of the week"),
        ("!schedule add daily 09:00", "Say which command to run after the schedule"),
        ("!remind tomorrow-ish call Ada", ""),
        ("!remind in 2h", "Say what to remind you of"),
        ("!schedule remove abc123", "There is no job `abc123` in this channel."),
        ("!schedule frobnicate", "Usage: `!schedule add"),
    ],
)
async def test_bad_input_gets_a_clear_reply(
    tmp_path: Path, command: str, answer_starts: str
) -> None:
    async with harness(tmp_path) as chat:
        answer = await chat.ask(command, author="boss")
        assert chat.scheduler is not None and chat.scheduler.jobs("test", "dm") == []
    assert answer.startswith(answer_starts)
    if not answer_starts:  # a schedule it could not read: the forms that work
        assert '"daily 09:00"' in answer or '"at 14:30"' in answer


async def test_a_reminder_fires_once_and_is_gone(tmp_path: Path) -> None:
    async with harness(tmp_path) as chat:
        assert chat.scheduler is not None
        spec = JobSpec("test", "c", None, "ada", "Ada", reminder="stretch")
        job = chat.scheduler.add(spec, DateTrigger(datetime.now(UTC) + timedelta(seconds=0.3)), "")
        await wait_until(lambda: chat.adapter.posted)
        await asyncio.sleep(0.3)
        assert [p.text for p in chat.adapter.posted] == ["⏰ Reminder for Ada: stretch"]
        assert chat.scheduler.get(job.id) is None


async def test_jobs_survive_a_restart_and_fire(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"
    async with harness(tmp_path, url) as first:
        assert first.scheduler is not None
        job = first.scheduler.add(*ping_every(0.5), "every half second")
    async with harness(tmp_path, url) as second:
        listing = await second.ask("!schedule list", channel="general")
        assert f"`{job.id}`" in listing
        await wait_until(lambda: [p for p in second.adapter.posted if p.text == "pong"])


async def test_a_job_whose_adapter_is_missing_is_kept(tmp_path: Path, caplog) -> None:  # type: ignore[no-untyped-def]
    async with harness(tmp_path) as chat:
        assert chat.scheduler is not None
        spec = JobSpec("discord", "c", None, "boss", "boss", skill="ping")
        job = chat.scheduler.add(spec, IntervalTrigger(seconds=0.3, timezone=UTC), "often")
        await wait_until(lambda: "not running here" in caplog.text)
        assert chat.scheduler.get(job.id) is not None


async def test_runs_missed_while_down_fire_once_together(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"
    async with harness(tmp_path, url, enabled=False) as first:  # stores, runs nothing
        assert first.scheduler is not None
        spec, _ = ping_every(1)
        start = datetime.now(UTC) + timedelta(seconds=0.1)
        trigger = IntervalTrigger(
            seconds=1, start_date=start, end_date=start + timedelta(seconds=2.5)
        )
        first.scheduler.add(spec, trigger, "three times")
    await asyncio.sleep(3)  # down for all three runs
    async with harness(tmp_path, url, misfire_grace_s=30) as second:
        await wait_until(lambda: second.adapter.posted)
        await asyncio.sleep(0.5)
        assert [p.text for p in second.adapter.posted] == ["pong"]


async def test_a_run_missed_by_more_than_the_grace_is_skipped_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"
    async with harness(tmp_path, url, enabled=False) as first:
        assert first.scheduler is not None
        spec = JobSpec("test", "general", None, "boss", "boss", skill="ping")
        first.scheduler.add(spec, DateTrigger(datetime.now(UTC) + timedelta(seconds=0.1)), "x")
    await asyncio.sleep(1.5)  # down when it was due
    async with harness(tmp_path, url, misfire_grace_s=1) as second:
        await wait_until(lambda: "missed by" in caplog.text)
        assert second.adapter.posted == []


async def test_a_reminder_for_a_platform_not_running_here_is_kept(tmp_path: Path) -> None:
    async with harness(tmp_path) as chat:
        assert chat.scheduler is not None
        spec = JobSpec("discord", "c", None, "ada", "Ada", reminder="stretch")
        job = chat.scheduler.add(spec, DateTrigger(datetime.now(UTC) + timedelta(seconds=0.1)), "")
        await asyncio.sleep(0.6)
        kept = chat.scheduler.get(job.id)
        assert kept is not None and kept.spec.reminder == "stretch"


async def test_a_daily_summary_job_posts_through_the_console(tmp_path: Path) -> None:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}")
    async with ChatHarness(
        [SummariseSkill], tmp_path, model=ScriptedBackend(["- ada wants lunch."])
    ) as chat:
        store = ConversationStore(chat.database)
        await store.append(
            ConversationKey("console", "team"),
            role="user", author_id="ada", author_name="ada", text="lunch at noon?", addressed=False,
        )  # fmt: skip
        out = io.StringIO()
        console = ConsoleAdapter(
            AdapterContext(ConsoleConfig(), "confab", StoredChannelLog(store)),
            stdout=out,
            interactive=False,
        )
        scheduler = JobScheduler(
            SchedulerConfig(), f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}", EventLog(chat.database)
        )
        scheduler.attach(chat.router.handle, {"console": console})
        scheduler.start()
        scheduler.resume()
        try:
            spec = JobSpec("console", "team", None, "ada", "ada", skill="summarise")
            # The daily trigger itself is tested with the parser; here the job is due now.
            scheduler.add(spec, DateTrigger(datetime.now(UTC) + timedelta(seconds=0.2)), "daily")
            await wait_until(lambda: "- ada wants lunch." in out.getvalue())
        finally:
            await scheduler.stop()
    await database.close()
    assert "**Summary of the last 50 messages** (1 message)" in out.getvalue()


async def test_two_processes_on_one_postgresql_database_fire_a_job_once(
    tmp_path: Path, postgresql_url: str
) -> None:
    db_url = postgresql_url
    async with harness(tmp_path / "a", db_url) as first:
        assert first.scheduler is not None
        spec = JobSpec("test", "general", None, "boss", "boss", skill="ping")
        first.scheduler.add(spec, DateTrigger(datetime.now(UTC) + timedelta(seconds=1.5)), "once")
        async with harness(tmp_path / "b", db_url) as second:
            await asyncio.sleep(3)
            answers = [p.text for p in first.adapter.posted + second.adapter.posted]
    assert answers == ["pong"]


async def test_a_run_both_processes_picked_up_is_claimed_by_one(
    tmp_path: Path, postgresql_url: str
) -> None:
    # Separate processes can both find a job due before either stores that it ran;
    # each run is claimed in the database first, and only one claim succeeds.
    async with (
        harness(tmp_path / "a", postgresql_url) as first,
        harness(tmp_path / "b", postgresql_url) as second,
    ):
        assert first.scheduler is not None and second.scheduler is not None
        due = datetime.now(UTC).replace(microsecond=0)
        for spec in (
            JobSpec("test", "general", None, "boss", "boss", skill="ping"),
            JobSpec("test", "general", None, "boss", "boss", reminder="tea"),
        ):
            job = f"job-{spec.skill or 'reminder'}"
            await asyncio.gather(
                first.scheduler.fire(job, spec, due),
                second.scheduler.fire(job, spec, due),
                first.scheduler.fire(job, spec, due),
            )
            await first.scheduler.fire(job, spec, due + timedelta(minutes=1))  # the next run
        answers = [p.text for p in first.adapter.posted + second.adapter.posted]
    assert sorted(answers) == [
        "pong",
        "pong",
        "⏰ Reminder for boss: tea",
        "⏰ Reminder for boss: tea",
    ]


async def test_a_channels_timezone_is_set_by_admins_and_used_for_jobs(tmp_path: Path) -> None:
    async with harness(tmp_path) as chat:
        assert await chat.ask("!schedule timezone", channel="c") == (
            "Times in this channel are in Europe/Paris."  # bot.timezone
        )
        assert await chat.ask("!schedule timezone Asia/Tokyo", author="ada", channel="c") == (
            "Only an admin can run `!schedule timezone`."
        )
        assert await chat.ask("!schedule timezone Mars/Olympus", author="boss", channel="c") == (
            "I don't know the timezone 'Mars/Olympus'; use an IANA name such as Europe/Paris."
        )
        await chat.ask("!schedule timezone Asia/Tokyo", author="boss", channel="c")
        added = await chat.ask("!schedule add daily 09:00 ping", author="boss", channel="c")
        assert "(Asia/Tokyo)" in added
        assert chat.scheduler is not None
        (job,) = chat.scheduler.jobs("test", "c")
        assert (
            job.next_run is not None and job.next_run.astimezone(ZoneInfo("Asia/Tokyo")).hour == 9
        )


async def test_a_job_added_by_a_process_that_runs_none_is_run_by_one_that_does(
    tmp_path: Path,
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"
    # The runner looks for others' jobs every 2 s (half its grace).
    async with (
        harness(tmp_path / "runner", url, misfire_grace_s=4) as runner,
        harness(tmp_path / "chat", url, enabled=False) as chat_only,
    ):
        assert chat_only.scheduler is not None
        spec = JobSpec("test", "general", None, "ada", "Ada", reminder="tea")
        due = DateTrigger(datetime.now(UTC) + timedelta(seconds=0.2))
        chat_only.scheduler.add(spec, due, "once")
        await wait_until(lambda: runner.adapter.posted)
    assert [p.text for p in runner.adapter.posted] == ["⏰ Reminder for Ada: tea"]
    assert chat_only.adapter.posted == []


async def test_adding_and_removing_a_job_waits_out_a_write_of_this_process(
    tmp_path: Path,
) -> None:
    """The job store is synchronous; run on the event loop, it would wait for the file
    lock held by one of the loop's own write transactions, which can only end when the
    loop runs again: 'database is locked' after the busy timeout, and no job."""
    async with harness(tmp_path) as chat:
        boss = Message(
            platform="test", channel="c", author=Author("boss", "boss"), text="", addressed=True
        )
        schedule = ChannelSchedule(
            chat.scheduler,
            boss,
            chat.settings,
            admin=True,
            audit=Audit(),
            default_timezone="UTC",
            is_skill=lambda name: name == "ping",
        )
        await schedule.zone()  # the timezone is read before the store is written
        async with chat.database.writing() as session:  # e.g. the retention pass at start
            await session.execute(text("DELETE FROM processed_events"))
            adding = asyncio.create_task(schedule.add("daily 09:00 ping"))
            await asyncio.sleep(0.2)
        job = await asyncio.wait_for(adding, 5)
        async with chat.database.writing() as session:
            await session.execute(text("DELETE FROM processed_events"))
            removing = asyncio.create_task(schedule.remove(job.id))
            await asyncio.sleep(0.2)
        assert (await asyncio.wait_for(removing, 5)).id == job.id
        assert schedule.jobs() == []
