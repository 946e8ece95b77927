"""When the real bundled model's worker raises or hangs, each person it hits gets
a short clear reply in time, and the next question is answered as usual.

Faults are put into the torch module's forward pass itself: a call that raises
(as a CUDA or out-of-memory error would) or one that blocks (as a deadlocked
kernel would).
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from confab.bot.errors import ModelTimeout, ModelUnavailable
from confab.bot.llm.backend import ChatMessage, GenerationParams
from confab.bot.llm.config import ModelConfig
from confab.bot.llm.engine import BatchEngine, Request
from confab.bot.llm.transformers_backend import TransformersBackend
from confab.bot.testing import ChatHarness
from confab.skills.qa import AskSkill

pytestmark = pytest.mark.model

TIMEOUT_S = 4.0  # model.request_timeout_s of the backend under test
QUESTION = "What is the capital of France?"
SHORT = GenerationParams(max_new_tokens=4, temperature=0)
FAILED = ModelUnavailable("").user_message
TOO_LONG = ModelTimeout("").user_message


@pytest.fixture(scope="module")
def backend() -> Iterator[TransformersBackend]:
    """The bundled model with short greedy answers and a short request timeout,
    warmed up, so no first-call cost is mistaken for a hang."""
    config = ModelConfig(
        max_new_tokens=8,
        temperature=0,
        dtype="float32",
        attention="sdpa",
        # One thread keeps the pace steady on a busy CPU, where an OpenMP team
        # waiting for its slowest member makes some steps ten times slower.
        threads=1,
        request_timeout_s=TIMEOUT_S,
    )
    model = TransformersBackend(config)
    threads = torch.get_num_threads()

    async def start() -> None:
        await model.start()
        await model.complete([ChatMessage("user", "Hi")])

    asyncio.run(start())
    yield model
    asyncio.run(model.close())
    torch.set_num_threads(threads)


class Faulty:
    """The torch module's forward pass, with ``fault`` shown each call's input ids
    first (``[rows, tokens]``; more than one token is a prefill) to raise or block."""

    def __init__(
        self, model: Any, monkeypatch: pytest.MonkeyPatch, fault: Callable[[torch.Tensor], None]
    ) -> None:
        self._forward = model.forward
        self._fault = fault
        monkeypatch.setattr(model, "forward", self)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self._fault(kwargs["input_ids"])
        return self._forward(*args, **kwargs)


class Hang:
    """Blocks the first forward pass until released, as a deadlocked kernel would."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.left = threading.Event()
        self.thread: threading.Thread | None = None
        self._release = threading.Event()

    def __call__(self, ids: torch.Tensor) -> None:
        if self.thread is None:
            self.thread = threading.current_thread()
            self.entered.set()
            self._release.wait(120)
            self.left.set()

    def release(self) -> None:
        self._release.set()


def fail_once(when: Callable[[torch.Tensor], bool]) -> Callable[[torch.Tensor], None]:
    """Raise in the first forward pass whose input ids satisfy ``when``."""
    failed = threading.Event()

    def fault(ids: torch.Tensor) -> None:
        if not failed.is_set() and when(ids):
            failed.set()
            raise RuntimeError("simulated device fault in the forward pass")

    return fault


def prompt(backend: TransformersBackend, text: str) -> list[int]:
    return list(
        backend.tokenizer.apply_chat_template(
            [{"role": "user", "content": text}],
            add_generation_prompt=True,
            tokenize=True,
            return_dict=False,
        )
    )


def engine_on(backend: TransformersBackend, *, stall_timeout_s: float = 60) -> BatchEngine:
    """An engine of its own on the backend's model, so a test can hang its worker."""
    return BatchEngine(
        backend.model,
        backend.tokenizer,
        window=2048,
        max_batch_size=4,
        max_queue=4,
        stall_timeout_s=stall_timeout_s,
    )


async def text(stream: AsyncIterator[str]) -> str:
    return "".join([piece async for piece in stream])


async def outcome(stream: AsyncIterator[str]) -> str | BaseException:
    try:
        return await text(stream)
    except ModelUnavailable as error:
        return error


async def until(condition: Callable[[], bool], timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "gave up waiting"
        await asyncio.sleep(0.01)


def engine_errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "confab.bot.llm.engine" and r.levelno >= logging.ERROR
    ]


async def test_a_forward_pass_that_raises_gets_a_clear_reply_and_the_next_question_an_answer(
    backend: TransformersBackend,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with ChatHarness([AskSkill], tmp_path, model=backend) as chat:
        usual = await chat.ask(QUESTION, channel="before")
        Faulty(backend.model, monkeypatch, fail_once(lambda ids: True))
        with caplog.at_level(logging.ERROR):
            failed = await chat.ask(QUESTION, channel="fault")
        after = await chat.ask(QUESTION, channel="after")

    assert "Paris" in usual
    assert failed == FAILED  # not a traceback, not "`ask` failed while answering"
    assert after == usual
    [logged] = engine_errors(caplog)
    assert "prefilling (prompts: 1" in logged and "simulated device fault" in logged
    assert "requests told to try again: 1" in logged


async def test_a_fault_in_a_decoding_step_fails_every_answer_in_that_step(
    backend: TransformersBackend, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    engine = engine_on(backend)
    haiku, france = prompt(backend, "Write a haiku about rain."), prompt(backend, QUESTION)
    try:
        usual = await text(engine.stream(france, SHORT, 30))
        Faulty(backend.model, monkeypatch, fail_once(lambda ids: ids.shape == (2, 1)))
        with caplog.at_level(logging.ERROR):
            hit = await asyncio.gather(
                outcome(engine.stream(haiku, SHORT, 30)),
                outcome(engine.stream(france, SHORT, 30)),
            )
        after = await text(engine.stream(france, SHORT, 30))
        assert engine.load.running == engine.load.waiting == 0
    finally:
        engine.close()

    assert all(isinstance(error, ModelUnavailable) for error in hit), hit
    assert after == usual
    [logged] = engine_errors(caplog)
    assert "decoding step" in logged and "requests told to try again: 2" in logged


async def test_a_prompt_whose_prefill_fails_leaves_the_answers_already_decoding_alone(
    backend: TransformersBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = engine_on(backend)
    haiku, france = prompt(backend, "Write a haiku about rain."), prompt(backend, QUESTION)
    decoding = threading.Event()  # the haiku's first decoding step has begun
    go_on = threading.Event()  # the second prompt is queued behind it
    prefills = 0

    def fault(ids: torch.Tensor) -> None:
        nonlocal prefills
        if ids.shape[1] > 1:
            prefills += 1
            if prefills == 2:
                raise RuntimeError("simulated fault in one prompt's prefill")
        elif not decoding.is_set():
            decoding.set()
            go_on.wait(30)

    try:
        usual = await asyncio.gather(
            text(engine.stream(haiku, SHORT, 30)), text(engine.stream(france, SHORT, 30))
        )
        Faulty(backend.model, monkeypatch, fault)
        running = asyncio.create_task(outcome(engine.stream(haiku, SHORT, 30)))
        await until(decoding.is_set)
        joining = asyncio.create_task(outcome(engine.stream(france, SHORT, 30)))
        await until(lambda: engine.load.waiting == 1)
        go_on.set()
        first, second = await asyncio.gather(running, joining)
        after = await text(engine.stream(france, SHORT, 30))
    finally:
        go_on.set()
        engine.close()

    assert first == usual[0]  # answered in full, as if nothing had happened
    assert isinstance(second, ModelUnavailable)
    assert after == usual[1]


async def test_a_hung_forward_pass_gets_a_clear_reply_in_time_and_the_next_question_an_answer(
    backend: TransformersBackend,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    hang = Hang()
    try:
        async with ChatHarness([AskSkill], tmp_path, model=backend) as chat:
            usual = await chat.ask(QUESTION, channel="before")
            Faulty(backend.model, monkeypatch, hang)
            started = time.monotonic()
            with caplog.at_level(logging.WARNING):
                late = await chat.ask(QUESTION, channel="hung")
                waited = time.monotonic() - started
                after = await chat.ask(QUESTION, channel="after")
            assert hang.entered.is_set() and not hang.left.is_set()  # still blocked
    finally:
        hang.release()

    assert late == TOO_LONG
    assert TIMEOUT_S - 0.1 < waited < TIMEOUT_S + 1.5
    assert after == usual  # answered while the first forward pass was still blocked
    assert any("stuck in one turn" in message for message in engine_errors(caplog))
    # Released, the stuck call comes back, finds itself replaced and says nothing more.
    await until(lambda: "abandoned as hung, returned" in caplog.text)


async def test_a_request_queued_behind_a_hung_worker_is_served_by_a_fresh_one(
    backend: TransformersBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    stall_s = 1.5
    engine = engine_on(backend, stall_timeout_s=stall_s)
    haiku, france = prompt(backend, "Write a haiku about rain."), prompt(backend, QUESTION)
    hang = Hang()
    heard: list[object] = []  # everything the hung request is ever told
    try:
        usual = await text(engine.stream(france, SHORT, 30))
        Faulty(backend.model, monkeypatch, hang)
        started = time.monotonic()
        engine.submit(Request(haiku, SHORT, heard.append))
        await until(hang.entered.is_set)
        queued = await text(engine.stream(france, SHORT, 30))
        waited = time.monotonic() - started
        assert not hang.left.is_set()  # still blocked
        engine.close(timeout=5)  # closes at once: the stuck thread is no longer its worker
    finally:
        hang.release()

    assert queued == usual
    assert stall_s < waited < stall_s + 5  # served once the stuck turn passed the limit
    [told] = heard
    assert isinstance(told, ModelUnavailable) and "hung" in str(told)
    assert hang.thread is not None
    hang.thread.join(10)  # the abandoned thread ends once its call returns
    assert not hang.thread.is_alive()
    assert heard == [told]  # its late results were discarded


def test_a_model_call_that_never_returns_does_not_keep_the_process_from_exiting() -> None:
    # A pool's thread would be joined at exit for ever; the model thread is a daemon.
    script = (
        "import threading\n"
        "from confab.bot.llm.model_thread import worker_thread\n"
        "worker_thread().submit(threading.Event().wait)\n"
        "print('bye')\n"
    )
    ended = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).parents[2],
    )
    assert (ended.returncode, ended.stdout) == (0, "bye\n"), ended.stderr
