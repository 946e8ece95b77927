"""Logging set-up for the ``confab`` command."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, Literal

from confab.bot.log_context import CONTEXT_FIELDS, current_log_context

FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"

LogFormat = Literal["text", "json"]


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line, for a log collector.

    Fields: ``time`` (ISO 8601, UTC), ``level``, ``logger``, ``message``, the
    log context that is known (``platform``, ``channel``, ``message_id``,
    ``skill``), and ``exception`` (the traceback, one string) and ``stack``
    when the record has them. Message and traceback are read from the record
    as the handler's :class:`~confab.bot.redaction.SecretRedactor` left it.
    """

    def format(self, record: logging.LogRecord) -> str:
        created = datetime.fromtimestamp(record.created, UTC)
        entry: dict[str, str] = {
            "time": created.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        context = current_log_context()
        entry.update((name, context[name]) for name in CONTEXT_FIELDS if name in context)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(level: str, terminal: Any = None, log_format: LogFormat = "text") -> None:
    """Log to stderr at ``level``; quiet the chatty libraries below WARNING.

    With ``terminal`` (a rich Console on stderr) text records go through rich,
    so they print cleanly above that console's spinner or live display. The
    ``json`` format writes :class:`JsonFormatter` lines, terminal or not.
    """
    handler: logging.Handler
    if log_format == "json":
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
    elif terminal is not None:
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
    if terminal is None:
        # Progress bars (the GGUF de-quantisation's is plain tqdm) redraw with \r: on
        # a pipe or in a journal they are noise, and they break JSON lines. tqdm reads
        # this when it is first imported, which is later than this.
        os.environ.setdefault("TQDM_DISABLE", "1")


@contextlib.contextmanager
def status(text: str, terminal: Any, log_format: LogFormat = "text") -> Iterator[None]:
    """A spinner on a terminal while the block runs, one line otherwise: a log
    record when the log is JSON, so that stderr holds nothing else."""
    if log_format == "json":
        logging.getLogger("confab").info("%s", text)
        yield
    elif terminal is not None:
        with terminal.status(text):
            yield
    else:
        print(text, file=sys.stderr, flush=True)
        yield
