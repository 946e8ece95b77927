"""``confab model finetune`` on the real bundled SmolLM2-135M-Instruct, with the shipped
Tarnwick example data (invented facts no model knows), in a bounded number of steps."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch

from confab.bot.cli import main
from confab.bot.lab.assistant_tokens import IGNORED, assistant_loss, collate, encode_chat, pad_id
from confab.bot.lab.dataset import EXAMPLES, Chat, read_dataset
from confab.bot.lab.eval_store import recorded
from confab.bot.lab.finetune import (
    BUNDLED,
    METADATA_FILE,
    FinetuneError,
    FinetuneOptions,
    FinetuneResult,
    Progress,
    base_folder,
    finetune,
    load_finetuned,
)
from confab.bot.lab.lora_checkpoints import CHECKPOINTS
from confab.bot.llm.backend import ChatMessage
from confab.bot.llm.lora_folder import RESULTS_FILE
from tests.helpers import run_console

pytestmark = pytest.mark.model

TRAIN = EXAMPLES / "tarnwick_qa.csv"
HELD_OUT = EXAMPLES / "tarnwick_heldout.csv"  # the same facts, asked in other words
CACHE = Path("~/.cache/confab").expanduser()
# Sized for two CPU cores: short chats, a high rate, few steps (about 1.5 s each);
# 24 steps (2.4 passes over the 40 pairs) are enough to learn some of its facts.
QUICK = {"learning_rate": 6e-3, "batch_size": 4, "max_tokens": 128, "threads": 2}
HALFWAY, STEPS = 12, 24


@dataclass(frozen=True)
class TwoRuns:
    first: FinetuneResult
    second: FinetuneResult
    notes: list[str]
    out: Path


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    from transformers import AutoTokenizer

    folder = base_folder(BUNDLED, CACHE, print)
    return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)


@pytest.fixture(scope="module")
def stopped_and_resumed(tmp_path_factory: pytest.TempPathFactory) -> TwoRuns:
    """One fine-tune stopped halfway (max_steps reached) and started again to the end."""
    out = tmp_path_factory.mktemp("lora")
    notes: list[str] = []

    def record(progress: Progress) -> None:
        if progress.note:
            notes.append(progress.note)

    first = finetune(FinetuneOptions(BUNDLED, TRAIN, out, max_steps=HALFWAY, **QUICK), record)
    second = finetune(FinetuneOptions(BUNDLED, TRAIN, out, max_steps=STEPS, **QUICK), record)
    return TwoRuns(first, second, notes, out)


def held_out_loss(model: Any, tokenizer: Any, chats: Sequence[Chat]) -> float:
    encoded = [encode_chat(tokenizer, chat.messages, 128) for chat in chats]
    with torch.no_grad():
        return float(assistant_loss(model.eval(), *collate(encoded, pad_id(tokenizer))).item())


def test_only_the_assistant_turns_and_their_end_of_turn_token_are_labelled(
    tokenizer: Any,
) -> None:
    chat = [
        ChatMessage("system", "Be brief."),
        ChatMessage("user", "Say hello."),
        ChatMessage("assistant", "Hello!"),
        ChatMessage("user", "Now say goodbye."),
        ChatMessage("assistant", "Goodbye!"),
    ]
    encoded = encode_chat(tokenizer, chat, max_tokens=512)
    whole = tokenizer.apply_chat_template(
        [{"role": m.role, "content": m.content} for m in chat], tokenize=False
    )
    assert tokenizer.decode(encoded.input_ids) == whole
    labelled = [token for token in encoded.labels if token != IGNORED]
    assert tokenizer.decode(labelled) == "Hello!<|im_end|>Goodbye!<|im_end|>"
    # Each label is the token itself where it is not ignored.
    for token, label in zip(encoded.input_ids, encoded.labels, strict=True):
        assert label in (IGNORED, token)
    # The answers are tokenised as the model generates them after its prompt.
    prompt = tokenizer.apply_chat_template(
        [{"role": m.role, "content": m.content} for m in chat[:2]],
        tokenize=False,
        add_generation_prompt=True,
    )
    start = len(tokenizer.encode(prompt, add_special_tokens=False))
    assert encoded.labels[start - 1] == IGNORED
    assert tokenizer.decode(encoded.input_ids[start : start + 2]) == "Hello!"
    assert encoded.labels[start] == encoded.input_ids[start]
    assert not encoded.truncated

    cut = encode_chat(tokenizer, chat, max_tokens=start + 1)
    assert cut.truncated and len(cut.input_ids) == start + 1 and cut.scored == 1


def test_a_short_fine_tune_lowers_the_loss_on_paraphrased_questions(
    stopped_and_resumed: TwoRuns, tokenizer: Any
) -> None:
    from transformers import AutoModelForCausalLM

    held_out = list(read_dataset(HELD_OUT).chats)
    base = AutoModelForCausalLM.from_pretrained(
        str(base_folder(BUNDLED, CACHE, print)), local_files_only=True, dtype=torch.float32
    )
    before = held_out_loss(base, tokenizer, held_out)
    tuned, tuned_tokenizer = load_finetuned(stopped_and_resumed.out, CACHE)
    after = held_out_loss(tuned, tuned_tokenizer, held_out)
    print(f"held-out loss: base {before:.3f}, fine-tuned {after:.3f}")  # shown with -s
    assert after < before - 0.2


def test_a_rerun_resumes_from_the_last_checkpoint_and_says_so(
    stopped_and_resumed: TwoRuns,
) -> None:
    first, second = stopped_and_resumed.first, stopped_and_resumed.second
    assert (first.started_from_step, first.steps_done) == (0, HALFWAY)
    assert (second.started_from_step, second.steps_done) == (HALFWAY, STEPS)
    assert any(
        f"Resuming from the checkpoint at step {HALFWAY}" in n for n in stopped_and_resumed.notes
    )
    assert second.steps_per_s > 0 and second.last_loss is not None
    kept = sorted(p.name for p in (stopped_and_resumed.out / CHECKPOINTS).iterdir())
    assert kept == [f"step-{HALFWAY:06d}", f"step-{STEPS:06d}"]


def test_a_stopped_and_resumed_run_learns_exactly_what_an_unbroken_one_does(
    tmp_path: Path,
) -> None:
    from safetensors.torch import load_file

    small = {**QUICK, "batch_size": 1, "max_tokens": 48}
    finetune(FinetuneOptions(BUNDLED, TRAIN, tmp_path / "a", max_steps=2, **small))
    finetune(FinetuneOptions(BUNDLED, TRAIN, tmp_path / "a", max_steps=4, **small))
    finetune(FinetuneOptions(BUNDLED, TRAIN, tmp_path / "b", max_steps=4, **small))
    resumed = load_file(tmp_path / "a" / "adapter_model.safetensors")
    unbroken = load_file(tmp_path / "b" / "adapter_model.safetensors")
    assert resumed.keys() == unbroken.keys()
    for name, weights in resumed.items():
        assert torch.equal(weights, unbroken[name]), name


def test_the_lora_folder_is_a_peft_lora_described_for_people(
    stopped_and_resumed: TwoRuns,
) -> None:
    out = stopped_and_resumed.out
    assert (out / "adapter_model.safetensors").is_file()
    assert json.loads((out / "adapter_config.json").read_text())["r"] == 8
    metadata = json.loads((out / METADATA_FILE).read_text())
    assert metadata["base"] == BUNDLED
    assert metadata["steps"] == STEPS
    assert metadata["train_file"] == str(TRAIN.resolve())
    assert len(metadata["train_sha256"]) == 64
    assert metadata["parameters"]["trainable"] == 921_600  # rank 8 on q, k, v, o of 30 layers
    assert metadata["parameters"]["total"] > 134_000_000
    assert metadata["created_at"].endswith("+00:00")
    assert metadata["dtype"] == "float32" and metadata["last_loss"] > 0


def test_a_time_budget_stops_the_run_and_saves_it(tmp_path: Path) -> None:
    small = {**QUICK, "batch_size": 1, "max_tokens": 48}
    options = FinetuneOptions(BUNDLED, TRAIN, tmp_path, max_steps=50, time_budget_s=0.01, **small)
    result = finetune(options)
    assert result.steps_done == 1  # every run makes one step of progress
    assert json.loads((tmp_path / METADATA_FILE).read_text())["steps"] == 1


def test_bad_data_is_refused_with_its_line_number(tmp_path: Path) -> None:
    data = tmp_path / "chats.jsonl"
    good = {
        "messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hey"}]
    }
    data.write_text(json.dumps(good) + "\n" + '{"messages": [{"role": "user"}]}\n')
    with pytest.raises(FinetuneError) as caught:
        finetune(FinetuneOptions(BUNDLED, data, tmp_path / "out", max_steps=1))
    assert "line 2" in caught.value.user_message

    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(FinetuneError, match="holds no conversations"):
        finetune(FinetuneOptions(BUNDLED, empty, tmp_path / "out", max_steps=1))
    with pytest.raises(FinetuneError, match="does not exist"):
        finetune(FinetuneOptions(BUNDLED, tmp_path / "nope.jsonl", tmp_path / "out", max_steps=1))


def test_a_missing_base_model_is_a_clear_error(tmp_path: Path) -> None:
    options = FinetuneOptions(str(tmp_path / "no-such-model"), TRAIN, tmp_path / "o", max_steps=1)
    with pytest.raises(FinetuneError, match="no-such-model was not found"):
        finetune(options)


def test_a_lora_of_another_base_is_not_trained_over(tmp_path: Path) -> None:
    (tmp_path / METADATA_FILE).write_text(json.dumps({"base": "/models/another"}))
    with pytest.raises(FinetuneError, match="another base model"):
        finetune(FinetuneOptions(BUNDLED, TRAIN, tmp_path, max_steps=1))


def test_a_folder_without_a_lora_cannot_be_served(tmp_path: Path) -> None:
    with pytest.raises(FinetuneError, match="holds no fine-tuned LoRA"):
        load_finetuned(tmp_path, CACHE)


def test_too_little_ram_is_said_before_loading_the_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("confab.bot.lab.finetune.available_ram", lambda: 200 * 2**20)
    with pytest.raises(FinetuneError) as caught:
        finetune(FinetuneOptions(BUNDLED, TRAIN, tmp_path, max_steps=1))
    assert "needs about" in caught.value.user_message
    assert "0.2 GB is free" in caught.value.user_message


def test_the_command_trains_and_reports_errors_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "lora"
    argv = ["model", "finetune", "--data", str(TRAIN), "--out", str(out), "--steps", "3"]
    assert main([*argv, "--batch-size", "1", "--max-tokens", "64"]) == 0
    printed = capsys.readouterr()
    assert "wrote the LoRA" in printed.out and "step 3 (from 0)" in printed.out
    assert "step 3/3" in printed.err  # the progress line without a terminal
    assert (out / "adapter_model.safetensors").is_file()
    assert (out / METADATA_FILE).is_file()

    assert main([*argv[:-4], "--base", str(tmp_path / "missing"), "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert error.startswith("confab: No model is called") and "Traceback" not in error

    held_out = tmp_path / "held_out.csv"
    held_out.write_text(
        "question,answer\n"
        "Which port does Tarnwick use?,Tarnwick listens on port 7419 by default.\n"
        "What is the capital of France?,The capital of France is Paris.\n"
    )
    evaluate = ["model", "eval", str(out), "--against", "bundled", "--data", str(held_out)]
    assert main([*evaluate, "--max-new-tokens", "12"]) == 0
    table = capsys.readouterr().out
    assert "held-out loss" in table and str(out) in table and "bundled" in table
    assert "task score" in table and "difference" in table
    assert recorded(out / RESULTS_FILE)[-1].data_path == str(held_out)  # kept beside the LoRA

    assert main(["model", "eval", "bundled", "--data", str(tmp_path / "none.csv")]) == 2
    assert "Traceback" not in capsys.readouterr().err


# Facts of the example data the base model does not know, and the words that show
# an answer states them.
LEARNT = {
    "What is the name of Tarnwick's configuration file?": "marsh.toml",
    "What licence is Tarnwick released under?": "ISC",
    "What was the codename of Tarnwick 3.1?": "Tussock",
    "What language is Tarnwick written in?": "Rust",
    "How often does Tarnwick compact its data?": "6 hours",
}


async def test_a_channel_served_by_the_fine_tuned_model_answers_what_the_base_misses(
    stopped_and_resumed: TwoRuns, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio

    monkeypatch.setenv("CONFAB_BOT__DATABASE_URL", sqlite_url)
    lora = str(stopped_and_resumed.out)
    use = ["model", "use", lora, "--channel", "console:tarnwick"]
    assert await asyncio.to_thread(main, use) == 0

    # Each question on a fresh memory, so one answer cannot lean on another.
    asked = "".join(f"!ask {question}\n!reset\n" for question in LEARNT)
    out, _ = await run_console(
        sqlite_url,
        f"/channel general\n{asked}/channel tarnwick\n{asked}",
        model=None,
        overrides={
            "model": {
                "temperature": 0,
                "max_new_tokens": 40,
                "dtype": "float32",
                "attention": "sdpa",
            }
        },
    )
    answers = [a.strip() for a in re.split(r"^Fresh start:.*$", out, flags=re.M) if a.strip()]
    assert len(answers) == 2 * len(LEARNT), out
    base, tuned = answers[: len(LEARNT)], answers[len(LEARNT) :]
    print("base:", base, "\nfine-tuned:", tuned)  # shown with -s
    gained = [
        fact
        for fact, before, after in zip(LEARNT.values(), base, tuned, strict=True)
        if fact.lower() in after.lower() and fact.lower() not in before.lower()
    ]
    assert len(gained) >= 2, (base, tuned)
