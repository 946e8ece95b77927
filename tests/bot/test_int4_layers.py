"""4-bit and 8-bit linear layers (``model.dtype = "int4"``) on a small decoder-shaped
module: what they compute, and which layers are packed."""

from __future__ import annotations

import pytest
import torch

from confab.bot.llm import int4

pytestmark = pytest.mark.skipif(not int4.supported(), reason="no CPU int4 kernel in this torch")


class Decoder(torch.nn.Module):
    """Shaped like transformers' decoder models: ``model.layers`` and ``lm_head``."""

    def __init__(self) -> None:
        super().__init__()
        layer = torch.nn.Module()
        layer.up = torch.nn.Linear(64, 96, bias=False)
        layer.biased = torch.nn.Linear(64, 64, bias=True)  # Qwen2's q, k and v
        layer.odd = torch.nn.Linear(40, 64, bias=False)  # not whole groups of 32
        self.model = torch.nn.Module()
        self.model.layers = torch.nn.ModuleList([layer])
        self.lm_head = torch.nn.Linear(64, 500, bias=False)


def test_levels_of_a_q4_1_block_come_back_exactly() -> None:
    """Weights that are d * q + m per group of 32, as a Q4_1 file's, are computed with
    exactly those weights (to bfloat16's rounding of inputs and outputs)."""
    generator = torch.Generator().manual_seed(0)
    levels = torch.randint(0, 16, (96, 64), generator=generator).float()
    levels[:, ::32] = 0  # every group spans the whole range, as Q4_1's quantiser makes it
    levels[:, 1::32] = 15
    d = torch.rand(96, 2, 1, generator=generator) * 0.01 + 0.001
    m = -torch.rand(96, 2, 1, generator=generator) * 0.05
    weight = (levels.view(96, 2, 32) * d + m).view(96, 64)
    dense = torch.nn.Linear(64, 96, bias=False)
    dense.weight.data = weight
    packed = int4.Int4Linear.pack(dense)
    x = torch.randn(4, 64, generator=generator).bfloat16()
    want = x.float() @ weight.t()
    assert (packed(x).float() - want).abs().max() < 0.01 * want.abs().max()


def test_only_whole_bias_free_layers_are_packed_and_the_head_goes_to_8_bits() -> None:
    model = Decoder()
    x = torch.randn(2, 3, 64)
    want = model.lm_head(x)
    assert int4.packable(model)
    int4.pack_decoder(model)
    layer = model.model.layers[0]
    assert isinstance(layer.up, int4.Int4Linear)
    assert type(layer.biased) is torch.nn.Linear and layer.biased.weight.dtype == torch.bfloat16
    assert type(layer.odd) is torch.nn.Linear
    assert isinstance(model.lm_head, int4.Int8Linear) and int4.is_packed(model)
    got = model.lm_head(x.bfloat16()).float()
    assert got.shape == (2, 3, 500)
    assert (got - want).abs().max() < 0.02 * want.abs().max()


def test_a_model_without_decoder_layers_is_not_packable() -> None:
    assert not int4.packable(torch.nn.Linear(64, 64, bias=False))


def test_a_pass_of_many_rows_uses_the_dense_copy_and_a_few_rows_the_packed_weights() -> None:
    """Prompts (many rows) are prefilled in bfloat16, where the int4 kernel is slower;
    decoding steps (a row per person) read the 4-bit weights."""
    generator = torch.Generator().manual_seed(1)
    dense = torch.nn.Linear(64, 96, bias=False)
    packed = int4.Int4Linear.pack(dense)
    assert torch.equal(packed.dense, dense.weight.detach().bfloat16())
    many = torch.randn(1, int4.MAX_PACKED_ROWS + 1, 64, generator=generator).bfloat16()
    few = many[:, : int4.MAX_PACKED_ROWS]
    assert torch.equal(packed(many), torch.nn.functional.linear(many, packed.dense))
    kernel = torch.ops.aten._weight_int4pack_mm_for_cpu(
        few.reshape(-1, 64).contiguous(), packed.packed, int4.GROUP, packed.scales_and_zeros
    )
    assert torch.equal(packed(few), kernel.view(1, int4.MAX_PACKED_ROWS, 96))
    # The two differ by the 4-bit rounding only.
    assert not torch.equal(packed(few), torch.nn.functional.linear(few, packed.dense))


def test_an_empty_packed_model_loads_a_packed_state_and_computes_the_same() -> None:
    model = int4.pack_decoder(Decoder())
    shell = int4.empty_packed(Decoder().bfloat16())
    assert shell.model.layers[0].up.packed.is_meta
    shell.load_state_dict(model.state_dict(), strict=True, assign=True)
    x = torch.randn(2, 3, 64).bfloat16()
    layer, loaded = model.model.layers[0], shell.model.layers[0]
    assert torch.equal(loaded.up(x), layer.up(x))
    assert torch.equal(shell.lm_head(x), model.lm_head(x))


@pytest.mark.parametrize("shape", [(96, 64), (576, 576), (1536, 576), (576, 1536)])
def test_an_empty_layer_has_the_shape_and_dtype_the_kernel_packs_into(
    shape: tuple[int, int],
) -> None:
    out_features, in_features = shape
    packed = int4.Int4Linear.pack(torch.nn.Linear(in_features, out_features, bias=False))
    empty = int4.Int4Linear(in_features, out_features)
    for name in ("packed", "scales_and_zeros", "dense"):
        real, shell = getattr(packed, name), getattr(empty, name)
        assert shell.is_meta and shell.shape == real.shape, name
    assert empty.packed.dtype == packed.packed.dtype


class TiedDecoder(Decoder):
    """With an input embedding its output layer is tied to, as the bundled model's."""

    def __init__(self, tied: bool) -> None:
        super().__init__()
        self.model.embed_tokens = torch.nn.Embedding(500, 64)
        self.lm_head.weight = self.model.embed_tokens.weight
        self.config = type("Config", (), {"tie_word_embeddings": tied})()


def test_many_rows_through_a_tied_8_bit_head_use_the_embedding_and_few_the_8_bits() -> None:
    model = int4.pack_decoder(TiedDecoder(tied=True))
    head, embedding = model.lm_head, model.model.embed_tokens.weight
    assert head.tied is not None and head.tied.data_ptr() == embedding.data_ptr()
    few = torch.randn(1, int4.MAX_INT8_ROWS, 64).bfloat16()
    many = torch.randn(1, int4.MAX_INT8_ROWS + 1, 64).bfloat16()
    assert torch.equal(head(many), torch.nn.functional.linear(many, embedding))
    rows = few.reshape(-1, 64)
    kernel = torch.ops.aten._weight_int8pack_mm(rows, head.weight8, head.scales)
    assert torch.equal(head(few), kernel.view(1, int4.MAX_INT8_ROWS, 500))
    assert not torch.equal(head(few), torch.nn.functional.linear(few, embedding))
    assert "tied" not in "".join(model.state_dict())  # the embedding is saved once


def test_an_untied_head_stays_8_bit_for_any_rows() -> None:
    model = int4.pack_decoder(TiedDecoder(tied=False))
    assert model.lm_head.tied is None
