"""How the Discord adapter meets Discord's refusals, over the wire: fatal gateway closes,
rate limits that outlast discord.py's retries, a busy channel's write limit, channels
the bot may not post in, and the slash commands and help a person sees."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Sequence
from pathlib import Path

import pytest

from confab.adapters.discord import DiscordAdapter, DiscordConfig
from confab.adapters.discord import adapter as discord_adapter
from confab.bot.adapter import AdapterContext, EmptyChannelLog
from confab.bot.config import RouterConfig
from confab.bot.errors import AdapterError
from confab.bot.llm.backend import ChatMessage
from confab.bot.pacing import Rate
from confab.bot.testing import ChatHarness, ScriptedBackend
from confab.skills.help import HelpSkill
from confab.skills.ping import PingSkill
from confab.skills.qa import AskSkill, ResetSkill
from confab.skills.schedule import ScheduleSkill
from confab.skills.summarise import SummariseSkill
from confab.storage.conversations import ConversationKey
from tests.adapters.discord_wire import (
    BOT_ID,
    CHANNEL_ID,
    FakeDiscord,
    Write,
    free_port,
    running_fake_discord,
)
from tests.adapters.test_discord_wire import (  # discord_globals: autouse, sets the token
    GLOBAL_COMMANDS,
    MESSAGE,
    MESSAGES,
    confab,
    discord_globals,  # noqa: F401
)


def confab_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.split(".")[0] == "confab"]


def tracebacks(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The records logged with a traceback, by any logger (an operator sees them all)."""
    return [f"{r.name}: {r.getMessage()}" for r in caplog.records if r.exc_info]


def channel_writes(fake: FakeDiscord, channel: str = CHANNEL_ID) -> list[Write]:
    """The messages and edits Discord accepted in ``channel``, oldest first."""
    return [
        w
        for w in fake.writes
        if w.channel == channel and (w.method, w.route) in {("POST", MESSAGES), ("PATCH", MESSAGE)}
    ]


# -- the gateway -------------------------------------------------------------------------

FATAL_CLOSES = [
    (4004, ("CONFAB_DISCORD_TOKEN", "revoked", "reset", "close code 4004")),
    (4010, ("shard", "close code 4010")),
    (4011, ("too many servers", "sharding", "close code 4011")),
    (4012, ("API version", "close code 4012")),
    (4013, ("intents", "close code 4013")),
    (4014, ("Message Content Intent",)),
]


@pytest.mark.parametrize(("code", "named"), FATAL_CLOSES, ids=[str(c) for c, _ in FATAL_CLOSES])
async def test_a_fatal_gateway_close_ends_run_naming_the_cause(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, code: int, named: Sequence[str]
) -> None:
    caplog.set_level(logging.DEBUG, logger="confab.adapters")
    caplog.set_level(logging.DEBUG, logger="confab.bot")
    async with confab(tmp_path) as wire:
        await wire.discord.close_gateway(code, "refused")
        with pytest.raises(AdapterError) as ended:
            await asyncio.wait_for(wire.run, 5)
    for words in named:
        assert words in str(ended.value)
    assert len(wire.discord.identifies) == 1 and wire.discord.resumes == 0, "not reconnected"
    assert tracebacks(caplog) == [], "a clear sentence, not a traceback"


# -- rate limits ---------------------------------------------------------------------------


async def test_edits_rate_limited_past_discord_py_retries_still_deliver_the_whole_answer(
    tmp_path: Path,
) -> None:
    answer = " ".join(f"word{i}" for i in range(30))
    async with confab(tmp_path, [answer], delay_s=0.05) as wire:
        # More 429s than discord.py's five tries: RateLimited reaches ReplyStream.
        wire.discord.fail_next("PATCH", MESSAGE, 429, times=12, retry_after=0.2)
        await wire.discord.dispatch_message(CHANNEL_ID, "count for me", mentions_bot=True)
        await wire.discord.wait_for(
            lambda: " ".join(wire.discord.shown()).split() == answer.split(), within_s=20
        )
        turns = await wire.chat.store.recent(ConversationKey("discord", CHANNEL_ID))
    statuses = [hit.status for hit in wire.discord.hits(MESSAGE, "PATCH")]
    assert statuses.count(429) == 12, "the limit was met, not dodged"
    assert not any("failed while answering" in text for text in wire.discord.shown())
    assert [(t.role, t.text) for t in turns] == [("user", "count for me"), ("assistant", answer)]


STREAMS = 6
JITTER_S = 0.05  # the loopback's latency, by which Discord's clock sees writes late
STORIES = {
    f"story {n}": f"Story {n}: " + " ".join(f"s{n}w{i}" for i in range(15)) for n in range(1, 7)
}


def story_for(prompt: Sequence[ChatMessage]) -> str:
    asked = prompt[-1].content
    return next(story for key, story in STORIES.items() if key in asked)


async def test_answers_streaming_at_once_in_one_channel_keep_the_channel_write_rate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Discord allows 5 writes (posts and edits together) per 5 s in a channel. The
    adapter paces by ``CHANNEL_WRITES``, read when it is built; here it is 5 per 1 s,
    the same shape five times faster, so the test takes seconds rather than half a
    minute. Recorded times are Discord's side, after the loopback's latency: a span
    may look up to ``JITTER_S`` shorter than the adapter reserved."""
    rate = Rate(writes=5, per_s=1.0)
    monkeypatch.setattr(discord_adapter, "CHANNEL_WRITES", rate)
    concurrent = RouterConfig(user_burst=10_000, channel_concurrency=STREAMS)
    async with confab(tmp_path, story_for, delay_s=0.1, router_config=concurrent) as wire:
        for key in STORIES:
            await wire.discord.dispatch_message(CHANNEL_ID, f"tell {key}", mentions_bot=True)
        await wire.discord.wait_for(
            lambda: sorted(wire.discord.shown()) == sorted(STORIES.values()), within_s=25
        )
    writes = channel_writes(wire.discord)
    spans = [
        later.at - first.at for first, later in zip(writes, writes[rate.writes :], strict=False)
    ]
    assert min(spans) >= rate.per_s - JITTER_S, f"more than {rate.writes} writes in {rate.per_s} s"
    posts = [w for w in writes if w.method == "POST"]
    lasts = [max(w.at for w in writes if w.message == post.message) for post in posts]
    assert len(posts) == STREAMS and max(p.at for p in posts) < min(lasts), "all at once"


# -- slash commands and help -------------------------------------------------------------


def reads_whole(description: str, source: str) -> bool:
    """``description`` is ``source`` whole, or a cut of it at a word end marked "…"."""
    source = " ".join(source.split())
    if description == source:
        return True
    if not description.endswith("…"):
        return False
    kept = description.removesuffix("…").split()
    words = source.split()
    return (
        bool(kept)
        and kept[:-1] == words[: len(kept) - 1]
        and words[len(kept) - 1].rstrip(",;:-–—(") == kept[-1]
    )


async def test_slash_commands_take_options_only_where_skills_take_words(tmp_path: Path) -> None:
    skills = [AskSkill, PingSkill, SummariseSkill, ResetSkill, ScheduleSkill]
    async with confab(tmp_path, skills=skills) as wire:
        sent = wire.discord.writes_to(GLOBAL_COMMANDS, "PUT")[0].body["commands"]
    registered = {command["name"]: command for command in sent}
    assert sorted(registered) == sorted(s.name for s in skills)
    assert registered["ping"].get("options", []) == []
    assert registered["reset"].get("options", []) == []
    [question] = registered["ask"]["options"]
    assert (question["type"], question["name"], question.get("required")) == (3, "question", True)
    for skill in skills:
        command = registered[skill.name]
        assert len(command["description"]) <= 100
        assert reads_whole(command["description"], skill.help), command["description"]
        for option in command.get("options", []):
            assert len(option["description"]) <= 100
            if len(skill.usage) <= 100:
                assert option["description"] == skill.usage
    [actions] = registered["schedule"]["options"]
    said = actions["description"]
    assert all(re.search(rf"\b{word}\b", said) for word in ("add", "list", "remove", "timezone"))
    assert said.endswith("…") or re.search(r"\b\w+$", said), f"cut mid-word: {said!r}"


async def test_help_lists_commands_as_the_asker_types_them(tmp_path: Path) -> None:
    async with confab(tmp_path, skills=[AskSkill, PingSkill, HelpSkill]) as wire:
        await wire.discord.dispatch_slash_command("help")
        await wire.discord.wait_for(lambda: len(wire.discord.shown()) == 1)
        await wire.discord.dispatch_message(CHANNEL_ID, "!help", mentions_bot=True)
        await wire.discord.wait_for(lambda: len(wire.discord.shown()) == 2)
    slash, typed = wire.discord.shown()
    assert "`/ask <question>`" in slash and "`/ping`" in slash
    assert "!ask" not in slash and "!ping" not in slash
    assert "`!ask <question>`" in typed and "`!ping`" in typed
    assert "/ask" not in typed


# -- channels the bot may not post in ----------------------------------------------------

NO_ENTRY = [
    (403, {"code": 50001, "message": "Missing Access"}),
    (404, {"code": 10003, "message": "Unknown Channel"}),
]


@pytest.mark.parametrize(("status", "body"), NO_ENTRY, ids=["missing-access", "unknown-channel"])
async def test_a_channel_that_refuses_the_bot_gets_one_try_and_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, status: int, body: dict[str, object]
) -> None:
    caplog.set_level(logging.DEBUG, logger="confab.adapters")
    caplog.set_level(logging.DEBUG, logger="confab.bot")

    def warnings() -> list[logging.LogRecord]:
        return [r for r in confab_records(caplog) if r.levelno >= logging.WARNING]

    async with confab(tmp_path) as wire:
        wire.discord.fail_next("POST", MESSAGES, status, body=body, times=5)
        await wire.discord.dispatch_message(CHANNEL_ID, "hello there", mentions_bot=True)
        await wire.discord.wait_for(lambda: bool(warnings()))
        await asyncio.sleep(0.3)  # room for a second attempt, an error text, say
        turns = await wire.chat.store.recent(ConversationKey("discord", CHANNEL_ID))
    assert [h.status for h in wire.discord.hits(MESSAGES, "POST")] == [status]
    assert wire.discord.shown() == []
    # The question is kept; no answer is stored as if someone had seen it.
    assert [(t.role, t.text) for t in turns] == [("user", "hello there")]
    [warning] = warnings()
    assert CHANNEL_ID in warning.getMessage()
    assert tracebacks(caplog) == []


# -- the operator's view ------------------------------------------------------------------


async def test_the_ready_line_names_the_bot_and_its_servers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="confab.adapters.discord.adapter")
    expected = f"Discord: connected as confab (id {BOT_ID}) in 1 servers"

    def ready_lines() -> list[str]:
        return [
            r.getMessage()
            for r in caplog.records
            if r.name == "confab.adapters.discord.adapter" and r.levelno == logging.INFO
            if r.getMessage().startswith("Discord: connected")
        ]

    async with confab(tmp_path) as wire:
        # discord.py waits for late guilds (guild_ready_timeout, 2 s) before on_ready.
        await wire.discord.wait_for(lambda: bool(ready_lines()), within_s=5)
    assert ready_lines() == [expected]


async def test_a_lost_gateway_is_reconnected_with_one_line_per_attempt(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Discord away for a while after connecting: discord.py's own reconnect attempts
    are logged as one line each, naming the error, without its traceback."""
    caplog.set_level(logging.INFO, logger="discord.client")
    port, fake = free_port(), FakeDiscord()
    async with ChatHarness([AskSkill], tmp_path, model=ScriptedBackend(["Back."])) as chat:
        settings = DiscordConfig(**_pointing_at(port), edit_interval_s=0.2)
        adapter = DiscordAdapter(
            AdapterContext(settings, "confab", EmptyChannelLog(), chat.router.skills.infos)
        )
        run = asyncio.create_task(adapter.run(chat.router.handle))
        try:
            async with running_fake_discord(port, fake=fake):
                await fake.wait_connected(within_s=10)
            await fake.wait_for(lambda: _reconnect_lines(caplog) != [], within_s=30)
            async with running_fake_discord(port, fake=fake):
                await fake.wait_for(lambda: fake.resumes + len(fake.identifies) > 1, 30)
                await fake.dispatch_message(CHANNEL_ID, "still there?", mentions_bot=True)
                await fake.wait_for(lambda: fake.shown()[-1:] == ["Back."])
        finally:
            await adapter.stop()
            await asyncio.wait_for(asyncio.gather(run, return_exceptions=True), 5)
    lines = _reconnect_lines(caplog)
    assert lines and all(record.exc_info is None for record in lines)
    assert all("Discord connection lost" in record.getMessage() for record in lines)


def _pointing_at(port: int) -> dict[str, str]:
    return {
        "api_base_url": f"http://127.0.0.1:{port}/api/v10",
        "gateway_url": f"ws://127.0.0.1:{port}/gateway",
    }


def _reconnect_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if "Attempting a reconnect" in r.getMessage()]
