"""A few fast cases of the quality suite (bench/quality.py) with the real bundled model:
what it answered right once, it keeps answering right."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from confab.bot.knowledge.embedding import Embedder
from confab.bot.llm.transformers_backend import TransformersBackend
from confab.bot.quality.cases import load_cases
from confab.bot.quality.runner import run_cases

pytestmark = pytest.mark.model

# Chosen for speed: computed answers and short facts the bundled model knows.
FAST = (
    "arith-add",
    "arith-fahrenheit-to-celsius",
    "arith-kmh-to-mph",
    "qa-capital-japan",
    "qa-red-planet",
    # Answers from the channel's history and from a document, with their sources.
    "knowledge-oncall-owner",
    "knowledge-doc-lost-laptop",
)


async def test_the_fast_cases_pass(
    tmp_path: Path, bundled_model: TransformersBackend, sentence_model: Embedder
) -> None:
    cases = [case for case in load_cases() if case.id in FAST]
    assert len(cases) == len(FAST)
    results = await run_cases(
        cases, bundled_model, tmp_path, seed=torch.manual_seed, embedder=sentence_model
    )
    failed = [
        f"{r.case.id}: {r.score.note} ({r.answer[:80]!r})" for r in results if not r.score.passed
    ]
    assert not failed
