"""A stop (SIGTERM, Ctrl-C) while people wait for answers: each one gets a whole answer
or a short "restarting, ask again" notice within 10 s, and storage holds nothing
half-written."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from confab.bot.adapter import AdapterContext, Limits, MessageHandler
from confab.bot.app import App
from confab.bot.llm.backend import ChatMessage, GenerationParams
from confab.bot.messages import Attachment, Author, Message, SentMessage
from confab.bot.pacing import Rate, WriteWindow
from confab.bot.plugins import discover_adapters, discover_skills
from confab.bot.shutdown import RESTARTING, InFlight
from confab.bot.testing import ChatHarness, Posted, RecordingAdapter, ScriptedBackend
from confab.skills.qa import AskSkill
from confab.storage.conversations import ConversationKey, ConversationStore, StoredTurn
from confab.storage.database import Database
from tests.helpers import console_config

WORD_S = 0.05
QUICK_WORDS = 60  # about 3 s: well inside the grace
SLOW_WORDS = 400  # about 20 s: past it


class SlowModel(ScriptedBackend):
    """Answers ``quick N`` in about 3 s and ``slow N`` in about 20 s, word by word;
    ``pondering N`` gives no word for a minute first; ``stalling N`` gives one word,
    then a second, then nothing for a minute."""

    def __init__(self) -> None:
        super().__init__(full_answer, delay_s=WORD_S)

    async def stream(
        self, messages: Sequence[ChatMessage], params: GenerationParams | None = None
    ) -> AsyncIterator[str]:
        question = messages[-1].content
        if "pondering" in question:
            await asyncio.sleep(60)
        if "stalling" in question:
            yield "First"
            await asyncio.sleep(0.1)
            yield " second"
            await asyncio.sleep(60)
        async for chunk in super().stream(messages, params):
            yield chunk


def full_answer(messages: Sequence[ChatMessage]) -> str:
    found = re.search(r"(quick|slow|pondering) \d+", messages[-1].content)
    assert found, messages[-1].content
    words = QUICK_WORDS if found[1] == "quick" else SLOW_WORDS
    tag = found[0].replace(" ", "-")
    return " ".join(f"{tag}:{n}" for n in range(words))


class Platform(RecordingAdapter):
    """A recording platform that hands each incoming message to the bot in a task of
    its own (as discord.py and slack-bolt do), notes when each post last changed,
    and refuses to post once stopped."""

    def __init__(self, context: AdapterContext | None = None, limits: Limits | None = None):
        super().__init__(context, limits=limits)
        self.handler: MessageHandler | None = None
        self.serving = asyncio.Event()
        self.stopped_at: float | None = None
        self.changed_at: dict[str, float] = {}
        self.deliveries: list[asyncio.Future[None]] = []
        self._stopped = asyncio.Event()

    async def run(self, handler: MessageHandler) -> None:
        self.handler = handler
        self.serving.set()
        await self._stopped.wait()

    async def stop(self) -> None:
        self.stopped_at = time.monotonic()
        self._stopped.set()

    async def send(
        self, channel: str, text: str, *, thread: str | None = None, reply_to: str | None = None
    ) -> SentMessage:
        if self.stopped_at is not None:
            raise ConnectionError("the platform connection is closed")
        sent = await super().send(channel, text, thread=thread, reply_to=reply_to)
        self.changed_at[sent.id] = time.monotonic()
        return sent

    async def edit(self, sent: SentMessage, text: str) -> None:
        if self.stopped_at is not None:
            raise ConnectionError("the platform connection is closed")
        await super().edit(sent, text)
        self.changed_at[sent.id] = time.monotonic()

    def deliver(self, text: str, *, person: str, addressed: bool = True) -> Message:
        assert self.handler is not None
        message = Message(
            platform=self.platform,
            channel=f"dm-{person}",
            author=Author(person, person),
            text=text,
            addressed=addressed,
            id=f"in-{person}",
        )
        self.timeline.append(message)
        self.deliveries.append(asyncio.ensure_future(self.handler(message, self)))
        return message

    def answers_to(self, message: Message) -> list[Posted]:
        return [posted for posted in self.posted if posted.reply_to == message.id]


def app_with(db_url: str, platform: Platform, shutdown_grace_s: float | None = None) -> App:
    return App(
        console_config(db_url, {"test": Platform}),
        skills=discover_skills(),
        adapters=discover_adapters(),
        enabled=["test"],
        model=SlowModel(),
        adapter_factories={"test": lambda _context: platform},
        shutdown_grace_s=shutdown_grace_s,
    )


async def stored_turns(db_url: str, message: Message) -> list[StoredTurn]:
    database = Database(db_url)
    try:
        store = ConversationStore(database)
        return await store.channel_messages(ConversationKey(message.platform, message.channel))
    finally:
        await database.close()


async def until(condition: Callable[[], object], within_s: float = 10.0) -> None:
    deadline = time.monotonic() + within_s
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.01)


async def test_sigterm_with_twenty_answers_under_way(db_url: str) -> None:
    platform = Platform()
    app = app_with(db_url, platform)  # the default grace: everything ends within 10 s
    await app.start()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, app.request_stop)  # as `confab run` does
    try:
        running = asyncio.create_task(app.run())
        await platform.serving.wait()
        quick = [platform.deliver(f"quick {n}", person=f"q{n}") for n in range(8)]
        slow = [platform.deliver(f"slow {n}", person=f"s{n}") for n in range(8)]
        pondering = [platform.deliver(f"pondering {n}", person=f"p{n}") for n in range(4)]
        await until(lambda: len(platform.posted) == len(quick) + len(slow))  # all streaming
        assert app.in_flight is not None and app.in_flight.count == 20

        os.kill(os.getpid(), signal.SIGTERM)
        signalled = time.monotonic()
        await until(lambda: app.in_flight is not None and app.in_flight.closed, within_s=1)
        late = [platform.deliver(f"quick {n}", person=f"late{n}") for n in range(3)]
        chatter = platform.deliver("anyone around?", person="chatty", addressed=False)
        await until(lambda: all(platform.answers_to(m) for m in late), within_s=2)
        assert time.monotonic() - signalled < 2  # told at once, not after the grace

        await asyncio.wait_for(running, timeout=15)
        stopped = time.monotonic()
    finally:
        loop.remove_signal_handler(signal.SIGTERM)

    assert stopped - signalled < 10
    assert all(task.done() and task.exception() is None for task in platform.deliveries)
    assert platform.stopped_at is not None
    assert max(platform.changed_at.values()) <= platform.stopped_at < signalled + 10
    assert app.database is None and isinstance(app.model, SlowModel) and app.model.closed

    for message in quick:  # finished within the grace: the whole answer, stored as shown
        (answer,) = platform.answers_to(message)
        whole = full_answer([ChatMessage("user", message.text)])
        assert answer.text == whole
        user, bot = await stored_turns(db_url, message)
        assert (user.role, user.text, bot.role, bot.text) == (
            "user",
            message.text,
            "assistant",
            whole,
        )
    for message in slow:  # cut short: what was shown is stored, and the notice follows it
        (answer,) = platform.answers_to(message)
        user, bot = await stored_turns(db_url, message)
        assert (user.role, user.text, bot.role) == ("user", message.text, "assistant")
        assert answer.text == f"{bot.text}\n\n{RESTARTING}"
        whole = full_answer([ChatMessage("user", message.text)])
        assert bot.text and whole.startswith(bot.text) and bot.text != whole
    for message in pondering:  # cut before a word was shown: the notice alone
        (answer,) = platform.answers_to(message)
        assert answer.versions == [RESTARTING]
        (user,) = await stored_turns(db_url, message)
        assert (user.role, user.text) == ("user", message.text)
    for message in late:  # asked after the signal: told to ask again, nothing stored
        (answer,) = platform.answers_to(message)
        assert answer.versions == [RESTARTING]
        assert await stored_turns(db_url, message) == []
    assert platform.answers_to(chatter) == []


async def test_during_a_stop_only_messages_the_bot_would_answer_get_the_notice(
    db_url: str,
) -> None:
    platform = Platform()
    app = app_with(db_url, platform)
    await app.start()
    running = asyncio.create_task(app.run())
    await platform.serving.wait()
    app.request_stop()
    command = platform.deliver("!ping", person="ann", addressed=False)
    unknown = platform.deliver("!nosuch thing", person="bob", addressed=False)
    chatter = platform.deliver("lunch?", person="cy", addressed=False)
    mention = platform.deliver("are you there?", person="dee")
    await asyncio.wait_for(running, timeout=5)
    assert [p.text for p in platform.answers_to(command)] == [RESTARTING]
    assert [p.text for p in platform.answers_to(mention)] == [RESTARTING]
    assert platform.answers_to(unknown) == platform.answers_to(chatter) == []
    for message in (command, unknown, chatter, mention):
        assert await stored_turns(db_url, message) == []


async def test_a_second_stop_request_cuts_answers_at_once(db_url: str) -> None:
    platform = Platform()
    app = app_with(db_url, platform, shutdown_grace_s=8.0)
    await app.start()
    running = asyncio.create_task(app.run())
    await platform.serving.wait()
    message = platform.deliver("slow 1", person="impatient")
    await until(lambda: platform.posted)
    app.request_stop()
    await asyncio.sleep(0.2)
    assert not running.done()  # the first request waits for the answer
    app.request_stop()  # Ctrl-C again
    started = time.monotonic()
    await asyncio.wait_for(running, timeout=5)
    assert time.monotonic() - started < 1
    (answer,) = platform.answers_to(message)
    assert answer.text.endswith(f"\n\n{RESTARTING}")


async def test_a_cut_answer_inside_a_code_block_gets_the_notice_after_the_block(
    tmp_path: Path,
) -> None:
    code = "Here:\n```python\n" + "\n".join(f"x{n} = {n}" for n in range(300)) + "\n```"
    model = ScriptedBackend([code], delay_s=0.01)
    async with ChatHarness([AskSkill], tmp_path, model=model) as chat:
        in_flight = InFlight(chat.router.handle, grace_s=0.3)
        message = Message(
            "test", "dm", Author("ann", "ann"), "show me code", addressed=True, id="m1"
        )
        handling = asyncio.create_task(in_flight.handle(message, chat.adapter))
        await until(lambda: chat.adapter.posted)
        await in_flight.drain()
        await handling
        _, bot = await chat.store.recent(ConversationKey("test", "dm"))
    (answer,) = chat.adapter.posted
    assert bot.text.startswith("Here:\n```python\nx0 = 0\n") and len(bot.text) < len(code)
    # The block is closed before the notice, so the notice does not show as code.
    assert answer.text.startswith(bot.text)
    assert answer.text.endswith(f"```\n\n{RESTARTING}")
    assert answer.text.count("```") == 2


async def test_an_answer_outlives_its_callers_cancellation_until_the_drain(
    tmp_path: Path,
) -> None:
    """A scheduler or adapter cancelling its own task (APScheduler's shutdown does)
    does not cut the answer: it finishes within the grace, whole and stored."""
    model = ScriptedBackend(["one two three four five six"], delay_s=0.05)
    async with ChatHarness([AskSkill], tmp_path, model=model) as chat:
        in_flight = InFlight(chat.router.handle, grace_s=5)
        message = Message("test", "dm", Author("ann", "ann"), "count", addressed=True, id="m1")
        caller = asyncio.create_task(in_flight.handle(message, chat.adapter))
        await until(lambda: chat.adapter.posted)
        caller.cancel()
        assert in_flight.count == 1
        await in_flight.drain()
        turns = await chat.store.recent(ConversationKey("test", "dm"))
    (answer,) = chat.adapter.posted
    assert answer.text == "one two three four five six"
    assert [(t.role, t.text) for t in turns] == [
        ("user", "count"),
        ("assistant", "one two three four five six"),
    ]


async def test_a_cut_answer_on_a_paced_platform_is_stored_as_shown(db_url: str) -> None:
    platform = Platform(limits=Limits(max_message_chars=2000, min_edit_interval_s=0.5))
    app = app_with(db_url, platform, shutdown_grace_s=0.3)
    await app.start()
    running = asyncio.create_task(app.run())
    await platform.serving.wait()
    message = platform.deliver("stalling 1", person="ann")
    await until(lambda: platform.posted)
    await asyncio.sleep(0.2)  # " second" arrived; the next edit is not due yet
    app.request_stop()
    await asyncio.wait_for(running, timeout=5)
    (answer,) = platform.answers_to(message)
    _, bot = await stored_turns(db_url, message)
    assert answer.text == f"{bot.text}\n\n{RESTARTING}"


ANSWER_WORDS = [f"word{n}" for n in range(25)]  # 0.1 s apart: 2.5 s, well inside the grace


async def test_confab_run_finishes_the_answer_under_way_on_sigterm(tmp_path: Path) -> None:
    """The real command: ``confab run`` with the console on a pipe and a model server
    that streams slowly; SIGTERM mid-answer ends the process cleanly (exit 0) within
    10 s, the answer whole on stdout and in the database."""
    asked = asyncio.Event()

    async def completions(request: web.Request) -> web.StreamResponse:
        asked.set()
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for n, word in enumerate(ANSWER_WORDS):
            piece = {"choices": [{"delta": {"content": word if n == 0 else f" {word}"}}]}
            await response.write(f"data: {json.dumps(piece)}\n\n".encode())
            await asyncio.sleep(0.1)
        await response.write(b"data: [DONE]\n\n")
        return response

    server = web.Application()
    server.router.add_post("/v1/chat/completions", completions)
    runner = web.AppRunner(server)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    db_url = f"sqlite+aiosqlite:///{tmp_path / 'confab.db'}"
    config = tmp_path / "config.toml"
    config.write_text(
        f'[bot]\ndatabase_url = "{db_url}"\nadapters = ["console"]\n'
        f'[model]\nbackend = "openai"\n'
        f'[model.openai]\nbase_url = "http://127.0.0.1:{port}/v1"\nmodel = "slow"\n'
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "confab",
        "run",
        "--config",
        str(config),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdin is not None and process.stdout is not None
    try:
        process.stdin.write(b"tell me something\n")  # stdin stays open: a live session
        await process.stdin.drain()
        asking = asyncio.ensure_future(asked.wait())
        exiting = asyncio.ensure_future(process.wait())
        await asyncio.wait({asking, exiting}, timeout=60, return_when=asyncio.FIRST_COMPLETED)
        exiting.cancel()
        if not asking.done():  # it ended, or did not start within a minute
            asking.cancel()
            assert process.stderr is not None
            process.kill()
            pytest.fail(f"confab run did not ask the model: {(await process.stderr.read())!r}")
        first = await asyncio.wait_for(process.stdout.readexactly(5), timeout=10)
        process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        rest, errors = await asyncio.wait_for(process.communicate(), timeout=10)
        assert time.monotonic() - signalled < 10
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await runner.cleanup()
    assert process.returncode == 0, errors.decode()
    whole = " ".join(ANSWER_WORDS)
    assert (first + rest).decode() == whole + "\n"
    message = Message("console", "dm", Author("you", "you"), "")
    user, bot = await stored_turns(db_url, message)
    assert (user.text, bot.text) == ("tell me something", whole)


async def test_an_answer_sees_the_platforms_write_window_links_and_files() -> None:
    """Every answer in ``confab run`` reaches the platform through InFlight's view of
    it: the shared write window, message links and attachments must pass through."""
    window = WriteWindow(Rate(writes=5, per_s=5.0))

    class Platform(RecordingAdapter):
        def write_window(
            self, channel: str, *, thread: str | None, edit: bool
        ) -> WriteWindow | None:
            return window

        async def link(self, channel: str, message_id: str, *, thread: str | None = None) -> str:
            return f"https://chat.example/{channel}/{message_id}"

    platform = Platform()
    platform.files["https://files.example/a.txt"] = b"notes"
    seen: list[object] = []

    async def handler(message: Message, adapter: Any) -> None:
        seen.append(adapter.write_window("c", thread=None, edit=True))
        seen.append(await adapter.link("c", "42"))
        seen.append(
            await adapter.download(
                Attachment("a.txt", 5, "https://files.example/a.txt"), max_bytes=100
            )
        )

    await InFlight(handler).handle(Message("test", "c", Author("u", "u"), "hi"), platform)
    assert seen == [window, "https://chat.example/c/42", b"notes"]
