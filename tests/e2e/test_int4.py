"""4-bit decoder weights (``model.dtype = "int4"``) on the real bundled model: they
hold the GGUF file's Q4_1 weights exactly, the engine answers with them exactly
like ``generate`` on the same model, the probe can choose them, and a later start
reads them back from where the first kept them."""

from __future__ import annotations

import asyncio
import copy
import logging
from pathlib import Path
from typing import Any

import pytest
import torch

from confab.bot.llm import int4
from confab.bot.llm.compute import pick_model
from confab.bot.llm.config import ModelConfig
from confab.bot.llm.decoder import Decoder
from confab.bot.llm.engine import BatchEngine
from confab.bot.llm.packed_store import PackedStore
from confab.bot.llm.transformers_backend import TransformersBackend
from tests.e2e.test_engine import GREEDY, collect, generated

pytestmark = [
    pytest.mark.model,
    pytest.mark.skipif(not int4.supported(), reason="this torch build has no CPU int4 kernel"),
]


@pytest.fixture(scope="module")
def packed(weights: tuple[Any, Any]) -> Any:
    model, _ = weights
    return int4.pack_decoder(copy.deepcopy(model)).eval()


def test_the_packed_levels_are_the_files_q4_1_weights(weights: tuple[Any, Any]) -> None:
    """Each group of 32 de-quantised weights is d * q + m with q in 0..15, so 4 bits
    with one scale and zero per group give the same weights back."""
    model, _ = weights
    weight = model.model.layers[3].mlp.down_proj.weight.detach().float()
    groups = weight.view(weight.shape[0], -1, int4.GROUP)
    low = groups.amin(-1, keepdim=True)
    scale = (groups.amax(-1, keepdim=True) - low) / int4.LEVELS
    levels = ((groups - low) / scale).round()
    assert (levels * scale + low - groups).abs().max() < 1e-6 * groups.abs().max()


def test_a_packed_layer_computes_what_the_dense_one_does(weights: tuple[Any, Any]) -> None:
    model, _ = weights
    dense = model.model.layers[0].self_attn.q_proj
    packed = int4.Int4Linear.pack(dense)
    x = torch.randn(3, 5, dense.in_features, generator=torch.Generator().manual_seed(1))
    want = dense(x)
    got = packed(x.to(torch.bfloat16)).float()
    assert got.shape == want.shape
    # Within bfloat16's rounding of the inputs and outputs.
    assert (got - want).abs().max() < 0.02 * want.abs().max()


def test_only_the_decoders_linear_layers_are_packed(packed: Any) -> None:
    kinds = {type(m).__name__ for m in packed.model.layers.modules()}
    assert "Int4Linear" in kinds and "Linear" not in kinds
    assert isinstance(packed.lm_head, int4.Int8Linear)  # 8 bits, one scale per row
    assert packed.lm_head.tied is packed.model.embed_tokens.weight or torch.equal(
        packed.lm_head.tied, packed.model.embed_tokens.weight
    )  # for batches, the bfloat16 embedding it is tied to
    assert isinstance(packed.model.embed_tokens, torch.nn.Embedding)  # the tied input: dense
    assert packed.dtype == torch.bfloat16 and int4.is_packed(packed)


async def test_the_engine_answers_exactly_like_generate_on_the_packed_model(
    packed: Any, weights: tuple[Any, Any], prompts: list[list[int]]
) -> None:
    _, tokenizer = weights
    reference = generated(packed, tokenizer, prompts)
    engine = BatchEngine(packed, tokenizer, window=8192, max_batch_size=1, max_queue=8)
    try:
        answers = await asyncio.gather(
            *(
                collect(engine.stream(prompt, GREEDY, 120), [], i)
                for i, prompt in enumerate(prompts)
            )
        )
    finally:
        engine.close()
    assert answers == reference
    assert "Paris" in answers[0]


def test_the_probe_weighs_4_bit_weights_and_remembers_its_choice(
    weights: tuple[Any, Any], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    model, tokenizer = weights
    with caplog.at_level(logging.INFO, logger="confab.bot.llm.compute"):
        first = pick_model(lambda _: copy.deepcopy(model), tokenizer, "auto", "sdpa", tmp_path, "m")
        second = pick_model(
            lambda _: copy.deepcopy(model), tokenizer, "auto", "sdpa", tmp_path, "m"
        )
    probes = [r.getMessage() for r in caplog.records if "compute probe" in r.getMessage()]
    assert len(probes) == 1 and "int4/sdpa" in probes[0]
    chosen = probes[0].split("using ")[1]
    for picked in (first, second):
        assert int4.is_packed(picked) == (chosen == "int4/sdpa")
        if chosen != "int4/sdpa":
            assert picked.dtype == {"float32/sdpa": torch.float32}.get(chosen, torch.bfloat16)


async def test_a_kept_4_bit_model_reads_back_and_answers_exactly_like_the_packed_one(
    packed: Any, weights: tuple[Any, Any], prompts: list[list[int]], tmp_path: Path
) -> None:
    """Read back into confab's own decoder, it answers what ``generate`` answers on
    the packed transformers model."""
    _, tokenizer = weights
    folder = Path(packed.name_or_path)
    store = PackedStore.for_model(tmp_path, folder, [folder])
    assert store.load() is None  # nothing kept yet
    store.save(packed)
    loaded = store.load()
    assert isinstance(loaded, Decoder) and int4.is_packed(loaded)
    assert loaded.lm_head.tied is not None
    loaded.set_attn_implementation(packed.config._attn_implementation)
    engine = BatchEngine(loaded, tokenizer, window=8192, max_batch_size=1, max_queue=8)
    try:
        answers = await asyncio.gather(
            *(collect(engine.stream(p, GREEDY, 120), [], i) for i, p in enumerate(prompts[:2]))
        )
    finally:
        engine.close()
    assert answers == generated(packed, tokenizer, prompts[:2])
    assert set(loaded.generation_config.eos_token_id) == {packed.generation_config.eos_token_id}
    assert not any(t.is_meta for t in [*loaded.parameters(), *loaded.buffers()])


@pytest.mark.parametrize("damage", ["garbage", "cut short"])
def test_an_unreadable_kept_model_is_packed_again_and_replaced(
    damage: str,
    packed: Any,
    weights: tuple[Any, Any],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    model, tokenizer = weights
    folder = Path(packed.name_or_path)
    store = PackedStore.for_model(tmp_path, folder, [folder])
    if damage == "garbage":
        store.path.parent.mkdir(parents=True)
        store.path.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}garbage")
    else:  # a disk that filled up while it was written
        store.save(packed)
        with store.path.open("r+b") as file:
            file.truncate(store.path.stat().st_size - 1000)
    with caplog.at_level(logging.WARNING, logger="confab.bot.llm.packed_store"):
        served = pick_model(
            lambda _: copy.deepcopy(model), tokenizer, "int4", "sdpa", tmp_path, "m", None, store
        )
    assert int4.is_packed(served)
    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "unusable" in warning.getMessage() and warning.exc_info is None
    assert len(warning.getMessage()) < 400
    assert store.load() is not None  # replaced by a good one


def test_a_changed_model_file_gets_a_new_kept_model_and_the_old_one_goes(
    packed: Any, tmp_path: Path
) -> None:
    source = tmp_path / "model"
    source.mkdir()
    (source / "model.safetensors").write_bytes(b"one")
    before = PackedStore.for_model(tmp_path, Path(packed.name_or_path), [source])
    before.save(packed)
    (source / "model.safetensors").write_bytes(b"other weights")
    after = PackedStore.for_model(tmp_path, Path(packed.name_or_path), [source])
    assert after.path != before.path
    after.save(packed)
    assert sorted((tmp_path / "packed").iterdir()) == [after.path]


async def test_the_backend_serves_int4_when_asked(tmp_path: Path) -> None:
    backend = TransformersBackend(
        ModelConfig(dtype="int4", attention="sdpa", cache_dir=ModelConfig().cache_dir)
    )
    await backend.start()
    try:
        assert backend.dtype == "int4"
        answer = "".join(
            [piece async for piece in backend.stream(_question("What is the capital of France?"))]
        )
        assert "Paris" in answer
    finally:
        await backend.close()


def _question(text: str) -> list[Any]:
    from confab.bot.llm.backend import ChatMessage

    return [ChatMessage("user", text)]
