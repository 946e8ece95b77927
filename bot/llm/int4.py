"""4-bit weights for the decoder's linear layers, on PyTorch's CPU int4 kernel.

One person's decoding step is bound by memory, not arithmetic: each step reads
every weight once, and on a 2-core machine the bundled model in float32 (540 MB
a step) ran at 44 ms a step, 12 GB/s. The bundled model ships as Q4_1 (blocks
of 32 weights, each ``d * q + m`` with ``q`` in 0..15), so 4 bits a weight lose
nothing the file had: the de-quantised weights are packed back in groups of 32
along the input features, with the scale and zero the kernel reads as
``(q - 8) * scale + zero`` (``scale = d``, ``zero = m + 8 d``). Activations,
norms and attention run in bfloat16. The output layer (tied to the embedding,
Q8_0 in the file: 8 bits with a scale per 32 weights) is held in 8 bits with
one scale per row, the layout of PyTorch's int8 kernel: close to the file,
not exact; the input embedding stays dense. Prompts are prefilled with a dense
bfloat16 copy of the packed weights (:data:`MAX_PACKED_ROWS`): 4 bits are for
speed here, not for RAM (the bundled model holds 360 MB of weights, 270 in
bfloat16 alone).

Measured on the bundled model on a quiet 2-core machine, greedy, 48 steps after
a short prompt (``bench/model_throughput.py`` measures the engine): float32
48 ms a step alone and 73 ms for 8 rows; bfloat16 dense 23 and 31 ms; these
weights 12 and 31 ms.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from confab.bot.llm.casting import cast_weights

GROUP = 32  # weights per scale and zero: Q4_1's block
LEVELS = 15  # the largest 4-bit value
# Passes of more rows (tokens) than this use the dense bfloat16 copy: the int4
# kernel re-expands each weight for every block of rows, so a prompt's prefill
# ran up to 2.3x slower in 4 bits (8 prompts of 200 tokens: 1951 ms against
# 857), while one to sixteen rows ran as fast or faster (16 rows: 23 ms, 28 dense).
MAX_PACKED_ROWS = 16
# Passes of more rows than this through an 8-bit output layer tied to the input
# embedding use the embedding's bfloat16 weights instead, which cost nothing more:
# the int8 kernel's time grows with the rows (49152 x 576, bundled model: 1.1 ms
# for 1 row, 3.6 for 8, 6.7 for 16) and the dense matmul's does not (2.6 to 2.7 ms).
MAX_INT8_ROWS = 8


def supported() -> bool:
    """Whether this torch build has the CPU int4 kernel."""
    ops = torch.ops.aten
    names = ("_weight_int4pack_mm_for_cpu", "_convert_weight_to_int4pack_for_cpu")
    return all(hasattr(ops, name) for name in (*names, "_weight_int8pack_mm"))


class Int4Linear(torch.nn.Module):
    """A bias-free ``nn.Linear`` whose weight is held in 4 bits, groups of :data:`GROUP`,
    for decoding, and in bfloat16 for passes of more than :data:`MAX_PACKED_ROWS` rows."""

    packed: torch.Tensor
    scales_and_zeros: torch.Tensor
    dense: torch.Tensor

    def __init__(self, in_features: int, out_features: int) -> None:
        """An empty layer (weights on the meta device) for :meth:`pack` or a saved state."""
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        meta = torch.device("meta")
        # The kernel's packed layout: two 4-bit levels a byte, one row per output feature
        # (asking the op's meta kernel instead imports sympy, 0.4 s of a start).
        packed = torch.empty((out_features, in_features // 2), dtype=torch.uint8, device=meta)
        groups = in_features // GROUP
        self.register_buffer("packed", packed)
        self.register_buffer(
            "scales_and_zeros", torch.empty((groups, out_features, 2), device=meta)
        )
        self.register_buffer("dense", torch.empty((out_features, in_features), device=meta))

    @classmethod
    def pack(cls, linear: torch.nn.Linear, dtype: torch.dtype = torch.bfloat16) -> Int4Linear:
        """``linear``'s weight in 4 bits, each group's scale and zero in ``dtype``."""
        weight = linear.weight.detach().float()
        out_features, in_features = weight.shape
        layer = cls(in_features, out_features)
        groups = weight.view(out_features, in_features // GROUP, GROUP)
        low = groups.amin(-1, keepdim=True)
        scale = ((groups.amax(-1, keepdim=True) - low) / LEVELS).clamp(min=1e-12)
        levels = ((groups - low) / scale).round().clamp(0, LEVELS).to(torch.int32)
        layer.packed = torch.ops.aten._convert_weight_to_int4pack_for_cpu(
            levels.view(out_features, in_features), 1
        )
        zero = low + (LEVELS + 1) // 2 * scale
        # [groups, out_features, 2]: the kernel's layout of scales and zeros.
        scales_and_zeros = torch.stack([scale.squeeze(-1).t(), zero.squeeze(-1).t()], -1)
        layer.scales_and_zeros = scales_and_zeros.contiguous().to(dtype)
        layer.dense = linear.weight.detach().to(dtype)
        return layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, self.in_features)
        if rows.shape[0] > MAX_PACKED_ROWS:
            return torch.nn.functional.linear(x, self.dense)
        out: torch.Tensor = torch.ops.aten._weight_int4pack_mm_for_cpu(
            rows.contiguous(), self.packed, GROUP, self.scales_and_zeros
        )
        return out.view(*x.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, 4-bit"


class Int8Linear(torch.nn.Module):
    """A bias-free ``nn.Linear`` with 8-bit weights, one scale per output feature: the
    output layer, a 49152-row read each step that bfloat16 made 7.4 ms alone and
    this 2.8 ms (and the same for 8 rows)."""

    weight8: torch.Tensor
    scales: torch.Tensor
    # The bfloat16 input embedding this layer is tied to (:func:`tie_head`), for
    # passes of more than MAX_INT8_ROWS rows; not part of the layer's state.
    tied: torch.Tensor | None

    def __init__(self, in_features: int, out_features: int) -> None:
        """An empty layer (weights on the meta device) for :meth:`pack` or a saved state."""
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.tied = None
        meta = torch.device("meta")
        shape = (out_features, in_features)
        self.register_buffer("weight8", torch.empty(shape, dtype=torch.int8, device=meta))
        self.register_buffer("scales", torch.empty(out_features, device=meta))

    @classmethod
    def pack(cls, linear: torch.nn.Linear, dtype: torch.dtype = torch.bfloat16) -> Int8Linear:
        """``linear``'s weight in 8 bits, each row's scale in ``dtype``."""
        weight = linear.weight.detach().float()
        layer = cls(weight.shape[1], weight.shape[0])
        scales = (weight.abs().amax(1) / 127).clamp(min=1e-12)
        layer.weight8 = (weight / scales[:, None]).round().clamp(-127, 127).to(torch.int8)
        layer.scales = scales.to(dtype)
        return layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, self.in_features).contiguous()
        if self.tied is not None and rows.shape[0] > MAX_INT8_ROWS:
            # On the contiguous rows: a prefill's last positions are a strided view, and
            # bfloat16 linear on it took 1.1 s instead of 5 ms for 16 of them.
            out = torch.nn.functional.linear(rows, self.tied)
        else:
            out = torch.ops.aten._weight_int8pack_mm(rows, self.weight8, self.scales)
        return out.view(*x.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, 8-bit"


def packable(model: Any) -> bool:
    """Whether :func:`pack_decoder` can pack anything of ``model`` here."""
    return supported() and any(map(_eligible, _decoder_linears(model)))


def pack_decoder(model: Any) -> Any:
    """``model`` in bfloat16 with its decoder's linear layers in 4 bits, in place, and its
    output layer in 8. A layer with a bias (Qwen2's q, k and v) or a part group of
    input features stays dense."""
    cast_weights(model, torch.bfloat16)
    return tie_head(_replace_linears(model, Int4Linear.pack, Int8Linear.pack))


def empty_packed(model: Any) -> Any:
    """``model`` with empty layers where :func:`pack_decoder` puts packed ones, in place:
    the shape a saved state of a packed model loads into."""
    return _replace_linears(
        model,
        lambda linear: Int4Linear(linear.in_features, linear.out_features),
        lambda linear: Int8Linear(linear.in_features, linear.out_features),
    )


def _replace_linears(
    model: Any,
    four: Callable[[torch.nn.Linear], torch.nn.Module],
    eight: Callable[[torch.nn.Linear], torch.nn.Module],
) -> Any:
    for layer in _decoder_layers(model):
        for parent in list(layer.modules()):
            for name, child in list(parent.named_children()):
                if isinstance(child, torch.nn.Linear) and _eligible(child):
                    setattr(parent, name, four(child))
    head = getattr(model, "lm_head", None)
    if isinstance(head, torch.nn.Linear) and head.bias is None:
        model.lm_head = eight(head)  # the input embedding it is tied to stays dense
    return model


def tie_head(model: Any) -> Any:
    """Give an 8-bit output layer its tied input embedding (in bfloat16) for passes of
    many rows, in place; a model whose output layer is not tied is left as it is."""
    head = getattr(model, "lm_head", None)
    embedding = getattr(getattr(model, "model", None), "embed_tokens", None)
    config = getattr(model, "config", None)
    if config is not None and hasattr(config, "get_text_config"):
        config = config.get_text_config(decoder=True)
    if not (
        isinstance(head, Int8Linear)
        and isinstance(embedding, torch.nn.Embedding)
        and getattr(config, "tie_word_embeddings", False)
    ):
        return model
    weight = embedding.weight.detach()
    if weight.shape == (head.out_features, head.in_features) and weight.dtype == torch.bfloat16:
        head.tied = weight
    return model


def is_packed(model: Any) -> bool:
    return any(isinstance(module, Int4Linear) for module in model.modules())


def _eligible(linear: torch.nn.Linear) -> bool:
    return linear.bias is None and linear.in_features % GROUP == 0


def _decoder_linears(model: Any) -> list[torch.nn.Linear]:
    return [
        module
        for layer in _decoder_layers(model)
        for module in layer.modules()
        if isinstance(module, torch.nn.Linear)
    ]


def _decoder_layers(model: Any) -> list[torch.nn.Module]:
    base = getattr(model, "model", None)
    layers = getattr(base, "layers", None)
    return list(layers) if isinstance(layers, torch.nn.ModuleList) else []
