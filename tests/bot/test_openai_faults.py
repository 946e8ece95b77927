"""The OpenAI-compatible backend behind the router when the model server misbehaves:
each fault is a short clear reply in time, and the next question is answered.

The remote is a real HTTP server on loopback (aiohttp) whose answers each test
scripts: an event stream, a 500, a connection closed or gone silent mid-answer.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from confab.bot.errors import ModelBusy, ModelTimeout, ModelUnavailable
from confab.bot.llm.config import ModelConfig, OpenAIConfig
from confab.bot.llm.openai_backend import OpenAIBackend
from confab.bot.testing import ChatHarness
from confab.skills.qa import AskSkill

PIECES = ["Paris", " is", " the", " capital", " of", " France."]
ANSWER = "".join(PIECES)
READ_TIMEOUT_S = 0.5
REQUEST_TIMEOUT_S = 1.5
FAILED = ModelUnavailable("").user_message
BUSY = ModelBusy("").user_message
TOO_LONG = ModelTimeout("").user_message


class ModelServer:
    """Serves chat completions as a server-sent event stream; ``faults`` holds what
    the next requests get instead (one each, in order), then answers are normal."""

    def __init__(self) -> None:
        self.faults: deque[str] = deque()
        self.requests = 0
        self.url = ""
        self.done = asyncio.Event()  # the test is over: stalled answers may end

    async def chat(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        await request.json()
        fault = self.faults.popleft() if self.faults else "none"
        if fault == "500":
            return web.Response(status=500, text="internal server error")
        if fault == "429, retry in a minute":
            return web.Response(status=429, headers={"Retry-After": "60"}, text="slow down")
        if fault == "close before answering":
            assert request.transport is not None
            request.transport.close()
            return web.Response()
        if fault == "silent before answering":
            await self.done.wait()
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        pieces = PIECES[:2] if fault != "none" else PIECES
        for piece in pieces:
            event = {"choices": [{"index": 0, "delta": {"content": piece}}]}
            await response.write(f"data: {json.dumps(event)}\n\n".encode())
        if fault == "close mid-answer":
            assert request.transport is not None
            request.transport.close()  # no end of the chunked body: the peer sees a cut
            return response
        if fault == "silent mid-answer":
            await self.done.wait()
        if fault == "keep-alives only":
            while not self.done.is_set():  # the connection stays busy; no text comes
                await response.write(b": keep-alive\n\n")
                await asyncio.sleep(0.1)
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response


@pytest.fixture
async def server() -> AsyncIterator[ModelServer]:
    remote = ModelServer()
    app = web.Application()
    app.router.add_post("/v1/chat/completions", remote.chat)
    runner = web.AppRunner(app, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    remote.url = f"http://{host}:{port}/v1"
    yield remote
    remote.done.set()
    await runner.cleanup()


@pytest.fixture
async def backend(server: ModelServer) -> AsyncIterator[OpenAIBackend]:
    config = ModelConfig(
        backend="openai",
        request_timeout_s=REQUEST_TIMEOUT_S,
        openai=OpenAIConfig(
            base_url=server.url,
            model="served-model",
            max_retries=1,
            connect_timeout_s=1.0,
            read_timeout_s=READ_TIMEOUT_S,
        ),
    )
    model = OpenAIBackend(config)
    await model.start()
    yield model
    await model.close()


async def test_a_server_answering_500_gets_a_clear_reply_after_a_retry_and_then_an_answer(
    server: ModelServer, backend: OpenAIBackend, tmp_path: Path
) -> None:
    server.faults.extend(["500", "500"])
    async with ChatHarness([AskSkill], tmp_path, model=backend) as chat:
        failed = await chat.ask("What is the capital of France?", channel="a")
        assert server.requests == 2  # one retry (model.openai.max_retries), no more
        after = await chat.ask("What is the capital of France?", channel="b")
    assert failed == FAILED  # not a traceback, not "`ask` failed while answering"
    assert after == ANSWER


async def test_a_retry_that_would_pass_the_request_timeout_is_not_waited_for(
    server: ModelServer, backend: OpenAIBackend, tmp_path: Path
) -> None:
    server.faults.append("429, retry in a minute")
    async with ChatHarness([AskSkill], tmp_path, model=backend) as chat:
        started = time.monotonic()
        busy = await chat.ask("What is the capital of France?", channel="a")
        waited = time.monotonic() - started
        after = await chat.ask("What is the capital of France?", channel="b")
    assert busy == BUSY
    assert waited < REQUEST_TIMEOUT_S  # said at once, not after a minute or the timeout
    assert after == ANSWER


@pytest.mark.parametrize("fault", ["500", "close before answering"])
async def test_a_fault_before_the_first_word_is_retried_unseen(
    server: ModelServer, backend: OpenAIBackend, tmp_path: Path, fault: str
) -> None:
    server.faults.append(fault)
    async with ChatHarness([AskSkill], tmp_path, model=backend) as chat:
        assert await chat.ask("What is the capital of France?") == ANSWER
    assert server.requests == 2


async def test_a_connection_closed_mid_answer_keeps_what_was_shown_and_says_so(
    server: ModelServer, backend: OpenAIBackend, tmp_path: Path
) -> None:
    server.faults.append("close mid-answer")
    async with ChatHarness([AskSkill], tmp_path, model=backend) as chat:
        posted = await chat.send("What is the capital of France?", channel="a")
        # Not retried: the person has already seen the first words.
        assert server.requests == 1
        after = await chat.ask("What is the capital of France?", channel="b")
    assert [p.text for p in posted] == ["Paris is", FAILED]
    assert after == ANSWER


@pytest.mark.parametrize(
    ("fault", "within_s"),
    [
        ("silent before answering", READ_TIMEOUT_S),
        ("silent mid-answer", READ_TIMEOUT_S),
        ("keep-alives only", REQUEST_TIMEOUT_S),
    ],
)
async def test_a_server_gone_silent_gets_a_clear_reply_in_time_and_then_an_answer(
    server: ModelServer, backend: OpenAIBackend, tmp_path: Path, fault: str, within_s: float
) -> None:
    server.faults.append(fault)
    async with ChatHarness([AskSkill], tmp_path, model=backend) as chat:
        started = time.monotonic()
        posted = await chat.send("What is the capital of France?", channel="a")
        waited = time.monotonic() - started
        after = await chat.ask("What is the capital of France?", channel="b")
    assert posted[-1].text == TOO_LONG
    assert within_s - 0.05 < waited < within_s + 1.0
    assert after == ANSWER
    assert server.requests == 2  # a silent server is not asked twice
