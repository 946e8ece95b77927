"""The HTTP endpoint Slack posts to (Events API, slash commands, interactivity), in
front of bolt: the body is read with a size cap and its signature checked on the raw
bytes before anything parses it. Whatever anyone who reaches the port sends is
refused with a 4xx and one short log line, never a traceback, and the server goes on.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from collections.abc import Mapping, Sequence
from urllib.parse import parse_qsl

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.signature import SignatureVerifier

from confab.bot.server_log import OneLineServerLog, described

log = logging.getLogger(__name__)

# Slack's own payloads are far smaller (it cuts a message's text at 40,000 characters;
# a modal's submission of 100 blocks is tens of KB), and this is aiohttp's default
# client_max_size, the limit bolt's own server applied.
MAX_BODY_BYTES = 1024 * 1024
LOG_LINES_PER_MINUTE = 10  # about refused requests; more are counted, not logged
SSL_CHECK_MAX_BYTES = 1024  # an ssl_check is ~50 bytes; larger unsigned bodies are never parsed
SIGNATURE_MAX_AGE_S = 5 * 60  # Slack's window, which slack_sdk's verifier applies too
READ_CHUNK_BYTES = 64 * 1024
JSON = "application/json"
FORM = "application/x-www-form-urlencoded"


def events_app(
    app: AsyncApp, *, signing_secret: str, path: str, max_body_bytes: int = MAX_BODY_BYTES
) -> web.Application:
    """An aiohttp application serving Slack's requests to ``app`` at ``path``: POST only
    (405 otherwise). 413 for a body over ``max_body_bytes``, 401 for a missing, bad or
    stale signature, 400 for a signed body bolt could not read, bolt's answer otherwise."""
    throttle = _Throttle(LOG_LINES_PER_MINUTE)
    endpoint = _Endpoint(app, _RawBodyVerifier(signing_secret), max_body_bytes, throttle)
    # aiohttp logs HTTP it cannot parse (bad request lines, headers, chunking) with a
    # traceback, before any handler runs: those go through the same throttle, one line each.
    web_app = web.Application(
        client_max_size=max_body_bytes, handler_args={"logger": OneLineServerLog(throttle.emit)}
    )
    web_app.router.add_post(path, endpoint.handle)
    return web_app


class _Refused(Exception):
    """A request answered with a 4xx; ``reason`` is shown to the client and logged."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class _Endpoint:
    def __init__(
        self, app: AsyncApp, verifier: SignatureVerifier, max_body_bytes: int, throttle: _Throttle
    ) -> None:
        self._app = app
        self._verifier = verifier
        self._max_body_bytes = max_body_bytes
        self._throttle = throttle

    async def handle(self, request: web.Request) -> web.StreamResponse:
        try:
            raw = await self._read(request)
            unsigned = self._unsigned(raw, request.headers)
            if unsigned and not _is_ssl_check(raw):
                raise _Refused(401, unsigned)
            text = _decoded(raw)
            _check_readable(text, request.content_type)
            bolt_request = _bolt_request(_for_bolt(text, request.content_type), request)
            return await to_aiohttp_response(await self._app.async_dispatch(bolt_request))
        except _Refused as refused:
            self._throttle.log(
                log,
                logging.WARNING,
                "refused a Slack request from %s: %d %s",
                request.remote,
                refused.status,
                refused.reason,
            )
            return web.json_response({"error": refused.reason}, status=refused.status)
        except Exception as error:  # a bug of ours or bolt's: one line, and serve on
            self._throttle.log(
                log,
                logging.ERROR,
                "a Slack request from %s failed: 500 %s",
                request.remote,
                described(error),
            )
            return web.json_response({"error": "internal error"}, status=500)

    async def _read(self, request: web.Request) -> bytes:
        cap = self._max_body_bytes
        declared = request.content_length
        if declared is not None and declared > cap:
            raise _Refused(413, f"body over {cap} bytes")
        body = bytearray()
        while True:
            try:
                chunk = await request.content.read(READ_CHUNK_BYTES)
            except Exception as error:  # a client gone or broken chunking, mid-body
                raise _Refused(400, f"body unreadable ({type(error).__name__})") from None
            if not chunk:
                return bytes(body)
            body += chunk
            if len(body) > cap:  # no Content-Length (chunked), or one that lied
                raise _Refused(413, f"body over {cap} bytes")

    def _unsigned(self, raw: bytes, headers: Mapping[str, str]) -> str | None:
        """Why the request does not carry Slack's signature of ``raw``; None if it does."""
        timestamp = headers.get("X-Slack-Request-Timestamp")
        signature = headers.get("X-Slack-Signature")
        if timestamp is None or signature is None:
            return "no signature"
        # slack_sdk's int() and compare_digest raise on what a forger may send instead.
        if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12):
            return "bad timestamp"
        if abs(self._verifier.clock.now() - int(timestamp)) > SIGNATURE_MAX_AGE_S:
            return "stale timestamp"  # or a clock that is wrong
        if not (signature.isascii() and self._verifier.is_valid(raw, timestamp, signature)):
            return "bad signature"
        return None


class _RawBodyVerifier(SignatureVerifier):
    """Slack's v0 signature over the raw bytes (slack_sdk's verifier decodes the body
    as UTF-8 first, which raises on a non-UTF-8 body); its 5-minute window is kept."""

    def generate_signature(self, *, timestamp: str, body: str | bytes) -> str | None:
        raw = body.encode() if isinstance(body, str) else body
        base = b"v0:" + timestamp.encode() + b":" + raw
        return "v0=" + hmac.new(self.signing_secret.encode(), base, hashlib.sha256).hexdigest()


def _is_ssl_check(raw: bytes) -> bool:
    """Slack's ``ssl_check=1`` probe of a slash command URL, which bolt answers (with
    an empty 200, before its own signature check) and which need not be signed."""
    if len(raw) > SSL_CHECK_MAX_BYTES or raw.startswith(b"{") or b"payload" in raw:
        return False  # bolt would read it as JSON or an interactivity payload
    fields = dict(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
    return fields.get("ssl_check") == "1"


def _decoded(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _Refused(400, "body is not UTF-8") from None


def _check_readable(text: str, content_type: str) -> None:
    """Refuse what bolt's own parsing (``slack_bolt.request.internals.parse_body``)
    would raise on, or read as something other than a JSON object or a form."""
    if not text:
        raise _Refused(400, "empty body")
    if content_type == JSON or text.startswith("{"):  # bolt's test for JSON, exactly
        _json_object(text, "body is not a JSON object")
    elif content_type != FORM:
        raise _Refused(400, "content type is neither JSON nor a form")
    elif "payload" in text:  # bolt's test for interactivity's payload=<JSON>, exactly
        payload = dict(parse_qsl(text, keep_blank_values=True)).get("payload")
        if payload is not None:
            _json_object(payload, "form's payload is not a JSON object")


def _for_bolt(text: str, content_type: str) -> str:
    """The body as bolt must get it. Bolt takes any form with the word "payload" in it
    for interactivity's ``payload=<JSON>`` and, finding no such field, reads it as
    empty: ``/ask what is a payload?`` would go unanswered. The same form with that
    word's first letter percent-encoded decodes the same, and bolt reads it right.
    (The signature was checked on the bytes received; bolt checks none of its own.)"""
    if content_type == JSON or text.startswith("{") or "payload" not in text:
        return text
    if "payload" in dict(parse_qsl(text, keep_blank_values=True)):
        return text
    return text.replace("payload", "%70ayload")


def _json_object(text: str, reason: str) -> None:
    try:
        parsed = json.loads(text)
    except (ValueError, RecursionError):
        raise _Refused(400, reason) from None
    if not isinstance(parsed, dict):
        raise _Refused(400, reason)


def _bolt_request(text: str, request: web.Request) -> AsyncBoltRequest:
    headers: dict[str, str | Sequence[str]] = dict(request.headers)
    try:
        return AsyncBoltRequest(body=text, query=request.query_string, headers=headers)
    except Exception as error:  # bolt reads ids from fields a signed body gave odd types
        raise _Refused(400, f"payload unreadable ({type(error).__name__})") from None


class _Throttle:
    """At most ``lines`` log lines a minute; those held back are counted and the count
    is logged when the next minute's first line is, so a flood costs a few lines."""

    def __init__(self, lines: int, window_s: float = 60.0) -> None:
        self._lines = lines
        self._window_s = window_s
        self._opened = -window_s
        self._logged = 0
        self._held_back = 0

    def emit(self, logger: logging.Logger, level: int, text: str) -> None:
        """One finished line of aiohttp's server log (see confab.bot.server_log)."""
        self.log(logger, level, "%s", text)

    def log(self, logger: logging.Logger, level: int, message: str, *args: object) -> None:
        if not logger.isEnabledFor(level):
            return
        now = time.monotonic()
        if now - self._opened >= self._window_s:
            if self._held_back:
                logger.warning(
                    "%d more lines about Slack HTTP requests were not logged",
                    self._held_back,
                )
            self._opened, self._logged, self._held_back = now, 0, 0
        if self._logged < self._lines:
            self._logged += 1
            logger.log(level, message, *args, stacklevel=2)  # the caller's line
        else:
            self._held_back += 1
