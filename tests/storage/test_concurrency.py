"""Many writers at once: nothing lost, order kept, no "database is locked"."""

from __future__ import annotations

import asyncio
import logging
import threading

import pytest
from sqlalchemy import text

from confab.storage.conversations import ConversationKey, ConversationStore
from confab.storage.database import Database
from confab.storage.users import UserStore

WRITERS = 200
CONVERSATIONS = 20
TURNS_EACH = 2


async def test_200_writers_on_20_conversations_lose_nothing_and_keep_order(
    database: Database,
) -> None:
    store = ConversationStore(database)

    async def writer(number: int) -> None:
        # Like one person in a busy channel: each turn is sent once the last is stored.
        key = ConversationKey("test", f"channel-{number % CONVERSATIONS}")
        for index in range(TURNS_EACH):
            await store.append(
                key,
                role="user",
                author_id=f"user-{number}",
                author_name=f"User {number}",
                text=f"{number}:{index}",
            )

    await asyncio.gather(*(writer(number) for number in range(WRITERS)))

    for channel in range(CONVERSATIONS):
        key = ConversationKey("test", f"channel-{channel}")
        turns = await store.recent(key, limit=1000)
        said = [tuple(map(int, turn.text.split(":"))) for turn in turns]
        writers = range(channel, WRITERS, CONVERSATIONS)
        assert sorted(said) == [(w, i) for w in writers for i in range(TURNS_EACH)]
        for w in writers:
            assert [i for who, i in said if who == w] == list(range(TURNS_EACH))


async def test_concurrent_changes_to_one_persons_settings_all_survive(database: Database) -> None:
    users = UserStore(database)
    await asyncio.gather(
        *(users.set_setting("test", "ada", f"key{index}", index) for index in range(30))
    )
    assert await users.settings("test", "ada") == {f"key{index}": index for index in range(30)}


async def test_writers_on_separate_connections_lose_nothing(db_url: str) -> None:
    """Several Database objects stand in for several processes: their writes meet in
    the database itself (SQLite's file lock, PostgreSQL's row locks), not in one
    process's queue."""
    first = Database(db_url)
    await first.upgrade()
    databases = [first] + [Database(db_url) for _ in range(3)]
    try:

        async def writer(number: int) -> None:
            store = ConversationStore(databases[number % len(databases)])
            key = ConversationKey("test", f"channel-{number % 5}")
            for index in range(3):
                await store.append(
                    key,
                    role="user",
                    author_id=f"u{number}",
                    author_name="U",
                    text=f"{number}:{index}",
                )

        await asyncio.gather(*(writer(number) for number in range(40)))
        store = ConversationStore(first)
        stored = [
            turn.text
            for channel in range(5)
            for turn in await store.recent(ConversationKey("test", f"channel-{channel}"), limit=500)
        ]
        assert sorted(stored) == sorted(f"{n}:{i}" for n in range(40) for i in range(3))
    finally:
        for database in databases:
            await database.close()


async def test_a_deadlock_between_two_batches_writes_both_and_is_no_outage(
    postgresql_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Two processes' batches take the same two rows in opposite orders: PostgreSQL
    aborts one. Its writes are run again, one per transaction, and land; the log
    does not call it the database being unreachable."""
    databases = [Database(postgresql_url), Database(postgresql_url)]
    await databases[0].upgrade()
    both_hold_one = threading.Barrier(2, timeout=10)
    waited: list[str] = []

    def insert(key: str, *, then_wait: bool):  # type: ignore[no-untyped-def]
        def run(connection, _facts):  # type: ignore[no-untyped-def]
            connection.execute(
                text(
                    "INSERT INTO skill_state(skill, scope, key, value, updated_at) "
                    "VALUES ('t', 's', :key, '1', now()) ON CONFLICT DO NOTHING"
                ),
                {"key": key},
            )
            if then_wait and key not in waited:  # the first time only
                waited.append(key)
                both_hold_one.wait()  # each transaction now holds its first row
            return key

        return run

    gates = [threading.Event(), threading.Event()]
    try:
        held = [
            database.write_queue.submit(lambda _c, _f, gate=gate: gate.wait(10), writes=False)
            for database, gate in zip(databases, gates, strict=True)
        ]
        batches = [
            [
                databases[0].write_queue.submit(insert("a", then_wait=True), writes=True),
                databases[0].write_queue.submit(insert("b", then_wait=False), writes=True),
            ],
            [
                databases[1].write_queue.submit(insert("b", then_wait=True), writes=True),
                databases[1].write_queue.submit(insert("a", then_wait=False), writes=True),
            ],
        ]
        with caplog.at_level(logging.INFO, logger="confab.storage.write_queue"):
            for gate in gates:
                gate.set()
            await asyncio.gather(*held)
            written = await asyncio.gather(*batches[0], *batches[1])

            def stored(connection, _facts):  # type: ignore[no-untyped-def]
                return sorted(connection.execute(text("SELECT key FROM skill_state")).scalars())

            assert await databases[0].write_queue.submit(stored, writes=False) == ["a", "b"]
        assert written == ["a", "b", "b", "a"]
        assert "lock conflict" in caplog.text  # the deadlock did happen
        assert "unreachable" not in caplog.text
    finally:
        for database in databases:
            await database.close()
