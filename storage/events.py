"""Platform events already handled, so a Slack retry or Discord replay is handled once."""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any

from sqlalchemy import CursorResult, Executable, delete
from sqlalchemy.ext.asyncio import AsyncSession

from confab.storage.database import Database
from confab.storage.sql import dialect_of, in_utc, upsert_for, utcnow
from confab.storage.tables import ProcessedEventRow


async def mark_event(session: AsyncSession, platform: str, event_id: str) -> bool:
    """Mark an event processed within ``session``'s transaction; False if it already was."""
    values = event_values(platform, event_id)
    return (await session.execute(event_mark(dialect_of(session)), values)).first() is not None


@functools.cache
def event_mark(dialect: str) -> Executable:
    """The statement behind :func:`mark_event`, built once: inserts one row, or none if
    it is there, and returns what it inserted (drivers differ on ``rowcount`` here).
    It takes :func:`event_values`."""
    insert = upsert_for(dialect, ProcessedEventRow.__table__).on_conflict_do_nothing()
    return insert.returning(ProcessedEventRow.id)


def event_values(platform: str, event_id: str) -> dict[str, Any]:
    return {"platform": platform, "event_id": event_id, "processed_at": utcnow()}


class EventLog:
    """Marks events processed; the unique (platform, event id) key makes the mark atomic."""

    def __init__(self, database: Database) -> None:
        self._database = database

    async def mark_event_processed(self, platform: str, event_id: str) -> bool:
        """True for the first delivery of an event; False when it was already seen.

        One ``INSERT ... ON CONFLICT DO NOTHING``: of any number of concurrent
        attempts, in any number of processes, exactly one inserts the row.
        """
        async with self._database.writing() as session:
            return await mark_event(session, platform, event_id)

    async def prune(self, before: datetime) -> int:
        """Forget events processed before ``before``; return how many."""
        async with self._database.writing() as session:
            result = await session.execute(
                delete(ProcessedEventRow).where(ProcessedEventRow.processed_at < in_utc(before))
            )
        assert isinstance(result, CursorResult)
        return result.rowcount
