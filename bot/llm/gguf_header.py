"""A GGUF file's metadata, read from its first bytes: what model it is, and whether the
local engine can serve it, before anything is converted.

transformers de-quantises a whole GGUF file before it looks at what it holds;
for a model the engine cannot serve (Gemma 3: sliding-window attention) that
was a long conversion and a large cache folder for nothing. The metadata comes
first in the file, so reading it costs next to nothing.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import BinaryIO

from confab.bot.errors import ModelError

MAGIC = b"GGUF"
# Decoder architectures with full attention that transformers loads from GGUF.
SERVABLE = frozenset({"llama", "mistral", "qwen2", "qwen3", "phi3", "stablelm", "starcoder2"})
SLIDING_WINDOW = frozenset({"gemma2", "gemma3", "gemma3n", "gemma4", "cohere2"})
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?",
            10: "<Q", 11: "<q", 12: "<d"}  # fmt: skip
_STRING, _ARRAY = 8, 9
MAX_STRING = 1 << 24


class GGUFError(ModelError):
    """A file that is not a readable GGUF file."""


def _read(stream: BinaryIO, size: int) -> bytes:
    data = stream.read(size)
    if len(data) != size:
        raise GGUFError("The model file is damaged.", "the GGUF header ends early")
    return data


def _string(stream: BinaryIO) -> str:
    (length,) = struct.unpack("<Q", _read(stream, 8))
    if length > MAX_STRING:
        raise GGUFError("The model file is damaged.", f"a GGUF string of {length} bytes")
    return _read(stream, length).decode("utf-8", "replace")


def _value(stream: BinaryIO, kind: int, keep: bool) -> object:
    if kind in _SCALARS:
        fmt = _SCALARS[kind]
        return struct.unpack(fmt, _read(stream, struct.calcsize(fmt)))[0]
    if kind == _STRING:
        return _string(stream)
    if kind == _ARRAY:
        item_kind, count = struct.unpack("<IQ", _read(stream, 12))
        if item_kind in _SCALARS and not keep:  # skip a long token table at once
            stream.seek(struct.calcsize(_SCALARS[item_kind]) * count, 1)
            return None
        items = [_value(stream, item_kind, keep) for _ in range(count)]
        return items if keep else None
    raise GGUFError("The model file is damaged.", f"unknown GGUF value type {kind}")


def gguf_metadata(path: Path, wanted: frozenset[str] | None = None) -> dict[str, object]:
    """The metadata keys of a GGUF file (only ``wanted`` ones, when given), without its
    tensors. Raises :class:`GGUFError` for a file that is not GGUF."""
    found: dict[str, object] = {}
    with path.open("rb") as stream:
        if _read(stream, 4) != MAGIC:
            raise GGUFError("The model file is not a GGUF file.", f"{path}: no GGUF magic")
        version, _tensors, count = struct.unpack("<IQQ", _read(stream, 20))
        if version < 2:
            raise GGUFError("The model file is too old a GGUF.", f"{path}: GGUF v{version}")
        for _ in range(count):
            key = _string(stream)
            (kind,) = struct.unpack("<I", _read(stream, 4))
            keep = wanted is None or key in wanted
            value = _value(stream, kind, keep and not key.startswith("tokenizer.ggml."))
            if keep:
                found[key] = value
            if wanted is not None and wanted <= found.keys():
                break
    return found


def describe(path: Path) -> dict[str, str]:
    """Architecture, name, size label and licence a GGUF file states (those it has)."""
    keys = ("general.architecture", "general.name", "general.size_label", "general.license")
    metadata = gguf_metadata(path, frozenset(keys))
    return {key.removeprefix("general."): str(metadata[key]) for key in keys if key in metadata}


def check_servable(path: Path) -> str:
    """The file's architecture when the local engine can serve it; else a ModelError
    saying why, raised before any conversion."""
    architecture = describe(path).get("architecture", "")
    if architecture in SERVABLE:
        return architecture
    if architecture in SLIDING_WINDOW:
        reason = "uses sliding-window attention, which the local batching engine cannot serve"
    else:
        reason = "is not an architecture the local engine serves"
    raise ModelError(
        f"This model ({architecture or 'unknown architecture'}) cannot be served locally; "
        "serve it with the OpenAI-compatible backend instead.",
        f"{path}: architecture {architecture!r} {reason} (servable: {', '.join(sorted(SERVABLE))})",
    )
