"""Where model weights are found and how the conversion cache is kept tidy."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from confab.bot.errors import ModelError
from confab.bot.llm.weights import (
    COMPLETE_MARKER,
    bundled_model_path,
    conversion_folder,
    parsed_once,
    prune_conversions,
    resolve_model_path,
)


def test_the_bundled_model_is_found_without_importing_its_package() -> None:
    path = bundled_model_path()
    assert path.suffix == ".gguf" and path.stat().st_size > 50_000_000
    assert resolve_model_path("") == path


def test_a_configured_path_must_be_a_model_folder_or_gguf(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    assert resolve_model_path(str(tmp_path)) == tmp_path
    with pytest.raises(ModelError) as caught:
        resolve_model_path(str(tmp_path / "nothing-here"))
    assert "could not be found" in caught.value.user_message


def test_a_changed_file_gets_a_new_folder_and_the_old_one_is_pruned(tmp_path: Path) -> None:
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"v1")
    cache = tmp_path / "cache"
    old = conversion_folder(gguf, cache)
    old.mkdir(parents=True)
    (old / COMPLETE_MARKER).write_text(str(gguf.resolve()))
    other_model = cache / "models" / "other-123"
    other_model.mkdir()
    (other_model / COMPLETE_MARKER).write_text("/elsewhere/other.gguf")
    dead_staging = cache / "models" / ".converting-abc"
    dead_staging.mkdir()
    hour_ago = time.time() - 4000
    os.utime(dead_staging, (hour_ago, hour_ago))
    live_staging = cache / "models" / ".converting-def"
    live_staging.mkdir()

    gguf.write_bytes(b"version two")  # a reinstall: new size and mtime
    new = conversion_folder(gguf, cache)
    assert new != old
    new.mkdir()
    assert sorted(prune_conversions(new, gguf)) == sorted([old, dead_staging])
    assert new.exists() and other_model.exists() and live_staging.exists()


def test_a_conversion_parses_the_gguf_file_once_and_puts_gguf_py_back() -> None:
    import gguf

    original_reader, original_map = gguf.GGUFReader, gguf.get_tensor_name_map
    path = bundled_model_path()
    with parsed_once():
        first, again = gguf.GGUFReader(path), gguf.GGUFReader(str(path))
        assert first is again and isinstance(first, original_reader)
        arch = gguf.MODEL_ARCH.LLAMA
        assert gguf.get_tensor_name_map(arch, 30) is gguf.get_tensor_name_map(arch, 30)
    assert gguf.GGUFReader is original_reader and gguf.get_tensor_name_map is original_map
    assert gguf.GGUFReader(path) is not first
