"""Live figures for the admin page, read from the app's own metrics: messages per
minute, reply latency, tokens per second and the queue, over the last minute."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from confab.bot.metrics import PrometheusMetrics

WINDOW_S = 60.0


@dataclass(frozen=True, slots=True)
class _Reading:
    at: float
    handled: float  # answered and refused, every platform
    reply_sum: float
    reply_count: float
    tokens: float


@dataclass(frozen=True, slots=True)
class Figures:
    """The figures over ``window_s``: from the latest reading at least a minute old
    (or the first, just after start) to now; None where nothing happened to measure."""

    window_s: float
    messages_per_minute: float
    reply_s: float | None
    tokens_per_s: float
    in_progress: int
    queued: int
    decoding: int
    handled_total: int


class LiveFigures:
    """Reads the metrics each time it is asked, and compares with a minute ago."""

    def __init__(
        self, metrics: PrometheusMetrics, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._metrics = metrics
        self._clock = clock
        self._readings: deque[_Reading] = deque()
        self._readings.append(self._read()[0])

    def now(self) -> Figures:
        reading, gauges = self._read()
        while len(self._readings) > 1 and self._readings[1].at <= reading.at - WINDOW_S:
            self._readings.popleft()
        first = self._readings[0]
        self._readings.append(reading)
        span = max(reading.at - first.at, 1e-9)
        replies = reading.reply_count - first.reply_count
        return Figures(
            window_s=reading.at - first.at,
            messages_per_minute=(reading.handled - first.handled) / span * 60,
            reply_s=(reading.reply_sum - first.reply_sum) / replies if replies else None,
            tokens_per_s=(reading.tokens - first.tokens) / span,
            in_progress=int(gauges["in_progress"]),
            queued=int(gauges["queued"]),
            decoding=int(gauges["decoding"]),
            handled_total=int(reading.handled),
        )

    def _read(self) -> tuple[_Reading, dict[str, float]]:
        sums = {"handled": 0.0, "reply_sum": 0.0, "reply_count": 0.0, "tokens": 0.0}
        gauges = {"in_progress": 0.0, "queued": 0.0, "decoding": 0.0}
        wanted = {
            "confab_messages_answered_total": ("handled", sums),
            "confab_messages_refused_total": ("handled", sums),
            "confab_reply_seconds_sum": ("reply_sum", sums),
            "confab_reply_seconds_count": ("reply_count", sums),
            "confab_model_tokens_generated_total": ("tokens", sums),
            "confab_messages_in_progress": ("in_progress", gauges),
            "confab_model_queue_depth": ("queued", gauges),
            "confab_model_batch_size": ("decoding", gauges),
        }
        for family in self._metrics.registry.collect():
            for sample in family.samples:
                found = wanted.get(sample.name)
                if found is not None:
                    found[1][found[0]] += sample.value
        return _Reading(self._clock(), **sums), gauges
