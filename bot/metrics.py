"""What an operator counts: messages and their outcomes, reply times, the model's work.

:class:`Metrics` is the interface the router and the scheduler report to; it
counts nothing, so a router built without one (``ChatHarness``, most tests)
needs nothing. :class:`PrometheusMetrics`, which the app builds when ``[web]`` is
enabled, keeps the counts on a registry of its own (never prometheus_client's
global one, so two apps in one process do not clash) and reads what others
already count (the database's outages, the batching engines' load) when
``/metrics`` is scraped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from confab.bot.llm.backend import ModelBackend

if TYPE_CHECKING:
    from confab.storage.database import Database

NO_SKILL = "none"  # the skill label of a message refused before any skill was chosen
# Seconds: an answer of the bundled model on a CPU takes a few; a big remote one, more.
REPLY_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0)
FIRST_REPLY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)


class _Load(Protocol):
    """A local model's :class:`~confab.bot.llm.engine.EngineLoad` (read by its fields, so
    that counting messages does not import torch)."""

    running: int
    waiting: int
    steps: int
    generated: int


@dataclass(slots=True)
class _Loads:
    running: int = 0
    waiting: int = 0
    steps: int = 0
    generated: int = 0

    def add(self, load: _Load) -> None:
        self.running += load.running
        self.waiting += load.waiting
        self.steps += load.steps
        self.generated += load.generated


class Metrics:
    """Where the router and the scheduler report what happened; this one counts nothing.

    A message that expects an answer is reported once, when it has been handled:
    answered (with the time from its arrival to its last reply part sent) or refused
    with a short reason (``rate_limit``, ``channel_busy``, ``model_busy``,
    ``model_timeout``, ``database`` ...).
    """

    def arrived(self, platform: str) -> None:
        """A message that expects an answer arrived; it is reported again once handled."""

    def handled(self, platform: str) -> None:
        """The message :meth:`arrived` reported is handled (answered, refused or dropped)."""

    def answered(self, platform: str, skill: str, reply_s: float) -> None:
        """A skill answered the message; ``reply_s`` from arrival to its last part sent."""

    def refused(self, platform: str, skill: str, reason: str) -> None:
        """The message got a short error or refusal instead of an answer, or none."""

    def first_reply(self, platform: str, skill: str, seconds: float) -> None:
        """The answer's first message went out ``seconds`` after the message arrived."""

    def job_ran(self, kind: str) -> None:
        """A scheduled job ran (``reminder`` or ``skill``)."""


class PrometheusMetrics(Metrics):
    """The counts, in Prometheus' text format on :meth:`render`."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        by_skill = ("platform", "skill")
        self._received = Counter(
            "confab_messages_received",
            "Messages that expected an answer, by platform and the skill chosen.",
            by_skill,
            registry=self.registry,
        )
        self._answered = Counter(
            "confab_messages_answered",
            "Messages a skill answered.",
            by_skill,
            registry=self.registry,
        )
        self._refused = Counter(
            "confab_messages_refused",
            "Messages answered with an error or refusal (or dropped), by reason.",
            (*by_skill, "reason"),
            registry=self.registry,
        )
        self._reply_s = Histogram(
            "confab_reply_seconds",
            "From a message's arrival to the last part of its answer sent.",
            by_skill,
            buckets=REPLY_BUCKETS,
            registry=self.registry,
        )
        self._first_reply_s = Histogram(
            "confab_first_reply_seconds",
            "From a message's arrival to the first message of its answer sent "
            "(time to first token, as the person sees it).",
            by_skill,
            buckets=FIRST_REPLY_BUCKETS,
            registry=self.registry,
        )
        self._in_progress = Gauge(
            "confab_messages_in_progress",
            "Messages that arrived and are not yet answered or refused (counted in "
            "confab_messages_received_total once they are).",
            ("platform",),
            registry=self.registry,
        )
        self._jobs = Counter(
            "confab_scheduled_job_runs",
            "Scheduled jobs run by this process, by kind.",
            ("kind",),
            registry=self.registry,
        )

    def observe(
        self,
        database: Callable[[], Database | None],
        models: Callable[[], Iterable[ModelBackend]],
    ) -> None:
        """Read the database's outages and the loaded models' engines at each scrape."""
        self.registry.register(_Observed(database, models))

    def arrived(self, platform: str) -> None:
        self._in_progress.labels(platform).inc()

    def handled(self, platform: str) -> None:
        self._in_progress.labels(platform).dec()

    def answered(self, platform: str, skill: str, reply_s: float) -> None:
        self._received.labels(platform, skill).inc()
        self._answered.labels(platform, skill).inc()
        self._reply_s.labels(platform, skill).observe(reply_s)

    def refused(self, platform: str, skill: str, reason: str) -> None:
        self._received.labels(platform, skill).inc()
        self._refused.labels(platform, skill, reason).inc()

    def first_reply(self, platform: str, skill: str, seconds: float) -> None:
        self._first_reply_s.labels(platform, skill).observe(seconds)

    def job_ran(self, kind: str) -> None:
        self._jobs.labels(kind).inc()

    def render(self) -> bytes:
        """Every metric, in the Prometheus text exposition format."""
        return generate_latest(self.registry)


class _Observed(Collector):
    """What other parts count already, read when scraped rather than copied as it happens."""

    def __init__(
        self,
        database: Callable[[], Database | None],
        models: Callable[[], Iterable[ModelBackend]],
    ) -> None:
        self._database = database
        self._models = models

    def describe(self) -> Iterator[Metric]:
        return iter(())  # the families depend on what is loaded when scraped

    def collect(self) -> Iterator[Metric]:
        outages = CounterMetricFamily(
            "confab_database_outages",
            "Times the database became unreachable (the write queue then retries).",
        )
        database = self._database()
        if database is not None:
            outages.add_metric([], database.write_queue.outages)
        yield outages
        # Local models' batching engines; two models of one name count as one.
        loads: dict[str, _Loads] = {}
        for backend in self._models():
            load: _Load | None = getattr(backend, "load", None)
            if load is not None:
                loads.setdefault(backend.name, _Loads()).add(load)
        batch = GaugeMetricFamily(
            "confab_model_batch_size", "Requests decoding together now.", labels=["model"]
        )
        queue = GaugeMetricFamily(
            "confab_model_queue_depth",
            "Requests waiting for a place in the batch.",
            labels=["model"],
        )
        tokens = CounterMetricFamily(
            "confab_model_tokens_generated", "Tokens the model generated.", labels=["model"]
        )
        steps = CounterMetricFamily(
            "confab_model_decoding_steps", "Batched decoding steps run.", labels=["model"]
        )
        for name, load in sorted(loads.items()):
            batch.add_metric([name], load.running)
            queue.add_metric([name], load.waiting)
            tokens.add_metric([name], load.generated)
            steps.add_metric([name], load.steps)
        yield from (batch, queue, tokens, steps)
