"""The async engine: URL handling, SQLite pragmas, migrations at open."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

from storage.errors import StorageError

log = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT_MS = 10_000


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


def masked_url(url: str) -> str:
    """The URL with its password replaced by stars, for logs and ``config check``."""
    return make_url(url).render_as_string(hide_password=True)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


class Database:
    """One engine and its session factory, built from a URL; closed with :meth:`close`."""

    def __init__(self, url: str) -> None:
        self.url = expand_url(url)
        try:
            self.engine: AsyncEngine = create_async_engine(self.url, pool_pre_ping=True)
        except ImportError as error:
            raise StorageError(f"the database driver is not installed: {error}") from error
        if self.url.get_backend_name() == "sqlite":
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    async def upgrade(self) -> None:
        """Bring the schema to the newest migration."""
        from storage.migrate import upgrade

        await upgrade(self.engine)

    def describe(self) -> str:
        """The URL for messages: password hidden."""
        return self.url.render_as_string(hide_password=True)

    async def close(self) -> None:
        await self.engine.dispose()
