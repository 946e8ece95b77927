"""Evaluation results kept for the model registry to read.

A fine-tuned LoRA keeps them beside it in ``<lora_dir>/confab-eval.json``;
other models in ``<loras_dir>/.evaluations/<name>.json`` (see
:class:`confab.bot.llm.registry.ModelEntry`). The file holds a JSON list of runs, oldest first; each
names the data it was measured on (path and SHA-256, so a changed file is never
mistaken for the same one), when, and the scores::

    [{"evaluated_at": "2026-11-29T13:15:05+00:00",
      "data": {"path": "/abs/eval.jsonl", "sha256": "9f2c..."},
      "model": "tarnwick-lora",
      "loss": {"mean_loss": 1.2034, "perplexity": 3.33, "tokens": 412},
      "task": {"correct": 9, "total": 14,
               "examples": [{"question": "...", "expected": "...", "got": "...",
                             "correct": true}]}}]
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from confab.bot.lab.dataset import file_sha256
from confab.bot.lab.evaluate import Evaluation, EvaluationError, LossScore, TaskExample, TaskScore
from confab.bot.llm.lora_folder import RESULTS_FILE


@dataclass(frozen=True, slots=True)
class RecordedRun:
    """One stored evaluation: of which data (path and content hash), when, with what scores."""

    evaluated_at: datetime
    data_path: str
    data_sha256: str
    evaluation: Evaluation


def _data_sha256(path: Path) -> str:
    try:
        return file_sha256(path)
    except OSError as error:
        raise EvaluationError(
            f"{path} cannot be read.", f"hashing {path} failed: {error.strerror}"
        ) from None


def _as_json(run: RecordedRun) -> dict[str, Any]:
    return {
        "evaluated_at": run.evaluated_at.isoformat(),
        "data": {"path": run.data_path, "sha256": run.data_sha256},
        "model": run.evaluation.model,
        "loss": asdict(run.evaluation.loss),
        "task": asdict(run.evaluation.task),
    }


def _from_json(item: Any) -> RecordedRun:
    task = item["task"]
    evaluation = Evaluation(
        str(item["model"]),
        LossScore(
            float(item["loss"]["mean_loss"]),
            float(item["loss"]["perplexity"]),
            int(item["loss"]["tokens"]),
        ),
        TaskScore(
            int(task["correct"]),
            int(task["total"]),
            tuple(
                TaskExample(
                    str(e["question"]), str(e["expected"]), str(e["got"]), bool(e["correct"])
                )
                for e in task["examples"]
            ),
        ),
    )
    return RecordedRun(
        datetime.fromisoformat(item["evaluated_at"]),
        str(item["data"]["path"]),
        str(item["data"]["sha256"]),
        evaluation,
    )


def recorded(path: Path) -> list[RecordedRun]:
    """Every evaluation stored in the results file ``path``, oldest first (none: ``[]``)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except OSError as error:
        raise EvaluationError(
            f"{path} cannot be read.", f"reading {path} failed: {error.strerror}"
        ) from None
    try:
        items = json.loads(text)
        if not isinstance(items, list):
            raise TypeError("not a list")
        return [_from_json(item) for item in items]
    except (ValueError, TypeError, KeyError) as error:
        raise EvaluationError(
            f"{path} is not a list of evaluation results; move it away to start a new one.",
            f"{path}: not a list of evaluation results ({error!r})",
        ) from None


def record(path: Path, evaluation: Evaluation, data_path: Path) -> RecordedRun:
    """Add ``evaluation`` (measured on ``data_path``) to the results file ``path``.

    The file is replaced whole, so a crash leaves the old results, never half of
    the new ones.
    """
    run = RecordedRun(
        datetime.now(UTC).replace(microsecond=0),
        str(data_path.resolve()),
        _data_sha256(data_path),
        evaluation,
    )
    runs = [*recorded(path), run]
    staging = path.with_name(f".{RESULTS_FILE}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        staging.write_text(
            json.dumps([_as_json(r) for r in runs], indent=2, ensure_ascii=False) + "\n",
            encoding="utf-8",
        )
        os.replace(staging, path)
    except OSError as error:
        staging.unlink(missing_ok=True)
        raise EvaluationError(
            f"The results could not be saved in {path.parent}.",
            f"writing {path} failed: {error.strerror}",
        ) from None
    return run
