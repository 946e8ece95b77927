"""A KV cache that grows in place, so a decoding step does not copy the whole cache.

transformers' ``DynamicLayer`` concatenates every new key and value onto the
old tensors, copying the layer's whole cache each step, a cost that grows with the batch and
the answer's length. These layers keep spare room and write each step's column
into it; the engine replaces their contents when rows join or leave.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers.cache_utils import Cache, DynamicLayer

from confab.bot.errors import ModelError

# Columns of room added whenever a layer must grow.
SPARE_COLUMNS = 256


class GrowingLayer(DynamicLayer):
    """Keys and values as views into buffers with room for more columns."""

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
            return self.replace(key_states, value_states)
        end = self._length + key_states.shape[-2]
        if end > self._key_room.shape[-2]:
            keys, values = self._views(self._length)
            self.replace(keys, values, extra=key_states.shape[-2])
        self._key_room[:, :, self._length : end] = key_states
        self._value_room[:, :, self._length : end] = value_states
        return self._views(end)

    def replace(
        self, keys: torch.Tensor, values: torch.Tensor, extra: int = 0
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Hold exactly ``keys`` and ``values`` from now on, with room to grow."""
        batch, heads, length, dim = keys.shape
        room = length + extra + SPARE_COLUMNS
        self._key_room = keys.new_empty((batch, heads, room, dim))
        self._value_room = values.new_empty((batch, heads, room, values.shape[-1]))
        self._key_room[:, :, :length] = keys
        self._value_room[:, :, :length] = values
        return self._views(length)

    def _views(self, length: int) -> tuple[torch.Tensor, torch.Tensor]:
        self._length = length
        keys, values = self._key_room[:, :, :length], self._value_room[:, :, :length]
        self.keys, self.values = keys, values
        return keys, values


def growing_cache(model: Any) -> Cache:
    """An empty cache of :class:`GrowingLayer` for every layer of ``model``."""
    return Cache(layers=[GrowingLayer() for _ in range(model.config.num_hidden_layers)])


def check_supported(model: Any) -> None:
    """The engine pads and merges full-attention caches; refuse anything else."""
    config = model.config.get_text_config(decoder=True)
    kinds = set(getattr(config, "layer_types", None) or ["full_attention"])
    if kinds != {"full_attention"}:
        raise ModelError(
            "This model is not supported by the local engine.",
            f"layer types {sorted(kinds)}: the batching engine supports full attention only; "
            "serve it with model.backend = 'openai' instead",
        )
