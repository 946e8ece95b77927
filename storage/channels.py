"""Per-channel settings: a system-prompt override, the enabled skills, a timezone."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Select, select

from storage.database import Database
from storage.sql import upsert, utcnow
from storage.tables import ChannelSettingsRow


class _Keep(Enum):
    KEEP = "keep"


KEEP = _Keep.KEEP
"""For :meth:`ChannelSettingsStore.update`: leave this setting as it is."""


@dataclass(frozen=True, slots=True)
class ChannelSettings:
    """A channel's overrides; ``None`` means the default (every skill, the skill's own
    prompt, UTC)."""

    system_prompt: str | None = None
    enabled_skills: tuple[str, ...] | None = None
    timezone: str | None = None


def _settings(row: ChannelSettingsRow | None) -> ChannelSettings:
    if row is None:
        return ChannelSettings()
    skills = row.enabled_skills
    return ChannelSettings(
        system_prompt=row.system_prompt,
        enabled_skills=tuple(skills) if skills is not None else None,
        timezone=row.timezone,
    )


def _check_timezone(name: str) -> None:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown timezone {name!r}; use an IANA name such as Europe/Paris"
        ) from None


class ChannelSettingsStore:
    """Reads and changes channel settings; a channel never configured has the defaults."""

    def __init__(self, database: Database) -> None:
        self._database = database

    async def get(self, platform: str, channel: str) -> ChannelSettings:
        async with self._database.reading() as session:
            return _settings(await session.scalar(_where(platform, channel)))

    async def update(
        self,
        platform: str,
        channel: str,
        *,
        system_prompt: str | _Keep | None = KEEP,
        enabled_skills: tuple[str, ...] | list[str] | _Keep | None = KEEP,
        timezone: str | _Keep | None = KEEP,
    ) -> ChannelSettings:
        """Change the settings given (``None`` restores a default); return the result.

        One upsert, so concurrent updates of different settings never undo each other.
        Raises ValueError for a timezone that is not an IANA name.
        """
        if isinstance(timezone, str):
            _check_timezone(timezone)
        changes: dict[str, Any] = {"updated_at": utcnow()}
        if system_prompt is not KEEP:
            changes["system_prompt"] = system_prompt
        if enabled_skills is not KEEP:
            changes["enabled_skills"] = list(enabled_skills) if enabled_skills is not None else None
        if timezone is not KEEP:
            changes["timezone"] = timezone
        async with self._database.writing() as session:
            insert = upsert(session, ChannelSettingsRow).values(
                platform=platform, channel=channel, **changes
            )
            await session.execute(
                insert.on_conflict_do_update(
                    index_elements=[ChannelSettingsRow.platform, ChannelSettingsRow.channel],
                    set_=changes,
                )
            )
            return _settings(await session.scalar(_where(platform, channel)))


def _where(platform: str, channel: str) -> Select[ChannelSettingsRow]:
    return select(ChannelSettingsRow).where(
        ChannelSettingsRow.platform == platform, ChannelSettingsRow.channel == channel
    )
