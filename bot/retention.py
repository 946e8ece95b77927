"""The daily clean-up: old turns (``storage.retention_days``) and old processed events.

A plain asyncio task that the app starts and stops; its first pass runs right
at start, so a bot that is restarted often still applies retention.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from confab.storage.conversations import ConversationStore
from confab.storage.events import EventLog

log = logging.getLogger(__name__)

DAY = timedelta(days=1)
EVENTS_KEPT = timedelta(days=1)  # far longer than any platform retries or replays


@dataclass(frozen=True, slots=True)
class RetentionPass:
    turns_deleted: int
    events_pruned: int


class RetentionJob:
    """Deletes turns older than ``retention_days`` (0 keeps them) and events older than a day."""

    def __init__(
        self,
        conversations: ConversationStore,
        events: EventLog,
        retention_days: int,
        *,
        every: timedelta = DAY,
    ) -> None:
        self._conversations = conversations
        self._events = events
        self.retention_days = retention_days
        self._every = every
        self._task: asyncio.Task[None] | None = None
        self.passes = 0
        self.passed = asyncio.Event()  # set after each pass, for whoever waits on one

    async def run_once(self, now: datetime | None = None) -> RetentionPass:
        now = now or datetime.now(UTC)
        turns = 0
        if self.retention_days:
            turns = await self._conversations.delete_before(
                now - timedelta(days=self.retention_days)
            )
        events = await self._events.prune(now - EVENTS_KEPT)
        if turns or events:
            log.info("retention: deleted %d old turns, pruned %d processed events", turns, events)
        return RetentionPass(turns, events)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="retention")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        while True:
            try:
                await self.run_once()
            except Exception:  # a failed pass (database away) is retried next time
                log.exception("the retention pass failed; trying again in %s", self._every)
            self.passes += 1
            self.passed.set()
            await asyncio.sleep(self._every.total_seconds())
