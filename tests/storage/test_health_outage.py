"""/healthz while PostgreSQL goes away and comes back: 503 naming the database, then 200.

PostgreSQL sits behind a proxy the test takes down (the port refuses and every
open connection is cut) and brings back on the same port. The proxy runs on an
event loop of its own: the app's scheduler opens its job store with a blocking
connection on the app's loop, which would otherwise wait on the proxy it blocks.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterator
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from confab.bot.testing import ScriptedBackend
from tests.adapters.processes import until
from tests.bot.web_helpers import serving
from tests.storage.tcp_proxy import FlakyProxy


class ProxyThread:
    """A :class:`FlakyProxy` served by a thread of its own."""

    def __init__(self, proxy: FlakyProxy) -> None:
        self.proxy = proxy
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return self.proxy.port

    async def _on_its_loop(self, work: Coroutine[Any, Any, None]) -> None:
        await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(work, self._loop))

    async def up(self) -> None:
        await self._on_its_loop(self.proxy.up())

    async def down(self) -> None:
        await self._on_its_loop(self.proxy.down())

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.proxy.down(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


@pytest.fixture
def proxy(postgresql_url: str) -> Iterator[ProxyThread]:
    url = make_url(postgresql_url)
    flaky = ProxyThread(FlakyProxy(url.host or "127.0.0.1", url.port or 5432))
    asyncio.run_coroutine_threadsafe(flaky.proxy.up(), flaky._loop).result(10)
    yield flaky
    flaky.close()


async def test_healthz_names_the_database_while_it_is_unreachable(
    proxy: ProxyThread, postgresql_url: str
) -> None:
    url = make_url(postgresql_url).set(port=proxy.port).render_as_string(hide_password=False)
    async with serving(url, ScriptedBackend(["Answered."])) as served:
        assert served.app.loading is not None
        await served.app.loading
        status, body = await served.health()
        assert (status, body["database"]) == (200, "ok")

        await proxy.down()
        status, body = await served.health()
        assert status == 503
        assert body["database"].startswith("unreachable")
        assert body["down"] == ["database"]
        assert body["adapters"] == {"console": "ok"} and body["model"] == "ok"
        assert (await served.metrics())[("confab_database_outages_total", ())] == 1

        await proxy.up()
        status, body = await served.health()
        assert (status, body["database"], body["down"]) == (200, "ok", [])
        served.keyboard.type("hello")  # and the bot answers again
        await until(lambda: "Answered." in served.out.getvalue())
