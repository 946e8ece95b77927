"""Token choice and text assembly for one request, with the bundled model's tokenizer."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from confab.bot.llm.backend import GenerationParams
from confab.bot.llm.config import ModelConfig
from confab.bot.llm.sampling import Sampler, TextTail
from confab.bot.llm.weights import loadable_folder, resolve_model_path


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    from transformers import AutoTokenizer

    folder = loadable_folder(resolve_model_path(""), ModelConfig().cache_dir, print)
    return AutoTokenizer.from_pretrained(str(folder))


def pieces(tail: TextTail, ids: list[int]) -> list[str]:
    out = [tail.push(token) for token in ids]
    return [p for p in [*out, tail.flush()] if p]


def test_pieces_add_up_to_the_whole_text_and_never_show_half_a_character(
    tokenizer: Any,
) -> None:
    text = "Größe: 10 €, naïve café 🙂👍 — 漢字 done."
    ids = tokenizer.encode(text, add_special_tokens=False)
    shown = pieces(TextTail(tokenizer, ()), ids)
    assert "".join(shown) == text
    assert len(shown) > 5 and not any("\ufffd" in piece for piece in shown)


def test_the_text_ends_before_a_stop_string_split_across_tokens(tokenizer: Any) -> None:
    text = "First answer.\nUser: and now something else"
    ids = tokenizer.encode(text, add_special_tokens=False)
    tail = TextTail(tokenizer, ("\nUser:",))
    shown = pieces(tail, ids)
    assert "".join(shown) == "First answer."
    assert tail.stopped


def test_text_that_only_looks_like_a_stop_string_is_released(tokenizer: Any) -> None:
    text = "Use: the Username field"
    ids = tokenizer.encode(text, add_special_tokens=False)
    assert "".join(pieces(TextTail(tokenizer, ("User:",)), ids)) == text


def test_greedy_takes_the_best_score_and_the_penalty_demotes_seen_tokens() -> None:
    scores = torch.tensor([1.0, 3.0, 2.9, -1.0])
    assert Sampler(GenerationParams(temperature=0, repetition_penalty=1.0), []).choose(scores) == 1
    # Token 1 is in the prompt: 3.0 / 1.1 < 2.9, so token 2 wins.
    penalised = Sampler(GenerationParams(temperature=0, repetition_penalty=1.1), [1])
    assert penalised.choose(scores) == 2
    # Token 2, once generated, is penalised too: 2.9 / 1.1 < 3.0 / 1.1.
    assert penalised.choose(scores) == 1


def test_a_seed_repeats_the_draws_and_top_p_keeps_only_the_likeliest() -> None:
    spread = torch.tensor([1.0, 0.9, 0.8, 0.7, 0.6])

    def draws(seed: int) -> list[int]:
        sampler = Sampler(GenerationParams(temperature=1.0, top_p=1.0, seed=seed), [])
        return [sampler.choose(spread) for _ in range(12)]

    assert draws(3) == draws(3)
    assert draws(3) != draws(4)
    scores = torch.tensor([5.0, 4.0, 0.0, -2.0, -3.0])
    params = GenerationParams(temperature=1.0, top_p=0.9, repetition_penalty=1.0, seed=3)
    sampler = Sampler(params, [])
    assert {sampler.choose(scores) for _ in range(200)} <= {0, 1}
