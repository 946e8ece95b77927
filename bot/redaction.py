"""Keeping secrets out of logs and printed output.

The configuration names the environment variables that hold secrets (every key
ending in ``_env``: the Discord token, Slack's tokens and signing secret, the
OpenAI API key, a plugin's own), and URLs in it may carry a password (the
database URL). :func:`configured_secrets` collects those values;
:class:`SecretRedactor` replaces them with ``[redacted]`` in every log record a
handler emits: its message and arguments, exception text and stack.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator, Mapping
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from pydantic import BaseModel

__all__ = [
    "MIN_SECRET_CHARS",
    "REDACTED",
    "SecretRedactor",
    "configured_secrets",
    "masked_url",
    "redact_logging",
]

REDACTED = "[redacted]"
# Shorter values are too likely to occur in ordinary text ("admin", "1234") to be
# replaced everywhere, and too weak to be worth it.
MIN_SECRET_CHARS = 6
# Query parameters of a URL in the config whose value is a credential.
SECRET_QUERY_KEYS = frozenset({"password", "passwd", "pwd", "secret", "token", "api_key", "apikey"})
# Read by a driver rather than by Confab, but a secret of this service all the same.
SECRET_VARIABLES = ("PGPASSWORD",)


def configured_secrets(config: BaseModel, environ: Mapping[str, str] | None = None) -> set[str]:
    """The secret values ``config`` refers to, as they may appear in text.

    The values of the environment variables named by keys ending in ``_env``,
    passwords in URLs, and ``PGPASSWORD``; each also URL-encoded and decoded.
    """
    environ = os.environ if environ is None else environ
    found: set[str] = set()
    for key, value in _settings(config.model_dump(mode="json")):
        if key.endswith("_env") and value:
            found.add(environ.get(value, "").strip())
        elif "://" in value:
            found.update(_url_credentials(value))
    found.update(environ.get(name, "").strip() for name in SECRET_VARIABLES)
    variants = {
        form
        for secret in found
        for form in (secret, unquote(secret), quote(secret), quote(secret, safe=""))
    }
    return {secret for secret in variants if len(secret) >= MIN_SECRET_CHARS}


def _settings(table: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """Every string setting in a config dump, with its key (list items under their key)."""
    for key, value in table.items():
        if isinstance(value, Mapping):
            yield from _settings(value)
        elif isinstance(value, str):
            yield key, value
        elif isinstance(value, list):
            yield from ((key, item) for item in value if isinstance(item, str))


def _url_credentials(url: str) -> list[str]:
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:  # not a URL after all
        return []
    query = [v for k, v in parse_qsl(parts.query) if k.lower() in SECRET_QUERY_KEYS]
    return [*query, password] if password else query


def masked_url(url: str) -> str:
    """The URL with its password replaced by stars, for logs and ``config check``."""
    from sqlalchemy.engine import make_url  # not at import: `confab` itself loads no SQLAlchemy

    return make_url(url).render_as_string(hide_password=True)


class SecretRedactor(logging.Filter):
    """A handler filter that replaces secret values in what the handler will write.

    Attach it to handlers, not loggers: a record logged on a child logger passes
    its ancestors' handlers but skips their loggers' filters. The record itself is
    rewritten (message formatted with its arguments, exception and stack text),
    so every later handler sees the redacted record too. Records without a
    secret cost one formatting of their message and a substring search.
    """

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.secrets = tuple(sorted({s for s in secrets if len(s) >= MIN_SECRET_CHARS}))

    def redact(self, text: str) -> str:
        """``text`` with every occurrence of a secret, overlapping ones too, replaced."""
        spans: list[tuple[int, int]] = []
        for secret in self.secrets:
            start = text.find(secret)
            while start != -1:
                spans.append((start, start + len(secret)))
                start = text.find(secret, start + 1)
        if not spans:
            return text
        merged: list[list[int]] = []
        for start, stop in sorted(spans):
            if merged and start < merged[-1][1]:  # overlaps the one before: one run
                merged[-1][1] = max(merged[-1][1], stop)
            else:
                merged.append([start, stop])
        parts: list[str] = []
        done = 0
        for start, stop in merged:
            parts += [text[done:start], REDACTED]
            done = stop
        parts.append(text[done:])
        return "".join(parts)

    def _found(self, text: str) -> bool:
        return any(secret in text for secret in self.secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        try:
            message = record.getMessage()
        except Exception:  # arguments that do not fit the message: write both, redacted
            message = f"{record.msg} (arguments: {record.args!r})"
            record.msg, record.args = message, ()
        if self._found(message):
            record.msg, record.args = self.redact(message), ()
        if record.exc_info and not record.exc_text:
            # What the handler's formatter would write, computed once here to be checked.
            record.exc_text = _FORMATTER.formatException(record.exc_info)
        if record.exc_text and self._found(record.exc_text):
            record.exc_text = self.redact(record.exc_text)
            record.exc_info = None  # or a handler rendering it again would show the secret
        if record.stack_info and self._found(record.stack_info):
            record.stack_info = self.redact(record.stack_info)
        return True


_FORMATTER = logging.Formatter()


def redact_logging(secrets: Iterable[str], logger: logging.Logger | None = None) -> SecretRedactor:
    """Redact ``secrets`` on every handler of ``logger`` (the root logger by default)
    and of every other logger that has handlers of its own; returns the filter.

    Loggers made before or after this call are covered alike, since their records
    reach these handlers. A redactor attached earlier is replaced, so calling
    this again with new secrets does not stack filters.
    """
    redactor = SecretRedactor(secrets)
    loggers: list[logging.Logger] = [logger or logging.getLogger()]
    if logger is None:
        known = logging.Logger.manager.loggerDict.values()
        loggers += [found for found in known if isinstance(found, logging.Logger)]
    for each in loggers:
        for handler in each.handlers:
            for old in [f for f in handler.filters if isinstance(f, SecretRedactor)]:
                handler.removeFilter(old)
            handler.addFilter(redactor)
    return redactor
