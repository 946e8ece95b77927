"""Retention, forgetting and export: what is deleted, what stays, what a person gets."""

from __future__ import annotations

import asyncio
import json
import os
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from confab.bot.cli import main
from confab.storage import migrate
from confab.storage.conversations import ConversationKey, ConversationStore, StoredTurn
from confab.storage.database import Database
from confab.storage.export import export_user
from confab.storage.records import Forgotten
from confab.storage.skill_state import SkillStateStore, user_scope
from confab.storage.users import UserStore

GENERAL = ConversationKey("discord", "general")
THREAD = ConversationKey("discord", "general", "t1")
RANDOM = ConversationKey("discord", "random")


async def exchange(
    store: ConversationStore, key: ConversationKey, author: str, question: str
) -> StoredTurn:
    """A person's turn and the bot's reply to it."""
    asked = await store.append(
        key, role="user", author_id=author, author_name=author, text=question
    )
    await store.append(
        key,
        role="assistant",
        author_id="confab",
        author_name="confab",
        text=f"answer to {question}",
        reply_to=asked,
    )
    return asked


async def texts(store: ConversationStore, key: ConversationKey) -> list[str]:
    return [turn.text for turn in await store.channel_messages(key)]


async def test_forgetting_a_person_takes_their_turns_and_the_replies_everywhere_on_that_platform(
    database: Database,
) -> None:
    store = ConversationStore(database)
    await exchange(store, GENERAL, "ada", "q1")
    await exchange(store, GENERAL, "bob", "q2")
    await exchange(store, THREAD, "ada", "q3")
    await store.append(RANDOM, role="user", author_id="ada", author_name="ada", text="chatter")
    await exchange(store, ConversationKey("slack", "general"), "ada", "on slack")

    assert await store.forget_author("discord", "ada") == Forgotten(messages=3, replies=2)
    assert await texts(store, GENERAL) == ["q2", "answer to q2"]
    assert await texts(store, THREAD) == []
    assert await texts(store, RANDOM) == []
    assert await texts(store, ConversationKey("slack", "general")) == [
        "on slack",
        "answer to on slack",
    ]
    assert await store.forget_author("discord", "ada") == Forgotten(0, 0)


async def test_an_answer_stored_after_its_question_was_forgotten_is_still_theirs(
    database: Database,
) -> None:
    store = ConversationStore(database)
    asked = await store.append(GENERAL, role="user", author_id="ada", author_name="ada", text="q")
    assert await store.forget_author("discord", "ada") == Forgotten(messages=1, replies=0)
    # The answer was still streaming while the question was deleted.
    await store.append(
        GENERAL,
        role="assistant",
        author_id="confab",
        author_name="confab",
        text="a",
        reply_to=asked,
    )

    assert [turn.text for _, turn in await store.by_author("discord", "ada")] == ["a"]
    assert await store.forget_author("discord", "ada") == Forgotten(messages=0, replies=1)
    assert await texts(store, GENERAL) == []


async def test_forgetting_a_channel_takes_its_threads_and_nothing_else(database: Database) -> None:
    store = ConversationStore(database)
    await exchange(store, GENERAL, "ada", "q1")
    await exchange(store, THREAD, "bob", "q2")
    await store.append(GENERAL, role="user", author_id="cy", author_name="cy", text="chatter")
    await exchange(store, RANDOM, "ada", "elsewhere")

    assert await store.forget_channel("discord", "general") == Forgotten(messages=3, replies=2)
    assert await texts(store, GENERAL) == [] and await texts(store, THREAD) == []
    assert await texts(store, RANDOM) == ["elsewhere", "answer to elsewhere"]


async def test_retention_deletes_turns_older_than_the_cutoff(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("confab.storage.conversations.RETENTION_BATCH", 3)  # several batches
    store = ConversationStore(database)
    now = datetime.now(UTC)
    for age in range(10):
        await store.append(
            GENERAL,
            role="user",
            author_id="a",
            author_name="a",
            text=f"{age} days old",
            created_at=now - timedelta(days=age, hours=1),
        )
    assert await store.delete_before(now - timedelta(days=3)) == 7
    assert await texts(store, GENERAL) == ["0 days old", "1 days old", "2 days old"]
    assert await store.delete_before(now - timedelta(days=3)) == 0


async def test_an_export_holds_the_persons_turns_replies_record_settings_and_state(
    database: Database,
) -> None:
    store = ConversationStore(database)
    asked = await exchange(store, THREAD, "ada", "what is a monad?")
    await exchange(store, GENERAL, "bob", "not ada's")
    await UserStore(database).set_setting("discord", "ada", "timezone", "Europe/Paris")
    await SkillStateStore(database).set("remind", user_scope("discord", "ada"), "next", "9:00")

    data = await export_user(database, "discord", "ada")
    assert data["platform"] == "discord" and data["user_id"] == "ada"
    assert data["user"]["display_name"] == "ada"
    assert data["user"]["settings"] == {"timezone": "Europe/Paris"}
    assert [(t["channel"], t["thread"], t["role"], t["text"]) for t in data["turns"]] == [
        ("general", "t1", "user", "what is a monad?"),
        ("general", "t1", "assistant", "answer to what is a monad?"),
    ]
    assert data["turns"][1]["reply_to_id"] == asked.id
    assert data["skill_state"] == [{"skill": "remind", "key": "next", "value": "9:00"}]
    json.dumps(data)  # JSON as it is

    nobody = await export_user(database, "discord", "nobody")
    assert nobody["user"] is None and nobody["turns"] == [] and nobody["skill_state"] == []


async def test_confab_db_export_writes_json_to_stdout_or_a_private_file(
    database: Database,
    db_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    await exchange(ConversationStore(database), GENERAL, "ada", "hello")
    monkeypatch.setenv("CONFAB_BOT__DATABASE_URL", db_url)

    assert await _main(["db", "export", "--user", "ada", "--platform", "discord"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert [t["text"] for t in printed["turns"]] == ["hello", "answer to hello"]

    out = tmp_path / "ada.json"
    out.write_text("an older, world-readable file")
    out.chmod(0o644)
    assert (
        await _main(["db", "export", "--platform", "discord", "--user", "ada", "--out", str(out)])
        == 0
    )
    assert json.loads(out.read_text())["turns"] == printed["turns"]
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert [name for name in os.listdir(tmp_path) if name.endswith(".tmp")] == []
    assert "wrote 2 turns of discord:ada to" in capsys.readouterr().err


async def test_export_refuses_a_database_that_is_not_migrated(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CONFAB_BOT__DATABASE_URL", sqlite_url)
    assert await _main(["db", "export", "--user", "ada", "--platform", "discord"]) == 2
    error = capsys.readouterr().err
    expected = f"is at schema revision (empty), not {migrate.head()}: run `confab db upgrade` first"
    assert expected in error


async def _main(argv: list[str]) -> int:
    # The command runs its own event loop, so it runs in a thread of its own here.
    return await asyncio.to_thread(main, argv)
