"""Per-channel settings: a system-prompt override, the enabled skills, a timezone,
training opt-in and the model that answers."""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import Enum
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Select, select

from confab.storage.database import Database
from confab.storage.records import ChannelSettings
from confab.storage.sql import upsert, utcnow
from confab.storage.tables import ChannelSettingsRow


class _Keep(Enum):
    KEEP = "keep"


KEEP = _Keep.KEEP
"""For :meth:`ChannelSettingsStore.update`: leave this setting as it is."""

FRESH_S = 5.0  # how long settings read are trusted without reading again
KEEP_AT_MOST = 10_000  # channels whose settings are kept


def _settings(row: ChannelSettingsRow | None) -> ChannelSettings:
    if row is None:
        return ChannelSettings()
    skills = row.enabled_skills
    return ChannelSettings(
        system_prompt=row.system_prompt,
        enabled_skills=tuple(skills) if skills is not None else None,
        timezone=row.timezone,
        training_optin=row.training_optin,
        model=row.model,
    )


def _check_timezone(name: str) -> None:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown timezone {name!r}; use an IANA name such as Europe/Paris"
        ) from None


class ChannelSettingsStore:
    """Reads and changes channel settings; a channel never configured has the defaults.

    Settings are read for nearly every message, so what was read is kept for
    ``fresh_s``: a change made through this store shows at once, one made by
    another process within that time.
    """

    def __init__(
        self,
        database: Database,
        *,
        fresh_s: float = FRESH_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._database = database
        self._fresh_s = fresh_s
        self._clock = clock
        self._read: dict[tuple[str, str], tuple[float, ChannelSettings]] = {}

    async def get(self, platform: str, channel: str) -> ChannelSettings:
        key = (platform, channel)
        kept = self._read.get(key)
        if kept is not None and self._clock() - kept[0] < self._fresh_s:
            return kept[1]
        async with self._database.reading() as session:
            settings = _settings(await session.scalar(_where(platform, channel)))
        self._keep(key, settings)
        return settings

    def _keep(self, key: tuple[str, str], settings: ChannelSettings) -> None:
        if len(self._read) >= KEEP_AT_MOST:
            self._read.clear()
        self._read[key] = (self._clock(), settings)

    async def update(
        self,
        platform: str,
        channel: str,
        *,
        system_prompt: str | _Keep | None = KEEP,
        enabled_skills: tuple[str, ...] | list[str] | _Keep | None = KEEP,
        timezone: str | _Keep | None = KEEP,
        training_optin: bool | _Keep = KEEP,
        model: str | _Keep | None = KEEP,
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
        if training_optin is not KEEP:
            changes["training_optin"] = training_optin
        if model is not KEEP:
            changes["model"] = model
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
            settings = _settings(await session.scalar(_where(platform, channel)))
        self._keep((platform, channel), settings)
        return settings


def _where(platform: str, channel: str) -> Select[ChannelSettingsRow]:
    return select(ChannelSettingsRow).where(
        ChannelSettingsRow.platform == platform, ChannelSettingsRow.channel == channel
    )


async def opted_in_channels(database: Database) -> list[tuple[str, str]]:
    """(platform, channel) of every channel that opted in to training exports."""
    async with database.reading() as session:
        rows = await session.execute(
            select(ChannelSettingsRow.platform, ChannelSettingsRow.channel)
            .where(ChannelSettingsRow.training_optin.is_(True))
            .order_by(ChannelSettingsRow.platform, ChannelSettingsRow.channel)
        )
        return [(platform, channel) for platform, channel in rows]


async def model_overrides(database: Database) -> list[tuple[str, str, str]]:
    """(platform, channel, model) of every channel served by a model of its own."""
    async with database.reading() as session:
        rows = await session.execute(
            select(
                ChannelSettingsRow.platform, ChannelSettingsRow.channel, ChannelSettingsRow.model
            )
            .where(ChannelSettingsRow.model.is_not(None))
            .order_by(ChannelSettingsRow.platform, ChannelSettingsRow.channel)
        )
        return [(platform, channel, model) for platform, channel, model in rows if model]
