"""LoRA fine-tuning of a local model on CPU: what ``confab model finetune`` runs.

The base model (the bundled SmolLM2 or a local folder or GGUF file) stays
frozen; small low-rank matrices on its attention projections learn from a chat
dataset, with the loss on the assistant's tokens only
(:mod:`confab.bot.lab.assistant_tokens`). A run writes checkpoints into
``OUT/checkpoints`` and resumes from the newest one when started again with the
same ``OUT``; it stops at ``max_steps`` or when its time budget is spent, and
leaves a peft LoRA folder plus ``confab-adapter.json`` describing it.
"""

from __future__ import annotations

import logging
import random
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confab.bot.errors import ConfabError, FinetuneError
from confab.bot.lab.assistant_tokens import (
    Encoded,
    TemplateMismatch,
    assistant_loss,
    collate,
    encode_chat,
    pad_id,
)
from confab.bot.lab.dataset import Chat, DatasetError, file_sha256, listing, read_dataset
from confab.bot.lab.lora_checkpoints import (
    CheckpointState,
    restore_checkpoint,
    resume_point,
    save_checkpoint,
)
from confab.bot.lab.ram import available_ram, training_ram
from confab.bot.llm.lora_folder import (
    BUNDLED,
    METADATA_FILE,
    base_folder,
    base_identity,
    base_source,
    load_finetuned,
    write_lora,
)
from confab.bot.llm.weights import loadable_folder
from confab.bot.paths import cache_dir as default_cache_dir

log = logging.getLogger(__name__)

__all__ = [
    "BUNDLED",
    "METADATA_FILE",
    "FinetuneError",
    "FinetuneOptions",
    "FinetuneResult",
    "Progress",
    "base_folder",
    "finetune",
    "load_finetuned",
    "read_training_chats",
]

ATTENTION = ("q_proj", "k_proj", "v_proj", "o_proj")
LORA_DROPOUT = 0.05
MAX_GRAD_NORM = 1.0
LOSS_WINDOW = 10  # steps averaged into the loss shown: one step's loss is noisy


@dataclass(frozen=True)
class FinetuneOptions:
    """One fine-tuning run. ``base`` is ``"bundled"``, a model folder or a GGUF file;
    ``train`` a chat JSONL (or question,answer CSV); ``out`` the LoRA folder."""

    base: str
    train: Path
    out: Path
    max_steps: int
    time_budget_s: float | None = None  # from the call, loading included; one step at least
    learning_rate: float = 2e-4
    rank: int = 8
    alpha: int = 16
    batch_size: int = 4
    max_tokens: int = 512
    seed: int = 0
    checkpoint_every: int = 25
    threads: int = 0  # 0: torch's own choice
    cache_dir: Path = field(default_factory=default_cache_dir)


@dataclass(frozen=True)
class FinetuneResult:
    """What a run did. ``last_loss`` is the mean training loss of its last steps."""

    out: Path
    steps_done: int
    started_from_step: int
    seconds: float
    steps_per_s: float
    last_loss: float | None


@dataclass(frozen=True)
class Progress:
    """A step finished (``note`` empty), or something worth telling the person (``note``)."""

    step: int
    max_steps: int
    loss: float | None
    elapsed_s: float
    eta_s: float | None
    note: str = ""


def finetune(
    options: FinetuneOptions, progress: Callable[[Progress], None] | None = None
) -> FinetuneResult:
    """Train (or go on training) a LoRA; blocking, on the CPU.

    Raises :class:`FinetuneError` for bad data, a missing base model, an
    ``out`` folder that belongs to another base or dataset, and too little RAM.
    """
    began = time.monotonic()
    report = progress or _log_progress
    if options.max_steps < 1 or options.batch_size < 1 or options.max_tokens < 2:
        raise FinetuneError("max_steps, batch_size and max_tokens must be positive.")

    def note(text: str, step: int = 0, loss: float | None = None) -> None:
        report(Progress(step, options.max_steps, loss, time.monotonic() - began, None, text))

    chats = read_training_chats(options.train)
    digest = file_sha256(options.train)
    base = base_identity(options.base)
    source = base_source(options.base)
    resume = resume_point(options.out, base, digest, options.rank, options.alpha)
    try:
        folder = loadable_folder(source, options.cache_dir.expanduser(), note)
    except ConfabError as error:
        raise FinetuneError(error.user_message, str(error)) from None

    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    if options.threads:
        torch.set_num_threads(options.threads)
    tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    examples = _encode(tokenizer, chats, options, note)
    width = max(len(example.input_ids) for example in examples)
    needed = training_ram(folder, options.batch_size, width)
    free = available_ram()
    if free is not None and needed > free:
        raise _too_little_ram(needed, free)

    torch.manual_seed(options.seed)
    step = started = 0
    training = False  # set once the loop's state is complete enough to checkpoint
    try:
        model = AutoModelForCausalLM.from_pretrained(
            str(folder), local_files_only=True, dtype=torch.float32
        )
        model = _with_lora(model, options)
        trainable = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(trainable, lr=options.learning_rate)
        seconds_before = 0.0
        losses: list[float] = []
        if resume is not None:
            checkpoint, state = resume
            restore_checkpoint(checkpoint, model, optimizer)
            for group in optimizer.param_groups:
                group["lr"] = options.learning_rate
            step, losses, seconds_before = state.step, list(state.losses), state.seconds
            note(f"Resuming from the checkpoint at step {step} ({checkpoint})", step)
        started = step
        state_for = _state_maker(base, digest, options, model)
        loop_began = time.monotonic()
        model.train()
        pad = pad_id(tokenizer)
        training = True
        while step < options.max_steps:
            done_here = step - started
            if done_here and options.time_budget_s is not None:
                per_step = (time.monotonic() - loop_began) / done_here
                if time.monotonic() - began + per_step > options.time_budget_s:
                    note(f"The time budget is spent: stopping after step {step}", step)
                    break
            input_ids, mask, labels = collate(_batch(examples, step, options), pad)
            loss = assistant_loss(model, input_ids, mask, labels)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trainable, MAX_GRAD_NORM)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            losses = [*losses, float(loss.item())][-LOSS_WINDOW:]
            elapsed = time.monotonic() - loop_began
            eta = elapsed / (step - started) * (options.max_steps - step)
            report(Progress(step, options.max_steps, _mean(losses), time.monotonic() - began, eta))
            if step % options.checkpoint_every == 0 and step < options.max_steps:
                seconds = seconds_before + time.monotonic() - loop_began
                save_checkpoint(options.out, state_for(step, losses, seconds), model, optimizer)
        seconds = seconds_before + time.monotonic() - loop_began
        if step > started or resume is None:
            save_checkpoint(options.out, state_for(step, losses, seconds), model, optimizer)
        described = _description(options, base, digest, step, losses, len(examples))
        described["lora"]["targets"] = sorted(model.peft_config["default"].target_modules)
        write_lora(model, options.out, described)
    except KeyboardInterrupt:
        if training and step > started:  # Ctrl-C: keep what was learnt for the next run
            seconds = seconds_before + time.monotonic() - loop_began
            save_checkpoint(options.out, state_for(step, losses, seconds), model, optimizer)
            note(f"Interrupted: saved a checkpoint at step {step}; run again to resume", step)
        raise
    except (MemoryError, torch.OutOfMemoryError) as error:
        raise _too_little_ram(needed, free, error) from None
    except RuntimeError as error:
        if "memory" not in str(error).lower():
            raise
        raise _too_little_ram(needed, free, error) from None
    run_seconds = time.monotonic() - loop_began
    note(f"Saved the LoRA after step {step} in {options.out}", step, _mean(losses))
    return FinetuneResult(
        out=options.out,
        steps_done=step,
        started_from_step=started,
        seconds=round(time.monotonic() - began, 3),
        steps_per_s=(step - started) / run_seconds if step > started and run_seconds else 0.0,
        last_loss=_mean(losses),
    )


def read_training_chats(path: Path) -> list[Chat]:
    """The conversations of a training file; :class:`FinetuneError` says what is wrong where."""
    if not path.is_file():
        raise FinetuneError(f"The training file {path} does not exist.")
    try:
        parsed = read_dataset(path)
    except DatasetError as error:
        raise FinetuneError(error.user_message) from None
    if parsed.problems:
        count = len(parsed.problems)
        summary = (
            f"{path}: {count} problem{'s' if count != 1 else ''}; fix them, or leave those "
            "records out with `confab data prepare --skip-invalid`:"
        )
        raise FinetuneError("\n  ".join([summary, *listing(parsed.problems)]))
    if not parsed.chats:
        raise FinetuneError(f"The training file {path} holds no conversations.")
    return list(parsed.chats)


def _encode(
    tokenizer: Any, chats: Sequence[Chat], options: FinetuneOptions, note: Callable[[str], None]
) -> list[Encoded]:
    try:
        encoded = [encode_chat(tokenizer, chat.messages, options.max_tokens) for chat in chats]
    except TemplateMismatch as error:
        raise FinetuneError(
            "This model's chat template cannot be fine-tuned on.", str(error)
        ) from None
    kept = [example for example in encoded if example.scored]
    cut = sum(1 for example in encoded if example.truncated)
    if cut:
        note(f"{cut} of {len(encoded)} conversations are cut at {options.max_tokens} tokens")
    if not kept:
        raise FinetuneError(
            f"No answer of {options.train} fits within {options.max_tokens} tokens; "
            "raise --max-tokens."
        )
    return kept


def _with_lora(model: Any, options: FinetuneOptions) -> Any:
    from peft import LoraConfig, get_peft_model

    names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    targets = [name for name in ATTENTION if name in names] or None  # None: peft's choice
    config = LoraConfig(
        r=options.rank,
        lora_alpha=options.alpha,
        lora_dropout=LORA_DROPOUT,
        target_modules=targets,
        task_type="CAUSAL_LM",
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # transformers' renames, seen by peft
        try:
            return get_peft_model(model, config)
        except ValueError as error:
            raise FinetuneError(
                "peft does not know which layers of this model to adapt.", str(error)
            ) from None


def _state_maker(
    base: str, digest: str, options: FinetuneOptions, model: Any
) -> Callable[[int, list[float], float], CheckpointState]:
    targets = tuple(sorted(model.peft_config["default"].target_modules))

    def state(step: int, losses: list[float], seconds: float) -> CheckpointState:
        return CheckpointState(
            step, base, digest, options.rank, options.alpha, targets, tuple(losses), seconds
        )

    return state


def _batch(examples: Sequence[Encoded], step: int, options: FinetuneOptions) -> list[Encoded]:
    """The examples of ``step``: a fresh shuffle each epoch, fixed by the seed and the step alone,
    so a resumed run sees the data a run without a stop would have seen."""
    count = len(examples)
    first = step * options.batch_size
    chosen = []
    for sample in range(first, first + options.batch_size):
        epoch, position = divmod(sample, count)
        chosen.append(examples[_order(count, options.seed, epoch)[position]])
    return chosen


def _order(count: int, seed: int, epoch: int) -> list[int]:
    order = list(range(count))
    random.Random(f"{seed}:{epoch}").shuffle(order)
    return order


def _description(
    options: FinetuneOptions,
    base: str,
    digest: str,
    step: int,
    losses: Sequence[float],
    examples: int,
) -> dict[str, Any]:
    return {
        "base": base,
        "steps": step,
        "train_file": str(options.train.resolve()),
        "train_sha256": digest,
        "train_examples": examples,
        "dtype": "float32",
        "last_loss": _mean(losses),
        "lora": {"rank": options.rank, "alpha": options.alpha, "dropout": LORA_DROPOUT},
        "learning_rate": options.learning_rate,
        "batch_size": options.batch_size,
        "max_tokens": options.max_tokens,
        "seed": options.seed,
    }


def _too_little_ram(
    needed: int, free: int | None, error: BaseException | None = None
) -> FinetuneError:
    have = f" and {free / 2**30:.1f} GB is free" if free is not None else ""
    return FinetuneError(
        f"Fine-tuning needs about {needed / 2**30:.1f} GB of RAM{have}: lower "
        "--batch-size or --max-tokens, or close other programs.",
        f"out of RAM: {error}" if error else None,
    )


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _log_progress(progress: Progress) -> None:
    if progress.note:
        log.info("%s", progress.note)
    elif progress.step % 10 == 0 or progress.step == progress.max_steps:
        log.info("step %d/%d loss %.4f", progress.step, progress.max_steps, progress.loss or 0.0)
