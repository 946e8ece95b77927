"""Small pieces storage shares: per-dialect upserts, UTC times, JSON, the write option."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy.dialects.postgresql import Insert as PostgresqlInsert
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import Insert as SqliteInsert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncSession

JSONValue = str | int | float | bool | None | list["JSONValue"] | dict[str, "JSONValue"]
"""What settings and skill state may hold: anything JSON can represent."""

# The execution option of a write transaction: on SQLite it begins with BEGIN IMMEDIATE
# (the database module and migrations both open one).
WRITE_OPTION = "confab_write"


def upsert(session: AsyncSession, table: Any) -> SqliteInsert | PostgresqlInsert:
    """An INSERT that can take ``on_conflict_do_nothing`` / ``on_conflict_do_update``."""
    return upsert_for(dialect_of(session), table)


def upsert_for(dialect: str, table: Any) -> SqliteInsert | PostgresqlInsert:
    """:func:`upsert` for a dialect by name, for statements built once and reused."""
    return postgresql_insert(table) if dialect == "postgresql" else sqlite_insert(table)


def dialect_of(bind: AsyncSession | Connection) -> str:
    return (bind if isinstance(bind, Connection) else bind.get_bind()).dialect.name


def utcnow() -> datetime:
    return datetime.now(UTC)


def aware(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything is stored in UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def in_utc(moment: datetime) -> datetime:
    """A bound value comparable with stored times on both databases.

    Naive datetimes are taken as UTC, like everything storage hands back."""
    return aware(moment).astimezone(UTC)
