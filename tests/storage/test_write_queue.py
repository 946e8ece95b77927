"""The write queue runs storage operations in order, in batches, each failing on its own."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import exc, text
from sqlalchemy.engine import base as sa_base

from confab.storage.conversations import ConversationKey, ConversationStore
from confab.storage.database import Database
from confab.storage.errors import AlreadyProcessed, StorageUnavailable


@pytest.fixture
async def database(tmp_path: Path):  # type: ignore[no-untyped-def]
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'write_queue.db'}")
    await database.upgrade()
    yield database
    await database.close()


def insert(n: int):  # type: ignore[no-untyped-def]
    def run(connection, _facts):  # type: ignore[no-untyped-def]
        connection.execute(
            text(
                "INSERT INTO skill_state(skill, scope, key, value, updated_at) "
                "VALUES ('t', 's', :key, '1', '2026-01-01')"
            ),
            {"key": str(n)},
        )
        return n

    return run


def keys(connection, _facts):  # type: ignore[no-untyped-def]
    return [int(k) for k in connection.execute(text("SELECT key FROM skill_state")).scalars()]


async def test_operations_run_in_order_and_a_failure_stays_its_own(database: Database) -> None:
    write_queue = database.write_queue

    def broken(_connection, _facts):  # type: ignore[no-untyped-def]
        raise ValueError("this one is wrong")

    submitted = [write_queue.submit(insert(n), writes=True) for n in range(5)]
    submitted.insert(2, write_queue.submit(broken, writes=True))
    submitted += [write_queue.submit(insert(n), writes=True) for n in range(5, 8)]
    read = write_queue.submit(keys, writes=False)
    outcomes = await asyncio.gather(*submitted, return_exceptions=True)

    assert [o for o in outcomes if not isinstance(o, Exception)] == list(range(8))
    assert [str(o) for o in outcomes if isinstance(o, Exception)] == ["this one is wrong"]
    assert sorted(await read) == list(range(8))  # the read saw every write before it


async def test_a_returned_exception_fails_only_its_future(database: Database) -> None:
    write_queue = database.write_queue
    refused = write_queue.submit(lambda _c, _f: LookupError("not there"), writes=True)
    stored = write_queue.submit(insert(1), writes=True)
    with pytest.raises(LookupError):
        await refused
    assert await stored == 1


async def test_close_finishes_what_is_queued(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'write_queue.db'}"
    database = Database(url)
    await database.upgrade()
    for n in range(50):
        database.write_queue.submit(insert(n), writes=True)  # nobody waits for these
    await database.close()

    again = Database(url)
    assert sorted(await again.write_queue.submit(keys, writes=False)) == list(range(50))
    await again.close()


def failing_first_commit(monkeypatch: pytest.MonkeyPatch) -> None:
    """The next commit reaches the database, then its connection fails: as when a
    server dies between applying a commit and acknowledging it."""
    original = sa_base.Connection._commit_impl
    fired: list[bool] = []

    def commit_then_fail(self):  # type: ignore[no-untyped-def]
        original(self)
        if not fired:
            fired.append(True)
            lost = Exception("server closed the connection unexpectedly")
            raise exc.OperationalError("COMMIT", {}, lost)

    monkeypatch.setattr(sa_base.Connection, "_commit_impl", commit_then_fail)


async def test_a_commit_whose_answer_was_lost_is_not_written_twice(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ConversationStore(database)
    key = ConversationKey("test", "c")
    await store.append(key, role="assistant", author_id="bot", author_name="bot", text="warm")
    failing_first_commit(monkeypatch)
    question = await store.append(
        key, role="user", author_id="ada", author_name="Ada", text="q?", event_id="e1"
    )
    failing_first_commit(monkeypatch)
    answer = await store.append(
        key, role="assistant", author_id="bot", author_name="bot", text="a.", reply_to=question
    )
    turns = await store.recent(key)
    assert [(t.id, t.text) for t in turns] == [
        (turns[0].id, "warm"),
        (question.id, "q?"),  # the question is ours, not taken for a replay
        (answer.id, "a."),  # and the answer is there once
    ]
    with pytest.raises(AlreadyProcessed):  # a real replay still is one
        await store.append(
            key, role="user", author_id="ada", author_name="Ada", text="q?", event_id="e1"
        )


async def test_after_close_work_fails_at_once_instead_of_waiting(tmp_path: Path) -> None:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'write_queue.db'}")
    await database.upgrade()
    await database.close()
    for _ in range(2):
        with pytest.raises(StorageUnavailable):
            await asyncio.wait_for(database.write_queue.submit(keys, writes=False), 5)
