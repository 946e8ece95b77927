"""What every test with the real model shares."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from confab.bot.llm.config import ModelConfig
from confab.bot.llm.weights import loadable_folder, resolve_model_path

QUESTIONS = [
    "What is the capital of France?",
    "Write a haiku about rain.",
    "Explain recursion to a child in two sentences, with an example about mirrors.",
    "2+2?",
    "Name three colors.",
]


@pytest.fixture(autouse=True)
def repeatable_sampling() -> None:
    """Sampling draws from torch's global generator, which every test that builds or
    runs a model advances; seeded per test, an answer does not depend on which tests
    ran before it."""
    torch.manual_seed(0)


@pytest.fixture(scope="module")
def weights() -> tuple[Any, Any]:
    """The bundled model and tokenizer in float32, as plain transformers objects."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = loadable_folder(resolve_model_path(""), ModelConfig().cache_dir, print)
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32).eval()
    return model, tokenizer


@pytest.fixture(scope="module")
def prompts(weights: tuple[Any, Any]) -> list[list[int]]:
    _, tokenizer = weights
    return [
        list(
            tokenizer.apply_chat_template(
                [{"role": "user", "content": q}],
                add_generation_prompt=True,
                tokenize=True,
                return_dict=False,
            )
        )
        for q in QUESTIONS
    ]
