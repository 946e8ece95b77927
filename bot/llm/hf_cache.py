"""The growing KV cache layers (:mod:`confab.bot.llm.kv_cache`) inside transformers' ``Cache``,
for models transformers computes. Imported only for those, since importing
transformers' cache module costs about half a second."""

from __future__ import annotations

from typing import Any

import torch
from transformers.cache_utils import Cache, DynamicLayer

from confab.bot.llm.kv_cache import Growing


class GrowingLayer(Growing, DynamicLayer):
    """A transformers cache layer that grows in place."""

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
            return self.replace(key_states, value_states)
        return self.append(key_states, value_states)


def transformers_cache(model: Any) -> Cache:
    """An empty cache of :class:`GrowingLayer` for every layer of ``model``."""
    return Cache(layers=[GrowingLayer() for _ in range(model.config.num_hidden_layers)])
