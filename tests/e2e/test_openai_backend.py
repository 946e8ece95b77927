"""The OpenAI-compatible backend against a real ``transformers serve`` on loopback."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from confab.bot.errors import ModelBusy, ModelError, ModelTimeout, ModelUnavailable
from confab.bot.llm.backend import ChatMessage, GenerationParams
from confab.bot.llm.config import ModelConfig, OpenAIConfig
from confab.bot.llm.openai_backend import OpenAIBackend
from confab.bot.llm.weights import loadable_folder, resolve_model_path

pytestmark = pytest.mark.model

QUESTION = [ChatMessage("user", "What is the capital of France?")]
GREEDY = GenerationParams(max_new_tokens=24, temperature=0)
START_TIMEOUT_S = 90


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def bundled_folder() -> Path:
    return loadable_folder(resolve_model_path(""), ModelConfig().cache_dir, print)


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    """``transformers serve`` on the de-quantised bundled model; its /v1 URL."""
    folder = bundled_folder()
    port = free_port()
    command = [
        str(Path(sys.executable).with_name("transformers")),
        "serve",
        str(folder),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--device",
        "cpu",
    ]
    # A pipe nobody reads could fill and block the server; closed at teardown.
    log = tempfile.TemporaryFile()  # noqa: SIM115
    try:
        process = subprocess.Popen(
            command,
            stdout=subprocess.DEVNULL,
            stderr=log,
            env={**os.environ, "HF_HUB_OFFLINE": "1"},
        )
    except OSError as error:
        pytest.skip(f"transformers serve cannot be started: {error}")
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    else:
        process.kill()
        log.seek(0)
        error = log.read().decode(errors="replace")[-500:]
        pytest.skip(f"transformers serve did not come up in {START_TIMEOUT_S} s: {error}")
    yield f"http://127.0.0.1:{port}/v1"
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    log.close()


class Faulty(httpx.AsyncHTTPTransport):
    """The network edge: answers the first ``failures`` requests with ``status``."""

    def __init__(self, failures: int, status: int, headers: dict[str, str] | None = None) -> None:
        super().__init__()
        self.failures = failures
        self.status = status
        self.headers = headers or {}
        self.requests = 0
        self.authorization: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        self.authorization.append(request.headers.get("authorization", ""))
        if request.url.path.endswith("/chat/completions") and self.failures > 0:
            self.failures -= 1
            return httpx.Response(self.status, headers=self.headers, text="simulated failure")
        return await super().handle_async_request(request)


def settings(base_url: str, **openai: object) -> ModelConfig:
    return ModelConfig(backend="openai", openai=OpenAIConfig(base_url=base_url, **openai))


async def answer(backend: OpenAIBackend) -> list[str]:
    return [piece async for piece in backend.stream(QUESTION, GREEDY)]


async def test_an_answer_streams_from_the_server_in_pieces(server: str) -> None:
    backend = OpenAIBackend(settings(server))
    await backend.start()
    try:
        pieces = await answer(backend)
    finally:
        await backend.close()
    assert backend.name == str(bundled_folder())  # the model the server lists
    assert len(pieces) > 3
    assert "Paris" in "".join(pieces)


async def test_5xx_answers_are_retried_before_the_first_piece(
    server: str, caplog: pytest.LogCaptureFixture
) -> None:
    edge = Faulty(failures=2, status=503)
    backend = OpenAIBackend(settings(server, max_retries=2), transport=edge)
    await backend.start()
    try:
        with caplog.at_level(logging.WARNING):
            text = "".join(await answer(backend))
    finally:
        await backend.close()
    assert "Paris" in text
    assert sum("retrying" in r.getMessage() for r in caplog.records) == 2


async def test_when_retries_run_out_the_error_says_unavailable(server: str) -> None:
    backend = OpenAIBackend(settings(server, max_retries=1), transport=Faulty(5, 500))
    await backend.start()
    try:
        with pytest.raises(ModelUnavailable) as failed:
            await answer(backend)
    finally:
        await backend.close()
    assert "unavailable" in failed.value.user_message
    assert "500" in str(failed.value)


async def test_a_busy_server_is_retried_after_its_retry_after_then_reported_busy(
    server: str,
) -> None:
    edge = Faulty(5, 429, {"Retry-After": "0.2"})
    backend = OpenAIBackend(settings(server, max_retries=1), transport=edge)
    await backend.start()
    started = time.monotonic()
    try:
        with pytest.raises(ModelBusy):
            await answer(backend)
    finally:
        await backend.close()
    assert time.monotonic() - started >= 0.2
    assert edge.failures == 3  # two attempts, no more


async def test_a_refused_request_is_not_retried(server: str) -> None:
    edge = Faulty(5, 400)
    backend = OpenAIBackend(settings(server, max_retries=3), transport=edge)
    await backend.start()
    try:
        with pytest.raises(ModelError) as refused:
            await answer(backend)
    finally:
        await backend.close()
    assert edge.failures == 4
    assert "refused" in refused.value.user_message


async def test_an_unreachable_server_is_unavailable_after_retries(
    caplog: pytest.LogCaptureFixture,
) -> None:
    closed = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    backend = OpenAIBackend(settings(closed, max_retries=1, model="any"))
    await backend.start()
    try:
        with caplog.at_level(logging.WARNING), pytest.raises(ModelUnavailable) as failed:
            await answer(backend)
    finally:
        await backend.close()
    assert "cannot reach" in str(failed.value)
    assert any("retrying" in r.getMessage() for r in caplog.records)


async def test_the_api_key_comes_from_its_variable_and_is_never_logged(
    server: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("TEAM_LLM_KEY", "sk-test-4242")
    edge = Faulty(failures=1, status=502)
    backend = OpenAIBackend(settings(server, api_key_env="TEAM_LLM_KEY"), transport=edge)
    with caplog.at_level(logging.DEBUG):
        await backend.start()
        try:
            assert "Paris" in "".join(await answer(backend))
        finally:
            await backend.close()
    assert edge.authorization and set(edge.authorization) == {"Bearer sk-test-4242"}
    assert "sk-test-4242" not in caplog.text


async def test_an_answer_slower_than_the_request_timeout_fails_as_too_long(server: str) -> None:
    config = settings(server).model_copy(update={"request_timeout_s": 0.05})
    backend = OpenAIBackend(config)
    await backend.start()
    try:
        with pytest.raises(ModelTimeout) as late:
            await answer(backend)
    finally:
        await backend.close()
    assert "too long" in late.value.user_message
