"""Checkpoints of a LoRA fine-tune, so that a stopped run resumes where it was.

One checkpoint is a folder ``checkpoints/step-NNNNNN`` holding the LoRA's
weights, the optimizer's state, the random generators' state and a small JSON
record (step, base model, training file digest, LoRA shape, recent losses). It
is written beside its final name and renamed into place, so a checkpoint that
exists is complete; the two newest are kept.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from confab.bot.errors import FinetuneError
from confab.bot.llm.lora_folder import LORA_FILES, METADATA_FILE

CHECKPOINTS = "checkpoints"
STATE_FILE = "state.json"
WEIGHTS_FILE = "adapter.safetensors"
TRAINING_FILE = "training.pt"
KEPT = 2


@dataclass(frozen=True, slots=True)
class CheckpointState:
    """What a checkpoint says about the run that wrote it."""

    step: int
    base: str
    train_sha256: str
    rank: int
    alpha: int
    targets: tuple[str, ...]
    losses: tuple[float, ...]
    seconds: float

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CheckpointState:
        return cls(
            step=int(data["step"]),
            base=str(data["base"]),
            train_sha256=str(data["train_sha256"]),
            rank=int(data["rank"]),
            alpha=int(data["alpha"]),
            targets=tuple(str(t) for t in data["targets"]),
            losses=tuple(float(x) for x in data["losses"]),
            seconds=float(data["seconds"]),
        )


def checkpoint_folder(out: Path, step: int) -> Path:
    return out / CHECKPOINTS / f"step-{step:06d}"


def latest_checkpoint(out: Path) -> tuple[Path, CheckpointState] | None:
    """The newest complete checkpoint under ``out``, if any (unreadable ones are passed over)."""
    root = out / CHECKPOINTS
    if not root.is_dir():
        return None
    for folder in sorted(root.glob("step-*"), reverse=True):
        try:
            state = CheckpointState.from_json(json.loads((folder / STATE_FILE).read_text()))
        except (OSError, ValueError, KeyError, TypeError):
            continue
        return folder, state
    return None


def save_checkpoint(out: Path, state: CheckpointState, model: Any, optimizer: Any) -> Path:
    """Write the checkpoint of ``state.step`` and delete all but the newest :data:`KEPT`."""
    import torch
    from peft import get_peft_model_state_dict
    from safetensors.torch import save_file

    target = checkpoint_folder(out, state.step)
    staging = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        weights = {k: v.detach().contiguous() for k, v in get_peft_model_state_dict(model).items()}
        save_file(weights, str(staging / WEIGHTS_FILE))
        # The data order follows from the step alone; dropout draws from torch's generator.
        training = {"optimizer": optimizer.state_dict(), "torch_rng": torch.get_rng_state()}
        torch.save(training, staging / TRAINING_FILE)
        record = asdict(state)
        record["targets"] = list(state.targets)
        record["losses"] = list(state.losses)
        (staging / STATE_FILE).write_text(json.dumps(record, indent=2) + "\n")
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    for older in sorted((out / CHECKPOINTS).glob("step-*"), reverse=True)[KEPT:]:
        shutil.rmtree(older, ignore_errors=True)
    return target


def restore_checkpoint(folder: Path, model: Any, optimizer: Any) -> None:
    """Load the LoRA weights, optimizer state and torch's generator from ``folder``."""
    import torch
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    set_peft_model_state_dict(model, load_file(str(folder / WEIGHTS_FILE)))
    training = torch.load(folder / TRAINING_FILE, weights_only=True)
    optimizer.load_state_dict(training["optimizer"])
    torch.set_rng_state(training["torch_rng"])


def resume_point(
    out: Path, base: str, digest: str, rank: int, alpha: int
) -> tuple[Path, CheckpointState] | None:
    """The checkpoint in ``out`` to resume from, after checking it belongs to this run
    (the same base model, training data and LoRA shape)."""
    if out.exists() and not out.is_dir():
        raise FinetuneError(f"{out} is a file; the LoRA needs a folder.")
    found = latest_checkpoint(out)
    metadata = out / METADATA_FILE
    if found is None and metadata.is_file():
        earlier = json.loads(metadata.read_text()).get("base")
        if earlier != base:
            raise FinetuneError(
                f"{out} holds a LoRA of another base model ({earlier}); choose a new --out folder."
            )
    if found is None:
        ours = {CHECKPOINTS, METADATA_FILE, *LORA_FILES}
        # Hidden names are this module's and the checkpoints' staging folders.
        foreign = [p for p in out.glob("*") if p.name not in ours] if out.is_dir() else []
        if foreign and not metadata.is_file():
            raise FinetuneError(f"{out} is not empty and holds no LoRA; choose a new folder.")
        return None
    _, state = found
    if state.base != base:
        raise FinetuneError(
            f"{out} holds the checkpoints of a LoRA of another base model ({state.base}); "
            "choose a new --out folder."
        )
    if state.train_sha256 != digest:
        raise FinetuneError(
            f"{out} holds checkpoints trained on another version of the data; "
            "choose a new --out folder (or delete its checkpoints to start over)."
        )
    if (state.rank, state.alpha) != (rank, alpha):
        raise FinetuneError(
            f"{out} holds checkpoints of a rank {state.rank} (alpha {state.alpha}) LoRA; "
            f"resume with --rank {state.rank}, or choose a new --out folder."
        )
    return found
