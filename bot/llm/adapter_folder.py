"""What lies in a fine-tuned adapter's folder, and how a base model is named and found.

``OUT/adapter_config.json`` and ``OUT/adapter_model.safetensors`` are a peft
adapter; ``OUT/confab-adapter.json`` says what it was trained from (base model,
data and its digest, steps, parameters) and is written last, so its presence
means the adapter beside it is whole. ``OUT/checkpoints`` holds what a re-run
resumes from (:mod:`confab.bot.llm.lora_checkpoints`).
"""

from __future__ import annotations

import json
import logging
import shutil
import time
import warnings
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from confab.bot.errors import ConfabError, FinetuneError
from confab.bot.llm.lora_checkpoints import CHECKPOINTS, CheckpointState, latest_checkpoint
from confab.bot.llm.weights import bundled_model_path, loadable_folder

log = logging.getLogger(__name__)

BUNDLED = "bundled"
METADATA_FILE = "confab-adapter.json"
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
DEFAULT_CACHE_DIR = Path("~/.cache/confab")


def base_identity(base: str) -> str:
    """How a base model is named in checkpoints and metadata: ``bundled`` or an absolute path."""
    if base in ("", BUNDLED):
        return BUNDLED
    return str(Path(base).expanduser().resolve())


def base_source(base: str) -> Path:
    """The GGUF file or model folder ``base`` names, or :class:`FinetuneError`."""
    if base_identity(base) == BUNDLED:
        try:
            return bundled_model_path()
        except ConfabError as error:
            raise FinetuneError(error.user_message, str(error)) from None
    source = Path(base).expanduser()
    if (source.is_dir() and (source / "config.json").is_file()) or (
        source.is_file() and source.suffix == ".gguf"
    ):
        return source
    raise FinetuneError(
        f"The base model {base} was not found: give 'bundled', a model folder "
        "with config.json, or a .gguf file."
    )


def base_folder(base: str, cache_dir: Path, note: Callable[[str], None]) -> Path:
    """A folder ``from_pretrained`` reads for ``base`` (a GGUF file is converted once)."""
    source = base_source(base)
    try:
        return loadable_folder(source, cache_dir, note)
    except ConfabError as error:
        raise FinetuneError(error.user_message, str(error)) from None


def resume_point(
    out: Path, base: str, digest: str, rank: int, alpha: int
) -> tuple[Path, CheckpointState] | None:
    """The checkpoint in ``out`` to resume from, after checking it belongs to this run
    (the same base model, training data and LoRA shape)."""
    if out.exists() and not out.is_dir():
        raise FinetuneError(f"{out} is a file; the adapter needs a folder.")
    found = latest_checkpoint(out)
    metadata = out / METADATA_FILE
    if found is None and metadata.is_file():
        earlier = json.loads(metadata.read_text()).get("base")
        if earlier != base:
            raise FinetuneError(
                f"{out} holds an adapter of another base model ({earlier}); "
                "choose a new --out folder."
            )
    if found is None:
        ours = {CHECKPOINTS, METADATA_FILE, *ADAPTER_FILES}
        # Hidden names are this module's and the checkpoints' staging folders.
        foreign = [p for p in out.glob("*") if p.name not in ours] if out.is_dir() else []
        if foreign and not metadata.is_file():
            raise FinetuneError(f"{out} is not empty and holds no adapter; choose a new folder.")
        return None
    _, state = found
    if state.base != base:
        raise FinetuneError(
            f"{out} holds the checkpoints of an adapter of another base model ({state.base}); "
            "choose a new --out folder."
        )
    if state.train_sha256 != digest:
        raise FinetuneError(
            f"{out} holds checkpoints trained on another version of the data; "
            "choose a new --out folder (or delete its checkpoints to start over)."
        )
    if (state.rank, state.alpha) != (rank, alpha):
        raise FinetuneError(
            f"{out} holds checkpoints of a rank {state.rank} (alpha {state.alpha}) adapter; "
            f"resume with --rank {state.rank}, or choose a new --out folder."
        )
    return found


def write_adapter(model: Any, out: Path, description: dict[str, Any]) -> None:
    """Save the peft adapter of ``model`` into ``out`` with ``description`` (plus the
    creation time and parameter counts) as :data:`METADATA_FILE`, replacing an older one whole."""
    staging = out / f".adapter-{time.time_ns()}.tmp"
    try:
        model.save_pretrained(str(staging))
        (staging / "README.md").unlink(missing_ok=True)  # peft's empty model card
        total = sum(p.numel() for p in model.parameters())
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        metadata = {
            **description,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "parameters": {"total": total, "trainable": trainable},
        }
        (staging / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n")
        # The description last: its presence says the adapter beside it is whole.
        for name in [*ADAPTER_FILES, METADATA_FILE]:
            (staging / name).replace(out / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def adapter_base(adapter_dir: Path) -> str:
    """The base model an adapter was trained from (``bundled`` or a path)."""
    if not is_adapter(adapter_dir):
        raise FinetuneError(f"{adapter_dir} holds no fine-tuned adapter.")
    return str(json.loads((adapter_dir / METADATA_FILE).read_text())["base"])


def merged_model(adapter_dir: Path, base_dir: Path, dtype: Any = None) -> Any:
    """The base model in ``base_dir`` with the adapter merged into its weights, in
    ``dtype`` (float32 by default). Merged, it runs exactly as fast as its base."""
    import torch
    from peft import PeftModel

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        merged = PeftModel.from_pretrained(_float32(base_dir), str(adapter_dir)).merge_and_unload()
    if dtype is not None and dtype != torch.float32:
        merged = merged.to(dtype)  # merged in float32 first, so rounding happens once
    return merged.eval()


def load_finetuned(
    adapter_dir: Path, cache_dir: Path = DEFAULT_CACHE_DIR, threads: int = 0
) -> tuple[Any, Any]:
    """The base model with the adapter merged into it (float32), and its tokenizer."""
    adapter_base(adapter_dir)  # says so when the folder holds no adapter
    return load_model(str(adapter_dir), cache_dir, threads)


def is_adapter(path: Path) -> bool:
    """Whether ``path`` is a folder that ``confab model finetune`` wrote."""
    return (path / METADATA_FILE).is_file() and all((path / f).is_file() for f in ADAPTER_FILES)


def load_model(name: str, cache_dir: Path = DEFAULT_CACHE_DIR, threads: int = 0) -> tuple[Any, Any]:
    """Any model by the name ``confab model`` commands take, in float32 (as it is trained
    on the CPU), and its tokenizer: ``bundled``, a model folder or GGUF file, or a
    fine-tuned adapter folder (merged into its base)."""
    path = Path(name).expanduser()
    adapter = path if is_adapter(path) else None
    base = adapter_base(adapter) if adapter is not None else name
    folder = base_folder(base, cache_dir.expanduser(), lambda text: log.info("%s", text))
    import torch
    from transformers import AutoTokenizer

    if threads:
        torch.set_num_threads(threads)
    tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    model = merged_model(adapter, folder) if adapter is not None else _float32(folder).eval()
    return model, tokenizer


def _float32(folder: Path) -> Any:
    import torch
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(
        str(folder), local_files_only=True, dtype=torch.float32
    )
