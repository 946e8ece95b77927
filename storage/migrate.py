"""Alembic, driven from code over the application's own async engine."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from confab.storage.errors import StorageError
from confab.storage.sql import WRITE_OPTION

MIGRATIONS = Path(__file__).parent / "migrations"
# Any fixed number: PostgreSQL's advisory lock that serialises concurrent migrations.
MIGRATION_LOCK = 0x636F6E666162


def alembic_config(connection: Connection | None = None) -> AlembicConfig:
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


@asynccontextmanager
async def _explained(engine: AsyncEngine, doing: str) -> AsyncIterator[None]:
    url = engine.url.render_as_string(hide_password=True)
    try:
        yield
    except CommandError as error:
        raise StorageError(f"{doing} {url}: {error}") from error
    except (DBAPIError, OSError) as error:
        reason = getattr(error, "orig", None) or error
        raise StorageError(f"{doing} {url} failed: {reason}") from error


@asynccontextmanager
async def _migrating(engine: AsyncEngine, doing: str) -> AsyncIterator[AsyncConnection]:
    """One transaction that no other process migrates alongside.

    Several bot processes may start at once on one database: each waits for
    the lock, then finds the schema already current.
    """
    async with _explained(engine, doing):
        if engine.dialect.name == "sqlite":
            engine = engine.execution_options(**{WRITE_OPTION: True})  # BEGIN IMMEDIATE
        async with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                await connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK}
                )
            yield connection


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    async with _migrating(engine, "migrating") as connection:
        await connection.run_sync(lambda sync: command.upgrade(alembic_config(sync), revision))


async def downgrade(engine: AsyncEngine, revision: str) -> None:
    async with _migrating(engine, "downgrading") as connection:
        await connection.run_sync(lambda sync: command.downgrade(alembic_config(sync), revision))


async def current(engine: AsyncEngine) -> str | None:
    """The revision the database is at, or None for an empty database."""
    async with _explained(engine, "reading the schema revision of"), engine.connect() as connection:
        return await connection.run_sync(
            lambda sync: MigrationContext.configure(sync).get_current_revision()
        )


def head() -> str:
    """The newest revision this code knows."""
    found = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert found is not None
    return found


async def require_head(engine: AsyncEngine) -> None:
    """Raise StorageError unless the schema is the newest, for commands that never migrate."""
    at = await current(engine)
    if at != head():
        url = engine.url.render_as_string(hide_password=True)
        raise StorageError(
            f"{url} is at schema revision {at or '(empty)'}, not {head()}: "
            "run `confab db upgrade` first"
        )
