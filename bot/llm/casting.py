"""Casting a model's weights to a compute dtype without its float32 buffers.

``model.to(torch.bfloat16)`` also rounds buffers such as the rotary embedding's
frequencies, which transformers keeps in float32 when it loads a model in
bfloat16: a frequency rounded to 8 bits of mantissa shifts the phase of every
position, more the further into a long conversation. Weights follow the dtype;
float32 buffers stay as they are.
"""

from __future__ import annotations

from typing import Any

import torch


def cast_weights(model: Any, dtype: torch.dtype) -> Any:
    """``model`` with its parameters in ``dtype``, in place; float32 buffers kept."""
    kept = [
        (name, buffer) for name, buffer in model.named_buffers() if buffer.dtype == torch.float32
    ]
    model.to(dtype)
    for name, buffer in kept:
        owner, _, attribute = name.rpartition(".")
        setattr(model.get_submodule(owner), attribute, buffer)
    return model
