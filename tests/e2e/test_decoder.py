"""Confab's own decoder (confab.bot.llm.decoder) against transformers on the real
bundled model: the same weights give the same logits bit for bit, in every dtype
and attention kernel the engine serves, over a left-padded batch and its decoding
steps; and a start that reads the kept 4-bit model never imports transformers."""

from __future__ import annotations

import asyncio
import copy
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from confab.bot.llm import int4
from confab.bot.llm.casting import cast_weights
from confab.bot.llm.compute import pick_model
from confab.bot.llm.decoder import Decoder
from confab.bot.llm.hf_cache import transformers_cache
from confab.bot.llm.packed_store import PackedStore

pytestmark = pytest.mark.model


def decoder_of(model: Any) -> Decoder:
    """A decoder holding ``model``'s own weights."""
    decoder = Decoder.for_folder(Path(model.name_or_path))
    assert decoder is not None
    if int4.is_packed(model):
        int4.empty_packed(decoder)
    missing, unexpected = decoder.load_state_dict(model.state_dict(), strict=False, assign=True)
    assert not unexpected and set(missing) <= {"lm_head.weight"}  # tied to the embedding
    if isinstance(decoder.lm_head, torch.nn.Linear):
        decoder.lm_head.weight = decoder.model.embed_tokens.weight
    assert not any(t.is_meta for t in [*decoder.parameters(), *decoder.buffers()])
    return decoder.eval()


def passes(model: Any, cache: Any, ids: torch.Tensor, mask: torch.Tensor) -> list[torch.Tensor]:
    """The logits of a prefill and three greedy decoding steps, called as the engine calls."""
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    logits: list[torch.Tensor] = []
    with torch.inference_mode():
        for _ in range(4):
            out = model(
                input_ids=ids,
                attention_mask=mask,
                position_ids=positions,
                cache=cache,
                use_cache=True,
                logits_to_keep=1,
            )
            logits.append(out.logits)
            ids = out.logits[:, -1].argmax(-1, keepdim=True)
            mask = torch.cat([mask, torch.ones((len(ids), 1), dtype=torch.long)], 1)
            positions = positions[:, -1:] + 1
    return logits


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "int4"])
def test_the_decoder_computes_transformers_logits_bit_for_bit(
    dtype: str, weights: tuple[Any, Any]
) -> None:
    model = copy.deepcopy(weights[0])
    if dtype == "bfloat16":
        cast_weights(model, torch.bfloat16)
    elif dtype == "int4":
        if not int4.supported():
            pytest.skip("this torch build has no CPU int4 kernel")
        int4.pack_decoder(model)
    decoder = decoder_of(model)
    generator = torch.Generator().manual_seed(0)
    batch = torch.randint(100, 5000, (3, 40), generator=generator)
    padded = torch.ones_like(batch)
    padded[0, :10] = padded[1, :25] = 0  # left padding, as the engine pads
    lone = torch.randint(100, 5000, (1, 30), generator=generator)
    for kernel in ("sdpa", "eager"):
        model.set_attn_implementation(kernel)
        decoder.set_attn_implementation(kernel)
        for ids, mask in ((batch, padded), (lone, torch.ones_like(lone))):
            want = passes(model, transformers_cache(model), ids, mask)
            got = passes(decoder, decoder.new_cache(), ids, mask)
            assert all(torch.equal(w, g) for w, g in zip(want, got, strict=True)), kernel
            assert got[0].dtype == want[0].dtype


def test_a_start_from_the_kept_4_bit_model_answers_without_importing_transformers(
    weights: tuple[Any, Any], tmp_path: Path
) -> None:
    if not int4.supported():
        pytest.skip("this torch build has no CPU int4 kernel")
    model, tokenizer = weights
    folder = Path(model.name_or_path)
    cache = tmp_path / "cache"
    (cache / "models").mkdir(parents=True)
    (cache / "models" / folder.name).symlink_to(folder)  # the converted bundled model
    store = PackedStore.for_model(cache, folder, [folder])
    pick_model(lambda _: copy.deepcopy(model), tokenizer, "int4", "sdpa", cache, "m", None, store)
    assert store.path.is_file()
    script = f"""
import asyncio, sys
from pathlib import Path
from confab.bot.llm.backend import ChatMessage
from confab.bot.llm.config import ModelConfig
from confab.bot.llm.transformers_backend import TransformersBackend

async def main():
    backend = TransformersBackend(ModelConfig(dtype="int4", attention="sdpa", temperature=0,
                                              cache_dir=Path({str(cache)!r})))
    await backend.start()
    question = [ChatMessage("user", "What is the capital of France?")]
    answer = "".join([piece async for piece in backend.stream(question)])
    print(type(backend.model).__name__, type(backend.tokenizer).__name__, backend.dtype)
    await backend.close()
    print(sorted(m for m in sys.modules if m.split(".")[0] in ("transformers", "accelerate")))
    print(answer)

asyncio.run(main())
"""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("CONFAB_")}
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=300,
        env=environment,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    kinds, imported, answer = done.stdout.split("\n", 2)
    assert kinds == "Decoder ChatTokenizer int4"
    assert imported == "[]"
    assert "Paris" in answer


async def test_stopping_while_the_model_loads_waits_for_the_loader(tmp_path: Path) -> None:
    """Exiting with the loader thread inside torch aborted the process; close() now
    lets the load stop at its next step and waits for it."""
    from confab.bot.llm.config import ModelConfig
    from confab.bot.llm.transformers_backend import STOP_LOADING_S, TransformersBackend

    backend = TransformersBackend(ModelConfig(dtype="int4", attention="sdpa"))
    starting = asyncio.create_task(backend.start())
    await asyncio.sleep(0.05)  # the loader thread is reading the model now
    starting.cancel()
    loading = backend._loading
    assert loading is not None and not loading.done()
    began = time.monotonic()
    await backend.close()
    assert time.monotonic() - began < STOP_LOADING_S
    assert loading.done() and backend.model is None  # the loader is idle: nothing in torch
    with pytest.raises(asyncio.CancelledError):
        await starting
