"""Rate limits: how fast one person may ask, and how much one channel may run at once.

Both live in the router's process; with several processes (PostgreSQL) each
holds its own, so a person's budget is per process. That is enough to stop a
flood from starving everyone else, which is what these limits are for.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

# Past this many tracked people, those whose bucket is full again are forgotten.
PRUNE_ABOVE = 10_000


@dataclass(slots=True)
class _Bucket:
    tokens: float
    stamp: float
    noticed: bool = False


@dataclass(frozen=True, slots=True)
class Allowance:
    """What the bucket said about one message."""

    allowed: bool
    # Set on the first refusal since the person last had a message to spend:
    # they get one notice, later refusals are dropped quietly.
    notify: bool = False
    retry_after_s: float = 0.0


class UserRateLimit:
    """A token bucket per person: ``burst`` messages at once, refilled at ``per_minute``."""

    def __init__(
        self,
        per_minute: float,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._rate = per_minute / 60.0
        self._burst = float(burst)
        self._clock = clock
        self._buckets: dict[tuple[str, str], _Bucket] = {}

    def take(self, platform: str, user: str) -> Allowance:
        """Spend one message of ``user``'s budget if there is one."""
        now = self._clock()
        key = (platform, user)
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= PRUNE_ABOVE:
                self._prune(now)
            bucket = self._buckets[key] = _Bucket(self._burst, now)
        else:
            bucket.tokens = min(self._burst, bucket.tokens + (now - bucket.stamp) * self._rate)
            bucket.stamp = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            bucket.noticed = False
            return Allowance(True)
        notify = not bucket.noticed
        bucket.noticed = True
        return Allowance(False, notify=notify, retry_after_s=(1.0 - bucket.tokens) / self._rate)

    def _prune(self, now: float) -> None:
        full = [
            key
            for key, bucket in self._buckets.items()
            if bucket.tokens + (now - bucket.stamp) * self._rate >= self._burst
        ]
        for key in full:
            del self._buckets[key]


class _Channel:
    __slots__ = ("slots", "users")

    def __init__(self, concurrency: int) -> None:
        self.slots = asyncio.Semaphore(concurrency)
        self.users = 0  # running and waiting


class ChannelSlots:
    """At most ``concurrency`` messages of one channel handled at once, ``queue`` more waiting.

    A channel's turn order is first come, first served; past the queue a message
    is refused (the caller answers it with a busy notice).
    """

    def __init__(self, concurrency: int, queue: int) -> None:
        self._concurrency = concurrency
        self._capacity = concurrency + queue
        self._channels: dict[tuple[str, str], _Channel] = {}

    @asynccontextmanager
    async def slot(self, platform: str, channel: str) -> AsyncIterator[bool]:
        """Wait for a turn; yields False at once when the channel's queue is full."""
        key = (platform, channel)
        state = self._channels.get(key)
        if state is None:
            state = self._channels[key] = _Channel(self._concurrency)
        if state.users >= self._capacity:
            yield False
            return
        state.users += 1
        try:
            async with state.slots:
                yield True
        finally:
            state.users -= 1
            if state.users == 0:
                del self._channels[key]

    def busy(self, platform: str, channel: str) -> int:
        """Messages of the channel running or waiting now."""
        state = self._channels.get((platform, channel))
        return state.users if state else 0
