"""``[web]``: /healthz says which part is down, /metrics counts what the bot did,
and nothing a client sends puts a traceback in the log."""

from __future__ import annotations

import asyncio
import logging
import socket

import pytest

from confab.bot.adapter import MessageHandler
from confab.bot.app import App
from confab.bot.errors import ConfabError, ConfigError
from confab.bot.metrics import PrometheusMetrics
from confab.bot.plugins import discover_adapters, discover_skills
from confab.bot.testing import RecordingAdapter, ScriptedBackend
from tests.adapters.processes import until
from tests.bot.web_helpers import serving
from tests.helpers import console_config


def echo(messages) -> str:  # type: ignore[no-untyped-def]
    return f"About {messages[-1].content}."


class FlakyPlatform(RecordingAdapter):
    """A platform whose connection the test drops and brings back."""

    platform = "flaky"

    def __init__(self) -> None:
        super().__init__()
        self.connected = True

    @property
    def status(self) -> str:
        return "ok" if self.connected else "disconnected"


class CrashingPlatform(RecordingAdapter):
    platform = "crashing"

    async def run(self, handler: MessageHandler) -> None:
        await asyncio.sleep(0.2)
        raise ConnectionError("the gateway went away")


class SlowToLoad(ScriptedBackend):
    def __init__(self) -> None:
        super().__init__(["Loaded."])
        self.go = asyncio.Event()

    async def start(self) -> None:
        await self.go.wait()


async def test_healthz_is_200_naming_each_part_while_the_bot_is_up(db_url: str) -> None:
    async with serving(db_url, ScriptedBackend()) as served:
        assert served.app.loading is not None
        await served.app.loading
        status, body = await served.health()
    assert status == 200
    assert body == {
        "status": "ok",
        "adapters": {"console": "ok"},
        "database": "ok",
        "model": "ok",
        "down": [],
    }


async def test_a_model_still_loading_is_up_and_says_loading(db_url: str) -> None:
    model = SlowToLoad()
    async with serving(db_url, model) as served:
        status, body = await served.health()
        assert (status, body["model"], body["down"]) == (200, "loading", [])
        model.go.set()
        assert served.app.loading is not None
        await served.app.loading
        status, body = await served.health()
        assert (status, body["model"]) == (200, "ok")


async def test_an_adapter_losing_its_connection_turns_healthz_503_and_back(db_url: str) -> None:
    flaky = FlakyPlatform()
    extra = {"flaky": (FlakyPlatform, lambda _context: flaky)}
    async with serving(db_url, ScriptedBackend(), extra=extra) as served:
        assert served.app.loading is not None
        await served.app.loading
        assert (await served.health())[0] == 200
        flaky.connected = False
        status, body = await served.health()
        assert status == 503
        assert body["status"] == "down"
        assert body["adapters"] == {"console": "ok", "flaky": "disconnected"}
        assert body["down"] == ["adapter flaky"]
        flaky.connected = True
        status, body = await served.health()
        assert (status, body["adapters"]["flaky"], body["down"]) == (200, "ok", [])


async def test_an_adapter_whose_run_ended_is_down_while_the_others_serve(db_url: str) -> None:
    extra = {"crashing": (CrashingPlatform, lambda _context: CrashingPlatform())}
    async with serving(db_url, ScriptedBackend(), extra=extra) as served:
        await until(lambda: "crashing" not in [t.get_name() for t in asyncio.all_tasks()])
        status, body = await served.health()
    assert status == 503
    assert body["adapters"] == {"console": "ok", "crashing": "stopped"}
    assert body["down"] == ["adapter crashing"]


def sample(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_metrics_count_a_conversation_message_by_message(db_url: str) -> None:
    questions = 5
    async with serving(db_url, ScriptedBackend(echo)) as served:
        for n in range(questions):
            served.keyboard.type(f"question {n}")
        served.keyboard.type("!ping")
        served.keyboard.type("!nosuch")
        await until(lambda: "I don't know the command" in served.out.getvalue())

        async def counted() -> float:
            found = await served.metrics()
            return sum(
                value
                for (name, _), value in found.items()
                if name == "confab_messages_received_total"
            )

        deadline = asyncio.get_running_loop().time() + 10
        while await counted() < questions + 2:
            assert asyncio.get_running_loop().time() < deadline, await served.get("/metrics")
            await asyncio.sleep(0.05)
        found = await served.metrics()
    assert served.out.getvalue().count("About question") == questions
    ask = {"platform": "console", "skill": "ask"}
    assert sample(found, "confab_messages_received_total", **ask) == questions
    assert sample(found, "confab_messages_answered_total", **ask) == questions
    assert sample(found, "confab_reply_seconds_count", **ask) == questions
    assert sample(found, "confab_first_reply_seconds_count", **ask) == questions
    assert sample(found, "confab_reply_seconds_bucket", **ask, le="+Inf") == questions
    ping = {"platform": "console", "skill": "ping"}
    assert sample(found, "confab_messages_answered_total", **ping) == 1
    unknown = {"platform": "console", "skill": "none", "reason": "unknown_command"}
    assert sample(found, "confab_messages_refused_total", **unknown) == 1
    assert sample(found, "confab_messages_received_total", platform="console", skill="none") == 1
    refused = [name for (name, labels) in found if name == "confab_messages_refused_total"]
    assert len(refused) == 1  # nothing else was refused
    assert sample(found, "confab_database_outages_total") == 0
    assert ("confab_database_outages_total", ()) in found


async def test_a_message_being_answered_is_in_progress_until_it_is_counted(
    db_url: str,
) -> None:
    words = " ".join(f"w{n}" for n in range(40))
    async with serving(db_url, ScriptedBackend([words], delay_s=0.05)) as served:
        served.keyboard.type("a slow question")

        async def in_progress() -> float:
            found = await served.metrics()
            return sample(found, "confab_messages_in_progress", platform="console")

        deadline = asyncio.get_running_loop().time() + 10
        while await in_progress() != 1:
            assert asyncio.get_running_loop().time() < deadline, await served.get("/metrics")
            await asyncio.sleep(0.02)
        during = await served.metrics()
        await until(lambda: "w39" in served.out.getvalue())
        while sample(await served.metrics(), "confab_messages_answered_total",
                     platform="console", skill="ask") != 1:  # fmt: skip
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.02)
        after = await served.metrics()
    ask = {"platform": "console", "skill": "ask"}
    assert sample(during, "confab_messages_received_total", **ask) == 0  # counted once handled
    assert sample(after, "confab_messages_in_progress", platform="console") == 0
    assert sample(after, "confab_messages_received_total", **ask) == 1


async def test_an_unknown_path_is_404_and_nothing_is_logged(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with serving(db_url, ScriptedBackend()) as served:
        caplog.clear()
        with caplog.at_level(logging.DEBUG):
            assert (await served.get("/nope"))[0] == 404
            assert (await served.get("/healthz/../../etc/passwd"))[0] == 404
            host, port = "127.0.0.1", served.app.web.port  # type: ignore[union-attr]
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(b"NOT HTTP AT ALL\r\n\x00\x01\r\n\r\n")
            await writer.drain()
            answer = await reader.read(100)
            writer.close()
            assert answer.split(b"\r\n")[0].endswith(b" 400 Bad Request")
            await asyncio.sleep(0.1)
        records = [r for r in caplog.records if r.name.startswith(("aiohttp", "confab.bot.web"))]
    assert all(r.exc_info is None and "Traceback" not in r.getMessage() for r in records)
    assert not [r for r in records if "/nope" in r.getMessage()]
    assert all(r.levelno <= logging.WARNING for r in records)


def test_two_apps_keep_their_own_metrics() -> None:
    one, other = PrometheusMetrics(), PrometheusMetrics()
    one.answered("console", "ask", 0.5)
    assert b'confab_messages_answered_total{platform="console",skill="ask"} 1.0' in one.render()
    assert b"confab_messages_answered_total{" not in other.render()


def test_web_settings_are_checked_with_the_key_named(db_url: str) -> None:
    with pytest.raises(ConfigError, match=r"web\.port = 70000: Input should be less than"):
        console_config(db_url, overrides={"web": {"port": 70000}})
    with pytest.raises(ConfigError, match=r"web\.host = 'http://x': .*host name or IP"):
        console_config(db_url, overrides={"web": {"host": "http://x"}})
    with pytest.raises(ConfigError, match=r"web\.enabled = 'maybe'"):
        console_config(db_url, overrides={"web": {"enabled": "maybe"}})
    config = console_config(db_url)
    assert (config.web.enabled, config.web.host, config.web.port) == (False, "127.0.0.1", 8080)


async def test_a_port_in_use_stops_the_start_with_a_clear_error(db_url: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        app = App(
            console_config(
                db_url, {"test": RecordingAdapter}, {"web": {"enabled": True, "port": port}}
            ),
            skills=discover_skills(),
            adapters=discover_adapters(),
            enabled=["test"],
            model=ScriptedBackend(),
            adapter_factories={"test": lambda _context: RecordingAdapter()},
        )
        with pytest.raises(ConfabError, match=f"cannot listen on 127.0.0.1:{port}"):
            await app.run()
    assert app.web is None and app.database is None  # stopped cleanly
