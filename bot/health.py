"""Whether the bot is up, part by part: each adapter, the database and the model.

What ``GET /healthz`` answers (see :mod:`confab.bot.web`). A part is down when:

- an adapter: its ``run`` has ended (failed, or its session closed), or its own
  :attr:`~confab.bot.adapter.Adapter.healthy` says its connection is lost;
- the database: a trivial query through the write queue does not come back within
  a few seconds (an outage the queue is riding out included);
- the model: loading it failed. A model still loading is *not* down: the first
  start converts the bundled model, which takes minutes, and skills that do not
  need it answer meanwhile; an orchestrator must not kill the bot for it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from confab.bot.adapter import Adapter

if TYPE_CHECKING:
    from confab.storage.database import Database

OK = "ok"
LOADING = "loading"
PING_TIMEOUT_S = 3.0  # under the usual probe timeouts (Kubernetes' default is 1 s per try x3)


@dataclass(frozen=True, slots=True)
class Health:
    """Each part's status in a word or two; ``down`` names the parts that are down."""

    adapters: dict[str, str]
    database: str
    model: str
    down: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.down

    def as_json(self) -> dict[str, Any]:
        return {
            "status": "ok" if self.ok else "down",
            "adapters": self.adapters,
            "database": self.database,
            "model": self.model,
            "down": list(self.down),
        }


async def check_health(
    adapters: Sequence[tuple[Adapter, bool]],
    database: Database | None,
    loading: asyncio.Future[Any] | None,
) -> Health:
    """The health of ``adapters`` (each with whether its ``run`` is still going), the
    database and the model being loaded at start (``loading``)."""
    down: list[str] = []
    statuses: dict[str, str] = {}
    for adapter, running in adapters:
        status = _adapter_status(adapter, running)
        statuses[adapter.platform] = status
        if status != OK:
            down.append(f"adapter {adapter.platform}")
    database_status = await _database_status(database)
    if database_status != OK:
        down.append("database")
    model_status = _model_status(loading)
    if model_status not in (OK, LOADING):
        down.append("model")
    return Health(statuses, database_status, model_status, tuple(down))


def _adapter_status(adapter: Adapter, running: bool) -> str:
    if not running:
        return "stopped"
    try:
        healthy, status = adapter.healthy, adapter.status
    except Exception as error:  # a plugin's property must not break the health check
        return f"unknown ({type(error).__name__})"
    if healthy:
        return OK
    return status if status != OK else "down"


async def _database_status(database: Database | None) -> str:
    if database is None:
        return "closed"
    if await database.ping(PING_TIMEOUT_S):
        return OK
    since = database.write_queue.outage_since
    if since is None:
        return "unreachable"
    return f"unreachable for {time.monotonic() - since:.0f} s"


def _model_status(loading: asyncio.Future[Any] | None) -> str:
    if loading is None or not loading.done():
        return LOADING
    if loading.cancelled() or loading.exception() is not None:
        return "failed to load"
    return OK
