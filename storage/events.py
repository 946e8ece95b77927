"""Platform events already handled, so a Slack retry or Discord replay is handled once."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CursorResult, delete
from sqlalchemy.ext.asyncio import AsyncSession

from storage.database import Database
from storage.sql import in_utc, upsert, utcnow
from storage.tables import ProcessedEventRow


async def mark_event(session: AsyncSession, platform: str, event_id: str) -> bool:
    """Mark an event processed within ``session``'s transaction; False if it already was."""
    result = await session.execute(
        upsert(session, ProcessedEventRow)
        .values(platform=platform, event_id=event_id, processed_at=utcnow())
        .on_conflict_do_nothing()
    )
    assert isinstance(result, CursorResult)
    return result.rowcount == 1


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
