"""Key-value state that skills keep between messages, per skill and per scope.

A scope says whose the state is: :func:`channel_scope`, :func:`user_scope` or
:data:`GLOBAL_SCOPE`. State in a user's scope is part of their data export.
"""

from __future__ import annotations

from sqlalchemy import CursorResult, delete, select

from confab.storage.database import Database
from confab.storage.records import GLOBAL_SCOPE, channel_scope, user_scope
from confab.storage.sql import JSONValue, upsert, utcnow
from confab.storage.tables import SkillStateRow

__all__ = ["GLOBAL_SCOPE", "SkillStateStore", "channel_scope", "user_scope"]


class SkillStateStore:
    """Get, set and delete JSON values by (skill, scope, key)."""

    def __init__(self, database: Database) -> None:
        self._database = database

    async def get(self, skill: str, scope: str, key: str) -> JSONValue:
        """The stored value, or None when there is none."""
        async with self._database.reading() as session:
            value: JSONValue = await session.scalar(
                select(SkillStateRow.value).where(
                    SkillStateRow.skill == skill,
                    SkillStateRow.scope == scope,
                    SkillStateRow.key == key,
                )
            )
            return value

    async def items(self, skill: str, scope: str) -> dict[str, JSONValue]:
        """Every key of the skill in this scope."""
        async with self._database.reading() as session:
            rows = await session.execute(
                select(SkillStateRow.key, SkillStateRow.value)
                .where(SkillStateRow.skill == skill, SkillStateRow.scope == scope)
                .order_by(SkillStateRow.key)
            )
            return {key: value for key, value in rows}

    async def set(self, skill: str, scope: str, key: str, value: JSONValue) -> None:
        """Store ``value`` under the key, replacing what was there (one atomic upsert)."""
        now = utcnow()
        async with self._database.writing() as session:
            insert = upsert(session, SkillStateRow).values(
                skill=skill, scope=scope, key=key, value=value, updated_at=now
            )
            await session.execute(
                insert.on_conflict_do_update(
                    index_elements=[SkillStateRow.skill, SkillStateRow.scope, SkillStateRow.key],
                    set_={"value": insert.excluded.value, "updated_at": now},
                )
            )

    async def delete(self, skill: str, scope: str, key: str) -> bool:
        """Remove the key; False when it was not there."""
        async with self._database.writing() as session:
            result = await session.execute(
                delete(SkillStateRow).where(
                    SkillStateRow.skill == skill,
                    SkillStateRow.scope == scope,
                    SkillStateRow.key == key,
                )
            )
        assert isinstance(result, CursorResult)
        return result.rowcount == 1

    async def in_scope(self, scope: str) -> list[tuple[str, str, JSONValue]]:
        """Every (skill, key, value) kept in this scope, whichever skill kept it."""
        async with self._database.reading() as session:
            rows = await session.execute(
                select(SkillStateRow.skill, SkillStateRow.key, SkillStateRow.value)
                .where(SkillStateRow.scope == scope)
                .order_by(SkillStateRow.skill, SkillStateRow.key)
            )
            return [(skill, key, value) for skill, key, value in rows]

    async def forget_scope(self, scope: str) -> int:
        """Remove every skill's keys in this scope (``!forget``); how many there were."""
        async with self._database.writing() as session:
            result = await session.execute(
                delete(SkillStateRow).where(SkillStateRow.scope == scope)
            )
        assert isinstance(result, CursorResult)
        return result.rowcount
