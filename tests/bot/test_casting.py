"""Casting weights to a compute dtype keeps float32 buffers (rotary frequencies)."""

from __future__ import annotations

import torch

from confab.bot.llm.casting import cast_weights


class Rotary(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        frequencies = 1.0 / (10000 ** (torch.arange(0, 64, 2).float() / 64))
        self.register_buffer("inv_freq", frequencies, persistent=False)
        self.register_buffer("steps", torch.arange(4))  # not float: untouched either way


def test_weights_follow_the_dtype_and_float32_buffers_stay() -> None:
    model = torch.nn.Module()
    model.proj = torch.nn.Linear(8, 8)
    model.inner = torch.nn.Module()
    model.inner.rotary = Rotary()
    frequencies = model.inner.rotary.inv_freq.clone()
    cast_weights(model, torch.bfloat16)
    assert model.proj.weight.dtype == model.proj.bias.dtype == torch.bfloat16
    assert model.inner.rotary.inv_freq.dtype == torch.float32
    assert torch.equal(model.inner.rotary.inv_freq, frequencies)
    assert model.inner.rotary.steps.dtype == torch.int64
    assert "inner.rotary.steps" in model.state_dict()
    assert "inner.rotary.inv_freq" not in model.state_dict()  # still non-persistent
    # A plain cast would have rounded them.
    assert not torch.equal(frequencies.bfloat16().float(), frequencies)
