"""How much RAM there is, and how much fine-tuning a model will take of it."""

from __future__ import annotations

import json
from pathlib import Path

OVERHEAD = 1 << 30  # the interpreter, torch, the tokenizer and the data


def available_ram() -> int | None:
    """Bytes this process may still allocate: free RAM, or less under a cgroup limit.

    ``None`` where the system does not say (then nothing is checked up front).
    """
    try:
        meminfo = Path("/proc/meminfo").read_text()
    except OSError:
        return None
    free: int | None = None
    for line in meminfo.splitlines():
        if line.startswith("MemAvailable:"):
            free = int(line.split()[1]) * 1024
    if free is None:
        return None
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = int(Path("/sys/fs/cgroup/memory.current").read_text().strip())
    except (OSError, ValueError):
        return free
    if limit.isdigit():
        free = min(free, int(limit) - used)
    return max(free, 0)


def training_ram(folder: Path, batch_size: int, tokens: int) -> int:
    """A generous estimate of the peak bytes of fine-tuning the model in ``folder`` in
    float32 with LoRA, on batches of ``batch_size`` rows of ``tokens`` tokens.

    Weights, plus per token and layer what backpropagation keeps (measured on
    SmolLM2-135M: about 4 bytes x (8 x hidden + 4 x intermediate + heads x tokens)),
    plus three vocabulary-wide float rows per position (logits, their softmax, its
    gradient).
    """
    config = json.loads((folder / "config.json").read_text())
    config = config.get("text_config", config)
    hidden = int(config.get("hidden_size", 0))
    inner = int(config.get("intermediate_size", 4 * hidden))
    layers = int(config.get("num_hidden_layers", 0))
    heads = int(config.get("num_attention_heads", 1))
    vocab = int(config.get("vocab_size", 0))
    stored = sum(f.stat().st_size for f in folder.glob("*.safetensors"))
    # A float16 or bfloat16 checkpoint doubles when it is loaded as float32.
    weights = (
        stored * 2
        if str(config.get("dtype", config.get("torch_dtype")))
        in (
            "float16",
            "bfloat16",
        )
        else stored
    )
    positions = batch_size * tokens
    activations = positions * layers * 4 * (8 * hidden + 4 * inner + heads * tokens)
    logits = positions * vocab * 4 * 3
    return OVERHEAD + weights + activations + logits
