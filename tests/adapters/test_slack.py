"""The Slack adapter in HTTP mode on a loopback port, with Confab's real router and
storage, driven by real-format signed requests, against a loopback fake of the Slack
Web API (at ``slack.api_base_url``)."""

from __future__ import annotations

import asyncio
import html
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from confab.adapters.slack import SlackAdapter, SlackConfig
from confab.bot.adapter import AdapterContext
from confab.bot.channel_log import StoredChannelLog
from confab.bot.config import build_config_model, load_config
from confab.bot.errors import AdapterError
from confab.bot.messages import SentMessage
from confab.bot.skill import Skill
from confab.bot.testing import ChatHarness, EmptyChannelLog, ScriptedBackend
from confab.contract import AdapterContract
from confab.skills.ping import PingSkill
from confab.skills.qa import AskSkill
from confab.skills.summarise import SummariseSkill
from confab.storage.conversations import ConversationKey
from tests.adapters.slack_fake import BOT_USER_ID, FakeSlack, running_fake_slack
from tests.adapters.slack_payloads import (
    app_mention,
    event_callback,
    im_message,
    json_body,
    sign,
    slash_command,
    thread_message,
    url_verification,
)

SECRET = "test-signing-secret"
SKILLS: list[type[Skill]] = [AskSkill, PingSkill, SummariseSkill]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class InFlight:
    """The router's handler, counting the messages it is handling right now."""

    def __init__(self, handler: Callable[[Any, Any], Awaitable[None]]) -> None:
        self.count = 0
        self._handler = handler

    async def __call__(self, message: Any, adapter: Any) -> None:
        self.count += 1
        try:
            await self._handler(message, adapter)
        finally:
            self.count -= 1


@dataclass
class Slack:
    """Confab in HTTP mode, the fake Slack Web API, and a way to post to Confab as Slack."""

    adapter: SlackAdapter
    chat: ChatHarness
    api: FakeSlack
    url: str
    in_flight: InFlight

    async def post(self, body: bytes, *, signed_with: str = SECRET, **headers: str) -> Any:
        form = body[:6] != b'{"toke' and not body.startswith(b"{")
        content = "application/x-www-form-urlencoded" if form else "application/json"
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                self.url,
                data=body,
                headers={"Content-Type": content, **sign(body, signed_with), **headers},
            ) as response,
        ):
            return response.status, await response.text()

    async def event(self, event: dict[str, Any], event_id: str, **headers: str) -> int:
        status, _ = await self.post(json_body(event_callback(event, event_id)), **headers)
        return int(status)

    async def answered(self, channel: str, thread: str | None = None, count: int = 1) -> None:
        """Wait until ``count`` answers are stored in that conversation and shown whole
        (an answer is stored before its last edit)."""
        key = ConversationKey("slack", channel, thread)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            turns = await self.chat.store.recent(key, limit=100)
            if sum(t.role == "assistant" for t in turns) >= count and not self.in_flight.count:
                return
            await asyncio.sleep(0.02)
        raise AssertionError(f"no answer in {channel}/{thread}")

    def shown(self, channel: str) -> list[str]:
        """The texts of the bot's messages in ``channel`` (threads included), updates applied."""
        return [m.text for m in self.api.messages.get(channel, []) if m.user == BOT_USER_ID]


@asynccontextmanager
async def slack(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    replies: Sequence[str] = ("Hello from Confab.",),
    delay_s: float = 0.0,
    **config: Any,
) -> AsyncIterator[Slack]:
    monkeypatch.setenv("CONFAB_SLACK_BOT_TOKEN", "xoxb-test")
    monkeypatch.setenv("CONFAB_SLACK_SIGNING_SECRET", SECRET)
    port = free_port()
    async with (
        running_fake_slack() as api,
        ChatHarness(
            SKILLS, tmp_path, model=ScriptedBackend(list(replies), delay_s=delay_s)
        ) as chat,
    ):
        api.add_user("U1", "ada", display_name="Ada")
        settings = SlackConfig(
            **{"mode": "http", "port": port, "api_base_url": api.base_url,
               "edit_interval_s": 0.2, **config}
        )  # fmt: skip
        context = AdapterContext(
            settings, "confab", StoredChannelLog(chat.store), chat.router.skills.infos
        )
        adapter = SlackAdapter(context)
        in_flight = InFlight(chat.router.handle)
        running = asyncio.create_task(adapter.run(in_flight))
        url = f"http://127.0.0.1:{port}/slack/events"
        await wait_for_port(port, running)
        try:
            yield Slack(adapter, chat, api, url, in_flight)
        finally:
            await adapter.stop()
            await running


async def wait_for_port(port: int, running: asyncio.Task[None]) -> None:
    for _ in range(200):
        if running.done():
            running.result()  # raises what stopped it
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            await asyncio.sleep(0.02)
    raise AssertionError("the adapter never listened")


async def test_the_url_verification_challenge_is_answered(tmp_path, monkeypatch) -> None:
    async with slack(tmp_path, monkeypatch) as bot:
        status, body = await bot.post(json_body(url_verification("c-123")))
    assert status == 200 and "c-123" in body


async def test_a_mention_is_answered_in_its_thread(tmp_path, monkeypatch) -> None:
    async with slack(tmp_path, monkeypatch, ["Paris, *of course*."]) as bot:
        mention = app_mention(f"<@{BOT_USER_ID}> capital of France?", "U1", "C1", "1700.000100")
        assert await bot.event(mention, "Ev1") == 200
        await bot.answered("C1", "1700.000100")
        (posted,) = bot.api.calls_to("chat.postMessage")
        turns = await bot.chat.store.recent(ConversationKey("slack", "C1", "1700.000100"))
    assert posted.params["thread_ts"] == "1700.000100"
    assert bot.shown("C1") == ["Paris, _of course_."]
    assert [(t.role, t.author_name, t.text) for t in turns] == [
        ("user", "Ada", "capital of France?"),
        ("assistant", "confab", "Paris, *of course*."),
    ]


async def test_a_direct_message_is_answered_in_the_dm(tmp_path, monkeypatch) -> None:
    async with slack(tmp_path, monkeypatch, ["Hi Ada."]) as bot:
        await bot.event(im_message("hello", "U1", "D1", "1700.000200"), "Ev2")
        await bot.answered("D1")
        (posted,) = bot.api.calls_to("chat.postMessage")
    assert posted.params["channel"] == "D1" and "thread_ts" not in posted.params
    assert bot.shown("D1") == ["Hi Ada."]


async def test_the_bots_thread_goes_on_without_mentions(tmp_path, monkeypatch) -> None:
    async with slack(tmp_path, monkeypatch, ["First.", "Second."]) as bot:
        await bot.event(app_mention(f"<@{BOT_USER_ID}> one", "U1", "C1", "1700.1"), "Ev3")
        await bot.answered("C1", "1700.1")
        await bot.event(thread_message("and two?", "U1", "C1", "1700.2", "1700.1"), "Ev4")
        await bot.answered("C1", "1700.1", count=2)
        # A thread the bot is not part of stays chatter.
        other = thread_message("unrelated", "U1", "C1", "1700.4", "1700.3", parent_user_id="U1")
        await bot.event(other, "Ev5")
        await asyncio.sleep(0.2)
    assert bot.shown("C1") == ["First.", "Second."]


async def test_events_are_acknowledged_before_the_answer_is_ready(tmp_path, monkeypatch) -> None:
    slow = " ".join(["word"] * 40)
    async with slack(tmp_path, monkeypatch, [slow], delay_s=0.05) as bot:  # 2 s of answer
        started = time.monotonic()
        status = await bot.event(app_mention(f"<@{BOT_USER_ID}> hi", "U1", "C1", "1700.7"), "E8")
        acknowledged = time.monotonic() - started
        await bot.answered("C1", "1700.7")
    assert status == 200 and acknowledged < 1.0
    assert bot.shown("C1") == [slow]


async def test_a_thread_the_bot_answered_in_is_remembered_across_a_restart(
    tmp_path, monkeypatch
) -> None:
    async with slack(tmp_path, monkeypatch, ["First.", "Second."]) as bot:
        await bot.event(app_mention(f"<@{BOT_USER_ID}> one", "U1", "C1", "1701.1"), "Ev9")
        await bot.answered("C1", "1701.1")
        bot.adapter._threads.clear()  # what a restart forgets; storage remembers
        follow_up = thread_message("and two?", "U1", "C1", "1701.2", "1701.1", parent_user_id="U1")
        await bot.event(follow_up, "Ev10")
        await bot.answered("C1", "1701.1", count=2)
    assert bot.shown("C1") == ["First.", "Second."]


async def test_a_mention_arriving_twice_as_message_and_mention_is_answered_once(
    tmp_path, monkeypatch
) -> None:
    async with slack(tmp_path, monkeypatch, ["Once."]) as bot:
        text = f"<@{BOT_USER_ID}|confab> hello"
        as_message = {**app_mention(text, "U1", "C1", "1702.1"), "type": "message"}
        await bot.event({**as_message, "channel_type": "channel"}, "Ev11")
        await bot.event(app_mention(text, "U1", "C1", "1702.1"), "Ev12")
        await bot.answered("C1", "1702.1")
        await asyncio.sleep(0.2)
    assert bot.shown("C1") == ["Once."]


async def test_summarising_from_a_mention_reads_the_channel(tmp_path, monkeypatch) -> None:
    async with slack(tmp_path, monkeypatch, ["- they planned lunch."]) as bot:
        bot.api.seed("C1", "U1", "lunch at noon?")
        bot.api.seed("C1", "U1", "yes, noon")
        await bot.event(app_mention(f"<@{BOT_USER_ID}> !tldr", "U1", "C1", "1703.1"), "Ev13")
        await bot.answered("C1", "1703.1")
        (prompt,) = bot.chat.model.prompts  # type: ignore[attr-defined]
    assert prompt[-1].content.endswith("Ada: lunch at noon?\nAda: yes, noon")


async def test_a_long_thread_is_read_in_few_pages(tmp_path, monkeypatch) -> None:
    async with slack(tmp_path, monkeypatch) as bot:
        root = bot.api.seed("C2", "U1", "root")
        for n in range(300):
            bot.api.seed("C2", "U1", f"reply {n}", thread_ts=root.ts)
        found = await bot.adapter.history("C2", thread=root.ts, limit=20)
    assert [m.text for m in found][-2:] == ["reply 298", "reply 299"] and len(found) == 20
    assert len(bot.api.calls_to("conversations.replies")) == 2  # 200 per page


async def test_a_retried_event_is_answered_once(tmp_path, monkeypatch) -> None:
    async with slack(tmp_path, monkeypatch, ["Once."]) as bot:
        mention = app_mention(f"<@{BOT_USER_ID}> hi", "U1", "C1", "1700.5")
        await bot.event(mention, "Ev6")
        await bot.event(
            mention, "Ev6", **{"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"}
        )
        await bot.answered("C1", "1700.5")
        await asyncio.sleep(0.3)
    assert bot.shown("C1") == ["Once."]


async def test_bad_or_stale_signatures_get_401_and_no_answer(tmp_path, monkeypatch) -> None:
    async with slack(tmp_path, monkeypatch) as bot:
        body = json_body(
            event_callback(app_mention(f"<@{BOT_USER_ID}> hi", "U1", "C1", "1.1"), "E")
        )
        forged, _ = await bot.post(body, signed_with="not-the-secret")
        stale_headers = sign(body, SECRET, timestamp=int(time.time()) - 6 * 60)
        stale, _ = await bot.post(body, **stale_headers)
        await asyncio.sleep(0.2)
    assert (forged, stale) == (401, 401)
    assert bot.api.calls_to("chat.postMessage") == []


async def test_a_slash_command_is_acknowledged_then_answered_in_the_channel(
    tmp_path, monkeypatch
) -> None:
    async with slack(tmp_path, monkeypatch) as bot:
        body = slash_command("/ping", "", "U1", "C1", "https://hooks.example/1", "T-1")
        started = time.monotonic()
        status, text = await bot.post(body)
        acknowledged = time.monotonic() - started
        await bot.answered("C1")
    assert status == 200 and text == "" and acknowledged < 3
    assert bot.shown("C1") == ["pong"]


async def test_a_command_whose_text_says_payload_is_answered(tmp_path, monkeypatch) -> None:
    """bolt reads any form containing the word "payload" as an interactivity payload."""
    async with slack(tmp_path, monkeypatch, ["A payload is the data carried."]) as bot:
        body = slash_command("/ask", "what is a payload?", "U1", "C1", "https://h.example/1", "T-9")
        status, _ = await bot.post(body)
        await bot.answered("C1")
        (question, _answer) = await bot.chat.store.recent(ConversationKey("slack", "C1", None))
    assert status == 200
    assert bot.shown("C1") == ["A payload is the data carried."]
    assert question.text == "/ask what is a payload?"


async def test_private_answers_reach_only_the_asker(tmp_path, monkeypatch) -> None:
    async with slack(tmp_path, monkeypatch, ["Just for you."]) as bot:
        hook = bot.api.hooks_url + "2"
        await bot.post(slash_command("/ask", "secret? --private", "U1", "C1", hook, "T-2"))
        await bot.answered("C1")
        await asyncio.sleep(0.1)
        (answer,) = bot.api.calls_to("hook:2")
    assert answer.params == {"text": "Just for you.", "response_type": "ephemeral"}
    assert bot.api.calls_to("chat.postMessage") == []


async def test_a_channel_the_bot_is_not_in_is_answered_through_the_response_url(
    tmp_path, monkeypatch
) -> None:
    async with slack(tmp_path, monkeypatch) as bot:
        bot.api.fail_next("chat.postMessage", error="not_in_channel")
        hook = bot.api.hooks_url + "3"
        await bot.post(slash_command("/ping", "", "U1", "C7", hook, "T-4"))
        await bot.answered("C7")
        await asyncio.sleep(0.1)
        (answer,) = bot.api.calls_to("hook:3")
    assert answer.params == {"text": "pong", "response_type": "in_channel"}


async def test_an_umbrella_command_takes_the_skill_first(tmp_path, monkeypatch) -> None:
    async with slack(tmp_path, monkeypatch, command_style="umbrella") as bot:
        await bot.post(slash_command("/confab", "ping", "U1", "C1", "https://h/3", "T-3"))
        await bot.answered("C1")
    assert bot.shown("C1") == ["pong"]


async def test_a_long_answer_is_split_and_mentions_are_neutralised(tmp_path, monkeypatch) -> None:
    answer = "**Heads up** <!channel> <!here> <@U2> & friends.\n\n" + "More words here. " * 300
    async with slack(tmp_path, monkeypatch, [answer]) as bot:
        await bot.event(app_mention(f"<@{BOT_USER_ID}> go", "U1", "C1", "1700.6"), "Ev7")
        await bot.answered("C1", "1700.6")
        shown = bot.shown("C1")
        bodies = [c.params["text"] for c in bot.api.calls if c.method.startswith("chat.")]
    assert len(shown) == 2 and all(len(text) <= 3000 + 100 for text in shown)
    assert shown[0].startswith(
        "*Heads up* &lt;!channel&gt; &lt;!here&gt; &lt;@U2&gt; &amp; friends."
    )
    assert all("<!" not in text and "<@" not in text for text in bodies)
    assert all(
        c.params.get("link_names") in (False, "false", "0", 0, None)
        for c in bot.api.calls_to("chat.postMessage")
    )


async def test_history_pages_through_and_names_people(tmp_path, monkeypatch) -> None:
    async with slack(tmp_path, monkeypatch) as bot:
        for n in range(5):
            bot.api.seed("C9", "U1", f"message {n} for <@{BOT_USER_ID}>")
        bot.api.seed("C9", BOT_USER_ID, "my own")
        await bot.adapter._who_am_i()
        found = await bot.adapter.history("C9", limit=4)
        everything = await bot.adapter.history("C9", limit=50)
    assert [m.text for m in found] == ["message 2 for", "message 3 for", "message 4 for", "my own"]
    assert [m.from_self for m in everything][-2:] == [False, True]
    assert {m.author.name for m in everything if not m.from_self} == {"Ada"}
    assert len(bot.api.calls_to("users.info")) == 1  # names are cached


async def test_missing_secrets_say_which_variable_to_set(monkeypatch) -> None:
    monkeypatch.delenv("CONFAB_SLACK_BOT_TOKEN", raising=False)
    adapter = SlackAdapter(AdapterContext(SlackConfig(), "confab", EmptyChannelLog()))
    with pytest.raises(AdapterError, match="set the environment variable CONFAB_SLACK_BOT_TOKEN"):
        await adapter.run(noop)
    monkeypatch.setenv("CONFAB_SLACK_BOT_TOKEN", "xoxb-test")
    monkeypatch.delenv("CONFAB_SLACK_SIGNING_SECRET", raising=False)
    http = SlackAdapter(AdapterContext(SlackConfig(mode="http"), "confab", EmptyChannelLog()))
    with pytest.raises(AdapterError, match="CONFAB_SLACK_SIGNING_SECRET"):
        http.build_app()


async def test_socket_mode_opens_its_connection_through_api_base_url_and_stops(
    monkeypatch,
) -> None:
    monkeypatch.setenv("CONFAB_SLACK_BOT_TOKEN", "xoxb-test")
    monkeypatch.setenv("CONFAB_SLACK_APP_TOKEN", "xapp-test")
    async with running_fake_slack() as api:
        config = SlackConfig(api_base_url=api.base_url.rstrip("/"))
        adapter = SlackAdapter(AdapterContext(config, "confab", EmptyChannelLog()))
        running = asyncio.create_task(adapter.run(noop))
        while not api.calls_to("apps.connections.open"):  # noqa: ASYNC110 - until it asks
            await asyncio.sleep(0.01)
        # The fake hands out a socket URL nobody listens on: slack_sdk keeps trying,
        # and a stop must still end the adapter at once.
        started = time.monotonic()
        await adapter.stop()
        await asyncio.wait_for(running, 10)
        stopped_in = time.monotonic() - started
    assert config.api_base_url == api.base_url  # normalised with its trailing slash
    assert [(c.method, c.token) for c in api.calls][:2] == [
        ("auth.test", "xoxb-test"),
        ("apps.connections.open", "xapp-test"),
    ]
    assert stopped_in < 6


async def noop(message: Any, adapter: Any) -> None:
    return None


@dataclass
class SlackUnderTest:
    adapter: SlackAdapter
    api: FakeSlack
    channel: str = "C1"
    thread: str = "1700000000.000001"

    def shown(self, sent: SentMessage) -> str:
        (message,) = [m for m in self.api.messages[sent.channel] if m.ts == sent.id]
        return html.unescape(message.text)

    async def seed_history(self, channel: str, entries: list[tuple[str, str]]) -> None:
        for author, text in entries:
            self.api.add_user(author, author, display_name=author)
            self.api.seed(channel, author, text, ts=f"{time.time():.6f}")
            await asyncio.sleep(0.001)


class TestSlackContract(AdapterContract):
    @pytest.fixture
    async def under_test(self, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[SlackUnderTest]:
        monkeypatch.setenv("CONFAB_SLACK_BOT_TOKEN", "xoxb-test")
        async with running_fake_slack() as api:
            config = SlackConfig(api_base_url=api.base_url)
            adapter = SlackAdapter(AdapterContext(config, "confab", EmptyChannelLog()))
            adapter.build_app()
            await adapter._who_am_i()
            yield SlackUnderTest(adapter, api)


def test_every_slack_setting_can_come_from_the_environment(monkeypatch, tmp_path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CONFAB_BOT__ADAPTERS", '["slack"]')
    monkeypatch.setenv("CONFAB_SLACK__MODE", "http")
    monkeypatch.setenv("CONFAB_SLACK__PORT", "8080")
    monkeypatch.setenv("CONFAB_SLACK__COMMAND_STYLE", "umbrella")
    monkeypatch.setenv("CONFAB_SLACK__API_BASE_URL", "https://slack-gov.com/api")
    config = load_config(schema=build_config_model({"slack": SlackConfig}))
    section = config.section("slack")
    assert isinstance(section, SlackConfig)
    assert (section.mode, section.port, section.command_style) == ("http", 8080, "umbrella")
    assert section.web_api_url == "https://slack-gov.com/api/"
