"""Write pacing shared by every answer on a platform.

A platform's rate limits count writes per channel (Discord) or per workspace
(Slack's ``chat.update``), not per answer: six answers streaming into one
channel, each keeping its own edit interval, still break the channel's limit.
An adapter hands :class:`~confab.bot.streaming.ReplyStream` the :class:`WriteWindow`
that a write counts against (:meth:`confab.bot.adapter.Adapter.write_window`); the
stream skips an edit in the middle of an answer while the window is full (the
next edit shows the text anyway) and waits its turn for the writes that must
happen: a new message, and the last edit of a message.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass

KEPT_WINDOWS = 1024  # windows of channels written to lately; the oldest are forgotten


@dataclass(frozen=True, slots=True)
class Rate:
    """At most ``writes`` writes in any ``per_s`` seconds."""

    writes: int
    per_s: float


class WriteWindow:
    """A sliding window of the latest writes to one place, reserved in order.

    :meth:`take` reserves the earliest moment the rate allows and waits for it, so
    writers waiting together go out one after another at the platform's pace;
    :meth:`take_now` takes a moment only if it is now.
    """

    def __init__(self, rate: Rate, clock: Callable[[], float] = time.monotonic) -> None:
        if rate.writes < 1 or rate.per_s <= 0:
            raise ValueError(f"a rate needs at least one write per positive time, not {rate}")
        self.rate = rate
        self._clock = clock
        # The latest writes' times, reserved ones (still to come) included.
        self._times: deque[float] = deque(maxlen=rate.writes)

    def wait_s(self) -> float:
        """How long a write would wait now (0 when it may go at once)."""
        return max(0.0, self._earliest() - self._clock())

    def take_now(self) -> bool:
        """Count a write now if the rate allows one now; False (nothing counted) if not."""
        now = self._clock()
        if self._earliest() > now:
            return False
        self._times.append(now)
        return True

    async def take(self) -> None:
        """Wait for this write's turn, then count it."""
        at = max(self._clock(), self._earliest())
        self._times.append(at)  # reserved before waiting: later writers queue behind
        delay = at - self._clock()
        if delay > 0:
            await asyncio.sleep(delay)

    def _earliest(self) -> float:
        if len(self._times) < self.rate.writes:
            return float("-inf")
        return self._times[0] + self.rate.per_s


class WriteWindows:
    """One :class:`WriteWindow` per place (a channel, a workspace), made on first use."""

    def __init__(self, rate: Rate, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self._clock = clock
        self._windows: OrderedDict[str, WriteWindow] = OrderedDict()

    def of(self, place: str) -> WriteWindow:
        window = self._windows.get(place)
        if window is None:
            window = self._windows[place] = WriteWindow(self.rate, self._clock)
            while len(self._windows) > KEPT_WINDOWS:
                self._windows.popitem(last=False)
        else:
            self._windows.move_to_end(place)
        return window
