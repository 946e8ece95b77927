"""People as each platform knows them, and the settings they chose."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Executable, Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from confab.storage.database import Database
from confab.storage.sql import JSONValue, aware, dialect_of, upsert, upsert_for, utcnow
from confab.storage.tables import UserRow


@dataclass(frozen=True, slots=True)
class StoredUser:
    platform: str
    user_id: str
    display_name: str
    settings: dict[str, JSONValue]
    created_at: datetime


async def record_user(
    session: AsyncSession, platform: str, user_id: str, display_name: str
) -> None:
    """Insert the person, or bring their display name up to date (no write when unchanged)."""
    await session.execute(
        user_upsert(dialect_of(session)), user_values(platform, user_id, display_name)
    )


@functools.cache
def user_upsert(dialect: str) -> Executable:
    """The statement behind :func:`record_user`, built once; it takes :func:`user_values`."""
    users = UserRow.__table__.c
    insert = upsert_for(dialect, UserRow.__table__)
    return insert.on_conflict_do_update(
        index_elements=[users.platform, users.platform_user_id],
        set_={"display_name": insert.excluded.display_name},
        where=users.display_name != insert.excluded.display_name,
    )


def user_values(platform: str, user_id: str, display_name: str) -> dict[str, Any]:
    return {
        "platform": platform,
        "platform_user_id": user_id,
        "display_name": display_name,
        "settings": {},
        "created_at": utcnow(),
    }


def _user(row: UserRow) -> StoredUser:
    return StoredUser(
        platform=row.platform,
        user_id=row.platform_user_id,
        display_name=row.display_name,
        settings=dict(row.settings),
        created_at=aware(row.created_at),
    )


class UserStore:
    """Users and their per-user settings (a JSON object of named values)."""

    def __init__(self, database: Database) -> None:
        self._database = database

    async def remember(self, platform: str, user_id: str, display_name: str) -> None:
        async with self._database.writing() as session:
            await record_user(session, platform, user_id, display_name)

    async def get(self, platform: str, user_id: str) -> StoredUser | None:
        async with self._database.reading() as session:
            row = await session.scalar(_where(platform, user_id))
            return _user(row) if row is not None else None

    async def settings(self, platform: str, user_id: str) -> dict[str, JSONValue]:
        """The person's settings; empty for someone never seen."""
        user = await self.get(platform, user_id)
        return user.settings if user is not None else {}

    async def set_setting(
        self, platform: str, user_id: str, name: str, value: JSONValue
    ) -> dict[str, JSONValue]:
        """Set one setting (``None`` removes it) and return all of them.

        Concurrent changes to different settings of one person all survive:
        the row is locked (SQLite: the write transaction; PostgreSQL: FOR UPDATE)
        between reading the settings and writing them back.
        """
        async with self._database.writing() as session:
            insert = upsert(session, UserRow).values(
                platform=platform,
                platform_user_id=user_id,
                display_name=user_id,
                settings={},
                created_at=utcnow(),
            )
            await session.execute(insert.on_conflict_do_nothing())
            row = await session.scalar(_where(platform, user_id).with_for_update())
            assert row is not None
            settings = dict(row.settings)
            if value is None:
                settings.pop(name, None)
            else:
                settings[name] = value
            row.settings = settings
            return dict(settings)


def _where(platform: str, user_id: str) -> Select[UserRow]:
    return select(UserRow).where(UserRow.platform == platform, UserRow.platform_user_id == user_id)
