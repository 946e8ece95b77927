"""Scheduled jobs: skills run on a timetable and reminders, kept in the database.

APScheduler 3's ``AsyncIOScheduler`` with a ``SQLAlchemyJobStore`` on the bot's
own database (a synchronous URL derived from ``bot.database_url``), so jobs
survive restarts. A job posts into the channel (and thread) where it was made,
through that platform's adapter, as if its skill had been asked there.

Several processes may run jobs from one PostgreSQL database: before a run, the
process claims it in ``processed_events`` (one atomic insert per job and run
time), and only the process whose claim succeeded runs it.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.executors.asyncio import AsyncIOExecutor
from apscheduler.jobstores.base import JobLookupError
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.date import DateTrigger
from sqlalchemy import Engine, create_engine

from confab.bot.adapter import Adapter
from confab.bot.config import SchedulerConfig
from confab.bot.messages import Author, Message
from confab.bot.metrics import Metrics
from confab.bot.scheduling.jobs import JobSpec, ScheduledJob
from confab.bot.streaming import ReplyStream
from confab.storage.database import SQLITE_BUSY_TIMEOUT_MS, expand_url
from confab.storage.events import EventLog

log = logging.getLogger(__name__)

JOB_TABLE = "scheduled_jobs"
CLAIM_PLATFORM = "scheduler"  # claims of runs live beside processed platform events
REMINDER = "⏰ Reminder for {owner}: {text}"
POLL_MAX_S = 30.0  # the longest a scheduler sleeps without looking for others' jobs
RETRY_REMINDER_S = 60.0  # a reminder whose platform is not running here waits this long


@dataclass(frozen=True, slots=True)
class _Running:
    scheduler: JobScheduler
    run_time: datetime


_RUNNING: ContextVar[_Running | None] = ContextVar("confab_scheduled_run", default=None)


async def run_scheduled_job(job_id: str, description: str, **stored: Any) -> None:
    """The function every stored job names (APScheduler stores it by reference).

    The scheduler instance that runs it is handed over in a context variable
    by its executor, since a stored job cannot hold a live object.
    """
    running = _RUNNING.get()
    if running is None:
        raise RuntimeError("a scheduled job ran outside Confab's scheduler")
    spec = _spec_of(stored)
    if spec is None:
        raise RuntimeError(f"job {job_id} holds no job Confab can run: {sorted(stored)}")
    await running.scheduler.fire(job_id, spec, running.run_time)


class _Executor(AsyncIOExecutor):  # type: ignore[misc]
    """APScheduler's asyncio executor, telling each run which scheduler runs it."""

    def __init__(self, owner: JobScheduler) -> None:
        super().__init__()
        self._owner = owner

    def _do_submit_job(self, job: Any, run_times: list[datetime]) -> None:
        # The grace stored with a job is from when it was added; the config's counts.
        job.misfire_grace_time = self._owner.config.misfire_grace_s
        token = _RUNNING.set(_Running(self._owner, run_times[-1]))
        try:
            super()._do_submit_job(job, run_times)  # the task copies the context now
        finally:
            _RUNNING.reset(token)


class _SharedJobStore(SQLAlchemyJobStore):  # type: ignore[misc]
    """The SQLAlchemy job store, for a store several processes share: a job another
    process already removed (a one-off that ran there) is no error here."""

    def update_job(self, job: Any) -> None:
        try:
            super().update_job(job)
        except JobLookupError:
            log.debug("job %s was removed elsewhere", job.id)

    def remove_job(self, job_id: str) -> None:
        try:
            super().remove_job(job_id)
        except JobLookupError:
            log.debug("job %s was removed elsewhere", job_id)


class _Scheduler(AsyncIOScheduler):  # type: ignore[misc]
    """APScheduler's asyncio scheduler that survives a failing round and looks again
    at least every ``poll_s`` (jobs added or run by other processes)."""

    def __init__(self, poll_s: float, **options: Any) -> None:
        super().__init__(**options)
        self._poll_s = poll_s

    def _process_jobs(self) -> float:
        try:
            wait: float | None = super()._process_jobs()
        except Exception:  # a database hiccup must not stop every later run
            log.exception("a round of scheduled jobs failed; trying again shortly")
            return self._poll_s
        return self._poll_s if wait is None else min(wait, self._poll_s)


SYNC_DRIVERS = {"sqlite+aiosqlite": "sqlite", "postgresql+asyncpg": "postgresql+psycopg"}


def sync_engine(url: str) -> Engine:
    """A synchronous engine on Confab's database, for APScheduler's job store."""
    parsed = expand_url(url)
    driver = SYNC_DRIVERS.get(parsed.drivername)
    if driver is None:
        raise ValueError(f"no synchronous driver known for {parsed.drivername}")
    options: dict[str, Any] = {}
    if driver == "sqlite":  # wait out the async engine's writes, as it waits out ours
        options["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
    return create_engine(parsed.set(drivername=driver), **options)


class JobScheduler:
    """Adds, lists, removes and runs the jobs of one Confab process."""

    def __init__(
        self,
        config: SchedulerConfig,
        database_url: str,
        events: EventLog,
        *,
        command_prefix: str = "!",
        metrics: Metrics | None = None,
    ) -> None:
        self.config = config
        self.metrics = metrics if metrics is not None else Metrics()
        self._events = events
        self._prefix = command_prefix
        self._handler: Any = None
        self._engine = sync_engine(database_url)
        self._adapters: dict[str, Adapter] = {}
        self._scheduler = _Scheduler(
            poll_s=min(POLL_MAX_S, max(1.0, config.misfire_grace_s / 2)),
            jobstores={"default": _SharedJobStore(engine=self._engine, tablename=JOB_TABLE)},
            executors={"default": _Executor(self)},
            job_defaults={
                "coalesce": True,  # a run missed while down fires once ...
                "misfire_grace_time": config.misfire_grace_s,  # ... if not too late
                "max_instances": 1,
            },
            timezone=UTC,
        )  # fmt: skip

    def attach(self, handler: Any, adapters: Mapping[str, Adapter]) -> None:
        """Where jobs go: the router's ``handle`` and the running adapters by platform."""
        self._handler = handler
        self._adapters = dict(adapters)

    def start(self) -> None:
        """Open the job store (jobs can be added and listed); nothing runs before
        :meth:`resume`."""
        self._scheduler.start(paused=True)

    def resume(self) -> None:
        """Run jobs when due, if ``scheduler.enabled``: once the adapters are serving."""
        if self.config.enabled:
            self._scheduler.resume()

    def pause(self) -> None:
        """Run nothing more (a stop has begun): a job due now misfires and runs after
        the restart, within ``misfire_grace_s``, instead of meeting a closing bot."""
        if self._scheduler.running:
            self._scheduler.pause()

    async def stop(self) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)
        self._engine.dispose()

    # -- the jobs ------------------------------------------------------------------

    def add(self, spec: JobSpec, trigger: BaseTrigger, description: str) -> ScheduledJob:
        job_id = secrets.token_hex(3)
        job = self._scheduler.add_job(
            run_scheduled_job,
            trigger,
            id=job_id,
            name=description or job_id,
            kwargs={"job_id": job_id, "description": description, **asdict(spec)},
        )
        log.info("scheduled job %s (%s) in %s/%s", job_id, description, spec.platform, spec.channel)
        return ScheduledJob(job_id, spec, job.next_run_time, description)

    def jobs(self, platform: str | None = None, channel: str | None = None) -> list[ScheduledJob]:
        """This channel's jobs (its threads included), or every channel's when none is
        named; soonest first, paused ones last."""
        found = []
        for job in self._scheduler.get_jobs():
            listed = _listed(job)
            if listed is None:
                continue
            if platform is None or (listed.spec.platform, listed.spec.channel) == (
                platform,
                channel,
            ):
                found.append(listed)
        far = datetime.max.replace(tzinfo=UTC)
        return sorted(found, key=lambda job: job.next_run or far)

    def get(self, job_id: str) -> ScheduledJob | None:
        try:
            job = self._scheduler.get_job(job_id)
        except Exception:  # a stored job that cannot be restored (code changed)
            log.warning("scheduled job %s cannot be read", job_id, exc_info=True)
            return None
        return _listed(job) if job is not None else None

    def pause_job(self, job_id: str) -> ScheduledJob | None:
        """Stop a job from running until :meth:`resume_job`; None when it is gone."""
        try:
            self._scheduler.pause_job(job_id)
        except JobLookupError:
            return None
        return self.get(job_id)

    def resume_job(self, job_id: str) -> ScheduledJob | None:
        """Run a paused job again from its next due time; None when it is gone."""
        try:
            self._scheduler.resume_job(job_id)
        except JobLookupError:
            return None
        return self.get(job_id)

    def remove(self, job_id: str) -> bool:
        """Remove a job; False when it was already gone (it ran, or another process)."""
        try:
            self._scheduler.remove_job(job_id)
        except JobLookupError:
            return False
        return True

    async def fire(self, job_id: str, spec: JobSpec, run_time: datetime) -> None:
        """Run one job once: claim the run, then answer through the job's adapter."""
        adapter = self._adapters.get(spec.platform)
        if adapter is None or self._handler is None:
            log.warning(
                "job %s: the %s adapter is not running here; kept for its next run",
                job_id,
                spec.platform,
            )
            if spec.reminder is not None:  # a one-off is gone from the store by now
                self._scheduler.add_job(
                    run_scheduled_job,
                    DateTrigger(datetime.now(UTC) + timedelta(seconds=RETRY_REMINDER_S)),
                    id=job_id,
                    name=job_id,
                    replace_existing=True,
                    kwargs={"job_id": job_id, "description": "reminder", **asdict(spec)},
                )
            return
        claim = f"{job_id}@{run_time.astimezone(UTC).isoformat()}"
        if not await self._events.mark_event_processed(CLAIM_PLATFORM, claim):
            log.debug("job %s run at %s was claimed by another process", job_id, run_time)
            return
        self.metrics.job_ran("reminder" if spec.reminder is not None else "skill")
        if spec.reminder is not None:
            text = REMINDER.format(owner=spec.owner_name, text=spec.reminder)
            await ReplyStream(adapter, spec.channel, thread=spec.thread).send_text(text)
            return
        skill = spec.skill or "help"
        message = Message(
            platform=spec.platform,
            channel=spec.channel,
            thread=spec.thread,
            author=Author(spec.owner_id, spec.owner_name),
            text=f"{self._prefix}{skill} {spec.args}".strip(),
            addressed=True,
            id=f"job-{claim}",
            command=skill,
            args=spec.args,
        )
        await self._handler(message, adapter)


def _listed(job: Any) -> ScheduledJob | None:
    """An APScheduler job as Confab lists it; None for a job that is not Confab's."""
    spec = _spec_of(job.kwargs)
    if spec is None:
        return None
    return ScheduledJob(job.id, spec, job.next_run_time, job.kwargs.get("description", ""))


def _spec_of(kwargs: Mapping[str, Any]) -> JobSpec | None:
    known = JobSpec.__dataclass_fields__
    fields = {k: v for k, v in kwargs.items() if k in known}
    try:
        return JobSpec(**fields)
    except TypeError:
        return None
