"""A KV cache that grows in place, so a decoding step does not copy the whole cache.

transformers' ``DynamicLayer`` concatenates every new key and value onto the
old tensors, copying the layer's whole cache each step, a cost that grows with the batch and
the answer's length. These layers keep spare room and write each step's column
into it; the engine replaces their contents when rows join or leave.

:class:`LayerCache` serves :class:`~confab.bot.llm.decoder.Decoder` without
importing transformers; a transformers model gets the same layers inside
transformers' own ``Cache`` (:mod:`confab.bot.llm.hf_cache`).
"""

from __future__ import annotations

from typing import Any

import torch

from confab.bot.errors import ModelError

# Columns of room added whenever a layer must grow.
SPARE_COLUMNS = 256


class Growing:
    """Keys and values as views into buffers with room for more columns."""

    keys: torch.Tensor | None
    values: torch.Tensor | None
    _length: int
    _key_room: torch.Tensor
    _value_room: torch.Tensor

    def append(
        self, key_states: torch.Tensor, value_states: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Add this pass's columns; every column held so far, these included."""
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


class GrowingRoom(Growing):
    """One layer of a :class:`LayerCache`."""

    def __init__(self) -> None:
        self.keys = self.values = None
        self._length = 0

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.keys is None:
            return self.replace(key_states, value_states)
        return self.append(key_states, value_states)


class LayerCache:
    """The KV cache of a :class:`~confab.bot.llm.decoder.Decoder`: one layer per decoder layer."""

    def __init__(self, layers: int) -> None:
        self.layers = [GrowingRoom() for _ in range(layers)]

    @property
    def length(self) -> int:
        """Columns held (the same in every layer)."""
        return self.layers[0]._length if self.layers else 0


def growing_cache(model: Any) -> Any:
    """An empty growing cache for ``model``: its own kind when it makes one, else a
    transformers ``Cache`` of growing layers."""
    new_cache = getattr(model, "new_cache", None)
    if callable(new_cache):
        return new_cache()
    from confab.bot.llm.hf_cache import transformers_cache

    return transformers_cache(model)


def check_supported(model: Any) -> None:
    """The engine pads and merges full-attention caches; refuse anything else."""
    if callable(getattr(model, "new_cache", None)):
        return  # confab's own decoder: full attention only
    config = model.config.get_text_config(decoder=True)
    kinds = set(getattr(config, "layer_types", None) or ["full_attention"])
    if kinds != {"full_attention"}:
        raise ModelError(
            "This model is not supported by the local engine.",
            f"layer types {sorted(kinds)}: the batching engine supports full attention only; "
            "serve it with model.backend = 'openai' instead",
        )
