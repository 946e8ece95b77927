"""The console adapter: the contract, scripted mode end to end, and rendering."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from confab.adapters.console import ConsoleAdapter, ConsoleConfig, hard_line_breaks
from confab.bot.adapter import AdapterContext
from confab.bot.channel_log import StoredChannelLog
from confab.bot.llm.backend import ChatMessage
from confab.bot.messages import SentMessage
from confab.bot.testing import EmptyChannelLog, ScriptedBackend
from confab.contract import AdapterContract
from confab.storage.conversations import ConversationKey, ConversationStore
from confab.storage.database import Database
from tests.helpers import run_console, seed_stored_history


@dataclass
class ConsoleUnderTest:
    adapter: ConsoleAdapter
    store: ConversationStore
    output: io.StringIO
    channel: str = "general"

    def shown(self, sent: SentMessage) -> str:
        return self.adapter.shown(sent)

    async def seed_history(self, channel: str, entries: list[tuple[str, str]]) -> None:
        await seed_stored_history(self.store, "console", channel, entries)


class TestConsoleContract(AdapterContract):
    @pytest.fixture
    async def under_test(self, db_url: str) -> AsyncIterator[ConsoleUnderTest]:
        database = Database(db_url)
        await database.upgrade()
        store = ConversationStore(database)
        output = io.StringIO()
        context = AdapterContext(ConsoleConfig(), "confab", StoredChannelLog(store))
        adapter = ConsoleAdapter(context, stdout=output, stderr=io.StringIO(), interactive=False)
        yield ConsoleUnderTest(adapter, store, output)
        await database.close()


async def test_scripted_console_end_to_end(db_url: str) -> None:
    model = ScriptedBackend(["Paris is the capital.", "Yes, I am here."])
    lines = (
        "!ping\n"
        "What is the capital of France?\n"
        "\n"
        "/as alice\n"
        "/channel general\n"
        "lunch anyone?\n"
        "@confab are you there?\n"
        "/ping\n"
        "/quit\n"
        "!ping\n"
    )
    out, err = await run_console(db_url, lines, model)
    assert out == "pong\nParis is the capital.\nYes, I am here.\npong\n"
    assert "Now speaking as alice." in err and "Now in #general." in err
    assert model.prompts[1][-1] == ChatMessage("user", "are you there?")

    database = Database(db_url)
    store = ConversationStore(database)
    general = await store.channel_messages(ConversationKey("console", "general"))
    assert [(t.author_name, t.text, t.addressed) for t in general] == [
        ("alice", "lunch anyone?", False),
        ("alice", "are you there?", True),
        ("confab", "Yes, I am here.", True),
        ("alice", "/ping", True),
        ("confab", "pong", True),
    ]
    context = AdapterContext(ConsoleConfig(), "confab", StoredChannelLog(store))
    history = await ConsoleAdapter(context, interactive=False).history("general")
    assert [(m.text, m.command, m.from_self) for m in history] == [
        ("lunch anyone?", None, False),
        ("are you there?", None, False),
        ("Yes, I am here.", None, True),
        ("/ping", "ping", False),
        ("pong", None, True),
    ]
    await database.close()
    assert model.closed


async def test_the_conversation_survives_a_restart(db_url: str) -> None:
    await run_console(db_url, "My name is Ada.\n", ScriptedBackend(["Nice to meet you, Ada."]))
    model = ScriptedBackend(["Your name is Ada."])
    out, _ = await run_console(db_url, "What is my name?\n", model)
    assert out == "Your name is Ada.\n"
    assert model.prompts[0][1:] == [
        ChatMessage("user", "My name is Ada."),
        ChatMessage("assistant", "Nice to meet you, Ada."),
        ChatMessage("user", "What is my name?"),
    ]


async def test_streamed_edits_print_only_the_new_text() -> None:
    out = io.StringIO()
    context = AdapterContext(ConsoleConfig(), "confab", EmptyChannelLog())
    adapter = ConsoleAdapter(context, stdout=out, interactive=False)
    sent = await adapter.send("dm", "The answer")
    await adapter.edit(sent, "The answer is")
    await adapter.edit(sent, "The answer is 42.")
    assert out.getvalue() == "The answer is 42."


async def test_interactive_rendering_shows_markdown(tmp_path: Path) -> None:
    out = io.StringIO()
    config = ConsoleConfig(history_file=tmp_path / "history")
    context = AdapterContext(config, "confab", EmptyChannelLog())
    adapter = ConsoleAdapter(context, stdout=out, interactive=True)
    sent = await adapter.send("dm", "Some **bold** text")
    await adapter.edit(sent, "Some **bold** text and:\n\n```python\nprint('hi')\n```\n")
    await adapter.stop()
    rendered = out.getvalue()
    assert "confab" in rendered
    final = rendered[rendered.rindex("Some") :]  # the last frame the live display drew
    assert "Some bold text and:" in final and "**" not in final
    assert "print('hi')" in final and "```" not in final


async def test_line_breaks_show_as_on_chat_platforms(tmp_path: Path) -> None:
    out = io.StringIO()
    config = ConsoleConfig(history_file=tmp_path / "history")
    adapter = ConsoleAdapter(
        AdapterContext(config, "confab", EmptyChannelLog()), stdout=out, interactive=True
    )
    haiku = "Leaves fall softly down\nthe cold wind whispers of change\nwinter waits nearby"
    await adapter.send("dm", haiku + "\n\n```\na = 1\nb = 2\n```")
    await adapter.stop()
    final = out.getvalue()[out.getvalue().rindex("Leaves") :]
    lines = [line.strip() for line in final.splitlines() if line.strip()]
    assert lines == [*haiku.split("\n"), "a = 1", "b = 2"]


def test_hard_line_breaks_leave_code_blocks_and_paragraph_ends_alone() -> None:
    text = "one\ntwo\n\n```py\nx = 1\ny = 2\n```\nafter\nend"
    assert hard_line_breaks(text) == "one  \ntwo\n\n```py\nx = 1\ny = 2\n```\nafter  \nend"


async def test_odd_console_lines_get_a_hint_not_a_question(db_url: str) -> None:
    model = ScriptedBackend(["A reply."])
    out, err = await run_console(db_url, "/\n/as\tbob\n   \n/channel\n", model)
    assert out == ""
    assert "Type /COMMAND" in err and "Now speaking as bob." in err
    assert "You are in #dm. Usage: /channel NAME" in err
    assert model.prompts == []
