"""Alembic, driven from code over the application's own async engine."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.util import CommandError
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.errors import StorageError

MIGRATIONS = Path(__file__).parent / "migrations"


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


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    async with _explained(engine, "migrating"), engine.begin() as connection:
        await connection.run_sync(lambda sync: command.upgrade(alembic_config(sync), revision))


async def downgrade(engine: AsyncEngine, revision: str) -> None:
    async with _explained(engine, "downgrading"), engine.begin() as connection:
        await connection.run_sync(lambda sync: command.downgrade(alembic_config(sync), revision))


async def current(engine: AsyncEngine) -> str | None:
    """The revision the database is at, or None for an empty database."""
    async with _explained(engine, "reading the schema revision of"), engine.connect() as connection:
        return await connection.run_sync(
            lambda sync: MigrationContext.configure(sync).get_current_revision()
        )
