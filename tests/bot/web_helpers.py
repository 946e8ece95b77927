"""An app serving ``[web]`` in-process, with a console a test types into."""

from __future__ import annotations

import asyncio
import io
import queue
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from confab.adapters.console import ConsoleAdapter
from confab.bot.adapter import Adapter, AdapterContext
from confab.bot.app import AdapterFactory, App
from confab.bot.llm.backend import ModelBackend
from confab.bot.plugins import discover_adapters, discover_skills
from tests.adapters.processes import until
from tests.helpers import console_config


class Keyboard:
    """Console input typed by the test, line by line; :meth:`close` is Ctrl-D."""

    def __init__(self) -> None:
        self._lines: queue.SimpleQueue[str | None] = queue.SimpleQueue()

    def type(self, line: str) -> None:
        self._lines.put(line + "\n")

    def close(self) -> None:
        self._lines.put(None)

    def __iter__(self) -> Iterator[str]:
        while (line := self._lines.get()) is not None:
            yield line


class Served:
    """The app being served, its console, and its web server's address."""

    def __init__(self, app: App, keyboard: Keyboard, out: io.StringIO) -> None:
        self.app = app
        self.keyboard = keyboard
        self.out = out
        assert app.web is not None and app.web.port is not None
        self.url = f"http://127.0.0.1:{app.web.port}"

    async def get(self, path: str) -> tuple[int, str]:
        async with (
            aiohttp.ClientSession() as session,
            session.get(self.url + path) as response,
        ):
            return response.status, await response.text()

    async def health(self) -> tuple[int, dict[str, Any]]:
        async with aiohttp.ClientSession() as session, session.get(self.url + "/healthz") as r:
            return r.status, await r.json()

    async def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """Every sample of ``/metrics``: (name, sorted labels) -> value."""
        status, text = await self.get("/metrics")
        assert status == 200
        return {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }


@asynccontextmanager
async def serving(
    db_url: str,
    model: ModelBackend,
    *,
    extra: Mapping[str, tuple[type[Adapter], AdapterFactory]] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> AsyncIterator[Served]:
    """The whole app with the console and ``extra`` adapters, ``[web]`` on a free port."""
    keyboard, out = Keyboard(), io.StringIO()

    def console(context: AdapterContext) -> ConsoleAdapter:
        return ConsoleAdapter(
            context,
            stdin=keyboard,  # type: ignore[arg-type]
            stdout=out,
            stderr=io.StringIO(),
            interactive=False,
        )

    extra = dict(extra or {})
    settings = {
        "web": {"enabled": True, "port": 0},
        "knowledge": {"enabled": False},
        **(overrides or {}),
    }
    app = App(
        console_config(db_url, {name: cls for name, (cls, _) in extra.items()}, settings),
        skills=discover_skills(),
        adapters=discover_adapters(),
        enabled=["console", *extra],
        model=model,
        adapter_factories={"console": console, **{n: f for n, (_, f) in extra.items()}},
    )
    await app.start()
    served = asyncio.create_task(app.serve())
    try:
        await until(lambda: served.done() or (app.web is not None and app.web.port is not None))
        if served.done():
            served.result()  # what stopped it
        yield Served(app, keyboard, out)
    finally:
        keyboard.close()
        app.request_stop()
        await asyncio.gather(served, return_exceptions=True)
        await app.stop()
