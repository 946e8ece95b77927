"""Choosing the compute dtype and attention kernel by measuring them on this machine.

bfloat16 halves the weights' RAM and is much faster for batches on CPUs with
native bf16 instructions (AVX512-BF16, AMX), but slower on CPUs without them.
Which attention kernel wins depends on the dtype, the CPU and the shape of the
batch, so ``"auto"`` times the engine itself on a small batch of mixed prompt
lengths for each candidate, once per machine, model and torch build, and
remembers the winner.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from confab.bot.llm import int4
from confab.bot.llm.casting import cast_weights
from confab.bot.llm.packed_store import PackedStore

log = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
# 4-bit decoder weights with bfloat16 activations (confab.bot.llm.int4); last among
# the candidates, since packing replaces the dense weights the others need.
INT4 = "int4"
ATTENTION = ("sdpa", "eager")
CHOICES_FILE = "compute-choices.json"
PROBE = "engine probe 3"  # part of each remembered choice's key: a new probe measures again
# Leaving the default (float32, sdpa) costs precision or RAM, so it must win clearly.
REQUIRED_GAIN = 0.9


def pick_model(
    load: Callable[[torch.dtype], Any],
    tokenizer: Any,
    dtype: str,
    attention: str,
    cache_dir: Path,
    model_key: str,
    progress: Callable[[str], None] | None = None,
    store: PackedStore | None = None,
) -> Any:
    """The model ``load`` gives in a dtype, with the dtype and attention kernel
    asked for, or, for ``"auto"``, those that measure fastest here.

    A known choice loads straight in its dtype. A probe tries the candidates on
    one copy, float32 first, then converted in place to bfloat16 (a second copy
    would raise the start's peak RAM), then packed to 4 bits (``int4``, last: it
    replaces the dense weights); if float32 or bfloat16 wins after that, the
    model is loaded again in it. With a ``store``, a packed model is read from it
    when it holds one, and kept in it when it did not.
    """
    auto = [*DTYPES, *([INT4] if int4.supported() else [])]
    dtypes = auto if dtype == "auto" else [dtype]
    kernels = list(ATTENTION) if attention == "auto" else [attention]
    candidates = [(d, k) for d in dtypes for k in kernels]
    if len(candidates) == 1:
        return _served(load, store, *candidates[0])
    key = "|".join(
        [PROBE, model_key, f"torch {torch.__version__}", _cpu()]
        + [f"threads {torch.get_num_threads()}"]
        + [f"{d}/{k}" for d, k in candidates]
    )
    choices = _read(cache_dir / CHOICES_FILE)
    remembered = tuple(choices.get(key, "").split("/"))
    if remembered in candidates:
        return _served(load, store, remembered[0], remembered[1])
    model = load(torch.float32)
    if progress:
        progress("Measuring which compute settings are fastest here (first start only)...")
    if not int4.packable(model):
        candidates = [c for c in candidates if c[0] != INT4]
    timings = {
        candidate: _seconds(_configured(model, *candidate), tokenizer) for candidate in candidates
    }
    default = candidates[0]
    best = min(timings, key=lambda c: timings[c])
    chosen = best if timings[best] < timings[default] * REQUIRED_GAIN else default
    log.info(
        "compute probe: %s; using %s",
        ", ".join(f"{d}/{k} {t:.2f} s" for (d, k), t in timings.items()),
        "/".join(chosen),
    )
    choices[key] = "/".join(chosen)
    _write(cache_dir / CHOICES_FILE, choices)
    # bfloat16 lost float32's precision, and packing lost the dense weights.
    lossy = int4.is_packed(model) or (chosen[0] == "float32" and model.dtype != torch.float32)
    if chosen[0] != INT4 and lossy:
        del model
        model = load(DTYPES[chosen[0]])
    return _kept(store, _configured(model, *chosen))


def _served(
    load: Callable[[torch.dtype], Any], store: PackedStore | None, dtype: str, attention: str
) -> Any:
    """The model in a known dtype; a packed one from ``store`` when it holds one."""
    if dtype == INT4 and store is not None:
        model = store.load()
        if model is not None:
            model.set_attn_implementation(attention)
            return model
    return _kept(store, _configured(load(_load_dtype(dtype)), dtype, attention))


def _kept(store: PackedStore | None, model: Any) -> Any:
    """``model``, its state kept in ``store`` when it was packed."""
    if store is not None and int4.is_packed(model):
        store.save(model)
    return model


def _load_dtype(dtype: str) -> torch.dtype:
    """What to load weights in for ``dtype``: 4-bit weights are packed from bfloat16."""
    return torch.bfloat16 if dtype == INT4 else DTYPES[dtype]


def _configured(model: Any, dtype: str, attention: str) -> Any:
    if dtype == INT4:
        if not int4.packable(model) and not int4.is_packed(model):
            log.warning("model.dtype = int4: nothing of this model packs here; bfloat16 instead")
        if not int4.is_packed(model):
            int4.pack_decoder(model)
    else:
        model = cast_weights(model, DTYPES[dtype])
    model.set_attn_implementation(attention)
    return model


def _seconds(model: Any, tokenizer: Any) -> float:
    """The engine answering one person, then four prompts of mixed lengths at once,
    after a warm-up.

    A synthetic forward pass misleads: which attention kernel wins depends on
    the left padding and cache lengths of a real batch, and on decoding more
    than on prefill. Most of the time one person is asking, and 4-bit weights
    win most there, so the lone answer counts as much as the batch. Kept short
    (about 0.5 s a candidate on a quiet 2-core machine; 2.5 s before): the first
    start waits for it.
    """
    from confab.bot.llm.backend import GenerationParams
    from confab.bot.llm.engine import BatchEngine, Request

    engine = BatchEngine(model, tokenizer, window=4096, max_batch_size=8, max_queue=8)
    generator = torch.Generator().manual_seed(0)

    def requests(lengths: tuple[int, ...], new_tokens: int) -> list[Request]:
        params = GenerationParams(max_new_tokens=new_tokens, temperature=0, repetition_penalty=1)
        return [
            Request(torch.randint(100, 10_000, (n,), generator=generator).tolist(), params, _drop)
            for n in lengths
        ]

    engine.run_here(requests((8, 16), 2))  # first calls pay for kernel set-up
    lone, batch = requests((24,), 16), requests((16, 48, 96, 160), 8)
    start = time.perf_counter()
    engine.run_here(lone)
    alone = time.perf_counter() - start
    start = time.perf_counter()
    engine.run_here(batch)
    return alone + time.perf_counter() - start


def _drop(item: object) -> None:
    """Where a probe's answers go."""


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _read(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def _write(path: Path, choices: dict[str, str]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        staging = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        staging.write_text(json.dumps(choices, indent=1))
        staging.replace(path)
    except OSError as error:
        log.warning("could not remember the dtype choice in %s: %s", path, error)
