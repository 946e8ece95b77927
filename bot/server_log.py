"""aiohttp's server log in one line a record, for every HTTP server Confab runs (the
``[web]`` server, Slack's HTTP events): the exception's type and first words instead
of its traceback, since a request's bytes are not worth one, and malformed HTTP, the
client's fault, a warning cut before the request bytes aiohttp quotes in it."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp.http_exceptions import HttpProcessingError

DESCRIBED_CHARS = 120

Emit = Callable[[logging.Logger, int, str], None]
"""Writes one finished line (``logger``, ``level``, ``text``)."""


def described(error: BaseException) -> str:
    """The exception's type and first words, on one line."""
    words = " ".join(str(error).split())
    if len(words) > DESCRIBED_CHARS:
        words = words[:DESCRIBED_CHARS] + "..."
    return f"{type(error).__name__}: {words}" if words else type(error).__name__


class OneLineServerLog(logging.LoggerAdapter[logging.Logger]):
    """Pass as aiohttp's ``handler_args={"logger": ...}``; ``emit`` writes each line."""

    def __init__(self, emit: Emit) -> None:
        super().__init__(logging.getLogger("aiohttp.server"), {})
        self._emit = emit

    def log(
        self,
        level: int,
        msg: object,
        *args: object,
        exc_info: Any = None,
        stack_info: bool = False,
        stacklevel: int = 1,
        extra: Mapping[str, object] | None = None,
        **kwargs: object,
    ) -> None:
        error = exc_info if isinstance(exc_info, BaseException) else None
        if exc_info is True:
            error = sys.exc_info()[1]
        text = str(msg) % args if args else str(msg)
        if isinstance(error, HttpProcessingError):
            level = min(level, logging.WARNING)
            words = re.split(r"""[:'"\n]""", error.message, maxsplit=1)[0].strip()
            text = f"{text}: {type(error).__name__} {error.code} {words[:DESCRIBED_CHARS]}"
        elif error is not None:
            text = f"{text}: {described(error)}"
        self._emit(self.logger, level, text.rstrip())
