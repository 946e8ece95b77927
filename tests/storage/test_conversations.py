"""Conversation storage on a real SQLite file."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from bot.cli import main
from storage import migrate
from storage.conversations import ConversationKey, ConversationStore
from storage.database import Database
from storage.tables import Base

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


async def test_channel_messages_since_a_time_and_per_thread(db_url: str) -> None:
    database, store = await open_store(db_url)
    now = datetime.now(UTC)
    general = ConversationKey("discord", "general")
    thread = ConversationKey("discord", "general", "t1")
    for said, age in (("old", timedelta(hours=3)), ("new", timedelta(minutes=5))):
        await store.append(
            general,
            role="user",
            author_id="a",
            author_name="A",
            text=said,
            addressed=False,
            created_at=now - age,
        )
    await store.append(thread, role="user", author_id="c", author_name="C", text="in thread")
    recent = await store.channel_messages(general, since=now - timedelta(hours=1))
    assert [t.text for t in recent] == ["new"]
    assert [t.text for t in await store.channel_messages(general)] == ["old", "new"]
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


async def test_sqlite_runs_in_wal_mode_with_foreign_keys(db_url: str) -> None:
    database, _ = await open_store(db_url)
    async with database.engine.connect() as connection:
        assert await connection.scalar(text("PRAGMA journal_mode")) == "wal"
        assert await connection.scalar(text("PRAGMA foreign_keys")) == 1
    await database.close()


async def test_migrations_match_the_models_and_go_down_and_up_again(db_url: str) -> None:
    database = Database(db_url)
    assert await migrate.current(database.engine) is None
    await migrate.upgrade(database.engine)
    assert await migrate.current(database.engine) == "0001"

    async with database.engine.connect() as connection:

        def differences(sync: object) -> list[object]:
            context = MigrationContext.configure(sync)  # type: ignore[arg-type]
            return list(compare_metadata(context, Base.metadata))

        assert await connection.run_sync(differences) == []

    await migrate.downgrade(database.engine, "base")
    async with database.engine.connect() as connection:
        tables = await connection.run_sync(lambda sync: inspect(sync).get_table_names())
    assert "turns" not in tables and "conversations" not in tables
    await migrate.upgrade(database.engine)
    assert await migrate.current(database.engine) == "0001"
    await database.close()


def test_the_db_commands_upgrade_report_and_downgrade(
    db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CONFAB_BOT__DATABASE_URL", db_url)
    assert main(["db", "current"]) == 0
    assert main(["db", "upgrade"]) == 0
    assert main(["db", "downgrade", "base"]) == 0
    output = capsys.readouterr().out.splitlines()
    assert [line.rsplit(": ", 1)[1] for line in output] == [
        "revision (empty)",
        "revision 0001",
        "revision (empty)",
    ]


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
