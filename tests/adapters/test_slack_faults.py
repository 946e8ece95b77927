"""How the Slack adapter meets Slack's refusals, over the wire: rate limits that outlast
slack_sdk's retries, the workspace's edit rate shared by answers streaming at once, a
Slack unreachable at start, channels the bot was never invited to, and the slash
commands, help and ready line a person or an operator sees. Confab's real adapter in
HTTP mode on a loopback port takes signed requests; its Web API calls go to the
loopback fake Slack (``tests.adapters.slack_fake``)."""

from __future__ import annotations

import asyncio
import html
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from slack_sdk.http_retry import builtin_async_handlers

from confab.adapters.slack import SlackAdapter, SlackConfig
from confab.adapters.slack import adapter as slack_adapter
from confab.bot.adapter import AdapterContext
from confab.bot.channel_log import StoredChannelLog
from confab.bot.llm.backend import ChatMessage
from confab.bot.pacing import Rate
from confab.bot.skill import Skill
from confab.bot.testing import ChatHarness, ScriptedBackend
from confab.skills.help import HelpSkill
from confab.skills.ping import PingSkill
from confab.skills.qa import AskSkill
from confab.storage.conversations import ConversationKey
from tests.adapters.slack_fake import BOT_USER_ID, FakeSlack, SlackCall, running_fake_slack
from tests.adapters.slack_payloads import app_mention, slash_command
from tests.adapters.test_slack import SECRET, SKILLS, InFlight, Slack, free_port, wait_for_port


@asynccontextmanager
async def confab(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    api_base_url: str,
    replies: Sequence[str] | Callable[[Sequence[ChatMessage]], str] = ("Hello from Confab.",),
    *,
    delay_s: float = 0.0,
    skills: Sequence[type[Skill]] = SKILLS,
    **config: Any,
) -> AsyncIterator[tuple[SlackAdapter, ChatHarness, InFlight, asyncio.Task[None], int]]:
    """Confab's Slack adapter running in HTTP mode, its Web API at ``api_base_url``
    (which need not answer yet): the adapter, the bot core, the handler, the running
    adapter's task and the port it takes events on."""
    monkeypatch.setenv("CONFAB_SLACK_BOT_TOKEN", "xoxb-test")
    monkeypatch.setenv("CONFAB_SLACK_SIGNING_SECRET", SECRET)
    port = free_port()
    model = ScriptedBackend(replies if callable(replies) else list(replies), delay_s=delay_s)
    async with ChatHarness(skills, tmp_path, model=model) as chat:
        settings = SlackConfig(
            **{"mode": "http", "port": port, "api_base_url": api_base_url,
               "edit_interval_s": 0.2, **config}
        )  # fmt: skip
        context = AdapterContext(
            settings, "confab", StoredChannelLog(chat.store), chat.router.skills.infos
        )
        adapter = SlackAdapter(context)
        in_flight = InFlight(chat.router.handle)
        running = asyncio.create_task(adapter.run(in_flight))
        try:
            yield adapter, chat, in_flight, running, port
        finally:
            await adapter.stop()
            await asyncio.wait_for(running, 10)


@asynccontextmanager
async def slack(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    replies: Sequence[str] | Callable[[Sequence[ChatMessage]], str] = ("Hello from Confab.",),
    **options: Any,
) -> AsyncIterator[Slack]:
    """Confab on the fake Slack, listening for events, with the given skills and config."""
    async with (
        running_fake_slack() as api,
        confab(tmp_path, monkeypatch, api.base_url, replies, **options) as running,
    ):
        adapter, chat, in_flight, task, port = running
        api.add_user("U1", "ada", display_name="Ada")
        await wait_for_port(port, task)
        yield Slack(adapter, chat, api, f"http://127.0.0.1:{port}/slack/events", in_flight)


def mention(text: str, channel: str, ts: str) -> dict[str, Any]:
    return app_mention(f"<@{BOT_USER_ID}> {text}", "U1", channel, ts)


def confab_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.split(".")[0] == "confab"]


def tracebacks(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The records logged with a traceback, by any logger (an operator sees them all)."""
    return [f"{r.name}: {r.getMessage()}" for r in caplog.records if r.exc_info]


async def until(condition: Callable[[], bool], within_s: float = 5.0) -> None:
    deadline = time.monotonic() + within_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("the condition never held")
        await asyncio.sleep(0.02)


def words_shown(bot: Slack, channel: str) -> list[str]:
    """The words of the bot's messages in ``channel``, in order, as a person reads them."""
    return html.unescape(" ".join(bot.shown(channel))).split()


@pytest.fixture
def no_retry_jitter(monkeypatch: pytest.MonkeyPatch) -> None:
    """slack_sdk sleeps Retry-After plus a random 0-1 s before retrying a 429; without
    the random part a test's time is Retry-After's, and the same every run."""
    monkeypatch.setattr(builtin_async_handlers, "random", SimpleNamespace(random=lambda: 0.0))


# -- rate limits ---------------------------------------------------------------------------


def update_statuses(api: FakeSlack) -> list[int]:
    return [call.status for call in api.calls_to("chat.update")]


@pytest.mark.usefixtures("no_retry_jitter")
async def test_edits_rate_limited_past_slack_sdks_retries_still_deliver_the_whole_answer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The issue's case: five 429s in a row, each asking for 1 s. slack_sdk tries an
    edit four times (RATE_LIMIT_RETRIES more), so ReplyStream meets RateLimited."""
    caplog.set_level(logging.INFO, logger="confab.bot.streaming")
    answer = " ".join(f"word{i}" for i in range(30))
    async with slack(tmp_path, monkeypatch, [answer], delay_s=0.05) as bot:
        bot.api.fail_next("chat.update", status=429, retry_after=1, times=5)
        await bot.event(mention("count for me", "C1", "1700.000100"), "Ev1")
        await bot.answered("C1", "1700.000100")
        turns = await bot.chat.store.recent(ConversationKey("slack", "C1", "1700.000100"))
    assert update_statuses(bot.api).count(429) == 5, "the limit was met, not dodged"
    held = [r.getMessage() for r in caplog.records if r.name == "confab.bot.streaming"]
    assert len(held) == 1 and " wait 1.0 s: " in held[0], "RateLimited reached ReplyStream"
    assert words_shown(bot, "C1") == answer.split()
    assert not any("failed while answering" in text for text in bot.shown("C1"))
    assert [(t.role, t.text) for t in turns] == [("user", "count for me"), ("assistant", answer)]


@pytest.mark.usefixtures("no_retry_jitter")
async def test_a_last_edit_refused_past_every_retry_goes_on_in_a_new_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Twelve 429s: every try of the edit that completes the message (ReplyStream's
    three, each slack_sdk's four). The rest of the answer follows in a new message."""
    answer = "one two three four five"  # streamed within one edit interval: one last edit
    async with slack(tmp_path, monkeypatch, [answer], delay_s=0.01) as bot:
        bot.api.fail_next("chat.update", status=429, retry_after=0, times=12)
        await bot.event(mention("count to five", "C1", "1700.000200"), "Ev2")
        await bot.answered("C1", "1700.000200")
        turns = await bot.chat.store.recent(ConversationKey("slack", "C1", "1700.000200"))
    assert update_statuses(bot.api) == [429] * 12
    first, rest = bot.api.calls_to("chat.postMessage")
    assert first.params["text"] == "one" and rest.params["thread_ts"] == "1700.000200"
    assert len(bot.shown("C1")) == 2 and words_shown(bot, "C1") == answer.split()
    assert not any("failed while answering" in text for text in bot.shown("C1"))
    assert [(t.role, t.text) for t in turns] == [("user", "count to five"), ("assistant", answer)]


STREAMS = 6
JITTER_S = 0.05  # the loopback's latency, by which the fake sees writes late
STORIES = {
    f"story {n}": f"Story {n}: " + " ".join(f"s{n}w{i}" for i in range(15)) for n in range(1, 7)
}


def story_for(prompt: Sequence[ChatMessage]) -> str:
    asked = prompt[-1].content
    return next(story for key, story in STORIES.items() if key in asked)


async def test_answers_streaming_at_once_keep_the_workspaces_edit_rate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Slack's chat.update is Tier 3, per workspace; the adapter paces all its edits by
    ``WORKSPACE_EDITS`` (5 per 6 s), read when it is built. Here it is 5 per 1 s, the
    same shape six times faster, so the test takes seconds rather than half a minute.
    Times are the fake's, after the loopback's latency: a span may look up to
    ``JITTER_S`` shorter than the adapter reserved."""
    rate = Rate(writes=5, per_s=1.0)
    monkeypatch.setattr(slack_adapter, "WORKSPACE_EDITS", rate)
    async with slack(tmp_path, monkeypatch, story_for, delay_s=0.1) as bot:
        channels = [f"C{n}" for n in range(1, STREAMS + 1)]
        statuses = await asyncio.gather(
            *(
                bot.event(mention(f"tell story {n}", channel, f"1700.00{n}"), f"Ev{n}")
                for n, channel in enumerate(channels, start=1)
            )
        )
        for n, channel in enumerate(channels, start=1):
            await bot.answered(channel, f"1700.00{n}")
    assert statuses == [200] * STREAMS
    for n, channel in enumerate(channels, start=1):
        assert words_shown(bot, channel) == STORIES[f"story {n}"].split()
    edits = bot.api.calls_to("chat.update")
    spans = [later.at - first.at for first, later in zip(edits, edits[rate.writes :], strict=False)]
    assert spans and min(spans) >= rate.per_s - JITTER_S, (
        f"more than {rate.writes} edits in {rate.per_s} s"
    )
    posts = bot.api.calls_to("chat.postMessage")
    lasts = [max(e.at for e in edits if e.params["channel"] == p.params["channel"]) for p in posts]
    assert len(posts) == STREAMS and max(p.at for p in posts) < min(lasts), "all at once"


def test_the_workspace_edit_rate_keeps_under_slacks_tier_3() -> None:
    rate = slack_adapter.WORKSPACE_EDITS
    assert rate.writes * 60 / rate.per_s <= 50  # chat.update: 50 a minute per workspace


# -- start-up ------------------------------------------------------------------------------


async def test_slack_unreachable_at_start_is_retried_then_answered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="confab.adapters.slack.adapter")
    monkeypatch.setattr(slack_adapter, "START_RETRY_FIRST_S", 0.2)
    api_port = free_port()  # nothing listens there yet

    def attempts() -> list[logging.LogRecord]:
        return [r for r in caplog.records if "cannot reach Slack (attempt" in r.getMessage()]

    base = f"http://127.0.0.1:{api_port}/api/"
    async with confab(tmp_path, monkeypatch, base, ["Here now."]) as running:
        adapter, chat, in_flight, task, port = running
        await until(lambda: bool(attempts()))
        await asyncio.sleep(0.5)
        assert not task.done(), "the adapter keeps trying"
        assert "cannot reach Slack (attempt 1: " in attempts()[0].getMessage()
        async with running_fake_slack(api_port) as api:
            api.add_user("U1", "ada", display_name="Ada")
            await wait_for_port(port, task)
            bot = Slack(adapter, chat, api, f"http://127.0.0.1:{port}/slack/events", in_flight)
            assert await bot.event(mention("there?", "C1", "1700.000300"), "Ev3") == 200
            await bot.answered("C1", "1700.000300")
    assert bot.shown("C1") == ["Here now."]
    assert all(r.levelno == logging.WARNING and r.exc_info is None for r in attempts())
    assert tracebacks(caplog) == []


async def test_the_ready_line_names_the_team_the_bot_and_where_events_go(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="confab.adapters.slack.adapter")

    def ready_lines() -> list[str]:
        return [
            r.getMessage()
            for r in caplog.records
            if r.name == "confab.adapters.slack.adapter" and r.levelno == logging.INFO
            if r.getMessage().startswith("Slack: ")
        ]

    async with slack(tmp_path, monkeypatch) as bot:
        await until(lambda: bool(ready_lines()))
    # The fake's auth.test answers team "T" (T1), user "confab".
    assert ready_lines() == [
        f"Slack: serving team T (T1) as @confab, HTTP mode, events at {bot.url}"
    ]


# -- slash commands and help -------------------------------------------------------------


async def test_help_as_a_slash_command_lists_the_slash_commands(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with slack(tmp_path, monkeypatch, skills=[AskSkill, PingSkill, HelpSkill]) as bot:
        await bot.post(slash_command("/help", "", "U1", "C1", bot.api.hooks_url + "1", "T-1"))
        await bot.answered("C1")
    [listed] = [html.unescape(text) for text in bot.shown("C1")]
    assert "`/ask <question>`" in listed and "`/ping`" in listed and "`/help COMMAND`" in listed
    assert "!ask" not in listed and "!ping" not in listed and "!help" not in listed


async def test_help_under_an_umbrella_command_lists_it_with_the_umbrella(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    skills = [AskSkill, PingSkill, HelpSkill]
    async with slack(tmp_path, monkeypatch, skills=skills, command_style="umbrella") as bot:
        await bot.post(slash_command("/confab", "help", "U1", "C1", bot.api.hooks_url + "1", "T-1"))
        await bot.answered("C1")
    [listed] = [html.unescape(text) for text in bot.shown("C1")]
    assert "`/confab ask <question>`" in listed and "`/confab ping`" in listed
    assert "`/confab help COMMAND`" in listed
    assert "!ask" not in listed and "`/ask" not in listed


# -- channels the bot is not in ----------------------------------------------------------

NOT_A_MEMBER = ["not_in_channel", "channel_not_found"]


@pytest.mark.parametrize("refusal", NOT_A_MEMBER)
async def test_a_mention_in_a_channel_the_bot_is_not_in_gets_one_try_and_one_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, refusal: str
) -> None:
    caplog.set_level(logging.DEBUG, logger="adapters")
    caplog.set_level(logging.DEBUG, logger="bot")

    def warnings() -> list[logging.LogRecord]:
        return [r for r in confab_records(caplog) if r.levelno >= logging.WARNING]

    async with slack(tmp_path, monkeypatch) as bot:
        bot.api.fail_next("chat.postMessage", error=refusal, times=5)
        await bot.event(mention("hello there", "C7", "1700.000400"), "Ev4")
        await until(lambda: bool(warnings()))
        await asyncio.sleep(0.3)  # room for a second attempt, an error text, say
        turns = await bot.chat.store.recent(ConversationKey("slack", "C7", "1700.000400"))
    posts = bot.api.calls_to("chat.postMessage")
    assert [p.params["channel"] for p in posts] == ["C7"]
    assert bot.api.messages == {}, "nothing was posted anywhere"
    assert [c.method for c in bot.api.calls if c.method.startswith("hook:")] == []
    # The question is kept; no answer is stored as if someone had seen it.
    assert [(t.role, t.text) for t in turns] == [("user", "hello there")]
    [warning] = warnings()
    assert "C7" in warning.getMessage() and refusal in warning.getMessage()
    assert tracebacks(caplog) == []


@pytest.mark.parametrize("refusal", NOT_A_MEMBER)
async def test_a_command_in_a_channel_the_bot_is_not_in_is_answered_through_its_response_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, refusal: str
) -> None:
    caplog.set_level(logging.DEBUG, logger="adapters")
    caplog.set_level(logging.DEBUG, logger="bot")
    async with slack(tmp_path, monkeypatch) as bot:
        bot.api.fail_next("chat.postMessage", error=refusal, times=5)
        await bot.post(slash_command("/ping", "", "U1", "C7", bot.api.hooks_url + "5", "T-5"))
        await bot.answered("C7")
        await until(lambda: bool(bot.api.calls_to("hook:5")))
    assert len(bot.api.calls_to("chat.postMessage")) == 1
    [answer] = bot.api.calls_to("hook:5")
    assert answer == SlackCall("hook:5", {"text": "pong", "response_type": "in_channel"}, None)
    assert [r for r in confab_records(caplog) if r.levelno >= logging.WARNING] == []
    assert tracebacks(caplog) == []
