"""The 4-bit model saved once, so that later starts read it instead of packing again.

Packing starts from the de-quantised weights: the bundled model's float32 copy
is 540 MB, read on every start (and counted in the peak RSS), converted to
bfloat16, then packed (0.8 s on a 2-core machine). Its packed state is 347 MB
(the 4-bit weights, their bfloat16 copy for prompts, the embedding), read in
0.2 to 0.7 s into an empty model of the same shape. The kernel's packed layout belongs
to the torch build, so the file's name carries torch's version; a changed
source (its files' sizes and modification times) names a new file too.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import torch

from confab.bot.llm import int4
from confab.bot.llm.decoder import Decoder

log = logging.getLogger(__name__)

FORMAT = "confab int4 1"  # part of each file's key: a new layout names new files
FOLDER = "packed"


@dataclass(frozen=True, slots=True)
class PackedStore:
    """Where the packed state of one model lives, and the folder with its config."""

    path: Path
    config_folder: Path
    source: str  # the sources' paths: an older file of the same source is replaced

    @classmethod
    def for_model(
        cls, cache_dir: Path, config_folder: Path, sources: Iterable[Path]
    ) -> PackedStore:
        """The store of the model built from the files in ``sources`` (folders or files)."""
        paths = list(sources)
        parts = [FORMAT, f"torch {torch.__version__}", platform.machine()]
        for source in paths:
            files = sorted(source.iterdir()) if source.is_dir() else [source]
            for file in files:
                if file.is_file() and not file.name.startswith("."):
                    stat = file.stat()
                    parts.append(f"{file.resolve()}|{stat.st_size}|{stat.st_mtime_ns}")
        digest = hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]
        origin = "\n".join(str(path.resolve()) for path in paths)
        return cls(cache_dir / FOLDER / f"{digest}.safetensors", config_folder, origin)

    def load(self) -> Any | None:
        """The saved packed model, or ``None`` when there is none or it cannot be read."""
        if not self.path.is_file():
            return None
        model = self._empty_model()
        try:
            model.load_state_dict(_read(self.path), strict=True, assign=True)
        except (OSError, RuntimeError, ValueError, KeyError, TypeError) as error:
            reason = (str(error).strip().splitlines() or [repr(error)])[0][:200]
            log.warning(
                "the kept 4-bit model %s is unusable (%s); packing again", self.path, reason
            )
            return None
        # The decoder read its generation settings; transformers' model gets its own.
        if (
            not isinstance(model, Decoder)
            and (generation := _generation_config(self.config_folder)) is not None
        ):
            model.generation_config = generation
        return int4.tie_head(model).eval()

    def _empty_model(self) -> Any:
        """A packed model of the folder's shape with nothing in its weights: confab's own
        decoder where it computes this model, else transformers' model."""
        model = Decoder.for_folder(self.config_folder)
        if model is None:
            from accelerate import init_empty_weights
            from transformers import AutoConfig, AutoModelForCausalLM

            settings = AutoConfig.from_pretrained(str(self.config_folder), local_files_only=True)
            # Parameters on the meta device (no memory, no initialisation); buffers such
            # as the rotary frequencies, which no saved state holds, computed as usual.
            with init_empty_weights(include_buffers=False):
                model = AutoModelForCausalLM.from_config(settings, dtype=torch.bfloat16)
        return int4.empty_packed(model)

    def save(self, model: Any) -> None:
        """Keep ``model``'s packed state for the next start; a failure only costs that start."""
        from safetensors.torch import save_file

        staging = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            state = {name: tensor.contiguous() for name, tensor in model.state_dict().items()}
            save_file(state, str(staging), metadata={"source": self.source})
            staging.replace(self.path)
        except OSError as error:
            staging.unlink(missing_ok=True)
            log.warning("could not keep the 4-bit model in %s: %s", self.path, error)
            return
        log.info("kept the 4-bit model in %s", self.path)
        for older in self.path.parent.glob("*.safetensors"):
            if older != self.path and _source(older) == self.source:
                older.unlink(missing_ok=True)  # an older torch or a changed model file
                log.info("removed the stale 4-bit model %s", older)


# safetensors' dtype names, for the ones a packed model holds.
_DTYPES = {
    "BF16": torch.bfloat16,
    "F16": torch.float16,
    "F32": torch.float32,
    "U8": torch.uint8,
    "I8": torch.int8,
    "I32": torch.int32,
    "I64": torch.int64,
}


def _read(path: Path) -> dict[str, torch.Tensor]:
    """The tensors saved at ``path``, read straight into memory torch allocated.

    safetensors' own loader hands out views into its file mapping, 16-byte
    aligned. Served from such views, the 8-bit output layer's kernel crashed the
    process (SIGSEGV) in 4 of about 10 starts here, each while another thread
    was converting the code model's GGUF file; with copies, none of the next 10
    did. Copying out of the mapping held the file's pages and the copies at once
    (a 1058 MiB peak for the bundled model, 711 MiB after); reading each tensor
    into its own buffer holds one copy. The format: an 8-byte little-endian
    header length, a JSON header naming each tensor's dtype, shape and byte
    range, then the bytes.
    """
    with path.open("rb") as file:
        header = _header(file)
        start = file.tell()
        tensors = {}
        for name, entry in header.items():
            if name == "__metadata__":
                continue
            begin, end = entry["data_offsets"]
            tensor = torch.empty(entry["shape"], dtype=_DTYPES[entry["dtype"]])
            length = tensor.numel() * tensor.element_size()
            if length != end - begin:
                raise ValueError(f"{name}: {end - begin} bytes for a tensor of {length}")
            file.seek(start + begin)
            # The tensor's own bytes, written in place (numpy's stubs lack the buffer type).
            target = tensor.view(-1).view(torch.uint8).numpy()
            if length and file.readinto(target) != length:  # type: ignore[arg-type]
                raise OSError(f"{name}: {length} bytes expected, the file is cut short")
            tensors[name] = tensor
    return tensors


def _header(file: BinaryIO) -> dict[str, Any]:
    """The JSON header at the start of an open safetensors file, leaving the file
    at the first tensor's bytes."""
    size = int.from_bytes(file.read(8), "little")
    header = json.loads(file.read(size))
    if not isinstance(header, dict):
        raise ValueError("the header is not a table of tensors")
    return header


def _generation_config(folder: Path) -> Any | None:
    """The folder's generation config; ``None`` without generation_config.json (the
    model config's defaults stay)."""
    from transformers import GenerationConfig

    try:
        return GenerationConfig.from_pretrained(str(folder), local_files_only=True)
    except OSError:
        return None


def _source(path: Path) -> str | None:
    """The sources a saved file was packed from (its header only is read)."""
    try:
        with path.open("rb") as file:
            metadata = _header(file).get("__metadata__") or {}
    except (OSError, ValueError):
        return None
    return metadata.get("source") if isinstance(metadata, dict) else None
