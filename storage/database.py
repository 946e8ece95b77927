"""The async engine: URL handling, SQLite pragmas, read and write transactions.

On SQLite a write transaction starts with ``BEGIN IMMEDIATE``: it takes the
write lock before its first read, so a transaction that reads and then writes
waits its turn (up to the busy timeout) instead of failing with "database is
locked" when another connection committed in between. Reads use a plain
``BEGIN`` and, under WAL, never wait for writers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from confab.storage.errors import StorageError, StorageUnavailable
from confab.storage.sql import WRITE_OPTION
from confab.storage.write_queue import WriteQueue, is_transient

log = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT_MS = 10_000
# How long a write keeps being retried while the database is unreachable.
RETRY_S = 10.0
CONNECT_TIMEOUT_S = 5


def expand_url(url: str) -> URL:
    """Parse ``url``; for SQLite, expand ``~`` and create the file's folder."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        path = Path(parsed.database).expanduser()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise StorageError(
                f"cannot create the folder for the database {path}: {error.strerror}"
            ) from error
        parsed = parsed.set(database=str(path))
    return parsed


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # The driver's own implicit BEGIN is switched off; _sqlite_begin issues ours.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    _use_wal(cursor)
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _use_wal(cursor: Any) -> None:
    """Switch the file to WAL (it stays so), waiting out other processes that connect now.

    Changing the journal mode needs an exclusive lock and, unlike a write,
    fails at once instead of waiting for the busy timeout.
    """
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode")
            if str(cursor.fetchone()[0]).lower() != "wal":
                cursor.execute("PRAGMA journal_mode=WAL")
            return
        except Exception as error:  # the driver's OperationalError, however it is wrapped
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _unavailable(error: Exception) -> StorageUnavailable:
    """A lost connection, said in one line."""
    return StorageUnavailable(str(getattr(error, "orig", None) or error).splitlines()[0])


def _sqlite_events(engine: Engine) -> None:
    event.listen(engine, "connect", _sqlite_pragmas)
    event.listen(engine, "begin", _sqlite_begin)


def _sqlite_begin(connection: Connection) -> None:
    writing = connection.get_execution_options().get(WRITE_OPTION, False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if writing else "BEGIN")


class Database:
    """One engine, with read and write sessions, built from a URL; closed with :meth:`close`."""

    def __init__(self, url: str, *, retry_s: float = RETRY_S) -> None:
        self.url = expand_url(url)
        sqlite = self.url.get_backend_name() == "sqlite"
        try:
            # SQLite is a file: a connection cannot go stale, so no ping per checkout.
            # PostgreSQL: a host that stops answering fails a connection attempt in
            # seconds, so callers get a clear reply instead of waiting on TCP.
            connect = {} if sqlite else {"timeout": CONNECT_TIMEOUT_S}
            self.engine: AsyncEngine = create_async_engine(
                self.url, pool_pre_ping=not sqlite, connect_args=connect
            )
            self.write_queue = WriteQueue(
                self.url, retry_s=retry_s, configure=_sqlite_events if sqlite else None
            )
        except ImportError as error:
            raise StorageError(f"the database driver is not installed: {error}") from error
        if sqlite:
            _sqlite_events(self.engine.sync_engine)
        writer = self.engine.execution_options(**{WRITE_OPTION: True})
        self._reads = async_sessionmaker(self.engine, expire_on_commit=False)
        self._writes = async_sessionmaker(writer, expire_on_commit=False)
        # SQLite has one writer at a time anyway. This process's writers queue here,
        # in order, so only other processes ever wait on the file lock, and none
        # of ours can lose the race for it until the busy timeout runs out.
        self._write_turn = asyncio.Lock() if self.dialect == "sqlite" else None

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self.engine.dialect.name

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[AsyncSession]:
        """A session for queries; nothing it does is committed."""
        try:
            async with self._reads() as session:
                yield session
        except Exception as error:
            if is_transient(error):
                raise _unavailable(error) from error
            raise

    @asynccontextmanager
    async def writing(self) -> AsyncIterator[AsyncSession]:
        """A session in one write transaction, committed when the block ends without error.

        Not re-entrant: on SQLite, writers of this process take turns.
        """
        try:
            async with (
                self._write_turn or contextlib.nullcontext(),
                self._writes.begin() as session,
            ):
                yield session
        except Exception as error:
            if is_transient(error):
                raise _unavailable(error) from error
            raise

    async def upgrade(self) -> None:
        """Bring the schema to the newest migration."""
        from confab.storage.migrate import upgrade

        await upgrade(self.engine)

    async def ping(self, timeout_s: float = 3.0) -> bool:
        """Whether the database answers a trivial query now (for health checks). It goes
        through the write queue without retries, so an outage the queue is waiting out
        counts, and one it has not noticed yet is found. Never raises."""

        def select_one(connection: Connection, _facts: object) -> object:
            return connection.exec_driver_sql("SELECT 1").scalar()

        try:
            answer = self.write_queue.submit(select_one, writes=False, retry_s=0.0, quiet=True)
            await asyncio.wait_for(answer, timeout_s)
        except Exception:
            return False
        return True

    def describe(self) -> str:
        """The URL for messages: password hidden."""
        return self.url.render_as_string(hide_password=True)

    async def close(self) -> None:
        """Finish the queued writes, then close every connection."""
        await asyncio.to_thread(self.write_queue.close)
        await self.engine.dispose()
