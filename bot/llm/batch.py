"""Requests and the running batch they decode in, for :mod:`confab.bot.llm.engine`.

A :class:`Request` is one prompt with the callback that hears its answer; a
:class:`Batch` is the rows decoding together over one shared, left-padded KV
cache; :func:`within_budget` and :func:`prefill_groups` choose which waiting
prompts join it and in which prefill passes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from confab.bot.llm.backend import GenerationParams
from confab.bot.llm.sampling import Sampler, TextTail

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
    """One prompt waiting for, or taking part in, generation.

    ``emit`` hears text pieces, then one ending: :class:`Finished` or an
    exception. It is called from the engine's threads and must be thread-safe.
    """

    prompt: list[int]
    params: GenerationParams
    emit: Callable[[object], None]
    cancelled: threading.Event = field(default_factory=threading.Event)
    submitted: float = field(default_factory=time.monotonic)
    _ended: bool = field(default=False, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def deliver(self, item: object) -> None:
        """Pass ``item`` to ``emit`` unless the request has already ended.

        Both the worker and the watchdog that abandons a hung worker deliver;
        whichever ends the request first wins, and a late piece from an
        abandoned worker is dropped.
        """
        with self._lock:
            if self._ended:
                return
            if isinstance(item, Finished | BaseException):
                self._ended = True
            self.emit(item)


class Row:
    """A request inside the running batch."""

    def __init__(self, request: Request, tokenizer: Any) -> None:
        self.request = request
        self.sampler = Sampler(request.params, request.prompt)
        self.text = TextTail(tokenizer, request.params.stop)
        self.position = len(request.prompt)  # tokens of this row in the KV cache
        self.last = -1
        self.generated = 0
        self.done: FinishReason | None = None


class Batch:
    """The running rows with their shared, left-padded KV cache.

    ``owner`` is the worker computing it (``None`` outside the engine's loop).
    """

    def __init__(self, owner: object = None) -> None:
        self.owner = owner
        self.rows: list[Row] = []
        self.cache: Any = None
        self.mask = torch.zeros((0, 0), dtype=torch.long)

    def clear(self) -> None:
        self.rows, self.cache = [], None
        self.mask = torch.zeros((0, 0), dtype=torch.long)

    def merge(self, rows: list[Row], cache: Any, mask: torch.Tensor) -> None:
        """Append prefilled rows, left-padding whichever side is shorter."""
        for layer in cache.layers:
            # Padding carries zeros, never values a masked-out position could leak.
            padding = mask[:, None, :, None] == 0
            layer.replace(layer.keys.masked_fill(padding, 0), layer.values.masked_fill(padding, 0))
        if not self.rows:
            self.rows, self.cache, self.mask = rows, cache, mask
            return
        width = max(self.mask.shape[1], mask.shape[1])
        self.mask = torch.cat([_pad_left(self.mask, width), _pad_left(mask, width)], 0)
        for kept, joined in zip(self.cache.layers, cache.layers, strict=True):
            kept.replace(
                torch.cat([_pad_left(kept.keys, width, 2), _pad_left(joined.keys, width, 2)]),
                torch.cat([_pad_left(kept.values, width, 2), _pad_left(joined.values, width, 2)]),
            )
        self.rows = self.rows + rows

    def keep(self, keep: list[int]) -> None:
        """Keep only the rows at ``keep``, and the cache columns they still need."""
        if not keep:
            self.clear()
            return
        index = torch.tensor(keep)
        self.rows = [self.rows[i] for i in keep]
        self.mask = self.mask[index]
        used = self.mask.any(0).nonzero()
        start = int(used[0]) if used.numel() else 0
        self.mask = self.mask[:, start:]
        for layer in self.cache.layers:
            layer.replace(layer.keys[index, :, start:, :], layer.values[index, :, start:, :])


def within_budget(candidates: list[Request]) -> list[Request]:
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


def prefill_groups(requests: list[Request]) -> list[list[Request]]:
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


def _pad_left(tensor: torch.Tensor, width: int, dim: int = 1) -> torch.Tensor:
    missing = width - tensor.shape[dim]
    if missing == 0:
        return tensor
    shape = list(tensor.shape)
    shape[dim] = missing
    return torch.cat([tensor.new_zeros(shape), tensor], dim)
