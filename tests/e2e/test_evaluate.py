"""``confab model eval``'s measurements, on the real bundled SmolLM2-135M-Instruct."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import pytest
import torch

from confab.bot.cli import main
from confab.bot.lab.assistant_tokens import IGNORED, encode_chat
from confab.bot.lab.dataset import Chat, DatasetError
from confab.bot.lab.eval_store import record, recorded
from confab.bot.lab.evaluate import (
    Evaluation,
    EvaluationError,
    compare,
    evaluate,
    held_out_loss,
    read_chats,
    task_score,
)
from confab.bot.llm.backend import ChatMessage
from confab.bot.llm.lora_folder import RESULTS_FILE
from confab.bot.llm.transformers_backend import TransformersBackend

pytestmark = pytest.mark.model

FRANCE = Chat(
    (
        ChatMessage("system", "You are a helpful assistant."),
        ChatMessage("user", "What is the capital of France?"),
        ChatMessage("assistant", "Paris."),
    ),
    "line 1",
)
# A fact no model can know (the shipped example dataset invents it).
TARNWICK = Chat(
    (
        ChatMessage("user", "What port does Tarnwick listen on by default?"),
        ChatMessage("assistant", "Tarnwick listens on port 7419 by default."),
    ),
    "line 2",
)
TWO_TURNS = Chat(
    (
        ChatMessage("user", "Say hello."),
        ChatMessage("assistant", "Hello!"),
        ChatMessage("user", "Now say goodbye."),
        ChatMessage("assistant", "Goodbye!"),
    ),
    "line 3",
)


def as_dicts(messages: tuple[ChatMessage, ...]) -> list[dict[str, str]]:
    return [{"role": m.role, "content": m.content} for m in messages]


@pytest.fixture(scope="module")
def loaded(bundled_model: TransformersBackend) -> tuple[Any, Any]:
    return bundled_model.model, bundled_model.tokenizer


@pytest.fixture(scope="module")
def evaluation(loaded: tuple[Any, Any]) -> Evaluation:
    model, tokenizer = loaded
    return evaluate(model, tokenizer, [FRANCE, TARNWICK], "smollm2", max_new_tokens=16)


def test_the_tokens_are_the_chat_format_and_only_the_answers_are_labelled(
    loaded: tuple[Any, Any],
) -> None:
    _, tokenizer = loaded
    encoded = encode_chat(tokenizer, TWO_TURNS.messages, max_tokens=512)
    ids, labels = list(encoded.input_ids), list(encoded.labels)
    whole = tokenizer.apply_chat_template(
        as_dicts(TWO_TURNS.messages), tokenize=True, return_dict=False
    )
    assert ids == list(whole)
    scored = [token if label != IGNORED else None for token, label in zip(ids, labels, strict=True)]
    runs = "".join(tokenizer.decode([t]) if t is not None else "\0" for t in scored)
    assert [run for run in runs.split("\0") if run] == ["Hello!<|im_end|>", "Goodbye!<|im_end|>"]
    assert all(label in (IGNORED, token) for token, label in zip(ids, labels, strict=True))

    cut = encode_chat(tokenizer, TWO_TURNS.messages, max_tokens=10)
    assert list(cut.input_ids) == ids[:10] and list(cut.labels) == labels[:10]


def test_the_loss_is_the_mean_cross_entropy_of_the_answer_tokens_alone(
    loaded: tuple[Any, Any],
) -> None:
    model, tokenizer = loaded
    prompt = list(
        tokenizer.apply_chat_template(
            as_dicts(FRANCE.messages[:-1]),
            add_generation_prompt=True,
            tokenize=True,
            return_dict=False,
        )
    )
    answer = tokenizer.encode("Paris.<|im_end|>", add_special_tokens=False)
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([prompt + answer])).logits[0]
    log_probs = torch.log_softmax(logits.double(), dim=-1)
    # The answer's i-th token is predicted at the position just before it.
    manual = -sum(
        float(log_probs[len(prompt) - 1 + i, token]) for i, token in enumerate(answer)
    ) / len(answer)

    score = held_out_loss(model, tokenizer, [FRANCE])

    assert score.tokens == len(answer) == 3
    assert score.mean_loss == pytest.approx(manual, abs=1e-4)
    assert score.perplexity == pytest.approx(math.exp(score.mean_loss), rel=1e-12)


def test_chats_scored_together_weigh_every_answer_token_equally(loaded: tuple[Any, Any]) -> None:
    model, tokenizer = loaded
    alone = [held_out_loss(model, tokenizer, [chat]) for chat in (FRANCE, TARNWICK, TWO_TURNS)]
    together = held_out_loss(model, tokenizer, [FRANCE, TARNWICK, TWO_TURNS])

    assert together.tokens == sum(score.tokens for score in alone)
    weighted = sum(score.mean_loss * score.tokens for score in alone) / together.tokens
    assert together.mean_loss == pytest.approx(weighted, abs=1e-4)


def test_an_answer_the_model_gives_scores_and_an_invented_fact_does_not(
    evaluation: Evaluation,
) -> None:
    assert (evaluation.task.correct, evaluation.task.total) == (1, 2)
    france, tarnwick = evaluation.task.examples
    assert france.question == "What is the capital of France?"
    assert france.expected == "Paris."
    assert "Paris" in france.got and france.correct
    assert "7419" not in tarnwick.got and not tarnwick.correct


def test_only_chats_ending_with_an_answer_are_questions(loaded: tuple[Any, Any]) -> None:
    model, tokenizer = loaded
    unanswered = Chat(FRANCE.messages[:-1], "line 9")
    score = task_score(model, tokenizer, [unanswered], max_new_tokens=4)
    assert (score.correct, score.total, score.examples) == (0, 0, ())


def test_the_comparison_shows_both_models_figures_and_the_difference(
    evaluation: Evaluation,
) -> None:
    tuned = Evaluation(
        "smollm2+tarnwick",
        type(evaluation.loss)(1.25, math.exp(1.25), evaluation.loss.tokens),
        type(evaluation.task)(2, 2, ()),
    )

    table = compare(evaluation, tuned)

    lines = table.splitlines()
    assert "smollm2" in lines[0] and "smollm2+tarnwick" in lines[0]
    loss_line = next(line for line in lines if line.startswith("held-out loss"))
    assert f"{evaluation.loss.mean_loss:.4f}" in loss_line and "1.2500" in loss_line
    assert f"{1.25 - evaluation.loss.mean_loss:+.4f}" in loss_line
    perplexity_line = next(line for line in lines if line.startswith("perplexity"))
    assert f"{evaluation.loss.perplexity:.2f}" in perplexity_line
    assert f"{math.exp(1.25):.2f}" in perplexity_line
    task_line = next(line for line in lines if line.startswith("task score"))
    assert "1/2 (50%)" in task_line and "2/2 (100%)" in task_line and "+1 (+50 points)" in task_line


def test_more_models_are_each_compared_with_the_first(evaluation: Evaluation) -> None:
    loss, task = type(evaluation.loss), type(evaluation.task)
    tuned = Evaluation("tuned", loss(1.5, math.exp(1.5), 3), task(1, 2, ()))
    rag = Evaluation("smollm2+rag", loss(0.5, math.exp(0.5), 3), task(2, 2, ()))

    lines = compare(evaluation, tuned, rag).splitlines()

    cells = [re.split(r"\s{2,}", line.strip()) for line in lines]
    columns = ["smollm2", "tuned", "smollm2+rag", "tuned - smollm2", "smollm2+rag - smollm2"]
    assert cells[0] == columns
    task_line = next(row for row in cells if row[0] == "task score")
    assert task_line[2:] == ["1/2 (50%)", "2/2 (100%)", "+0 (+0 points)", "+1 (+50 points)"]
    loss_line = next(line for line in lines if line.startswith("held-out loss"))
    assert loss_line.split()[-2:] == [
        f"{1.5 - evaluation.loss.mean_loss:+.4f}",
        f"{0.5 - evaluation.loss.mean_loss:+.4f}",
    ]


def test_results_are_recorded_beside_the_lora_and_read_back(
    evaluation: Evaluation, tmp_path: Path
) -> None:
    data = tmp_path / "eval.jsonl"
    data.write_text(FRANCE.to_json() + "\n" + TARNWICK.to_json() + "\n", encoding="utf-8")
    results = tmp_path / "lora" / RESULTS_FILE
    assert recorded(results) == []

    first = record(results, evaluation, data)
    data.write_text(FRANCE.to_json() + "\n", encoding="utf-8")
    second = record(results, evaluation, data)

    runs = recorded(results)
    assert runs == [first, second]
    assert runs[0].evaluation == evaluation
    assert runs[0].data_path == str(data.resolve())
    assert runs[0].data_sha256 != runs[1].data_sha256
    stored = json.loads(results.read_text(encoding="utf-8"))
    assert [run["data"]["sha256"] for run in stored] == [r.data_sha256 for r in runs]
    assert stored[0]["task"]["examples"][0]["expected"] == "Paris."


def test_unreadable_results_are_reported_not_overwritten(
    evaluation: Evaluation, tmp_path: Path
) -> None:
    (tmp_path / RESULTS_FILE).write_text("{not json", encoding="utf-8")
    data = tmp_path / "eval.jsonl"
    data.write_text(FRANCE.to_json() + "\n", encoding="utf-8")

    with pytest.raises(EvaluationError, match="not a list of evaluation results"):
        record(tmp_path / RESULTS_FILE, evaluation, data)
    assert (tmp_path / RESULTS_FILE).read_text(encoding="utf-8") == "{not json"


def test_the_data_is_read_whole_or_refused(tmp_path: Path) -> None:
    good = tmp_path / "eval.jsonl"
    good.write_text(FRANCE.to_json() + "\n\n" + TWO_TURNS.to_json() + "\n", encoding="utf-8")
    assert [chat.messages for chat in read_chats(good)] == [FRANCE.messages, TWO_TURNS.messages]

    bad = tmp_path / "bad.jsonl"
    bad.write_text(FRANCE.to_json() + '\n{"messages": []}\n', encoding="utf-8")
    with pytest.raises(DatasetError, match=r"1 invalid record(.|\n)*line 2: 'messages' is empty"):
        read_chats(bad)


EXAMPLES = Path(__file__).parents[2] / "bot" / "lab" / "examples"


@pytest.fixture
def lab_settings(
    sqlite_url: str, tmp_path: Path, sentence_model: Any, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """A fresh SQLite database and LoRAs folder for `confab`, and the run's one
    sentence model; the LoRAs folder (where scores are stored) is returned."""
    monkeypatch.setenv("CONFAB_BOT__DATABASE_URL", sqlite_url)
    monkeypatch.setenv("CONFAB_MODEL__LORAS_DIR", str(tmp_path / "loras"))
    monkeypatch.setattr("confab.bot.knowledge.base.Embedder", lambda: sentence_model)
    return tmp_path / "loras"


def test_retrieval_answers_questions_the_bare_model_cannot(
    lab_settings: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["kb", "add", str(EXAMPLES / "tarnwick")]) == 0
    capsys.readouterr()
    held_out = EXAMPLES / "tarnwick_heldout.csv"

    assert main(["model", "eval", "bundled", "--data", str(held_out), "--rag"]) == 0

    printed = capsys.readouterr().out
    assert "for 14 of 14 conversations" in printed  # every question found passages
    lines = printed.splitlines()
    header = next(line for line in lines if "bundled+rag" in line)
    assert header.split() == ["bundled", "bundled+rag", "difference"]
    task = next(line for line in lines if line.startswith("task score"))
    bare, with_passages = (int(n) for n in re.findall(r"(\d+)/14", task))
    # Measured 9 of 14 (the bare model 0): the misses need every fact of the expected
    # answer ("in Ghent every October" for "In which city?") or ignore the notes.
    assert with_passages >= 8 and with_passages > bare
    loss = next(line for line in lines if line.startswith("held-out loss"))
    bare_loss, rag_loss = (float(x) for x in loss.split()[2:4])
    assert rag_loss < bare_loss
    tokens = next(line for line in lines if line.startswith("answer tokens"))
    assert len(set(tokens.split()[2:])) == 1  # the same answer tokens scored in both
    (run,) = recorded(lab_settings / ".evaluations" / "bundled.json")
    assert run.evaluation.model == "bundled"  # the model's record is of the model alone
    assert (run.evaluation.task.correct, run.evaluation.loss.mean_loss) == (
        bare,
        pytest.approx(bare_loss, abs=1e-4),
    )


def test_retrieval_without_documents_is_refused_before_any_model_loads(
    lab_settings: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_model(*args: object) -> None:
        raise AssertionError("a model was loaded")

    monkeypatch.setattr("confab.bot.llm.lora_folder.load_model", no_model)
    held_out = EXAMPLES / "tarnwick_heldout.csv"

    assert main(["model", "eval", "bundled", "--data", str(held_out), "--rag"]) == 2

    assert capsys.readouterr().err == (
        "confab: the knowledge base has no documents: add them with `confab kb add PATH…` "
        "(for the Tarnwick example: confab kb add bot/lab/examples/tarnwick)\n"
    )
