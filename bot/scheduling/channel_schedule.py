"""What a skill may do with scheduled jobs for the channel of the message it answers."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from confab.bot.audit import Audit
from confab.bot.errors import NotAllowed, SkillError
from confab.bot.messages import Message
from confab.bot.scheduling.jobs import JobSpec, ScheduledJob
from confab.bot.scheduling.runner import JobScheduler
from confab.bot.scheduling.when import parse_once, parse_recurring, zone_named
from confab.storage.channels import ChannelSettingsStore

NO_SCHEDULER = "Scheduled jobs are not available here."


class ChannelSchedule:
    """Implements :class:`confab.bot.skill.Schedule` for one message's channel.

    Adding and removing write APScheduler's synchronous job store, so they run on a
    worker thread: on the event loop they would wait for the SQLite lock held by one
    of the loop's own write transactions, which cannot finish while the loop waits.
    """

    def __init__(
        self,
        scheduler: JobScheduler | None,
        message: Message,
        settings: ChannelSettingsStore,
        *,
        admin: bool,
        audit: Audit,
        default_timezone: str,
        is_skill: Callable[[str], bool],
    ) -> None:
        self._audit = audit
        self._scheduler = scheduler
        self._message = message
        self._settings = settings
        self._admin = admin
        self._default_timezone = default_timezone
        self._is_skill = is_skill

    async def zone(self) -> ZoneInfo:
        message = self._message
        chosen = (await self._settings.get(message.platform, message.channel)).timezone
        return zone_named(chosen or self._default_timezone)

    async def add(self, text: str) -> ScheduledJob:
        scheduler = self._running()
        if not self._admin:
            raise NotAllowed(
                "Only an admin can schedule jobs in a channel; `remind` is for everyone.",
                f"{self._message.platform}:{self._message.author.id} is not an admin",
            )
        when, rest = parse_recurring(text, await self.zone())
        words = rest.split(maxsplit=1)  # the command word ends at any whitespace
        skill = words[0].lower() if words else ""
        args = words[1] if len(words) > 1 else ""
        if not skill:
            raise SkillError("Say which command to run after the schedule, e.g. `summarise`.")
        if not self._is_skill(skill):
            raise SkillError(f"There is no command `{_quotable(skill, 32)}` to schedule.")
        job = await asyncio.to_thread(
            scheduler.add,
            self._spec(skill=skill, args=args.strip()),
            when.trigger,
            when.description,
        )
        self._changed(f"scheduled job {job.id} ({skill}, {when.description})")
        return job

    async def remind(self, text: str) -> ScheduledJob:
        scheduler = self._running()
        when, reminder = parse_once(text, await self.zone(), datetime.now(UTC))
        if not reminder:
            raise SkillError("Say what to remind you of, e.g. `in 2h stand-up notes`.")
        return await asyncio.to_thread(
            scheduler.add, self._spec(reminder=reminder), when.trigger, when.description
        )

    def jobs(self) -> list[ScheduledJob]:
        return self._running().jobs(self._message.platform, self._message.channel)

    async def remove(self, job_id: str) -> ScheduledJob:
        job = self._own_job(job_id, "remove")
        if not await asyncio.to_thread(self._running().remove, job.id):
            raise SkillError(f"Job `{job.id}` has just run or was removed already.")
        self._changed(f"removed job {job.id}")
        return job

    async def pause(self, job_id: str, *, paused: bool = True) -> ScheduledJob:
        job = self._own_job(job_id, "pause" if paused else "resume")
        scheduler = self._running()
        change = scheduler.pause_job if paused else scheduler.resume_job
        changed = await asyncio.to_thread(change, job.id)
        if changed is None:
            raise SkillError(f"Job `{job.id}` has just run or was removed already.")
        self._changed(f"{'paused' if paused else 'resumed'} job {job.id}")
        return changed

    def _own_job(self, job_id: str, what: str) -> ScheduledJob:
        """The job of this channel named ``job_id``, if the author may ``what`` it."""
        job = self._running().get(job_id.strip().lower())
        message = self._message
        if job is None or (job.spec.platform, job.spec.channel) != (
            message.platform,
            message.channel,
        ):
            raise SkillError(f"There is no job `{_quotable(job_id, 16)}` in this channel.")
        if job.spec.owner_id != message.author.id and not self._admin:
            raise NotAllowed(
                f"Only its owner or an admin can {what} that job.",
                f"{message.author.id} may not {what} job {job.id} of {job.spec.owner_id}",
            )
        return job

    def _changed(self, what: str) -> None:
        self._audit.changed_in_chat(self._message, what)

    def _spec(self, **what: str) -> JobSpec:
        message = self._message
        return JobSpec(
            platform=message.platform,
            channel=message.channel,
            thread=message.thread,
            owner_id=message.author.id,
            owner_name=message.author.name,
            **what,
        )

    def _running(self) -> JobScheduler:
        if self._scheduler is None:
            raise SkillError(NO_SCHEDULER)
        return self._scheduler


def _quotable(text: str, at_most: int) -> str:
    """What a person typed, safe inside `backticks`: one line, no backticks, short."""
    return " ".join(text.replace("`", "").split())[:at_most]
