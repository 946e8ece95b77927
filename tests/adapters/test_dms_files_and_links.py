"""What the knowledge base needs from each platform: which messages are private (DMs),
the files that came with a message and their bytes, and a link back to a message.

Discord runs on dpytest (real discord.py objects), Slack as the real slack-bolt app
against the loopback Slack fake, and files are served over real HTTP on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import discord
import discord.ext.test as dpytest
import pytest
from aiohttp import web
from discord.ext.test import backend

from confab.adapters.console import ConsoleAdapter, ConsoleConfig
from confab.adapters.slack import SlackAdapter, SlackConfig
from confab.bot.adapter import AdapterContext, AttachmentTooLarge, AttachmentUnavailable
from confab.bot.channel_log import StoredChannelLog
from confab.bot.errors import ConfabError, Unsupported
from confab.bot.messages import Attachment, Message
from confab.bot.testing import EmptyChannelLog
from confab.storage.conversations import ConversationKey, ConversationStore
from confab.storage.database import Database
from tests.adapters.slack_fake import BOT_USER_ID, FakeSlack, running_fake_slack
from tests.adapters.slack_payloads import app_mention, file_share, im_message, slash_command
from tests.adapters.test_discord import adapter_for, discord_bot, open_thread
from tests.adapters.test_slack import slack


class Inbox:
    """A handler that keeps every message an adapter delivers."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self._arrived = asyncio.Event()

    async def __call__(self, message: Message, adapter: Any) -> None:
        self.messages.append(message)
        self._arrived.set()

    async def wait_for(self, count: int) -> list[Message]:
        """The messages so far, once there are ``count``."""
        async with asyncio.timeout(10):
            while len(self.messages) < count:
                self._arrived.clear()
                await self._arrived.wait()
        return self.messages


@dataclass
class FileServer:
    """Files over HTTP on 127.0.0.1, as a CDN serves them; records each request's path."""

    port: int = 0
    files: dict[str, bytes] = field(default_factory=dict)
    requested: list[str] = field(default_factory=list)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/attachments/{name}"

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        self.requested.append(name)
        if name not in self.files:
            return web.Response(status=404, text="Not Found")
        if not name.startswith("streamed-"):
            return web.Response(body=self.files[name], content_type="text/plain")
        response = web.StreamResponse()  # no Content-Length: the reader must count
        response.enable_chunked_encoding()
        await response.prepare(request)
        body = self.files[name]
        for start in range(0, len(body), 8192):
            await response.write(body[start : start + 8192])
        await response.write_eof()
        return response


@asynccontextmanager
async def file_server() -> AsyncIterator[FileServer]:
    server = FileServer()
    app = web.Application()
    app.router.add_get("/attachments/{name}", server._serve)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server.port = runner.addresses[0][1]
    try:
        yield server
    finally:
        await runner.cleanup()


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.WARNING]


# -- Discord ---------------------------------------------------------------------


async def test_discord_marks_dms_direct_and_guild_channels_and_threads_not(
    tmp_path: Path,
) -> None:
    async with discord_bot(tmp_path) as world:
        inbox = Inbox()
        world.adapter.bind(inbox)
        dm = await world.member.create_dm()
        await world.say("in the channel")
        await world.say("just us", channel=dm)
        await world.say("in a thread", channel=open_thread(world.channel))
    assert [(m.text, m.direct, m.addressed) for m in inbox.messages] == [
        ("in the channel", False, False),
        ("just us", True, True),
        ("in a thread", False, False),
    ]


async def test_discord_attachments_come_with_the_message(tmp_path: Path) -> None:
    async with discord_bot(tmp_path) as world:
        inbox = Inbox()
        world.adapter.bind(inbox)
        state = backend.get_state()
        files = [
            discord.Attachment(
                state=state,
                data={
                    "id": 7001,
                    "filename": "report.pdf",
                    "size": 48213,
                    "url": "https://cdn.discordapp.com/attachments/1/7001/report.pdf",
                    "proxy_url": "https://media.discordapp.net/attachments/1/7001/report.pdf",
                    "content_type": "application/pdf",
                },
            ),
            discord.Attachment(
                state=state,
                data={
                    "id": 7002,
                    "filename": "notes",
                    "size": 12,
                    "url": "https://cdn.discordapp.com/attachments/1/7002/notes",
                    "proxy_url": "",
                },
            ),
        ]
        backend.make_message("two files", world.member, world.channel, attachments=files)
        await dpytest.run_all_events()
    (message,) = inbox.messages
    assert message.text == "two files"
    assert message.attachments == (
        Attachment(
            name="report.pdf",
            size=48213,
            url="https://cdn.discordapp.com/attachments/1/7001/report.pdf",
            id="7001",
            content_type="application/pdf",
        ),
        Attachment("notes", 12, "https://cdn.discordapp.com/attachments/1/7002/notes", "7002"),
    )


async def test_discord_downloads_an_attachment_within_its_limit(
    caplog: pytest.LogCaptureFixture,
) -> None:
    adapter = adapter_for()
    async with file_server() as cdn:
        cdn.files["notes.txt"] = b"meeting notes\n" * 100
        cdn.files["streamed-big.txt"] = b"x" * 100_000
        notes = Attachment("notes.txt", 1400, cdn.url("notes.txt"), "1")
        assert await adapter.download(notes, max_bytes=1400) == cdn.files["notes.txt"]

        # Declared too large: refused before any request.
        huge = Attachment("huge.bin", 10_000_000, cdn.url("huge.bin"), "2")
        with pytest.raises(AttachmentTooLarge) as declared:
            await adapter.download(huge, max_bytes=1_000_000)
        # Declared small, but more comes: refused while reading, past its Content-Length...
        with pytest.raises(AttachmentTooLarge):
            await adapter.download(Attachment("notes.txt", 10, notes.url), max_bytes=1000)
        # ...and where there is none, once the body passes max_bytes.
        lying = Attachment("big.txt", 10, cdn.url("streamed-big.txt"), "3")
        with pytest.raises(AttachmentTooLarge) as streamed:
            await adapter.download(lying, max_bytes=50_000)

        caplog.set_level(logging.WARNING)
        gone = Attachment("gone.txt", 5, cdn.url("gone.txt"), "4")
        with pytest.raises(AttachmentUnavailable) as missing:
            await adapter.download(gone, max_bytes=1000)
    assert cdn.requested == ["notes.txt", "notes.txt", "streamed-big.txt", "gone.txt"]
    assert declared.value.user_message == (
        "The file huge.bin is too large for me to read (the limit is 977 KB)."
    )
    assert isinstance(streamed.value, ConfabError) and streamed.value.max_bytes == 50_000
    assert missing.value.user_message == "I couldn't download gone.txt from Discord."
    (warning,) = warnings_of(caplog)
    assert "HTTP 404" in warning.getMessage() and "gone.txt" in warning.getMessage()
    assert warning.exc_info is None


async def test_discord_jump_links_name_the_guild_the_thread_or_me(tmp_path: Path) -> None:
    async with discord_bot(tmp_path) as world:
        adapter, channel = world.adapter, world.channel
        guild = channel.guild
        thread = open_thread(channel)
        dm = await world.member.create_dm()
        await world.say("hello privately", channel=dm)
        in_channel = await adapter.link(str(channel.id), "1234")
        in_thread = await adapter.link(str(channel.id), "1235", thread=str(thread.id))
        in_dm = await adapter.link(str(dm.id), "1236")
        unknown = await adapter.link("999999999999", "1237")
        not_a_message = await adapter.link(str(channel.id), "interaction-5")
    assert in_channel == f"https://discord.com/channels/{guild.id}/{channel.id}/1234"
    assert in_thread == f"https://discord.com/channels/{guild.id}/{thread.id}/1235"
    assert in_dm == f"https://discord.com/channels/@me/{dm.id}/1236"
    assert unknown is None and not_a_message is None


# -- Slack -------------------------------------------------------------------------


async def test_slack_marks_dms_direct_and_channel_mentions_not(tmp_path, monkeypatch) -> None:
    async with slack(tmp_path, monkeypatch) as bot:
        inbox = Inbox()
        bot.adapter.bind(inbox)
        await bot.event(im_message("hello", "U1", "D1", "1700.000100"), "Ev1")
        await inbox.wait_for(1)
        await bot.event(app_mention(f"<@{BOT_USER_ID}> hi", "U1", "C1", "1700.000200"), "Ev2")
        await inbox.wait_for(2)
        in_dm = slash_command("/ping", "", "U1", "D1", bot.api.hooks_url + "1", "T-1",
                              channel_name="directmessage")  # fmt: skip
        await bot.post(in_dm)
        await inbox.wait_for(3)
        await bot.post(slash_command("/ping", "", "U1", "C1", bot.api.hooks_url + "2", "T-2"))
        messages = await inbox.wait_for(4)
    assert [(m.channel, m.command, m.direct) for m in messages] == [
        ("D1", None, True),
        ("C1", None, False),
        ("D1", "ping", True),
        ("C1", "ping", False),
    ]


async def test_a_slack_file_share_brings_its_files_and_they_download_with_the_token(
    tmp_path, monkeypatch
) -> None:
    async with slack(tmp_path, monkeypatch) as bot:
        inbox = Inbox()
        bot.adapter.bind(inbox)
        content = b"# Runbook\n\nRestart the worker.\n"
        shared = bot.api.add_file("runbook.md", content, mimetype="text/markdown")
        await bot.event(file_share("the runbook", "U1", "C1", "1700.000300", [shared]), "Ev3")
        (message,) = await inbox.wait_for(1)
        (attachment,) = message.attachments
        body = await bot.adapter.download(attachment, max_bytes=1024)
        (download,) = bot.api.calls_to("download:F1")
    assert (message.text, message.addressed, message.direct) == ("the runbook", False, False)
    assert attachment == Attachment(
        name="runbook.md",
        size=len(content),
        url=shared["url_private_download"],
        id="F1",
        content_type="text/markdown",
    )
    assert body == content
    assert download.token == "xoxb-test"


@asynccontextmanager
async def slack_adapter(
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[tuple[SlackAdapter, FakeSlack]]:
    """The Slack adapter's Web API side, against the fake, without an events server."""
    monkeypatch.setenv("CONFAB_SLACK_BOT_TOKEN", "xoxb-test")
    async with running_fake_slack() as api:
        adapter = SlackAdapter(
            AdapterContext(SlackConfig(api_base_url=api.base_url), "confab", EmptyChannelLog())
        )
        adapter.build_app()
        yield adapter, api


async def test_slack_history_of_a_dm_is_direct(monkeypatch) -> None:
    async with slack_adapter(monkeypatch) as (adapter, api):
        api.seed("D1", "U1", "between us")
        api.seed("C1", "U1", "for everyone")
        (private,) = await adapter.history("D1")
        (public,) = await adapter.history("C1")
    assert (private.text, private.direct) == ("between us", True)
    assert (public.text, public.direct) == ("for everyone", False)


async def test_slack_downloads_refuse_past_max_bytes_declared_or_read(monkeypatch) -> None:
    async with slack_adapter(monkeypatch) as (adapter, api):
        big = api.add_file("big.csv", b"a,b\n" * 50_000, mimetype="text/csv")  # 200 KB
        declared = Attachment(big["name"], big["size"], big["url_private_download"], big["id"])
        with pytest.raises(AttachmentTooLarge):
            await adapter.download(declared, max_bytes=100_000)
        assert api.calls_to("download:F1") == []  # refused on the declared size alone

        lying = api.add_file("small.csv", b"a,b\n" * 50_000, mimetype="text/csv", size=40)
        shared = Attachment(lying["name"], 40, lying["url_private_download"], lying["id"])
        with pytest.raises(AttachmentTooLarge) as read:
            await adapter.download(shared, max_bytes=100_000)
        assert len(api.calls_to("download:F2")) == 1
    assert "more than 100000 bytes sent" in str(read.value)


async def test_slack_refuses_what_is_not_the_file(monkeypatch, caplog) -> None:
    caplog.set_level(logging.WARNING)
    async with slack_adapter(monkeypatch) as (adapter, api):
        file = api.add_file("plan.txt", b"the plan")
        attachment = Attachment("plan.txt", 8, file["url_private_download"], "F1", "text/plain")
        api.files_read_scope = False  # Slack answers with its login page
        with pytest.raises(AttachmentUnavailable) as login_page:
            await adapter.download(attachment, max_bytes=1000)
        api.files_read_scope = True

        missing = Attachment("old.txt", 8, file["url_private_download"].replace("F1", "F9"), "F9")
        with pytest.raises(AttachmentUnavailable) as gone:
            await adapter.download(missing, max_bytes=1000)

        elsewhere = Attachment("x.txt", 8, "https://files.example.com/x.txt", "F1")
        with pytest.raises(AttachmentUnavailable):
            await adapter.download(elsewhere, max_bytes=1000)
        # Slack Connect events may carry a file's id alone: its URL comes from files.info.
        by_id = await adapter.download(Attachment("plan.txt", 0, "", "F1"), max_bytes=1000)
    assert login_page.value.user_message == (
        "I couldn't download plan.txt from Slack: the app may lack the files:read permission."
    )
    assert gone.value.user_message == "I couldn't download old.txt from Slack."
    assert by_id == b"the plan"
    # The token went only to the fake's own host; each refusal was logged once.
    assert [c.method for c in api.calls] == [
        "download:F1",
        "download:F9",
        "files.info",
        "download:F1",
    ]
    logged = [r.getMessage() for r in warnings_of(caplog)]
    assert len(logged) == 3 and all(r.exc_info is None for r in warnings_of(caplog))
    assert "files:read" in logged[0] and "HTTP 404" in logged[1]
    assert "not a Slack file URL: files.example.com" in logged[2]


async def test_slack_permalinks_are_asked_once_and_failures_are_none(monkeypatch, caplog) -> None:
    caplog.set_level(logging.WARNING)
    async with slack_adapter(monkeypatch) as (adapter, api):
        first = await adapter.link("C1", "C1:1700.000100")
        again = await adapter.link("C1", "1700.000100", thread="1700.000100")
        api.fail_next("chat.getPermalink", error="channel_not_found")
        failed = await adapter.link("C404", "C404:1700.000200")
        command = await adapter.link("C1", "command-T-1")
        calls = api.calls_to("chat.getPermalink")
    assert first == again == "https://test.slack.com/archives/C1/p1700000100"
    assert [c.params for c in calls] == [
        {"channel": "C1", "message_ts": "1700.000100"},
        {"channel": "C404", "message_ts": "1700.000200"},
    ]
    assert failed is None and command is None
    (warning,) = warnings_of(caplog)
    assert "C404" in warning.getMessage() and "channel_not_found" in warning.getMessage()
    assert warning.exc_info is None


# -- Console -----------------------------------------------------------------------


async def test_the_console_dm_is_direct_and_has_no_files_or_links() -> None:
    context = AdapterContext(ConsoleConfig(), "confab", EmptyChannelLog())
    adapter = ConsoleAdapter(context, stdout=io.StringIO(), stderr=io.StringIO(), interactive=False)
    inbox = Inbox()
    await adapter.handle_line("hello\n", inbox)
    await adapter.handle_line("/channel general\n", inbox)
    await adapter.handle_line("hello all\n", inbox)
    assert [(m.channel, m.direct) for m in inbox.messages] == [("dm", True), ("general", False)]
    assert await adapter.link("dm", inbox.messages[0].id or "") is None
    with pytest.raises(Unsupported):
        await adapter.download(Attachment("a.txt", 1, "http://127.0.0.1:9/a.txt"), max_bytes=10)


async def test_the_console_dm_history_is_direct(db_url: str) -> None:
    database = Database(db_url)
    await database.upgrade()
    store = ConversationStore(database)
    for channel in ("dm", "general"):
        await store.append(
            ConversationKey("console", channel),
            role="user",
            author_id="you",
            author_name="you",
            text=f"said in {channel}",
            addressed=channel == "dm",
        )
    context = AdapterContext(ConsoleConfig(), "confab", StoredChannelLog(store))
    adapter = ConsoleAdapter(context, stdout=io.StringIO(), interactive=False)
    (private,) = await adapter.history("dm")
    (public,) = await adapter.history("general")
    await database.close()
    assert (private.text, private.direct) == ("said in dm", True)
    assert (public.text, public.direct) == ("said in general", False)
