"""Continuous batching: many requests share each forward pass of one model.

One worker thread owns the model. Each turn of its loop it admits waiting
requests (prefilled together, left-padded, into the running batch's KV cache),
then runs one decoding step for every running request; a request that finishes
or whose consumer went away leaves the batch at once. A decoding step costs
little more for several sequences than for one, so sharing steps multiplies
throughput (``bench/model_throughput.py`` measures it).

Requests hand results back through ``emit``, which the worker calls with text
pieces, then :class:`Finished` or an exception. It must be thread-safe.

Give the engine the executor the model was loaded on (:func:`worker_thread`):
each thread that computes gets its own OpenMP team, and a second team makes
every forward pass slower, most on a machine with few cores.

Faults. A forward pass that raises fails the requests that were in it, each
with :class:`~confab.bot.errors.ModelUnavailable`, and nothing else: a prompt whose
prefill fails does not take the answers already decoding with it, and waiting
requests are served next. Failed requests are not retried: part of their
answer may already be on screen, a failed step leaves the shared KV cache
half-written, and a fault that comes from the batch (RAM, an input) would
strike again; the person can ask again. A forward pass that never returns
cannot be interrupted in Python, so with ``stall_timeout_s`` a watchdog
declares a worker lost when one turn of its loop outlasts that time: its
requests fail, a fresh daemon thread takes over the queue, and the stuck
thread, if it ever returns, finds itself replaced and leaves without a word.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import AsyncGenerator, Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from typing import Any

import torch

from confab.bot.errors import ModelBusy, ModelTimeout, ModelUnavailable
from confab.bot.llm.backend import GenerationParams
from confab.bot.llm.batch import (
    Batch,
    Finished,
    FinishReason,
    Request,
    Row,
    prefill_groups,
    within_budget,
)
from confab.bot.llm.kv_cache import check_supported, growing_cache
from confab.bot.llm.model_thread import ModelThread, worker_thread

__all__ = [
    "BatchEngine",
    "EngineLoad",
    "FinishReason",
    "Finished",
    "Request",
    "worker_thread",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class EngineLoad:
    """How busy the engine is."""

    running: int
    waiting: int
    steps: int
    generated: int = 0  # tokens generated since the engine was made


class _Worker:
    """One run of the engine's loop on one thread: the engine's current one, or abandoned."""

    def __init__(self) -> None:
        self.future: Future[None] | None = None
        self.thread_name = ""
        self.turn_started: float | None = None  # monotonic; None between turns


class _Abandoned(BaseException):
    """Ends a worker the watchdog replaced. Not an ``Exception``, so no handler
    of model faults mistakes it for one."""


class BatchEngine:
    """Generates for many requests at once on a worker thread it owns.

    ``stall_timeout_s`` is the longest one turn of the worker's loop (a prefill
    and a decoding step) may take before the worker is declared hung and
    replaced; ``None`` never declares it (for measurements).
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        window: int,
        max_batch_size: int,
        max_queue: int,
        executor: Executor | None = None,
        stall_timeout_s: float | None = None,
    ) -> None:
        check_supported(model)
        self._model = model
        self._tokenizer = tokenizer
        self._window = window
        self._max_batch = max_batch_size
        self._max_queue = max_queue
        self._stall_s = stall_timeout_s
        self._eos = _eos_ids(model, tokenizer)
        self._pad = self._tokenizer.pad_token_id or 0
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)  # the worker waits here for requests
        self._alarm = threading.Condition(self._lock)  # the watchdog waits here
        self._waiting: deque[Request] = deque()
        self._taken: dict[Request, None] = {}  # prefilling or decoding, in arrival order
        self._steps = 0
        self._generated = 0
        self._closing = False
        self._owns_executor = executor is None
        self._executor: Executor = executor or worker_thread()
        self._worker: _Worker | None = None
        self._watchdog: threading.Thread | None = None
        self._abandoned = 0

    @property
    def load(self) -> EngineLoad:
        with self._lock:
            return EngineLoad(len(self._taken), len(self._waiting), self._steps, self._generated)

    def submit(self, request: Request) -> None:
        """Queue a request; raises :class:`ModelBusy` when the queue is full."""
        with self._lock:
            if self._closing:
                raise ModelUnavailable("request submitted while the model is shutting down")
            if any(r.cancelled.is_set() for r in self._waiting):  # their askers left
                self._waiting = deque(r for r in self._waiting if not r.cancelled.is_set())
            free = max(self._max_batch - len(self._taken), 0)
            if len(self._waiting) >= self._max_queue + free:
                raise ModelBusy(
                    f"queue full: {len(self._taken)} running, {len(self._waiting)} waiting "
                    f"(max_batch_size {self._max_batch}, max_queue {self._max_queue})"
                )
            worker = self._worker
            if worker is None or (worker.future is not None and worker.future.done()):
                if worker is not None:
                    log.warning("the model worker had stopped; starting it again")
                self._start_worker()
            self._waiting.append(request)
            self._wake.notify_all()

    async def stream(
        self, prompt: list[int], params: GenerationParams, timeout_s: float
    ) -> AsyncGenerator[str, None]:
        """Generate for ``prompt`` alongside every other request, yielding text pieces.

        Raises :class:`ModelBusy` at once when the queue is full, and
        :class:`ModelTimeout` when the answer is not complete after ``timeout_s``
        (waiting included). Leaving the loop early frees the slot at the next step.
        """
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[object] = asyncio.Queue()

        def emit(item: object) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the asker's event loop has closed: nobody is listening
                request.cancelled.set()

        request = Request(prompt, params, emit)
        self.submit(request)
        deadline = loop.time() + timeout_s
        try:
            while True:
                try:
                    async with asyncio.timeout_at(deadline):
                        item = await queue.get()
                except TimeoutError:
                    raise ModelTimeout(
                        f"no complete answer within {timeout_s:g} s ({self.load})"
                    ) from None
                if isinstance(item, Finished):
                    return
                if isinstance(item, BaseException):
                    raise item
                assert isinstance(item, str)
                yield item
        finally:
            request.cancelled.set()

    def run_here(self, requests: Sequence[Request]) -> None:
        """Serve ``requests`` to the end on the calling thread, as the worker would.

        For measurements on the thread that owns the model (see
        :mod:`confab.bot.llm.compute`); the engine's worker must not be running.
        """
        batch = Batch()
        with self._lock:
            self._waiting.extend(requests)
        with torch.inference_mode():
            while True:
                with self._lock:
                    joining = self._take_joiners(batch)
                if not joining and not batch.rows:
                    return
                if joining:
                    self._join(batch, joining)
                if batch.rows:
                    self._step(batch)

    def close(self, timeout: float = 30.0) -> None:
        """Stop the worker; requests still waiting or running fail as unavailable."""
        with self._lock:
            self._closing = True
            self._wake.notify_all()
            self._alarm.notify_all()
            worker = self._worker
        if worker is not None and worker.future is not None:
            try:
                worker.future.result(timeout)
            except TimeoutError:
                log.error(
                    "the model worker %s did not stop within %.0f s; abandoning it",
                    worker.thread_name,
                    timeout,
                )
                with self._lock:
                    stranded = self._settle_worker(worker)
                _fail(stranded, "request abandoned: shutting down")
        if self._watchdog is not None:
            self._watchdog.join(timeout)
        if self._owns_executor:
            self._executor.shutdown(wait=False)

    def _start_worker(self) -> None:
        """Run a new worker on the executor (the caller holds ``_lock``)."""
        worker = _Worker()
        worker.future = self._executor.submit(self._work, worker)
        self._worker = worker  # before it runs: it waits for the lock we hold
        if self._stall_s is not None and (self._watchdog is None or not self._watchdog.is_alive()):
            self._watchdog = threading.Thread(
                target=self._watch, name="confab-model-watchdog", daemon=True
            )
            self._watchdog.start()

    def _settle_worker(self, worker: _Worker) -> list[Request]:
        """Detach ``worker`` if it is the current one; its requests and the waiting
        ones, to be told (the caller holds ``_lock``)."""
        if self._worker is not worker:
            return []  # replaced: whoever replaced it told its requests
        stranded = list(self._taken) + list(self._waiting)
        self._taken.clear()
        self._waiting.clear()
        self._worker = None
        return stranded

    def _work(self, worker: _Worker) -> None:
        worker.thread_name = threading.current_thread().name
        batch = Batch(owner=worker)
        reason = "the model worker stopped"
        try:
            while (joining := self._next_joiners(worker, batch)) is not None:
                worker.turn_started = time.monotonic()
                try:
                    with torch.inference_mode():
                        if joining:
                            self._join(batch, joining)
                        if batch.rows:
                            self._step(batch)
                except Exception as error:  # outside a forward pass: the batch's state is unknown
                    hit = [row.request for row in batch.rows] + joining
                    batch.clear()
                    self._fail_hit(hit, "between forward passes", error)
                worker.turn_started = None
            reason = "shutting down"
        except _Abandoned:
            log.warning(
                "the model worker %s, abandoned as hung, returned; its results were discarded",
                worker.thread_name,
            )
        except BaseException:  # the thread ends here; the next submit starts a new one
            log.exception("the model worker %s died", worker.thread_name)
        finally:
            with self._lock:
                stranded = self._settle_worker(worker)
            _fail(stranded, f"request abandoned: {reason}")

    def _next_joiners(self, worker: _Worker, batch: Batch) -> list[Request] | None:
        """Requests to prefill this turn; ``None`` when the engine is closing."""
        with self._lock:
            while (
                self._worker is worker
                and not self._closing
                and not self._waiting
                and not batch.rows
            ):
                self._wake.wait()
            if self._worker is not worker:
                raise _Abandoned
            if self._closing:
                return None
            return self._take_joiners(batch)

    def _take_joiners(self, batch: Batch) -> list[Request]:
        """Waiting requests that join this turn (the caller holds ``_lock``)."""
        candidates: list[Request] = []
        while self._waiting and len(batch.rows) + len(candidates) < self._max_batch:
            request = self._waiting.popleft()
            if not request.cancelled.is_set():
                candidates.append(request)
        joining = within_budget(candidates)
        # The rest go back to the front, in arrival order, for the next turn.
        self._waiting.extendleft(reversed([r for r in candidates if r not in joining]))
        self._taken.update(dict.fromkeys(joining))
        return joining

    def _watch(self) -> None:
        """Declare the worker lost whenever one turn of its loop outlasts the stall limit."""
        while True:
            with self._lock:
                stalled = self._wait_for_stall()
                if stalled is None:
                    return
                worker, stuck_s = stalled
                hit = list(self._taken)
                self._taken.clear()
                self._worker = None  # it finds out when its forward pass returns, if ever
                waiting = len(self._waiting)
                self._replace_executor()
                if self._waiting:
                    self._start_worker()
            log.error(
                "the model worker %s has been stuck in one turn for %.1f s (limit %g s): "
                "abandoning it; %d requests in its hands are told the model failed, "
                "%d waiting go to a fresh thread",
                worker.thread_name,
                stuck_s,
                self._stall_s,
                len(hit),
                waiting,
            )
            _fail(hit, f"the model worker hung: one turn took over {self._stall_s:g} s")

    def _wait_for_stall(self) -> tuple[_Worker, float] | None:
        """Sleep until a turn has run past the limit (the caller holds ``_lock``);
        ``None`` when the engine is closing."""
        assert self._stall_s is not None
        while not self._closing:
            worker = self._worker
            started = worker.turn_started if worker is not None else None
            if worker is None or started is None:
                self._alarm.wait(self._stall_s)  # turns are not announced: look again
                continue
            stuck = time.monotonic() - started
            if stuck >= self._stall_s:
                return worker, stuck
            self._alarm.wait(self._stall_s - stuck)
        return None

    def _replace_executor(self) -> None:
        """A fresh thread for the next worker; the stuck one is left to itself
        (the caller holds ``_lock``)."""
        if self._owns_executor:
            self._executor.shutdown(wait=False)  # its thread ends if the stuck call returns
        self._abandoned += 1
        self._executor = ModelThread(f"confab-model-{self._abandoned}")
        self._owns_executor = True

    def _join(self, batch: Batch, requests: list[Request]) -> None:
        """Prefill ``requests``, in groups of similar length, into the running batch.

        All of them are prefilled before the next decoding step: a first token
        soon matters more to a waiting person than one more token to a reader.
        """
        for group in prefill_groups(requests):
            self._prefill(batch, group)

    def _prefill(self, batch: Batch, requests: list[Request]) -> None:
        """Prefill ``requests`` together and merge them into the running batch."""
        length = max(len(r.prompt) for r in requests)
        ids = torch.full((len(requests), length), self._pad, dtype=torch.long)
        mask = torch.zeros((len(requests), length), dtype=torch.long)
        for i, request in enumerate(requests):
            ids[i, length - len(request.prompt) :] = torch.tensor(request.prompt)
            mask[i, length - len(request.prompt) :] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        cache = growing_cache(self._model)
        try:
            out = self._forward(
                batch,
                input_ids=ids,
                attention_mask=mask,
                position_ids=positions,
                cache=cache,
                use_cache=True,
                logits_to_keep=1,
            )
        except Exception as error:  # only this pass is lost: the running rows' cache is intact
            self._fail_hit(
                requests,
                f"prefilling (prompts: {len(requests)}, longest {length} tokens)",
                error,
            )
            return
        rows = [Row(request, self._tokenizer) for request in requests]
        batch.merge(rows, cache, mask)
        self._advance(rows, out.logits[:, -1, :])
        self._retire(batch)

    def _step(self, batch: Batch) -> None:
        """One decoding step for every running row."""
        batch.mask = torch.cat([batch.mask, torch.ones((len(batch.rows), 1), dtype=torch.long)], 1)
        try:
            out = self._forward(
                batch,
                input_ids=torch.tensor([[row.last] for row in batch.rows]),
                attention_mask=batch.mask,
                position_ids=torch.tensor([[row.position] for row in batch.rows]),
                cache=batch.cache,
                use_cache=True,
            )
        except Exception as error:  # every row was in it, and the cache is half-written
            hit = [row.request for row in batch.rows]
            generated = [row.generated for row in batch.rows]
            batch.clear()
            self._fail_hit(
                hit,
                f"in decoding step {self._steps + 1} (tokens generated so far: {generated})",
                error,
            )
            return
        self._steps += 1
        for row in batch.rows:
            row.position += 1
        self._advance(batch.rows, out.logits[:, -1, :])
        self._retire(batch)

    def _forward(self, batch: Batch, **inputs: Any) -> Any:
        """One forward pass; a worker replaced while it ran leaves here, results unused."""
        try:
            out = self._model(**inputs)
        except Exception:
            self._check_owner(batch)
            raise
        self._check_owner(batch)
        return out

    def _check_owner(self, batch: Batch) -> None:
        if batch.owner is not None and batch.owner is not self._worker:
            raise _Abandoned

    def _fail_hit(self, requests: list[Request], what: str, error: Exception) -> None:
        """Fail the requests a fault hit, each with a clear error; log it once."""
        hit = _unique(requests)
        with self._lock:
            for request in hit:
                self._taken.pop(request, None)
            running, waiting = len(self._taken), len(self._waiting)
        log.error(
            "the model failed %s: %r; requests told to try again: %d (waited %s s); "
            "requests going on: %d running, %d waiting",
            what,
            error,
            len(hit),
            [round(time.monotonic() - r.submitted, 1) for r in hit],
            running,
            waiting,
            exc_info=error,
        )
        _fail(hit, f"the model failed {what}: {error!r}")

    def _advance(self, rows: Sequence[Row], logits: torch.Tensor) -> None:
        """Choose each row's next token and hand over the text it completes."""
        for row, scores in zip(rows, logits, strict=True):
            request = row.request
            if request.cancelled.is_set():
                row.done = "cancelled"
                continue
            token = row.sampler.choose(scores)
            row.last = token
            row.generated += 1
            self._generated += 1
            if token in self._eos:
                row.done = "stop"
            else:
                piece = row.text.push(token)
                if piece:
                    request.deliver(piece)
                if row.text.stopped:
                    row.done = "stop"
                elif (
                    row.generated >= request.params.max_new_tokens
                    or row.position + 1 >= self._window
                ):
                    row.done = "length"
            if row.done is not None:
                rest = row.text.flush()
                if rest:
                    request.deliver(rest)

    def _retire(self, batch: Batch) -> None:
        """Drop finished rows from the batch and the cache columns nobody needs.

        A request hears that it finished only once its slot is free.
        """
        keep = [i for i, row in enumerate(batch.rows) if row.done is None]
        if len(keep) == len(batch.rows):
            return
        finished = [row for row in batch.rows if row.done is not None]
        batch.keep(keep)
        with self._lock:
            for row in finished:
                self._taken.pop(row.request, None)
        for row in finished:
            if row.done is not None and row.done != "cancelled":
                row.request.deliver(Finished(row.done, row.generated))


def _eos_ids(model: Any, tokenizer: Any) -> frozenset[int]:
    ids: set[int] = set()
    configured = getattr(model.generation_config, "eos_token_id", None)
    if isinstance(configured, int):
        ids.add(configured)
    elif configured:
        ids.update(configured)
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return frozenset(ids)


def _unique(requests: list[Request]) -> list[Request]:
    return list(dict.fromkeys(requests))


def _fail(requests: Sequence[Request], reason: str) -> None:
    """Tell each request it failed, each with its own exception (tracebacks stay apart)."""
    for request in requests:
        request.deliver(ModelUnavailable(reason))
