"""What ``confab model list|show`` says about a model, read from its files without
loading its weights: parameter count, stored dtype, creation time, stored scores.

safetensors and GGUF files begin with a header that lists every tensor's shape
and type, so counting parameters takes milliseconds for a folder and about a
second for the bundled GGUF file.
"""

from __future__ import annotations

import json
import logging
import struct
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from confab.bot.lab.eval_store import RecordedRun, recorded
from confab.bot.lab.evaluate import EvaluationError
from confab.bot.llm.registry import ModelEntry, lora_metadata

log = logging.getLogger(__name__)
HEADER_LIMIT = 100 * 2**20  # a safetensors header larger than this is not one


@dataclass(frozen=True, slots=True)
class ModelFacts:
    """One model as the registry describes it; ``None`` where a file could not tell."""

    entry: ModelEntry
    parameters: int | None
    dtype: str | None
    created_at: datetime | None
    base: str | None  # LoRAs: the model they were trained from
    trainable: int | None  # LoRAs: their own weights
    training: dict[str, Any]  # LoRAs: what `confab model finetune` recorded
    evaluations: list[RecordedRun]
    problem: str | None = None  # why some facts are missing


def model_facts(entry: ModelEntry) -> ModelFacts:
    """The facts of ``entry``; a file that cannot be read leaves a ``problem``, never raises."""
    problem = None
    try:
        evaluations = recorded(entry.results_file)
    except EvaluationError as error:
        evaluations, problem = [], error.user_message
    if entry.kind == "lora":
        return _lora_facts(entry, evaluations, problem)
    parameters = dtype = None
    try:
        if entry.kind == "packaged" and not entry.path.exists():
            problem = "assembled from its packages when it is first used"
        elif entry.kind in ("gguf", "bundled", "packaged"):
            parameters, dtype = gguf_summary(entry.path)
        elif entry.kind == "folder":
            parameters, dtype = safetensors_summary(entry.path)
    except Exception as error:  # a damaged file is a fact to show, not a crash
        log.warning("could not read the tensors of %s: %r", entry.path, error)
        problem = f"its weights could not be read ({error})"
    if entry.kind == "missing":
        problem = f"{entry.path} is neither a model folder, a .gguf file nor a LoRA folder"
    return ModelFacts(
        entry, parameters, dtype, _modified(entry.path), None, None, {}, evaluations, problem
    )


def _lora_facts(
    entry: ModelEntry, evaluations: list[RecordedRun], problem: str | None
) -> ModelFacts:
    metadata = lora_metadata(entry)
    counts = metadata.get("parameters")
    counts = counts if isinstance(counts, dict) else {}
    created = metadata.get("created_at")
    try:
        created_at = datetime.fromisoformat(created) if isinstance(created, str) else None
    except ValueError:
        created_at = None
    return ModelFacts(
        entry,
        _int(counts.get("total")),
        str(metadata["dtype"]) if "dtype" in metadata else None,
        created_at or _modified(entry.path),
        str(metadata["base"]) if "base" in metadata else None,
        _int(counts.get("trainable")),
        metadata,
        evaluations,
        problem if metadata else "its description (confab-adapter.json) could not be read",
    )


def _int(value: object) -> int | None:
    return value if isinstance(value, int) else None


def _modified(path: Path) -> datetime | None:
    try:
        return datetime.fromtimestamp(path.stat().st_mtime, UTC)
    except OSError:
        return None


def safetensors_summary(folder: Path) -> tuple[int, str]:
    """Parameters and most common dtype of every ``*.safetensors`` file in ``folder``."""
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise ValueError("no .safetensors file")
    total, dtypes = 0, Counter[str]()
    for file in files:
        for name, tensor in _safetensors_header(file).items():
            if name == "__metadata__":
                continue
            count = 1
            for size in tensor["shape"]:
                count *= int(size)
            total += count
            dtypes[_DTYPE_NAMES.get(tensor["dtype"], tensor["dtype"].lower())] += count
    return total, dtypes.most_common(1)[0][0] if dtypes else "unknown"


_DTYPE_NAMES = {"F32": "float32", "F16": "float16", "BF16": "bfloat16", "F64": "float64"}


def _safetensors_header(file: Path) -> dict[str, Any]:
    with file.open("rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        if length > HEADER_LIMIT:
            raise ValueError(f"{file.name} is not a safetensors file")
        header = json.loads(handle.read(length))
    if not isinstance(header, dict):
        raise ValueError(f"{file.name} is not a safetensors file")
    return header


def gguf_summary(file: Path) -> tuple[int, str]:
    """Parameters and most common tensor type (``Q4_1``, ``F16`` …) of a GGUF file."""
    from gguf import GGUFReader

    reader = GGUFReader(str(file))
    types = Counter[str]()
    total = 0
    for tensor in reader.tensors:
        count = int(tensor.n_elements)
        total += count
        types[tensor.tensor_type.name] += count
    return total, types.most_common(1)[0][0] if types else "unknown"
