"""The batching engine on the real bundled model: same tokens as ``generate``,
streamed per request, and polite under overload, timeouts and crashes."""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from confab.bot.errors import ModelBusy, ModelTimeout, ModelUnavailable
from confab.bot.llm.backend import GenerationParams
from confab.bot.llm.compute import pick_model as pick
from confab.bot.llm.engine import BatchEngine

pytestmark = pytest.mark.model

GREEDY = GenerationParams(max_new_tokens=40, temperature=0, repetition_penalty=1.1)


def generated(model: Any, tokenizer: Any, prompts: list[list[int]]) -> list[str]:
    """What transformers' own ``generate`` answers greedily to each prompt alone."""
    answers = []
    with torch.inference_mode():
        for prompt in prompts:
            ids = torch.tensor([prompt])
            out = model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=GREEDY.max_new_tokens,
                do_sample=False,
                temperature=None,
                top_p=None,
                top_k=None,
                repetition_penalty=GREEDY.repetition_penalty,
                pad_token_id=tokenizer.eos_token_id,
            )
            answers.append(tokenizer.decode(out[0, len(prompt) :], skip_special_tokens=True))
    return answers


@pytest.fixture(scope="module")
def reference(weights: tuple[Any, Any], prompts: list[list[int]]) -> list[str]:
    return generated(*weights, prompts)


def make_engine(
    weights: tuple[Any, Any], *, max_batch_size: int = 8, max_queue: int = 8
) -> Iterator[BatchEngine]:
    model, tokenizer = weights
    engine = BatchEngine(
        model, tokenizer, window=8192, max_batch_size=max_batch_size, max_queue=max_queue
    )
    yield engine
    engine.close()


@pytest.fixture
def engine(weights: tuple[Any, Any]) -> Iterator[BatchEngine]:
    yield from make_engine(weights)


@pytest.fixture
def single_slot(weights: tuple[Any, Any]) -> Iterator[BatchEngine]:
    """One running request at a time and one waiting; answers never end early,
    so a long one is still running however fast the machine is."""
    for engine in make_engine(weights, max_batch_size=1, max_queue=1):
        engine._eos = frozenset()
        yield engine


async def collect(stream: AsyncIterator[str], log: list[tuple[int, float]], tag: int) -> str:
    pieces = []
    async for piece in stream:
        pieces.append(piece)
        log.append((tag, time.monotonic()))
    return "".join(pieces)


async def test_a_batch_with_staggered_joins_answers_exactly_like_generate(
    engine: BatchEngine, prompts: list[list[int]], reference: list[str]
) -> None:
    arrivals: list[tuple[int, float]] = []
    tasks = []
    for i, prompt in enumerate(prompts):
        tasks.append(asyncio.create_task(collect(engine.stream(prompt, GREEDY, 120), arrivals, i)))
        await asyncio.sleep(0.15 * i)  # later prompts join a batch already decoding
    answers = await asyncio.gather(*tasks)

    assert answers == reference
    # Pieces of different answers interleave: they were generated side by side.
    order = [tag for tag, _ in arrivals]
    first_done = max(i for i, tag in enumerate(order) if tag == 0)
    assert set(order[:first_done]) >= {0, 1, 2}
    # Each answer streamed in many pieces, not in one lump at the end.
    assert all(order.count(tag) >= 5 for tag in range(len(prompts)))
    assert engine.load.running == 0


async def test_greedy_answers_repeat_and_seeded_sampling_repeats(
    engine: BatchEngine, prompts: list[list[int]]
) -> None:
    sampled = GenerationParams(max_new_tokens=24, temperature=0.9, top_p=0.95, seed=7)
    runs = [
        await asyncio.gather(
            collect(engine.stream(prompts[1], sampled, 60), [], 0),
            collect(engine.stream(prompts[2], GREEDY, 60), [], 1),
        )
        for _ in range(2)
    ]
    assert runs[0] == runs[1]
    other_seed = GenerationParams(max_new_tokens=24, temperature=0.9, top_p=0.95, seed=8)
    assert await collect(engine.stream(prompts[1], other_seed, 60), [], 0) != runs[0][0]


async def test_an_answer_ends_before_a_stop_string_and_at_max_new_tokens(
    engine: BatchEngine, prompts: list[list[int]], reference: list[str]
) -> None:
    full = reference[4]  # "1. Red: ... 2. B..."
    stop = GenerationParams(max_new_tokens=40, temperature=0, stop=("2.",))
    assert await collect(engine.stream(prompts[4], stop, 60), [], 0) == full[: full.index("2.")]

    short = GenerationParams(max_new_tokens=3, temperature=0)
    answer = await collect(engine.stream(prompts[4], short, 60), [], 0)
    assert answer and full.startswith(answer) and len(answer) < len(full)


async def test_cancelling_a_consumer_frees_its_slot_for_the_next_request(
    single_slot: BatchEngine, prompts: list[list[int]], reference: list[str]
) -> None:
    long = GenerationParams(max_new_tokens=2000, temperature=0)
    first = single_slot.stream(prompts[2], long, 600)
    assert await anext(first)
    waiting = asyncio.create_task(collect(single_slot.stream(prompts[0], GREEDY, 60), [], 1))
    await asyncio.sleep(0.3)
    assert single_slot.load.waiting == 1  # the only slot is taken
    await first.aclose()  # the person went away

    assert (await asyncio.wait_for(waiting, 120)).startswith(reference[0])


async def test_past_the_queue_bound_a_request_is_refused_at_once(
    single_slot: BatchEngine, prompts: list[list[int]]
) -> None:
    long = GenerationParams(max_new_tokens=2000, temperature=0)
    running = single_slot.stream(prompts[2], long, 600)
    await anext(running)
    queued = asyncio.create_task(collect(single_slot.stream(prompts[0], GREEDY, 60), [], 1))
    await asyncio.sleep(0.1)

    started = time.monotonic()
    with pytest.raises(ModelBusy) as refused:
        await anext(single_slot.stream(prompts[1], GREEDY, 60))
    assert time.monotonic() - started < 0.5
    assert "try again" in refused.value.user_message
    await running.aclose()
    assert await queued


async def test_an_answer_that_takes_too_long_fails_and_the_next_one_works(
    single_slot: BatchEngine, prompts: list[list[int]], reference: list[str]
) -> None:
    engine = single_slot
    long = GenerationParams(max_new_tokens=2000, temperature=0)
    with pytest.raises(ModelTimeout) as late:
        await collect(engine.stream(prompts[2], long, 0.5), [], 0)
    assert "too long" in late.value.user_message
    answer = await collect(engine.stream(prompts[0], GREEDY, 60), [], 0)
    assert answer.startswith(reference[0])  # the same words; without an end token it goes on


class WorkerDeath(BaseException):
    """Something that kills the worker's loop itself, not just one step."""


@pytest.mark.parametrize(
    "fault",
    [RuntimeError("simulated fault in the forward pass"), WorkerDeath()],
    ids=["failing step", "dying worker"],
)
async def test_a_fault_fails_the_requests_it_hits_and_the_next_request_works(
    engine: BatchEngine,
    weights: tuple[Any, Any],
    prompts: list[list[int]],
    reference: list[str],
    monkeypatch: pytest.MonkeyPatch,
    fault: BaseException,
) -> None:
    model, _ = weights
    forward = model.forward

    def broken(*args: Any, **kwargs: Any) -> Any:
        monkeypatch.setattr(model, "forward", forward)  # fails once, like a transient fault
        raise fault

    monkeypatch.setattr(model, "forward", broken)
    with pytest.raises(ModelUnavailable) as failed:
        await collect(engine.stream(prompts[0], GREEDY, 60), [], 0)
    assert "unavailable" in failed.value.user_message
    assert await collect(engine.stream(prompts[0], GREEDY, 60), [], 0) == reference[0]


def test_auto_compute_settings_are_measured_once_then_remembered(
    weights: tuple[Any, Any], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    model, tokenizer = weights
    with caplog.at_level(logging.INFO, logger="confab.bot.llm.compute"):
        first = pick(lambda _: copy.deepcopy(model), tokenizer, "float32", "auto", tmp_path, "m")
        second = pick(lambda _: copy.deepcopy(model), tokenizer, "float32", "auto", tmp_path, "m")
    probes = [r.getMessage() for r in caplog.records if "compute probe" in r.getMessage()]
    assert len(probes) == 1 and "float32/sdpa" in probes[0] and "float32/eager" in probes[0]
    chosen = first.config._attn_implementation
    assert chosen in probes[0].split("using ")[1]
    assert second.config._attn_implementation == chosen
    assert first.dtype == second.dtype == torch.float32
