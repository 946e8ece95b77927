"""A model served elsewhere behind an OpenAI-compatible chat completions API.

vLLM, ``transformers serve``, the llama.cpp server and Ollama all speak it. The
answer streams as server-sent events. Connection failures and 5xx answers are
retried with backoff until the first piece of text arrives (after that, a retry
would repeat what the person already saw); 429 is retried after the server's
``Retry-After``, but never past ``model.request_timeout_s``: a retry that could
not start in time fails at once with what went wrong. What still fails maps to
the same errors as the local engine.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx

from confab.bot.errors import ModelBusy, ModelError, ModelTimeout, ModelUnavailable
from confab.bot.llm.backend import ChatMessage, GenerationParams, ModelBackend
from confab.bot.llm.config import ModelConfig
from confab.bot.llm.context import fit_messages
from confab.bot.redaction import masked_url

log = logging.getLogger(__name__)

DEFAULT_WINDOW = 8192
# Without the server's tokenizer, tokens are estimated generously from UTF-8
# bytes (English averages about four per token), so prompts err on fitting.
BYTES_PER_TOKEN = 3
TOKENS_PER_MESSAGE = 4
BACKOFF_S = 0.5
MAX_RETRY_AFTER_S = 30.0


class _Retry(Exception):
    """A failure worth another attempt; ``error`` is raised if none is left."""

    def __init__(self, error: ModelError, wait: float | None = None) -> None:
        super().__init__(str(error))
        self.error = error
        self.wait = wait


class OpenAIBackend(ModelBackend):
    """Streams chat completions from ``model.openai.base_url``."""

    def __init__(
        self, config: ModelConfig, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self._config = config
        self._transport = transport  # tests put faults between us and a real server
        self._settings = config.openai
        self._where = masked_url(config.openai.base_url)  # for logs: no credentials
        self._client: httpx.AsyncClient | None = None
        self._model = self._settings.model
        self.name = self._model or "openai"
        self.default_params = config.sampling()

    @property
    def context_window(self) -> int:
        return self._config.context_window or DEFAULT_WINDOW

    def count_text(self, text: str) -> int:
        return -(-len(text.encode()) // BYTES_PER_TOKEN)

    def count_tokens(self, messages: Sequence[ChatMessage]) -> int:
        return sum(self.count_text(m.content) + TOKENS_PER_MESSAGE for m in messages) + 2

    async def start(self) -> None:
        headers = {"Accept": "text/event-stream"}
        key = os.environ.get(self._settings.api_key_env, "")
        if key:
            headers["Authorization"] = f"Bearer {key}"
        self._client = httpx.AsyncClient(
            base_url=self._settings.base_url + "/",
            headers=headers,
            transport=self._transport,
            timeout=httpx.Timeout(
                self._settings.read_timeout_s, connect=self._settings.connect_timeout_s
            ),
        )
        if not self._model:
            await self._discover_model()
        log.info("model %s at %s", self.name, self._where)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
        self._client = None

    async def _discover_model(self) -> None:
        """Use the server's first model when config names none."""
        try:
            response = await self._http().get("models")
            response.raise_for_status()
            self._model = str(response.json()["data"][0]["id"])
            self.name = self._model
        except (httpx.HTTPError, ValueError, KeyError, IndexError, TypeError) as error:
            # The server may come up later; requests will say so until it does.
            log.warning(
                "could not ask %s for its models (%s); set model.openai.model",
                self._where,
                type(error).__name__,
            )

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            raise ModelUnavailable("the OpenAI backend is not started (stream() before start())")
        return self._client

    def _body(self, messages: Sequence[ChatMessage], params: GenerationParams) -> dict[str, Any]:
        budget = self.context_window - min(params.max_new_tokens, self.context_window // 2)
        fitted = fit_messages(messages, self.count_tokens, budget)
        body: dict[str, Any] = {
            "model": self._model,
            "messages": [{"role": m.role, "content": m.content} for m in fitted],
            "stream": True,
            "max_tokens": params.max_new_tokens,
            "temperature": params.temperature,
        }
        if params.temperature > 0:
            body["top_p"] = params.top_p
        if params.seed is not None:
            body["seed"] = params.seed
        if params.stop:
            body["stop"] = list(params.stop)
        return body

    async def stream(
        self, messages: Sequence[ChatMessage], params: GenerationParams | None = None
    ) -> AsyncIterator[str]:
        client = self._http()
        if not self._model:  # the server was down at start: ask again
            await self._discover_model()
            if not self._model:
                raise ModelUnavailable(f"{self._where} lists no model; set model.openai.model")
        body = self._body(messages, params or self.default_params)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._config.request_timeout_s
        attempt = 0
        while True:
            sent_any = False
            try:
                async for piece in self._attempt(client, body, deadline):
                    sent_any = True
                    yield piece
                return
            except _Retry as retry:
                if sent_any or attempt >= self._settings.max_retries:
                    raise retry.error from None
                attempt += 1
                wait = retry.wait if retry.wait is not None else _backoff(attempt)
                if loop.time() + wait >= deadline:
                    # Waiting would only end in "took too long": say what failed now.
                    log.warning(
                        "model server attempt %d failed (%s); a retry in %.1f s would pass "
                        "model.request_timeout_s",
                        attempt,
                        retry.error,
                        wait,
                    )
                    raise retry.error from None
                log.warning(
                    "model server attempt %d failed (%s); retrying in %.1f s",
                    attempt,
                    retry.error,
                    wait,
                )
                await asyncio.sleep(wait)

    async def _attempt(
        self, client: httpx.AsyncClient, body: dict[str, Any], deadline: float
    ) -> AsyncIterator[str]:
        url = self._where
        try:
            async with asyncio.timeout_at(deadline):
                request = client.build_request("POST", "chat/completions", json=body)
                response = await client.send(request, stream=True)
            try:
                await _check_status(response, url)
                lines = response.aiter_lines()
                while True:
                    async with asyncio.timeout_at(deadline):
                        line = await anext(lines, None)
                    if line is None:
                        return
                    piece = _parse_event(line)
                    if piece is _DONE:
                        return
                    if piece:
                        yield str(piece)
            finally:
                await response.aclose()
        except TimeoutError:
            raise ModelTimeout(
                f"no complete answer from {url} within model.request_timeout_s = "
                f"{self._config.request_timeout_s:g} s"
            ) from None
        except httpx.ConnectTimeout as error:
            raise _Retry(ModelUnavailable(f"cannot reach {url}: {error!r}")) from error
        except httpx.TimeoutException as error:
            raise ModelTimeout(f"{url} did not answer in time: {error!r}") from error
        except (httpx.TransportError, httpx.StreamError) as error:
            raise _Retry(ModelUnavailable(f"cannot reach {url}: {error!r}")) from error


_DONE = object()


def _parse_event(line: str) -> object:
    """The text in one server-sent event line; ``_DONE`` at the end."""
    if not line.startswith("data:"):
        return ""  # blank separators, comments and other fields
    data = line[5:].strip()
    if data == "[DONE]":
        return _DONE
    try:
        event = json.loads(data)
    except ValueError:
        raise ModelError(
            "The model server sent an answer I could not read.", f"bad event: {data[:200]!r}"
        ) from None
    if not isinstance(event, dict):
        return ""
    if "error" in event:
        raise ModelError(
            "The model server failed while answering.", f"server error: {event['error']!r}"
        )
    try:
        return event["choices"][0]["delta"].get("content") or ""
    except (KeyError, IndexError, TypeError, AttributeError):
        return ""


async def _check_status(response: httpx.Response, url: str) -> None:
    status = response.status_code
    if 200 <= status < 300:
        if "text/event-stream" not in response.headers.get("content-type", ""):
            kind = response.headers.get("content-type", "no content type")
            raise ModelError(
                "The model server sent an answer I could not read.",
                f"{url} answered {status} with {kind}, not an event stream",
            )
        return
    detail = (await response.aread())[:300].decode(errors="replace")
    where = f"{url} answered {status}: {detail}"
    if status == 429:
        raise _Retry(ModelBusy(where), wait=_retry_after(response))
    if status >= 500:
        raise _Retry(ModelUnavailable(where))
    if status < 400:
        raise ModelUnavailable(f"{where} (a redirect: check model.openai.base_url)")
    if status in (401, 403):
        raise ModelUnavailable(f"{where} (check the key in model.openai.api_key_env)")
    raise ModelError("The model server refused the request.", where)


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return min(float(response.headers.get("retry-after", "")), MAX_RETRY_AFTER_S)
    except ValueError:
        return None


def _backoff(attempt: int) -> float:
    return float(BACKOFF_S * 2 ** (attempt - 1) * (0.5 + random.random()))
