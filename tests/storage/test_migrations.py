"""The schema: models and migrations agree, and every migration goes down and up again."""

from __future__ import annotations

import asyncio

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from confab.bot.cli import main
from confab.storage import migrate
from confab.storage.conversations import ConversationKey, ConversationStore
from confab.storage.database import Database
from confab.storage.tables import Base

TABLES = {
    "conversations",
    "turns",
    "users",
    "channel_settings",
    "skill_state",
    "processed_events",
    "scheduled_jobs",
    "bot_settings",
    "knowledge_documents",
    "knowledge_chunks",
}
# Full-text search is the database's own machinery, outside the models: an FTS5
# table (and its shadow tables) on SQLite, a generated column and its index on PostgreSQL.
FULL_TEXT = ("knowledge_fts", "search_vector", "ix_knowledge_chunks_search_vector")


def _modelled(_object: object, name: str | None, _type: str, _reflected: bool, _to: object) -> bool:
    return not (name or "").startswith(FULL_TEXT)


async def tables(database: Database) -> set[str]:
    async with database.engine.connect() as connection:
        names = await connection.run_sync(lambda sync: inspect(sync).get_table_names())
    return {name for name in names if not name.startswith(FULL_TEXT)} - {"alembic_version"}


async def differences(database: Database) -> list[object]:
    async with database.engine.connect() as connection:

        def compare(sync: object) -> list[object]:
            context = MigrationContext.configure(
                sync,  # type: ignore[arg-type]
                opts={"include_object": _modelled},
            )
            return list(compare_metadata(context, Base.metadata))

        return await connection.run_sync(compare)


async def test_migrations_match_the_models_and_go_down_and_up_again(db_url: str) -> None:
    database = Database(db_url)
    assert await migrate.current(database.engine) is None
    await migrate.upgrade(database.engine)
    assert await migrate.current(database.engine) == migrate.head() == "0007"
    assert await tables(database) == TABLES
    assert await differences(database) == []

    await migrate.downgrade(database.engine, "base")
    assert await tables(database) == set()
    await migrate.upgrade(database.engine)
    assert await differences(database) == []
    await database.close()


async def test_each_step_down_keeps_the_conversations(db_url: str) -> None:
    database = Database(db_url)
    await migrate.upgrade(database.engine)
    store = ConversationStore(database)
    key = ConversationKey("console", "dm")
    question = await store.append(key, role="user", author_id="ada", author_name="Ada", text="Hi")
    await store.append(
        key, role="assistant", author_id="c", author_name="c", text="Hello", reply_to=question
    )
    await store.reset_memory(key, after=question)

    await migrate.downgrade(database.engine, "-1")
    assert await migrate.current(database.engine) == "0006"
    assert "knowledge_chunks" not in await tables(database)
    await migrate.downgrade(database.engine, "-1")
    assert await migrate.current(database.engine) == "0005"
    assert "bot_settings" not in await tables(database)
    await migrate.downgrade(database.engine, "-1")
    assert await migrate.current(database.engine) == "0004"
    await migrate.downgrade(database.engine, "-1")
    assert await migrate.current(database.engine) == "0003"
    await migrate.downgrade(database.engine, "-1")
    assert await migrate.current(database.engine) == "0002"
    assert len(await store.recent(key)) == 2
    await migrate.downgrade(database.engine, "-1")
    assert await migrate.current(database.engine) == "0001"
    assert await tables(database) == {"conversations", "turns"}
    async with database.engine.connect() as connection:
        texts = (await connection.execute(text("SELECT text FROM turns ORDER BY id"))).scalars()
        assert list(texts) == ["Hi", "Hello"]

    await migrate.upgrade(database.engine)
    assert await differences(database) == []
    hi, hello = await store.recent(key)
    assert (hi.text, hello.text) == ("Hi", "Hello")
    # Answers from before the upgrade are linked back to who asked.
    assert (hello.reply_to_id, hello.reply_to_author_id) == (hi.id, "ada")
    await database.close()


async def test_processes_starting_together_migrate_once(db_url: str) -> None:
    databases = [Database(db_url) for _ in range(3)]
    # Unserialised, these fail on SQLite and hang on PostgreSQL.
    await asyncio.wait_for(asyncio.gather(*(d.upgrade() for d in databases)), timeout=60)
    assert await migrate.current(databases[0].engine) == migrate.head()
    for database in databases:
        await database.close()


async def test_sqlite_runs_in_wal_mode_with_foreign_keys(sqlite_url: str) -> None:
    database = Database(sqlite_url)
    await database.upgrade()
    async with database.engine.connect() as connection:
        assert await connection.scalar(text("PRAGMA journal_mode")) == "wal"
        assert await connection.scalar(text("PRAGMA foreign_keys")) == 1
        assert await connection.scalar(text("PRAGMA busy_timeout")) == 10_000
    await database.close()


def test_the_db_commands_upgrade_report_and_downgrade(
    db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CONFAB_BOT__DATABASE_URL", db_url)
    assert main(["db", "current"]) == 0
    assert main(["db", "upgrade"]) == 0
    assert main(["db", "downgrade"]) == 0
    assert main(["db", "downgrade", "0002"]) == 0
    assert main(["db", "downgrade", "0001"]) == 0
    assert main(["db", "downgrade", "base"]) == 0
    output = capsys.readouterr().out.splitlines()
    assert [line.rsplit(": ", 1)[1] for line in output] == [
        "revision (empty)",
        "revision 0007",
        "revision 0006",
        "revision 0002",
        "revision 0001",
        "revision (empty)",
    ]
