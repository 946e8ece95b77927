"""Continuous batching: many requests share each forward pass of one model.

One worker thread owns the model. Each turn of its loop it admits waiting
requests (prefilled together, left-padded, into the running batch's KV cache),
then runs one decoding step for every running request; a request that finishes
or whose consumer went away leaves the batch at once. On this CPU a decoding
step costs nearly the same for one sequence as for eight, so sharing steps
multiplies throughput.

Requests hand results back through ``emit``, which the worker calls with text
pieces, then :class:`Finished` or an exception. It must be thread-safe.

Give the engine the executor the model was loaded on (:func:`worker_thread`):
each thread that computes gets its own OpenMP team, and on a 2-core machine a
second team makes every forward pass slower (one greedy stream measured 20.8
tokens/s on the thread that loaded the model, 16.3 on another thread after
the first had computed, 24.0 when only the other thread ever computed).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import AsyncGenerator, Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from bot.errors import ModelBusy, ModelTimeout, ModelUnavailable
from bot.llm.backend import GenerationParams
from bot.llm.kv_cache import check_supported, growing_cache
from bot.llm.sampling import Sampler, TextTail

log = logging.getLogger(__name__)

# Prompt tokens prefilled in one turn of the loop; requests past it wait for the
# next turn, so running answers keep streaming.
PREFILL_TOKENS = 2048
# Prompts share one prefill pass while left padding adds at most this share
# (plus a few tokens): padding is computed like any other token.
PADDING_ALLOWANCE = 0.3
PADDING_SLACK = 32

FinishReason = Literal["stop", "length", "cancelled"]


@dataclass(frozen=True, slots=True)
class Finished:
    """The last item a request receives when it ends without an error."""

    reason: FinishReason
    tokens: int


@dataclass(eq=False)
class Request:
    """One prompt waiting for, or taking part in, generation."""

    prompt: list[int]
    params: GenerationParams
    emit: Callable[[object], None]
    cancelled: threading.Event = field(default_factory=threading.Event)
    submitted: float = field(default_factory=time.monotonic)


@dataclass(frozen=True, slots=True)
class EngineLoad:
    """How busy the engine is."""

    running: int
    waiting: int
    steps: int


class _Row:
    """A request inside the running batch."""

    def __init__(self, request: Request, tokenizer: Any) -> None:
        self.request = request
        self.sampler = Sampler(request.params, request.prompt)
        self.text = TextTail(tokenizer, request.params.stop)
        self.position = len(request.prompt)  # tokens of this row in the KV cache
        self.last = -1
        self.generated = 0
        self.done: FinishReason | None = None


class _Batch:
    """The running rows with their shared, left-padded KV cache."""

    def __init__(self) -> None:
        self.rows: list[_Row] = []
        self.cache: Any = None
        self.mask = torch.zeros((0, 0), dtype=torch.long)


class BatchEngine:
    """Generates for many requests at once on a worker thread it owns."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        window: int,
        max_batch_size: int,
        max_queue: int,
        executor: ThreadPoolExecutor | None = None,
    ) -> None:
        check_supported(model)
        self._model = model
        self._tokenizer = tokenizer
        self._window = window
        self._max_batch = max_batch_size
        self._max_queue = max_queue
        self._eos = _eos_ids(model, tokenizer)
        self._pad = self._tokenizer.pad_token_id or 0
        self._waiting: deque[Request] = deque()
        self._running = 0
        self._unmerged = 0  # joiners of this turn not yet in the batch
        self._steps = 0
        self._wake = threading.Condition()
        self._closing = False
        self._owns_executor = executor is None
        self._executor = executor or worker_thread()
        self._worker: Future[None] | None = None

    @property
    def load(self) -> EngineLoad:
        with self._wake:
            return EngineLoad(self._running, len(self._waiting), self._steps)

    def submit(self, request: Request) -> None:
        """Queue a request; raises :class:`ModelBusy` when the queue is full."""
        with self._wake:
            if self._closing:
                raise ModelUnavailable("request submitted while the model is shutting down")
            if any(r.cancelled.is_set() for r in self._waiting):  # their askers left
                self._waiting = deque(r for r in self._waiting if not r.cancelled.is_set())
            free = max(self._max_batch - self._running, 0)
            if len(self._waiting) >= self._max_queue + free:
                raise ModelBusy(
                    f"queue full: {self._running} running, {len(self._waiting)} waiting "
                    f"(max_batch_size {self._max_batch}, max_queue {self._max_queue})"
                )
            if self._worker is None or self._worker.done():
                if self._worker is not None:
                    log.warning("the model worker had stopped; starting it again")
                self._worker = self._executor.submit(self._work)
            self._waiting.append(request)
            self._wake.notify()

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
        :mod:`bot.llm.compute`); the engine's worker must not be running.
        """
        batch = _Batch()
        with self._wake:
            self._waiting.extend(requests)
        with torch.inference_mode():
            while True:
                with self._wake:
                    joining = self._take_joiners(batch)
                if not joining and not batch.rows:
                    return
                if joining:
                    self._join(batch, joining)
                if batch.rows:
                    self._step(batch)

    def close(self, timeout: float = 30.0) -> None:
        """Stop the worker; requests still waiting or running fail as unavailable."""
        with self._wake:
            self._closing = True
            self._wake.notify()
            worker = self._worker
        if worker is not None:
            try:
                worker.result(timeout)
            except TimeoutError:
                log.error("the model worker did not stop within %.0f s", timeout)
        if self._owns_executor:
            self._executor.shutdown(wait=False)

    def _work(self) -> None:
        batch = _Batch()
        joining: list[Request] = []
        try:
            while True:
                next_joiners = self._next_joiners(batch)
                if next_joiners is None:
                    return
                joining = next_joiners
                try:
                    with torch.inference_mode():
                        if joining:
                            self._join(batch, joining)
                        if batch.rows:
                            self._step(batch)
                    joining = []
                except Exception as error:
                    log.exception(
                        "model step failed with %d running and %d joining requests",
                        len(batch.rows),
                        len(joining),
                    )
                    failed = _unique([row.request for row in batch.rows] + joining)
                    batch, joining = _Batch(), []
                    with self._wake:
                        self._running = 0
                    _fail(failed, f"model step failed: {error!r}")
        except BaseException:  # the thread ends here; the next submit starts a new one
            log.exception("the model worker died")
        finally:
            with self._wake:
                leftover = _unique([row.request for row in batch.rows] + joining)
                leftover += list(self._waiting)
                self._waiting.clear()
                self._running = 0
                self._worker = None
                reason = "shutting down" if self._closing else "the model worker stopped"
            _fail(leftover, f"request abandoned: {reason}")

    def _next_joiners(self, batch: _Batch) -> list[Request] | None:
        """Requests to prefill this turn; ``None`` when the engine is closing."""
        with self._wake:
            while not self._closing and not self._waiting and not batch.rows:
                self._wake.wait()
            if self._closing:
                return None
            return self._take_joiners(batch)

    def _take_joiners(self, batch: _Batch) -> list[Request]:
        """Waiting requests that join this turn (the caller holds ``_wake``)."""
        candidates: list[Request] = []
        while self._waiting and len(batch.rows) + len(candidates) < self._max_batch:
            request = self._waiting.popleft()
            if not request.cancelled.is_set():
                candidates.append(request)
        joining = _within_budget(candidates)
        # The rest go back to the front, in arrival order, for the next turn.
        self._waiting.extendleft(reversed([r for r in candidates if r not in joining]))
        self._unmerged = len(joining)
        self._running = len(batch.rows) + len(joining)
        return joining

    def _join(self, batch: _Batch, requests: list[Request]) -> None:
        """Prefill ``requests``, in groups of similar length, into the running batch.

        All of them are prefilled before the next decoding step: a first token
        soon matters more to a waiting person than one more token to a reader.
        """
        for group in _prefill_groups(requests):
            self._prefill(batch, group)

    def _prefill(self, batch: _Batch, requests: list[Request]) -> None:
        """Prefill ``requests`` together and merge them into the running batch."""
        length = max(len(r.prompt) for r in requests)
        ids = torch.full((len(requests), length), self._pad, dtype=torch.long)
        mask = torch.zeros((len(requests), length), dtype=torch.long)
        for i, request in enumerate(requests):
            ids[i, length - len(request.prompt) :] = torch.tensor(request.prompt)
            mask[i, length - len(request.prompt) :] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        cache = growing_cache(self._model)
        out = self._model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=positions,
            cache=cache,
            use_cache=True,
            logits_to_keep=1,
        )
        rows = [_Row(request, self._tokenizer) for request in requests]
        _merge(batch, rows, cache, mask)
        with self._wake:
            self._unmerged = max(self._unmerged - len(rows), 0)
        self._advance(rows, out.logits[:, -1, :])
        self._retire(batch)

    def _step(self, batch: _Batch) -> None:
        """One decoding step for every running row."""
        batch.mask = torch.cat([batch.mask, torch.ones((len(batch.rows), 1), dtype=torch.long)], 1)
        out = self._model(
            input_ids=torch.tensor([[row.last] for row in batch.rows]),
            attention_mask=batch.mask,
            position_ids=torch.tensor([[row.position] for row in batch.rows]),
            cache=batch.cache,
            use_cache=True,
        )
        self._steps += 1
        for row in batch.rows:
            row.position += 1
        self._advance(batch.rows, out.logits[:, -1, :])
        self._retire(batch)

    def _advance(self, rows: Sequence[_Row], logits: torch.Tensor) -> None:
        """Choose each row's next token and hand over the text it completes."""
        for row, scores in zip(rows, logits, strict=True):
            request = row.request
            if request.cancelled.is_set():
                row.done = "cancelled"
                continue
            token = row.sampler.choose(scores)
            row.last = token
            row.generated += 1
            if token in self._eos:
                row.done = "stop"
            else:
                piece = row.text.push(token)
                if piece:
                    request.emit(piece)
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
                    request.emit(rest)

    def _retire(self, batch: _Batch) -> None:
        """Drop finished rows from the batch and the cache columns nobody needs.

        A request hears that it finished only once its slot is free.
        """
        keep = [i for i, row in enumerate(batch.rows) if row.done is None]
        if len(keep) == len(batch.rows):
            return
        finished = [row for row in batch.rows if row.done is not None]
        batch.rows = [batch.rows[i] for i in keep]
        self._shrink(batch, keep)
        with self._wake:
            self._running = len(batch.rows) + self._unmerged
        for row in finished:
            if row.done is not None and row.done != "cancelled":
                row.request.emit(Finished(row.done, row.generated))

    @staticmethod
    def _shrink(batch: _Batch, keep: list[int]) -> None:
        if not keep:
            batch.cache, batch.mask = None, torch.zeros((0, 0), dtype=torch.long)
            return
        index = torch.tensor(keep)
        batch.mask = batch.mask[index]
        used = batch.mask.any(0).nonzero()
        start = int(used[0]) if used.numel() else 0
        batch.mask = batch.mask[:, start:]
        for layer in batch.cache.layers:
            layer.replace(layer.keys[index, :, start:, :], layer.values[index, :, start:, :])


def _within_budget(candidates: list[Request]) -> list[Request]:
    """The oldest request, then the shortest prompts that fit :data:`PREFILL_TOKENS`.

    Short prompts, which are quick to answer, get their first token first; the
    oldest always joins, so a long prompt cannot be passed over for ever.
    """
    if not candidates:
        return []
    chosen = [candidates[0]]
    total = len(candidates[0].prompt)
    for request in sorted(candidates[1:], key=lambda r: len(r.prompt)):
        if chosen and total + len(request.prompt) > PREFILL_TOKENS:
            break
        chosen.append(request)
        total += len(request.prompt)
    return chosen


def _prefill_groups(requests: list[Request]) -> list[list[Request]]:
    """Split ``requests`` into prefill passes that waste little on left padding."""
    groups: list[list[Request]] = []
    group: list[Request] = []
    real = 0
    for request in sorted(requests, key=lambda r: len(r.prompt)):
        size = len(request.prompt)
        padded = size * (len(group) + 1)
        if group and padded > (1 + PADDING_ALLOWANCE) * (real + size) + PADDING_SLACK:
            groups.append(group)
            group, real = [], 0
        group.append(request)
        real += size
    return [*groups, group] if group else groups


def _merge(batch: _Batch, rows: list[_Row], cache: Any, mask: torch.Tensor) -> None:
    """Append prefilled rows to the batch, left-padding whichever side is shorter."""
    for layer in cache.layers:
        # Padding carries zeros, never values a masked-out position could leak.
        padding = mask[:, None, :, None] == 0
        layer.replace(layer.keys.masked_fill(padding, 0), layer.values.masked_fill(padding, 0))
    if not batch.rows:
        batch.rows, batch.cache, batch.mask = rows, cache, mask
        return
    width = max(batch.mask.shape[1], mask.shape[1])
    batch.mask = torch.cat([_pad_left(batch.mask, width), _pad_left(mask, width)], 0)
    for kept, joined in zip(batch.cache.layers, cache.layers, strict=True):
        kept.replace(
            torch.cat([_pad_left(kept.keys, width, 2), _pad_left(joined.keys, width, 2)]),
            torch.cat([_pad_left(kept.values, width, 2), _pad_left(joined.values, width, 2)]),
        )
    batch.rows = batch.rows + rows


def _pad_left(tensor: torch.Tensor, width: int, dim: int = 1) -> torch.Tensor:
    missing = width - tensor.shape[dim]
    if missing == 0:
        return tensor
    shape = list(tensor.shape)
    shape[dim] = missing
    return torch.cat([tensor.new_zeros(shape), tensor], dim)


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


def worker_thread() -> ThreadPoolExecutor:
    """The one thread that loads the model and runs every forward pass."""
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="confab-model")


def _unique(requests: list[Request]) -> list[Request]:
    return list(dict.fromkeys(requests))


def _fail(requests: Sequence[Request], reason: str) -> None:
    """Tell each request it failed, each with its own exception (tracebacks stay apart)."""
    for request in requests:
        request.emit(ModelUnavailable(reason))
