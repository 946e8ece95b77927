"""The database goes away and comes back: answers or clear errors, nothing lost, nothing doubled.

PostgreSQL sits behind a proxy that the tests take down (the port refuses and
every open connection is cut) and bring back on the same port.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

import confab.bot.router
from confab.bot.router import DB_DOWN
from confab.bot.testing import ChatHarness, ScriptedBackend
from confab.skills.qa import AskSkill
from confab.storage.conversations import ConversationKey
from tests.storage.tcp_proxy import FlakyProxy

DM = ConversationKey("test", "dm")


def echo(messages) -> str:  # type: ignore[no-untyped-def]
    return f"About {messages[-1].content}."


@pytest.fixture
async def proxy(postgresql_url: str) -> AsyncIterator[FlakyProxy]:
    url = make_url(postgresql_url)
    flaky = FlakyProxy(url.host or "127.0.0.1", url.port or 5432)
    await flaky.up()
    yield flaky
    await flaky.down()


def through(proxy: FlakyProxy, postgresql_url: str) -> str:
    return make_url(postgresql_url).set(port=proxy.port).render_as_string(hide_password=False)


async def stored(chat: ChatHarness) -> list[tuple[str, str]]:
    return [(t.role, t.text) for t in await chat.store.recent(DM, limit=100)]


async def test_a_short_outage_delays_the_answer_and_loses_nothing(
    tmp_path: Path, proxy: FlakyProxy, postgresql_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    url = through(proxy, postgresql_url)
    async with ChatHarness(
        [AskSkill], tmp_path, model=ScriptedBackend(echo), database_url=url
    ) as chat:
        assert await chat.ask("first") == "About first."
        await proxy.down()
        with caplog.at_level(logging.WARNING, logger="confab.storage.write_queue"):
            asking = asyncio.create_task(chat.ask("second"))
            await asyncio.sleep(1.5)
            assert not asking.done()  # waiting for the database, not failing
            await proxy.up()
            assert await asyncio.wait_for(asking, 15) == "About second."
        assert "the database is unreachable" in caplog.text
        assert "the database is back after" in caplog.text
        assert await chat.ask("third") == "About third."
        assert await stored(chat) == [
            ("user", "first"),
            ("assistant", "About first."),
            ("user", "second"),
            ("assistant", "About second."),
            ("user", "third"),
            ("assistant", "About third."),
        ]


async def test_a_long_outage_gets_a_clear_reply_and_the_next_message_works(
    tmp_path: Path, proxy: FlakyProxy, postgresql_url: str
) -> None:
    url = through(proxy, postgresql_url)
    async with ChatHarness(
        [AskSkill], tmp_path, model=ScriptedBackend(echo), database_url=url
    ) as chat:
        chat.database.write_queue.retry_s = 1.0
        assert await chat.ask("first") == "About first."
        await proxy.down()
        started = time.monotonic()
        assert await chat.ask("during") == DB_DOWN
        assert time.monotonic() - started < 5
        assert await chat.ask("!ask during, with a command") == DB_DOWN

        await proxy.up()
        assert await chat.ask("after") == "About after."
        # The refused ones were answered with the error and are not half-stored.
        assert await stored(chat) == [
            ("user", "first"),
            ("assistant", "About first."),
            ("user", "after"),
            ("assistant", "About after."),
        ]


async def test_an_answer_shown_during_an_outage_is_stored_once_the_database_is_back(
    tmp_path: Path, proxy: FlakyProxy, postgresql_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(confab.bot.router, "STORE_WAIT_S", 0.5)
    answering, release = asyncio.Event(), asyncio.Event()

    class Slow(ScriptedBackend):
        async def stream(self, messages, params=None):  # type: ignore[no-untyped-def]
            answering.set()
            await release.wait()
            async for piece in super().stream(messages, params):
                yield piece

    url = through(proxy, postgresql_url)
    async with ChatHarness([AskSkill], tmp_path, model=Slow(echo), database_url=url) as chat:
        asking = asyncio.create_task(chat.ask("question"))
        await asyncio.wait_for(answering.wait(), 10)
        await proxy.down()  # the question is stored; the answer is not yet
        release.set()
        assert await asyncio.wait_for(asking, 10) == "About question."  # shown anyway

        await proxy.up()
        await chat.database.write_queue.barrier()
        assert await stored(chat) == [("user", "question"), ("assistant", "About question.")]
