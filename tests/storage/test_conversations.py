"""Conversation storage, on a real SQLite file and a real PostgreSQL database."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import text

from confab.bot.cli import main
from confab.storage.conversations import ConversationKey, ConversationStore
from confab.storage.database import Database

DM = ConversationKey("console", "dm")


async def open_store(url: str) -> tuple[Database, ConversationStore]:
    database = Database(url)
    await database.upgrade()
    return database, ConversationStore(database)


async def test_turns_come_back_in_order_and_survive_a_reopen(db_url: str) -> None:
    database, store = await open_store(db_url)
    first = await store.append(DM, role="user", author_id="ada", author_name="Ada", text="Hi")
    await store.append(DM, role="assistant", author_id="confab", author_name="confab", text="Hello")
    await database.close()

    database, store = await open_store(db_url)
    turns = await store.recent(DM)
    assert [(t.role, t.author_name, t.text) for t in turns] == [
        ("user", "Ada", "Hi"),
        ("assistant", "confab", "Hello"),
    ]
    assert turns[0].id == first.id
    assert turns[0].created_at.tzinfo is not None
    await database.close()


async def test_recent_honours_limit_tokens_before_skill_and_chatter(db_url: str) -> None:
    database, store = await open_store(db_url)
    for index in range(6):
        await store.append(
            DM,
            role="user",
            author_id="a",
            author_name="A",
            text=f"t{index}",
            token_count=10,
            skill="ask" if index % 2 == 0 else "code",
        )
    chatter = await store.append(
        DM, role="user", author_id="b", author_name="B", text="chatter", addressed=False
    )
    assert [t.text for t in await store.recent(DM, limit=3)] == ["t3", "t4", "t5"]
    assert [t.text for t in await store.recent(DM, max_tokens=25)] == ["t4", "t5"]
    assert [t.text for t in await store.recent(DM, skill="ask")] == ["t0", "t2", "t4"]
    latest = await store.recent(DM, before_id=chatter.id, limit=1)
    assert [t.text for t in latest] == ["t5"]
    everything = await store.recent(DM, addressed_only=False, limit=1)
    assert [t.text for t in everything] == ["chatter"]
    assert await store.recent(ConversationKey("console", "elsewhere")) == []
    await database.close()


async def test_a_memory_reset_hides_earlier_turns_from_memory_only(db_url: str) -> None:
    database, store = await open_store(db_url)
    thread = ConversationKey("console", "dm", "t1")
    for said in ("before", "more"):
        await store.append(DM, role="user", author_id="a", author_name="A", text=said)
    await store.append(thread, role="user", author_id="a", author_name="A", text="in a thread")
    reset = await store.append(DM, role="user", author_id="a", author_name="A", text="!reset")
    await store.append(DM, role="user", author_id="a", author_name="A", text="after")

    await store.reset_memory(DM, after=reset)
    assert [t.text for t in await store.recent(DM, since_reset=True)] == ["after"]
    # Still stored, and other conversations keep their memory.
    assert len(await store.recent(DM)) == 4
    assert len(await store.channel_messages(DM)) == 4
    assert [t.text for t in await store.recent(thread, since_reset=True)] == ["in a thread"]
    # Resetting a conversation that has no turns yet creates it, harmlessly.
    await store.reset_memory(ConversationKey("console", "new"), after=reset)
    assert await store.recent(ConversationKey("console", "new"), since_reset=True) == []
    await database.close()


async def test_new_turns_after_a_reset_and_a_deletion_are_remembered(db_url: str) -> None:
    database, store = await open_store(db_url)
    general = ConversationKey("console", "general")
    kept = await store.append(general, role="user", author_id="bob", author_name="B", text="old")
    reset = await store.append(
        general, role="user", author_id="ada", author_name="A", text="!reset"
    )
    await store.reset_memory(general, after=reset)
    await store.append(general, role="user", author_id="ada", author_name="A", text="later")
    # Ada's turns go, the reset among them; the mark still hides what came before it.
    await store.forget_author("console", "ada")
    assert await store.recent(general, since_reset=True) == []
    new = await store.append(general, role="user", author_id="bob", author_name="B", text="new")
    assert [t.text for t in await store.recent(general, since_reset=True)] == ["new"]
    assert new.id > kept.id

    # With the whole channel gone, ids may start again from the top of the
    # table; the next conversation is remembered whole.
    await store.forget_channel("console", "general")
    await store.append(general, role="user", author_id="bob", author_name="B", text="fresh")
    assert [t.text for t in await store.recent(general, since_reset=True)] == ["fresh"]
    await database.close()


async def test_channel_messages_since_a_time_and_per_thread(db_url: str) -> None:
    database, store = await open_store(db_url)
    now = datetime.now(UTC)
    general = ConversationKey("discord", "general")
    thread = ConversationKey("discord", "general", "t1")
    # Platforms hand over times in any zone; they are compared as instants.
    east, west = timezone(timedelta(hours=5)), timezone(timedelta(hours=-8))
    for said, age, zone in (("old", timedelta(hours=3), east), ("new", timedelta(minutes=5), west)):
        await store.append(
            general,
            role="user",
            author_id="a",
            author_name="A",
            text=said,
            addressed=False,
            created_at=(now - age).astimezone(zone),
        )
    await store.append(thread, role="user", author_id="c", author_name="C", text="in thread")
    recent = await store.channel_messages(general, since=now - timedelta(hours=1))
    assert [t.text for t in recent] == ["new"]
    assert [t.text for t in await store.channel_messages(general)] == ["old", "new"]
    assert abs(recent[0].created_at - (now - timedelta(minutes=5))) < timedelta(seconds=1)
    assert [t.text for t in await store.channel_messages(thread)] == ["in thread"]
    await database.close()


async def test_concurrent_first_messages_share_one_conversation(db_url: str) -> None:
    database, store = await open_store(db_url)
    key = ConversationKey("slack", "C1", "1700000000.1")
    await asyncio.gather(
        *(
            store.append(key, role="user", author_id=str(i), author_name="x", text=str(i))
            for i in range(20)
        )
    )
    async with database.engine.connect() as connection:
        count = await connection.scalar(text("SELECT count(*) FROM conversations"))
    assert count == 1
    assert len(await store.recent(key, limit=100)) == 20
    await database.close()


def test_database_problems_are_one_clear_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    cases = {
        f"sqlite+aiosqlite:///{tmp_path}": "unable to open database file",  # a folder
        f"sqlite+aiosqlite:///{tmp_path / 'f.db'}": "didn't produce 1 migrations",  # at base
        "postgresql+asyncpg://postgres@127.0.0.1:1/none": "Connect call failed",
    }
    for url, reason in cases.items():
        monkeypatch.setenv("CONFAB_BOT__DATABASE_URL", url)
        assert main(["db", "downgrade"]) == 2
        error = capsys.readouterr().err
        assert reason in error and "Traceback" not in error
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("CONFAB_BOT__DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/file/x.db")
    assert main(["db", "upgrade"]) == 2
    assert "cannot create the folder for the database" in capsys.readouterr().err
