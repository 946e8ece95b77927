"""``confab run`` as a subprocess, for behaviour only a whole process shows (start-up
retries, exit codes, how long a stop takes), and a loopback model server that
streams an answer as slowly as a test needs."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from pathlib import Path

from aiohttp import web


async def until(condition: Callable[[], bool], within_s: float = 15.0) -> None:
    """Wait until ``condition()`` holds; AssertionError after ``within_s``."""
    deadline = time.monotonic() + within_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("the condition never held")
        await asyncio.sleep(0.05)


@asynccontextmanager
async def streaming_model(words: list[str], pause_s: float) -> AsyncIterator[str]:
    """An OpenAI-compatible server on loopback that streams ``words``, ``pause_s``
    apart, for every chat completion; yields its ``base_url``."""

    async def completions(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        try:
            for n, word in enumerate(words):
                piece = {"choices": [{"delta": {"content": word if n == 0 else f" {word}"}}]}
                await response.write(f"data: {json.dumps(piece)}\n\n".encode())
                await asyncio.sleep(pause_s)
            await response.write(b"data: [DONE]\n\n")
        except ConnectionResetError:  # the bot stopped listening: it was cut short
            pass
        return response

    server = web.Application()
    server.router.add_post("/v1/chat/completions", completions)
    runner = web.AppRunner(server)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/v1"
    finally:
        await runner.cleanup()


def config_text(tmp_path: Path, model_url: str, adapter: str, section: dict[str, object]) -> str:
    """A config that runs one adapter against a streaming model, storing in ``tmp_path``."""
    lines = [
        "[bot]",
        f'database_url = "sqlite+aiosqlite:///{tmp_path / "confab.db"}"',
        f'adapters = ["{adapter}"]',
        "[knowledge]",
        "enabled = false",
        "[model]",
        'backend = "openai"',
        "[model.openai]",
        f'base_url = "{model_url}"',
        'model = "streaming"',
        f"[{adapter}]",
        *(f"{key} = {json.dumps(value)}" for key, value in section.items()),
    ]
    return "\n".join(lines) + "\n"


class ConfabProcess:
    """One ``confab run`` process; its log (stderr) is read as it comes."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.log: list[str] = []
        self._new_line = asyncio.Event()
        self._reading = asyncio.ensure_future(self._read())

    @classmethod
    async def start(cls, config: Path, env: dict[str, str]) -> ConfabProcess:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "confab",
            "run",
            "--config",
            str(config),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, **env},
        )
        return cls(process)

    async def _read(self) -> None:
        assert self.process.stderr is not None
        async for line in self.process.stderr:
            self.log.append(line.decode(errors="replace").rstrip("\n"))
            self._new_line.set()

    @property
    def log_text(self) -> str:
        return "\n".join(self.log)

    async def wait_for_line(self, words: str, within_s: float = 30.0) -> str:
        """The first log line containing ``words``, waiting up to ``within_s``."""
        deadline = time.monotonic() + within_s
        while True:
            for line in self.log:
                if words in line:
                    return line
            if self.process.returncode is not None or time.monotonic() > deadline:
                raise AssertionError(f"no log line with {words!r}:\n{self.log_text}")
            self._new_line.clear()
            with suppress(TimeoutError):
                await asyncio.wait_for(self._new_line.wait(), timeout=0.2)

    async def stop(self, within_s: float = 20.0) -> tuple[int, float]:
        """SIGTERM; the exit status and how long the process took to exit."""
        self.process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        code = await asyncio.wait_for(self.process.wait(), within_s)
        took = time.monotonic() - signalled
        await asyncio.wait_for(self._reading, 5)
        return code, took

    async def kill(self) -> None:
        if self.process.returncode is None:
            self.process.kill()
            await self.process.wait()
        self._reading.cancel()


@asynccontextmanager
async def confab_process(config: Path, env: dict[str, str]) -> AsyncIterator[ConfabProcess]:
    """``confab run`` for the block; killed at the end if it still runs."""
    running = await ConfabProcess.start(config, env)
    try:
        yield running
    finally:
        await running.kill()
