"""Which model answers where: a default for every channel and per-channel overrides
(a channel without one follows the default: :class:`confab.bot.llm.pool.ModelPool` applies that).

Both hold a model's registry name (or a path) as ``confab model use`` wrote it;
nothing set means the model of the config file. The router asks for every
message, so what was read is kept for ``fresh_s`` (as channel settings are):
a choice made by ``confab model use`` in another process shows within that time.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy import delete, select

from confab.storage.channels import ChannelSettingsStore, model_overrides
from confab.storage.database import Database
from confab.storage.sql import upsert, utcnow
from confab.storage.tables import BotSettingRow

DEFAULT_MODEL = "default_model"


class ServedModels:
    """Reads and changes the model choices kept in the database."""

    def __init__(
        self,
        database: Database,
        settings: ChannelSettingsStore | None = None,
        *,
        fresh_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._database = database
        self._settings = settings or ChannelSettingsStore(database, fresh_s=fresh_s, clock=clock)
        self._fresh_s = fresh_s
        self._clock = clock
        self._default: tuple[float, str | None] | None = None

    async def default(self) -> str | None:
        """The model chosen for every channel without one of its own; None: the config's."""
        if self._default is not None and self._clock() - self._default[0] < self._fresh_s:
            return self._default[1]
        async with self._database.reading() as session:
            value = await session.scalar(
                select(BotSettingRow.value).where(BotSettingRow.key == DEFAULT_MODEL)
            )
        self._default = (self._clock(), value)
        return value

    async def own_choice(self, platform: str, channel: str) -> str | None:
        """The model chosen for this channel alone (None: it follows the default)."""
        return (await self._settings.get(platform, channel)).model

    async def set_default(self, model: str | None) -> None:
        """Serve ``model`` wherever no channel chose another; None goes back to the config's."""
        async with self._database.writing() as session:
            if model is None:
                await session.execute(
                    delete(BotSettingRow).where(BotSettingRow.key == DEFAULT_MODEL)
                )
            else:
                values = {"value": model, "updated_at": utcnow()}
                await session.execute(
                    upsert(session, BotSettingRow)
                    .values(key=DEFAULT_MODEL, **values)
                    .on_conflict_do_update(index_elements=[BotSettingRow.key], set_=values)
                )
        self._default = (self._clock(), model)

    async def set_for_channel(self, platform: str, channel: str, model: str | None) -> None:
        """Serve ``model`` in one channel; None makes it follow the default again."""
        await self._settings.update(platform, channel, model=model)

    async def overrides(self) -> list[tuple[str, str, str]]:
        """(platform, channel, model) of every channel with a model of its own."""
        return await model_overrides(self._database)
