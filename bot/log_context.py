"""What a log record is about: the platform, channel, message and skill being handled.

The router sets these for the message it handles (:func:`log_context`), and
asyncio copies them into every task started meanwhile, so a record logged
anywhere below (a skill, the model, storage) carries them. The JSON log
(``[bot] log_format = "json"``) writes them as fields of each record.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from contextvars import ContextVar, Token
from types import MappingProxyType

__all__ = [
    "CONTEXT_FIELDS",
    "current_log_context",
    "enter_log_context",
    "leave_log_context",
    "log_context",
]

# The fields a record may carry, in the order the JSON log writes them.
CONTEXT_FIELDS = ("platform", "channel", "message_id", "skill")

_EMPTY: Mapping[str, str] = MappingProxyType({})
_context: ContextVar[Mapping[str, str]] = ContextVar("confab_log_context", default=_EMPTY)


LogContextToken = Token[Mapping[str, str]]


def enter_log_context(**fields: str | None) -> LogContextToken:
    """Add ``fields`` (those not None) to the log context until :func:`leave_log_context`."""
    unknown = fields.keys() - set(CONTEXT_FIELDS)
    if unknown:
        raise ValueError(f"unknown log context fields: {', '.join(sorted(unknown))}")
    given = {name: str(value) for name, value in fields.items() if value is not None}
    return _context.set(MappingProxyType({**_context.get(), **given}))


def leave_log_context(token: LogContextToken) -> None:
    """Put back the log context as it was before the matching :func:`enter_log_context`."""
    _context.reset(token)


@contextlib.contextmanager
def log_context(**fields: str | None) -> Iterator[None]:
    """Add ``fields`` (those not None) to the log context while the block runs."""
    token = enter_log_context(**fields)
    try:
        yield
    finally:
        leave_log_context(token)


def current_log_context() -> Mapping[str, str]:
    """The fields set for what this task is handling now; empty outside any message."""
    return _context.get()
