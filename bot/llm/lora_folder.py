"""What lies in a LoRA's folder, and how a base model is named and found.

``OUT/adapter_config.json`` and ``OUT/adapter_model.safetensors`` are a peft
LoRA; ``OUT/confab-adapter.json`` says what it was trained from (base model,
data and its digest, steps, parameters) and is written last, so its presence
means the LoRA beside it is whole. ``OUT/checkpoints`` holds what a re-run
resumes from (:mod:`confab.bot.lab.lora_checkpoints`). The file names are peft's
and those of folders already written, so they still say "adapter".
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
from confab.bot.llm.weights import bundled_model_path, loadable_folder
from confab.bot.paths import cache_dir as default_cache_dir

log = logging.getLogger(__name__)

BUNDLED = "bundled"
METADATA_FILE = "confab-adapter.json"
RESULTS_FILE = "confab-eval.json"  # its stored evaluations (confab.bot.lab.eval_store)
LORA_FILES = ("adapter_config.json", "adapter_model.safetensors")


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


def write_lora(model: Any, out: Path, description: dict[str, Any]) -> None:
    """Save the peft LoRA of ``model`` into ``out`` with ``description`` (plus the
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
        # The description last: its presence says the LoRA beside it is whole.
        for name in [*LORA_FILES, METADATA_FILE]:
            (staging / name).replace(out / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def lora_base(lora_dir: Path) -> str:
    """The base model a LoRA was trained from (``bundled`` or a path)."""
    if not is_lora(lora_dir):
        raise FinetuneError(f"{lora_dir} holds no fine-tuned LoRA.")
    return str(json.loads((lora_dir / METADATA_FILE).read_text())["base"])


def merged_model(lora_dir: Path, base_dir: Path, dtype: Any = None) -> Any:
    """The base model in ``base_dir`` with the LoRA merged into its weights, in
    ``dtype`` (float32 by default). Merged, it runs exactly as fast as its base."""
    import torch
    from peft import PeftModel

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        merged = PeftModel.from_pretrained(_float32(base_dir), str(lora_dir)).merge_and_unload()
    if dtype is not None and dtype != torch.float32:
        merged = merged.to(dtype)  # merged in float32 first, so rounding happens once
    return merged.eval()


def load_finetuned(
    lora_dir: Path, cache_dir: Path | None = None, threads: int = 0
) -> tuple[Any, Any]:
    """The base model with the LoRA merged into it (float32), and its tokenizer."""
    lora_base(lora_dir)  # says so when the folder holds no LoRA
    return load_model(str(lora_dir), cache_dir, threads)


def is_lora(path: Path) -> bool:
    """Whether ``path`` is a folder that ``confab model finetune`` wrote."""
    return (path / METADATA_FILE).is_file() and all((path / f).is_file() for f in LORA_FILES)


def load_model(name: str, cache_dir: Path | None = None, threads: int = 0) -> tuple[Any, Any]:
    """Any model by the name ``confab model`` commands take, in float32 (as it is trained
    on the CPU), and its tokenizer: ``bundled``, a model folder or GGUF file, or a
    fine-tuned LoRA folder (merged into its base). ``cache_dir`` defaults to Confab's
    cache folder."""
    path = Path(name).expanduser()
    lora = path if is_lora(path) else None
    base = lora_base(lora) if lora is not None else name
    cache = (cache_dir or default_cache_dir()).expanduser()
    folder = base_folder(base, cache, lambda text: log.info("%s", text))
    import torch
    from transformers import AutoTokenizer

    if threads:
        torch.set_num_threads(threads)
    tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    model = merged_model(lora, folder) if lora is not None else _float32(folder).eval()
    return model, tokenizer


def _float32(folder: Path) -> Any:
    import torch
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(
        str(folder), local_files_only=True, dtype=torch.float32
    )
