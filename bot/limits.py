"""Rate limits: how fast one person may ask, and how much one channel may run at once.

Both live in the router's process; with several processes (PostgreSQL) each
holds its own, so a person's budget is per process. That is enough to stop a
flood from starving everyone else, which is what these limits are for.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
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


class Place:
    """A message's place in its channel's line: wait for :meth:`turn`, always :meth:`leave`."""

    def __init__(self, owner: ChannelSlots, key: tuple[str, str], state: _Channel) -> None:
        self._owner = owner
        self._key = key
        self._state = state
        self._holding = False
        self._left = False

    async def turn(self) -> None:
        """Wait until one of the channel's slots is free (first come, first served)."""
        await self._state.slots.acquire()
        self._holding = True

    def leave(self) -> None:
        if self._left:
            return
        self._left = True
        if self._holding:
            self._state.slots.release()
        self._state.users -= 1
        if self._state.users == 0:
            del self._owner._channels[self._key]


class ChannelSlots:
    """At most ``concurrency`` messages of one channel handled at once, ``queue`` more waiting.

    A place is given at once, in arrival order (so whatever the caller does
    next, such as storing the message, happens in that order too); past the
    queue there is none, and the caller answers with a busy notice.
    """

    def __init__(self, concurrency: int, queue: int) -> None:
        self._concurrency = concurrency
        self._capacity = concurrency + queue
        self._channels: dict[tuple[str, str], _Channel] = {}

    def admit(self, platform: str, channel: str) -> Place | None:
        """A place in the channel's line, or None when the line is full."""
        key = (platform, channel)
        state = self._channels.get(key)
        if state is None:
            state = self._channels[key] = _Channel(self._concurrency)
        if state.users >= self._capacity:
            return None
        state.users += 1
        return Place(self, key, state)

    def busy(self, platform: str, channel: str) -> int:
        """Messages of the channel running or waiting now."""
        state = self._channels.get((platform, channel))
        return state.users if state else 0
