"""Choosing the compute dtype by measuring both on this machine.

bfloat16 halves the weights' memory and is much faster for batches on CPUs with
native bf16 instructions (AVX512-BF16, AMX), but slower on CPUs without them.
``model.dtype = "auto"`` times a small batched workload in float32 and in
bfloat16 once per machine, model and torch build, and remembers the winner.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import platform
import time
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
CHOICES_FILE = "dtype-choices.json"
# bfloat16 costs precision, so it must win clearly.
REQUIRED_GAIN = 0.9


def pick_model(model: Any, setting: str, cache_dir: Path, model_key: str) -> Any:
    """``model`` (loaded in float32) in the dtype ``setting`` names or that wins here."""
    if setting != "auto":
        return model.to(DTYPES[setting])
    key = f"{model_key}|torch {torch.__version__}|{_cpu()}|threads {torch.get_num_threads()}"
    choices = _read(cache_dir / CHOICES_FILE)
    if key in choices and choices[key] in DTYPES:
        return model.to(DTYPES[choices[key]])
    fp32 = _seconds(model)
    candidate = copy.deepcopy(model).to(torch.bfloat16)
    bf16 = _seconds(candidate)
    chosen = "bfloat16" if bf16 < fp32 * REQUIRED_GAIN else "float32"
    log.info("dtype probe: float32 %.3f s, bfloat16 %.3f s: using %s", fp32, bf16, chosen)
    choices[key] = chosen
    _write(cache_dir / CHOICES_FILE, choices)
    if chosen == "bfloat16":
        return candidate
    del candidate
    return model


def _seconds(model: Any) -> float:
    """Best of three: one batched prefill and a few decoding steps at batch 8."""
    from transformers import DynamicCache

    best = float("inf")
    with torch.inference_mode():
        for _ in range(3):
            ids = torch.randint(100, 1000, (8, 64))
            cache = DynamicCache(config=model.config)
            start = time.perf_counter()
            out = model(input_ids=ids, cache=cache, use_cache=True, logits_to_keep=1)
            for _ in range(6):
                out = model(input_ids=out.logits[:, -1:].argmax(-1), cache=cache, use_cache=True)
            best = min(best, time.perf_counter() - start)
    return best


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
