"""Changes to how the bot behaves, each logged once with who made it and from where.

Every channel setting, skill switch, scheduled job, model choice and knowledge
document an operator changes, from chat, the command line or the admin page, is
one INFO record of the ``confab.audit`` logger: ``<who> (<where>): <what>``.
The latest records are also kept in memory for the admin page.
"""

from __future__ import annotations

import getpass
import logging
import os
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime

from confab.bot.messages import Message

log = logging.getLogger("confab.audit")

KEPT = 200


@dataclass(frozen=True, slots=True)
class Change:
    """One change: who made it (``web-admin:alice``, ``discord:1234``, ``cli:root``),
    through what (``admin page``, ``chat``, ``command line``), and what it was."""

    who: str
    via: str
    what: str
    at: datetime = field(default_factory=lambda: datetime.now(UTC))


class Audit:
    """Logs each change and keeps the latest :data:`KEPT` of them."""

    def __init__(self, kept: int = KEPT) -> None:
        self._latest: deque[Change] = deque(maxlen=kept)

    def changed(self, who: str, via: str, what: str) -> Change:
        change = Change(who, via, what)
        self._latest.append(change)
        _logged(change)
        return change

    def changed_in_chat(self, message: Message, what: str) -> Change:
        """A change asked for by ``message``: by its author, in its channel."""
        return self.changed(
            f"{message.platform}:{message.author.id}",
            "chat",
            f"{what} in {message.platform}:{message.channel}",
        )

    def latest(self) -> list[Change]:
        """The changes kept, newest first."""
        return list(reversed(self._latest))


def changed_from_cli(what: str) -> None:
    """Log a change a ``confab`` command made, naming the account that ran it."""
    try:
        who = getpass.getuser()
    except (OSError, KeyError):  # a container's uid without a passwd entry
        who = f"uid {os.getuid()}"
    _logged(Change(f"cli:{who}", "command line", what))


def _logged(change: Change) -> None:
    log.info("%s (%s): %s", change.who, change.via, change.what)
