"""What each adapter tells /healthz about its connection."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace

from confab.adapters.discord.adapter import DiscordAdapter
from confab.adapters.discord.config import DiscordConfig
from confab.adapters.slack.adapter import SlackAdapter
from confab.adapters.slack.config import SlackConfig
from confab.bot.adapter import AdapterContext, EmptyChannelLog
from confab.bot.testing import ChatHarness, RecordingAdapter, ScriptedBackend
from confab.skills.ping import PingSkill
from tests.adapters.discord_wire import FakeDiscord, free_port, running_fake_discord
from tests.adapters.processes import until
from tests.adapters.test_discord_wire import discord_globals  # noqa: F401 - sets the token


async def test_discord_is_down_while_its_gateway_is_lost_and_up_once_back(tmp_path: Path) -> None:
    port, fake = free_port(), FakeDiscord()
    async with ChatHarness([PingSkill], tmp_path, model=ScriptedBackend()) as chat:
        settings = DiscordConfig(
            api_base_url=f"http://127.0.0.1:{port}/api/v10",
            gateway_url=f"ws://127.0.0.1:{port}/gateway",
        )
        adapter = DiscordAdapter(
            AdapterContext(settings, "confab", EmptyChannelLog(), chat.router.skills.infos)
        )
        assert (adapter.status, adapter.healthy) == ("connecting", False)
        run = asyncio.create_task(adapter.run(chat.router.handle))
        try:
            async with running_fake_discord(port, fake=fake):
                await fake.wait_connected(within_s=10)
                await until(lambda: adapter.healthy)
            await until(lambda: not adapter.healthy)  # discord.py is reconnecting
            assert adapter.status in ("reconnecting", "connecting")
            async with running_fake_discord(port, fake=fake):
                await until(lambda: adapter.healthy, within_s=30)
        finally:
            await adapter.stop()
            await asyncio.wait_for(asyncio.gather(run, return_exceptions=True), 5)
        assert adapter.status == "disconnected"


def test_slack_socket_mode_follows_its_socket() -> None:
    adapter = SlackAdapter(AdapterContext(SlackConfig(), "confab", EmptyChannelLog()))
    assert adapter.status == "connecting"  # Slack not reached yet
    socket = SimpleNamespace(closed=False, stale=False, current_session=None)
    adapter._socket = socket
    assert adapter.status == "connecting"
    socket.current_session = SimpleNamespace(closed=False)
    assert (adapter.status, adapter.healthy) == ("ok", True)
    socket.current_session.closed = True
    assert adapter.status == "disconnected"
    socket.current_session, socket.stale = SimpleNamespace(closed=False), True
    assert (adapter.status, adapter.healthy) == ("disconnected", False)


def test_slack_http_mode_is_up_while_its_endpoint_serves() -> None:
    adapter = SlackAdapter(AdapterContext(SlackConfig(mode="http"), "confab", EmptyChannelLog()))
    assert adapter.status == "connecting"
    adapter._serving = True
    assert adapter.healthy


def test_an_adapter_that_says_nothing_is_healthy_while_it_runs() -> None:
    assert (RecordingAdapter().status, RecordingAdapter().healthy) == ("ok", True)
