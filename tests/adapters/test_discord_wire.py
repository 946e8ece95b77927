"""The Discord adapter over the wire: the real discord.py client, Confab's real router
and storage, and a loopback Discord (``discord_wire``) it reaches by real HTTP and a
real gateway WebSocket, as ``[discord] api_base_url`` and ``gateway_url`` point it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import discord
import pytest

from confab import Arg, SkillContext
from confab.adapters.discord import INTENT_HELP, DiscordAdapter, DiscordConfig
from confab.adapters.discord import adapter as discord_adapter
from confab.bot.adapter import AdapterContext
from confab.bot.config import RouterConfig
from confab.bot.errors import AdapterError
from confab.bot.skill import Skill
from confab.bot.testing import ChatHarness, EmptyChannelLog, Script, ScriptedBackend
from confab.skills.ping import PingSkill
from confab.skills.qa import AskSkill
from confab.skills.summarise import SummariseSkill
from confab.storage.conversations import ConversationKey
from tests.adapters.discord_wire import (
    APP_ID,
    CHANNEL_ID,
    DM_CHANNEL_ID,
    HUMAN_ID,
    TOKEN,
    FakeDiscord,
    free_port,
    running_fake_discord,
)

SKILLS: list[type[Skill]] = [AskSkill, PingSkill, SummariseSkill]
MESSAGES = "/channels/{channel_id}/messages"
MESSAGE = "/channels/{channel_id}/messages/{message_id}"
CALLBACK = "/interactions/{interaction_id}/{interaction_token}/callback"
ORIGINAL = "/webhooks/{application_id}/{interaction_token}/messages/@original"
FOLLOWUP = "/webhooks/{application_id}/{interaction_token}"
GLOBAL_COMMANDS = "/applications/{application_id}/commands"
THREADS = "/channels/{channel_id}/messages/{message_id}/threads"


@pytest.fixture(autouse=True)
def discord_globals(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The adapter points discord.py's class-level URLs here; put them back after, for the
    dpytest suites in the same process."""
    monkeypatch.setattr(discord.http.Route, "BASE", discord.http.Route.BASE)
    gateway = discord.gateway.DiscordWebSocket
    monkeypatch.setattr(gateway, "DEFAULT_GATEWAY", gateway.DEFAULT_GATEWAY)
    monkeypatch.setenv("CONFAB_DISCORD_TOKEN", TOKEN)
    yield


def option_of(fake: FakeDiscord, command: str) -> str:
    """The name the command's one option was registered under (from the skill's usage)."""
    registered = next(c for c in fake.commands[None] if c["name"] == command)
    return str(registered["options"][0]["name"])


@dataclass
class Wire:
    """Confab's Discord adapter running against the loopback Discord."""

    discord: FakeDiscord
    adapter: DiscordAdapter
    chat: ChatHarness
    run: asyncio.Task[None]

    async def connected(self) -> None:
        """Wait for the gateway session, failing at once if ``run`` ended instead."""
        waiting = asyncio.ensure_future(self.discord.wait_connected())
        done, _ = await asyncio.wait({waiting, self.run}, return_when=asyncio.FIRST_COMPLETED)
        if self.run in done:
            waiting.cancel()
            self.run.result()  # its error, if any
            raise AssertionError("the adapter stopped before it connected")
        waiting.result()

    async def answered(self, channel: str, text: str) -> None:
        """Wait until the channel shows ``text`` whole as the bot's last message."""
        await self.discord.wait_for(lambda: self.discord.shown(channel)[-1:] == [text])


@asynccontextmanager
async def confab(
    tmp_path: Path,
    replies: Sequence[str] | Script = ("Paris.",),
    delay_s: float = 0.0,
    *,
    connect: bool = True,
    skills: Sequence[type[Skill]] = SKILLS,
    router_config: RouterConfig | None = None,
    **config: Any,
) -> AsyncIterator[Wire]:
    """Confab answering on the loopback Discord: ``replies`` as ScriptedBackend takes
    them, ``config`` the ``[discord]`` keys beyond the fake's URLs."""
    model = ScriptedBackend(replies, delay_s=delay_s)
    async with (
        running_fake_discord() as fake,
        ChatHarness(skills, tmp_path, model=model, router_config=router_config) as chat,
    ):
        settings = DiscordConfig(**{**fake.config(), "edit_interval_s": 0.2, **config})
        adapter = DiscordAdapter(
            AdapterContext(settings, "confab", EmptyChannelLog(), chat.router.skills.infos)
        )
        wire = Wire(fake, adapter, chat, asyncio.create_task(adapter.run(chat.router.handle)))
        try:
            if connect:
                await wire.connected()
            yield wire
        finally:
            await adapter.stop()
            await asyncio.wait_for(asyncio.gather(wire.run, return_exceptions=True), 5)


async def test_a_mention_is_answered_streamed_with_edits(tmp_path: Path) -> None:
    answer = "The capital of France is Paris, a city on the Seine with many bridges."
    async with confab(tmp_path, [answer], delay_s=0.05) as wire:
        asked = await wire.discord.dispatch_message(
            CHANNEL_ID, "what is the capital of France?", mentions_bot=True
        )
        await wire.answered(CHANNEL_ID, answer)
        posts = wire.discord.writes_to(MESSAGES, "POST")
        edits = wire.discord.writes_to(MESSAGE, "PATCH")
        turns = await wire.chat.store.recent(ConversationKey("discord", CHANNEL_ID))
    assert wire.discord.shown(CHANNEL_ID) == [answer]
    assert len(posts) == 1 and edits, "one message, then edits as the model writes"
    assert {edit.message for edit in edits} == {posts[0].message}
    first = posts[0].body
    assert str(first["message_reference"]["message_id"]) == asked.id
    assert first["allowed_mentions"] == {"parse": [], "replied_user": False}
    gaps = [b.at - a.at for a, b in zip([posts[0], *edits], edits, strict=False)]
    assert min(gaps) >= 0.2 * 0.9, "no faster than edit_interval_s"
    assert wire.discord.hits("/channels/{channel_id}/typing", "POST")
    assert [(t.role, t.text) for t in turns] == [
        ("user", "what is the capital of France?"),
        ("assistant", answer),
    ]


async def test_slash_commands_are_registered_at_start(tmp_path: Path) -> None:
    async with confab(tmp_path) as wire:
        syncs = wire.discord.writes_to(GLOBAL_COMMANDS, "PUT")
    assert len(syncs) == 1
    registered = syncs[0].body["commands"]
    assert sorted(c["name"] for c in registered) == sorted(
        s.name for s in wire.adapter.context.skills
    )
    assert all(command["description"] for command in registered)
    ask = next(command for command in registered if command["name"] == "ask")
    assert [(o["type"], bool(o["description"])) for o in ask["options"]] == [(3, True)]
    assert [c["name"] for c in wire.discord.commands[None]] == [c["name"] for c in registered]


async def test_a_slash_command_is_deferred_and_answered_through_its_webhook(
    tmp_path: Path,
) -> None:
    async with confab(tmp_path, ["Paris, on the Seine."]) as wire:
        interaction = await wire.discord.dispatch_slash_command(
            "ask", {option_of(wire.discord, "ask"): "capital of France?"}
        )
        await wire.answered(CHANNEL_ID, "Paris, on the Seine.")
        writes = [(w.method, w.route) for w in wire.discord.writes if w.route != GLOBAL_COMMANDS]
        callback = wire.discord.writes_to(CALLBACK)[0]
        turns = await wire.chat.store.recent(ConversationKey("discord", CHANNEL_ID))
    assert writes[0] == ("POST", CALLBACK)
    assert callback.body["type"] == 5, "deferred: Discord shows 'thinking...'"
    assert set(writes[1:]) == {("PATCH", ORIGINAL)}, "answered in the deferred response"
    assert wire.discord.writes_to(ORIGINAL)[-1].channel == CHANNEL_ID
    assert not wire.discord.writes_to(MESSAGES), "nothing posted around the interaction"
    assert interaction["token"] in wire.discord.hits(ORIGINAL)[0].path
    assert [t.role for t in turns] == ["user", "assistant"]
    assert "capital of France?" in turns[0].text and turns[1].text == "Paris, on the Seine."


async def test_a_long_slash_answer_continues_in_a_followup(tmp_path: Path) -> None:
    answer = " ".join(f"word{i}" for i in range(400))  # past 2,000 characters
    async with confab(tmp_path, [answer]) as wire:
        await wire.discord.dispatch_slash_command("ask", {option_of(wire.discord, "ask"): "go"})
        await wire.discord.wait_for(
            lambda: " ".join(wire.discord.shown(CHANNEL_ID)).split() == answer.split()
        )
    assert len(wire.discord.shown(CHANNEL_ID)) == 2
    assert wire.discord.writes_to(FOLLOWUP, "POST")
    assert not wire.discord.writes_to(MESSAGES)


async def test_a_long_answer_goes_on_in_a_thread_when_configured(tmp_path: Path) -> None:
    answer = " ".join(f"word{i}" for i in range(400))
    async with confab(tmp_path, [answer], reply_in_thread=True) as wire:
        await wire.discord.dispatch_message(CHANNEL_ID, "tell me a lot", mentions_bot=True)
        await wire.discord.wait_for(lambda: len(wire.discord.writes_to(MESSAGES, "POST")) == 2)
        opened = wire.discord.writes_to(THREADS, "POST")
        thread = opened[0].message if opened else None
        assert thread is not None
        await wire.discord.wait_for(
            lambda: (
                " ".join(wire.discord.shown() + wire.discord.shown(thread)).split()
                == answer.split()
            )
        )
    assert opened[0].body["name"] == "tell me a lot"
    assert wire.discord.channels[thread].parent_id == CHANNEL_ID
    assert [w.channel for w in wire.discord.writes_to(MESSAGES, "POST")] == [CHANNEL_ID, thread]


async def test_a_direct_message_is_answered_in_the_dm(tmp_path: Path) -> None:
    async with confab(tmp_path, ["Hello, Ada."]) as wire:
        await wire.discord.dispatch_message(DM_CHANNEL_ID, "hi")
        await wire.answered(DM_CHANNEL_ID, "Hello, Ada.")
    assert wire.discord.shown(CHANNEL_ID) == []


async def test_stop_ends_run_and_closes_the_gateway(tmp_path: Path) -> None:
    async with confab(tmp_path) as wire:
        assert wire.discord.connected.is_set()
        started = time.monotonic()
        await wire.adapter.stop()
        await asyncio.wait_for(wire.run, 5)
        assert time.monotonic() - started < 2
        await wire.discord.wait_for(lambda: not wire.discord.connected.is_set())
    assert len(wire.discord.identifies) == 1 and wire.discord.heartbeats >= 1
    intents = discord.Intents._from_value(wire.discord.identifies[0].intents)
    assert intents.message_content and intents.guilds and not intents.members


async def test_a_rate_limited_edit_is_retried_and_the_answer_completes(tmp_path: Path) -> None:
    answer = "One two three four five six seven eight."
    async with confab(tmp_path, [answer], delay_s=0.05) as wire:
        wire.discord.fail_next("PATCH", MESSAGE, 429, times=2, retry_after=0.1)
        await wire.discord.dispatch_message(CHANNEL_ID, "count", mentions_bot=True)
        await wire.answered(CHANNEL_ID, answer)
    statuses = [hit.status for hit in wire.discord.hits(MESSAGE, "PATCH")]
    assert statuses[:2] == [429, 429] and statuses[2:] and set(statuses[2:]) == {200}


async def test_a_dropped_gateway_is_resumed_without_identifying_again(tmp_path: Path) -> None:
    async with confab(tmp_path, ["Still here."]) as wire:
        await wire.discord.close_gateway(4000, "unknown error")
        await wire.discord.wait_for(lambda: wire.discord.resumes == 1)
        await wire.discord.dispatch_message(CHANNEL_ID, "are you there?", mentions_bot=True)
        await wire.answered(CHANNEL_ID, "Still here.")
        await wire.discord.request_reconnect()  # op 7: Discord moves the session
        await wire.discord.wait_for(lambda: wire.discord.resumes == 2)
    assert len(wire.discord.identifies) == 1


async def test_discord_unreachable_at_start_is_retried_until_it_is_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(discord_adapter, "START_RETRY_FIRST_S", 0.2)
    port = free_port()
    async with ChatHarness(SKILLS, tmp_path, model=ScriptedBackend(["Up."])) as chat:
        settings = DiscordConfig(
            api_base_url=f"http://127.0.0.1:{port}/api/v10",
            gateway_url=f"ws://127.0.0.1:{port}/gateway",
            edit_interval_s=0.2,
        )
        adapter = DiscordAdapter(
            AdapterContext(settings, "confab", EmptyChannelLog(), chat.router.skills.infos)
        )
        run = asyncio.create_task(adapter.run(chat.router.handle))
        await asyncio.sleep(0.3)  # a first attempt finds nothing listening
        assert not run.done()
        async with running_fake_discord(port) as fake:
            try:
                await fake.wait_connected(within_s=5)
                await fake.dispatch_message(CHANNEL_ID, "hello?", mentions_bot=True)
                await fake.wait_for(lambda: fake.shown() == ["Up."])
            finally:
                await adapter.stop()
                await asyncio.wait_for(run, 5)


async def test_a_refused_token_ends_run_naming_the_variable(tmp_path: Path) -> None:
    async with confab(tmp_path, connect=False) as wire:
        wire.discord.token = "another-token"
        with pytest.raises(AdapterError, match="CONFAB_DISCORD_TOKEN"):
            await asyncio.wait_for(wire.run, 5)
    assert [hit.status for hit in wire.discord.hits("/users/@me")] == [401]


async def test_a_refused_content_intent_ends_run_with_the_portal_hint(tmp_path: Path) -> None:
    async with running_fake_discord() as fake:
        fake.refuse_privileged_intents = True
        async with ChatHarness(SKILLS, tmp_path) as chat:
            settings = DiscordConfig(**fake.config())
            adapter = DiscordAdapter(
                AdapterContext(settings, "confab", EmptyChannelLog(), chat.router.skills.infos)
            )
            with pytest.raises(AdapterError) as refused:
                await asyncio.wait_for(adapter.run(chat.router.handle), 5)
    assert INTENT_HELP in str(refused.value)


async def test_history_reads_the_channel_oldest_first(tmp_path: Path) -> None:
    async with confab(tmp_path) as wire:
        for text in ("first", "second", "third"):
            wire.discord.seed(CHANNEL_ID, text)
        found = await wire.adapter.history(CHANNEL_ID)
    assert [(m.text, m.author.id) for m in found] == [
        ("first", HUMAN_ID),
        ("second", HUMAN_ID),
        ("third", HUMAN_ID),
    ]


async def test_the_fake_refuses_bad_tokens_and_records_unknown_routes() -> None:
    async with running_fake_discord() as fake, aiohttp.ClientSession() as http:
        base = fake.api_base_url
        async with http.get(f"{base}/users/@me", headers={"Authorization": "Bot nope"}) as r:
            assert (r.status, await r.json()) == (401, {"message": "401: Unauthorized", "code": 0})
        auth = {"Authorization": f"Bot {TOKEN}"}
        async with http.get(f"{base}/users/@me", headers=auth) as r:
            assert r.headers["Content-Type"] == "application/json"
            assert (await r.json())["id"] == APP_ID
        async with http.delete(f"{base}/guilds/1/bans/2", headers=auth) as r:
            assert r.status == 404
        fake.fail_next("POST", MESSAGES, 403)
        url = f"{base}/channels/{CHANNEL_ID}/messages"
        async with http.post(url, json={"content": "hi"}, headers=auth) as r:
            assert (r.status, await r.json()) == (403, {"message": "Missing Access", "code": 50001})
        async with http.post(url, json={"content": "hi"}, headers=auth) as r:
            assert r.status == 200
    assert fake.unknown == [("DELETE", "/api/v10/guilds/1/bans/2")]
    assert fake.shown() == ["hi"]


class Roll(Skill):
    name = "roll"
    help = "Roll dice."
    arguments = (
        Arg("count", int, help="how many dice", min=1, max=100),
        Arg("colour", choices=("red", "blue"), default="red"),
        Arg("loud", bool, default=False),
    )

    async def run(self, ctx: SkillContext) -> None:
        await ctx.reply(" ".join(f"{k}={v!r}" for k, v in ctx.options.items()))


async def test_declared_arguments_are_registered_as_typed_options_and_answered(
    tmp_path: Path,
) -> None:
    async with confab(tmp_path, skills=[*SKILLS, Roll]) as wire:
        await wire.discord.dispatch_slash_command("roll", {"count": 3, "loud": True})
        await wire.answered(CHANNEL_ID, "count=3 colour='red' loud=True")
        registered = {c["name"]: c for c in wire.discord.commands[None]}
    assert [
        {k: o.get(k) for k in ("name", "type", "required", "min_value", "max_value", "choices")}
        for o in registered["roll"]["options"]
    ] == [
        {
            "name": "count",
            "type": 4,
            "required": True,
            "min_value": 1,
            "max_value": 100,
            "choices": None,
        },
        {
            "name": "colour",
            "type": 3,
            "required": False,
            "min_value": None,
            "max_value": None,
            "choices": [{"name": "red", "value": "red"}, {"name": "blue", "value": "blue"}],
        },
        {
            "name": "loud",
            "type": 5,
            "required": False,
            "min_value": None,
            "max_value": None,
            "choices": None,
        },
    ]
    assert "options" not in registered["ping"] or registered["ping"]["options"] == []
