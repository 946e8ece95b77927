"""Logging set-up for the ``confab`` command."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from typing import Any

FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def configure_logging(level: str, terminal: Any = None) -> None:
    """Log to stderr at ``level``; quiet the chatty libraries below WARNING.

    With ``terminal`` (a rich Console on stderr) records go through rich, so
    they print cleanly above that console's spinner or live display.
    """
    handler: logging.Handler
    if terminal is not None:
        from rich.logging import RichHandler

        handler = RichHandler(console=terminal, show_path=False)
        handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(FORMAT, datefmt="%H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("aiosqlite", "alembic", "sqlalchemy", "transformers", "urllib3", "asyncio"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    # discord.py logs request URLs (interaction tokens in them) and bodies at DEBUG.
    logging.getLogger("discord").setLevel(max(logging.INFO, root.level))


@contextlib.contextmanager
def status(text: str, terminal: Any) -> Iterator[None]:
    """A spinner on a terminal while the block runs, one line otherwise."""
    if terminal is not None:
        with terminal.status(text):
            yield
    else:
        print(text, file=sys.stderr, flush=True)
        yield
