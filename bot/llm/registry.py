"""The models Confab knows by name: the bundled one, those named in ``[models]``, and
every fine-tuned LoRA in ``model.loras_dir``.

``confab model list|show|use|eval|finetune`` and the serving pool find models
here. A name is looked up first; anything else is taken as a path (a model
folder, a ``.gguf`` file or a LoRA folder), so every command also works on
a model that was never named.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from confab.bot.errors import ConfabError
from confab.bot.llm.config import MODEL_NAME as NAME_PATTERN
from confab.bot.llm.config import ModelConfig
from confab.bot.llm.lora_folder import BUNDLED, METADATA_FILE, RESULTS_FILE, is_lora
from confab.bot.llm.packaged import PACKAGED, installed, location
from confab.bot.llm.weights import bundled_model_path
from confab.bot.paths import cache_dir as default_cache_dir

Kind = Literal["bundled", "packaged", "gguf", "folder", "lora", "missing"]
EVALUATIONS = ".evaluations"  # in loras_dir: stored scores of models that are not LoRAs


class ConfiguredModels(Protocol):
    """What :meth:`ModelRegistry.from_config` reads of the whole config
    (:class:`confab.bot.config.Config`), which the model package does not import."""

    @property
    def model(self) -> ModelConfig: ...

    @property
    def models(self) -> Mapping[str, str]: ...


class RegistryError(ConfabError):
    """A model name or path that names no model; the message says what is known."""


@dataclass(frozen=True, slots=True)
class ModelEntry:
    """One model by the name commands and choices use.

    ``path`` is the GGUF file, model folder or LoRA folder; ``results_file``
    holds its stored evaluations (beside a LoRA, in ``loras_dir`` for the rest).
    """

    name: str
    kind: Kind
    path: Path
    results_file: Path

    @property
    def key(self) -> str:
        """The same for every name of the same model (a name and its path); a LoRA
        trained again in place gets a new one, so a running bot loads the new weights."""
        key = str(self.path.resolve())
        if self.kind == "lora":
            with contextlib.suppress(OSError):
                key += f"@{(self.path / METADATA_FILE).stat().st_mtime_ns}"
        return key


def model_kind(path: Path) -> Kind:
    """What ``path`` holds, as far as serving it goes."""
    if is_lora(path):
        return "lora"
    if path.is_dir() and (path / "config.json").is_file():
        return "folder"
    if path.is_file() and path.suffix == ".gguf":
        return "gguf"
    return "missing"


class ModelRegistry:
    """Finds models by name or path; built from config with :meth:`from_config`."""

    def __init__(
        self, named: Mapping[str, str], loras_dir: Path, cache_dir: Path | None = None
    ) -> None:
        self.named = {name: Path(path).expanduser() for name, path in named.items()}
        self.loras_dir = loras_dir.expanduser()
        # Where models shipped in parts are assembled (see confab.bot.llm.packaged).
        self.cache_dir = (cache_dir or default_cache_dir()).expanduser()

    @classmethod
    def from_config(cls, config: ConfiguredModels) -> ModelRegistry:
        """The registry a config file describes."""
        return cls(config.models, config.model.loras_dir, config.model.cache_dir)

    def _packaged(self) -> dict[str, ModelEntry]:
        """The packaged models that are installed, besides the bundled one."""
        return {
            name: self._entry(name, location(model, self.cache_dir), "packaged")
            for name, model in PACKAGED.items()
            if name != BUNDLED and installed(model)
        }

    def entries(self) -> list[ModelEntry]:
        """Every model: bundled first, then named ones, then LoRAs, each by name.

        A name in ``[models]`` wins over a LoRA folder of the same name.
        """
        found: dict[str, ModelEntry] = {}
        with contextlib.suppress(ConfabError):  # not installed: nothing to list
            found[BUNDLED] = self._entry(BUNDLED, bundled_model_path())
        found.update(self._packaged())
        for name in sorted(self.named):
            found.setdefault(name, self._entry(name, self.named[name]))
        for folder in self._lora_folders():
            found.setdefault(folder.name, self._entry(folder.name, folder))
        return list(found.values())

    def _lora_folders(self) -> list[Path]:
        if not self.loras_dir.is_dir():
            return []
        return sorted(
            p for p in self.loras_dir.iterdir() if not p.name.startswith(".") and is_lora(p)
        )

    def _entry(self, name: str, path: Path, kind: Kind | None = None) -> ModelEntry:
        kind = kind or ("bundled" if name == BUNDLED else model_kind(path))
        if kind == "lora":
            results = path / RESULTS_FILE
        else:
            stored_as = name if NAME_PATTERN.fullmatch(name) else _path_key(path)
            results = self.loras_dir / EVALUATIONS / f"{stored_as}.json"
        return ModelEntry(name, kind, path, results)

    def find(self, name: str) -> ModelEntry:
        """The model called ``name``, or at the path ``name``; :class:`RegistryError` if none."""
        if name in ("", BUNDLED):
            try:
                return self._entry(BUNDLED, bundled_model_path())
            except ConfabError as error:
                raise RegistryError(error.user_message, str(error)) from None
        if name in PACKAGED and name not in self.named:
            packaged = self._packaged().get(name)
            if packaged is None:
                raise RegistryError(
                    f"The model {name} is not installed; install it with: {PACKAGED[name].install}"
                )
            return packaged
        if name in self.named:
            entry = self._entry(name, self.named[name])
            if entry.kind == "missing":
                raise RegistryError(
                    f"The model {name} names {entry.path}, which is neither a model folder "
                    "with config.json, a .gguf file nor a LoRA folder ([models] in the config)."
                )
            return entry
        if NAME_PATTERN.fullmatch(name) and is_lora(self.loras_dir / name):
            return self._entry(name, self.loras_dir / name)
        path = Path(name).expanduser()
        if model_kind(path) != "missing":
            return self._by_path(path)
        known = ", ".join(entry.name for entry in self.entries()) or "none"
        raise RegistryError(
            f"No model is called {name}. Known: {known}; or give a model folder, "
            "a .gguf file or a LoRA folder (`confab model list` shows them all)."
        )

    def configured(self, model: ModelConfig) -> ModelEntry | None:
        """The config's own model: ``model.path`` taken as a path (never a name), as
        the bot loads it; None for a remote model or a path that names no model."""
        if model.backend != "transformers":
            return None
        if not model.path:
            with contextlib.suppress(RegistryError):
                return self.find(BUNDLED)
            return None
        path = Path(model.path).expanduser()
        return self._by_path(path) if model_kind(path) != "missing" else None

    def _by_path(self, path: Path) -> ModelEntry:
        """The model at ``path``: by its name when it has one."""
        resolved = path.resolve()
        unnamed = self._entry(str(resolved), resolved)
        for entry in self.entries():
            if entry.path.resolve() == resolved:
                return entry
        return unnamed

    def lora_folder(self, out: str) -> Path:
        """Where ``confab model finetune --out OUT`` writes: a bare name goes into
        ``loras_dir`` (and joins the registry); anything else (``./NAME`` for a
        folder here) is a path."""
        if NAME_PATTERN.fullmatch(out):
            if out == BUNDLED or out in self.named:
                raise RegistryError(f"{out} already names a model; choose another --out name.")
            return self.loras_dir / out
        return Path(out).expanduser()


def _path_key(path: Path) -> str:
    """A file name for a model known only by its path."""
    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
    return f"path-{path.name or 'model'}-{digest}"


def lora_metadata(entry: ModelEntry) -> dict[str, object]:
    """What ``confab model finetune`` wrote about the LoRA (empty for other models)."""
    if entry.kind != "lora":
        return {}
    try:
        loaded = json.loads((entry.path / METADATA_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}
