"""What the Slack adapter's HTTP endpoint does with bodies it cannot use: whoever
reaches the port gets a 4xx (401 unsigned, 400 unreadable, 413 too large), the log gets
one short line per refusal (no traceback, nothing of the body), and Confab goes on
answering. Over the wire, with Confab's real adapter and router."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode, urlsplit

import aiohttp
import pytest

from confab.adapters.slack.http_events import LOG_LINES_PER_MINUTE, MAX_BODY_BYTES
from tests.adapters.slack_fake import BOT_USER_ID
from tests.adapters.slack_payloads import app_mention, event_callback, json_body, sign
from tests.adapters.test_slack import SECRET, Slack, slack

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
MARKER = "GARBAGE-MARKER-7F3A"  # in every refused body; must never reach the log


async def send(
    bot: Slack,
    body: bytes,
    content_type: str,
    *,
    signed: bool = True,
    timestamp: int | None = None,
    chunked: bool = False,
    method: str = "POST",
) -> int:
    headers = {"Content-Type": content_type}
    if signed:
        headers.update(sign(body, SECRET, timestamp=timestamp))
    data: Any = body
    if chunked:  # no Content-Length: aiohttp sends an async iterator chunked

        async def pieces() -> AsyncIterator[bytes]:
            for start in range(0, len(body), 64 * 1024):
                yield body[start : start + 64 * 1024]

        data = pieces()
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, bot.url, data=data, headers=headers) as response,
    ):
        await response.read()
        return response.status


async def raw_http(bot: Slack, request: bytes, *, hang_up: bool = False) -> bytes:
    """Bytes written straight to Confab's port; what came back before it closed."""
    port = urlsplit(bot.url).port
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        if hang_up:
            return b""
        return await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()


async def mention_is_answered(bot: Slack, ts: str) -> None:
    mention = app_mention(f"<@{BOT_USER_ID}> still there?", "U1", "C1", ts)
    assert await bot.event(mention, f"Ev-{ts}") == 200
    await bot.answered("C1", ts)


def assert_log_is_clean(caplog: pytest.LogCaptureFixture) -> None:
    assert [r.getMessage() for r in caplog.records if r.exc_info or r.exc_text] == []
    assert "Traceback" not in caplog.text
    assert MARKER not in caplog.text and SECRET not in caplog.text


def garbage(size: int) -> bytes:
    """Bytes that are neither UTF-8 nor JSON nor a form, with the marker in them."""
    noise = random.Random(size).randbytes(size)
    return (MARKER.encode() + noise)[:size]


async def test_unusable_bodies_are_refused_and_the_bot_keeps_answering(
    tmp_path, monkeypatch, caplog
) -> None:
    caplog.set_level(logging.DEBUG)
    bad_json = f'{{"type": "event_callback", "{MARKER}": '.encode()
    not_utf8 = f"command=%2Fask&text={MARKER}".encode() + b"\xff\xfe\xc3"
    not_json_payload = urlencode({"payload": f"{{{MARKER} is not JSON"}).encode()
    valid = json_body(event_callback(app_mention(f"<@{BOT_USER_ID}> hi", "U1", "C1", "9.1"), "E"))
    over_cap = garbage(MAX_BODY_BYTES + 1)
    async with slack(tmp_path, monkeypatch, ["Still here."]) as bot:
        statuses = {
            "unsigned bad JSON": await send(bot, bad_json, JSON, signed=False),
            "signed bad JSON": await send(bot, bad_json, JSON),
            "signed JSON that is not an object": await send(bot, b'["x"]', JSON),
            "signed non-UTF-8 form": await send(bot, not_utf8, FORM),
            "signed form whose payload is not JSON": await send(bot, not_json_payload, FORM),
            "signed empty body": await send(bot, b"", FORM),
            "signed other content type": await send(bot, b"text=hi", "text/plain"),
            "unsigned 1 MB of garbage": await send(bot, garbage(1_000_000), FORM, signed=False),
            "signed 1 MB of garbage": await send(bot, garbage(1_000_000), FORM),
            "unsigned over the cap": await send(bot, over_cap, FORM, signed=False),
            "signed over the cap": await send(bot, over_cap, FORM),
            "signed over the cap, chunked": await send(bot, over_cap, FORM, chunked=True),
            "stale timestamp": await send(bot, valid, JSON, timestamp=int(time.time()) - 301),
            "timestamp not a number": await send_with(bot, valid, timestamp="12ab"),
            "GET": await send(bot, b"", JSON, signed=False, method="GET"),
        }
        await mention_is_answered(bot, "1710.000001")
    assert statuses == {
        "unsigned bad JSON": 401,
        "signed bad JSON": 400,
        "signed JSON that is not an object": 400,
        "signed non-UTF-8 form": 400,
        "signed form whose payload is not JSON": 400,
        "signed empty body": 400,
        "signed other content type": 400,
        "unsigned 1 MB of garbage": 401,  # 1 MB is under the 1 MiB cap
        "signed 1 MB of garbage": 400,
        "unsigned over the cap": 413,
        "signed over the cap": 413,
        "signed over the cap, chunked": 413,
        "stale timestamp": 401,
        "timestamp not a number": 401,
        "GET": 405,
    }
    assert bot.shown("C1") == ["Still here."]
    assert_log_is_clean(caplog)
    refusals = [r for r in caplog.records if r.getMessage().startswith("refused a Slack request")]
    assert len(refusals) == LOG_LINES_PER_MINUTE  # 14 refusals: the rest are counted
    assert all(r.levelno == logging.WARNING and len(r.getMessage()) < 120 for r in refusals)
    assert refusals[0].getMessage() == "refused a Slack request from 127.0.0.1: 401 no signature"


async def send_with(bot: Slack, body: bytes, *, timestamp: str) -> int:
    headers = {**sign(body, SECRET), "X-Slack-Request-Timestamp": timestamp}
    status, _ = await bot.post(body, **headers)
    return int(status)


async def test_broken_http_is_logged_in_one_line_and_the_bot_keeps_answering(
    tmp_path, monkeypatch, caplog
) -> None:
    caplog.set_level(logging.DEBUG)
    head = "POST /slack/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    async with slack(tmp_path, monkeypatch, ["Still here."]) as bot:
        # A client that promises 1,000 bytes, sends a few and hangs up.
        await raw_http(bot, f"{head}Content-Length: 1000\r\n\r\n{{{MARKER}".encode(), hang_up=True)
        # Chunked encoding that is not.
        broken_chunks = f"{head}Transfer-Encoding: chunked\r\n\r\nzz\r\n{MARKER}\r\n0\r\n\r\n"
        chunked = await raw_http(bot, broken_chunks.encode())
        # A Content-Length that is no number, a header with a control character, and
        # bytes that are not HTTP at all.
        bad_length = await raw_http(bot, f"{head}Content-Length: {MARKER}\r\n\r\n".encode())
        bad_header = await raw_http(bot, f"{head}X-{MARKER}: a\x01b\r\n\r\n".encode())
        not_http = await raw_http(bot, f"\x16\x03\x01{MARKER}\r\n\r\n".encode())
        await asyncio.sleep(0.1)  # the hung-up request is handled by now
        await mention_is_answered(bot, "1711.000001")
    assert [r.split(b"\r\n")[0] for r in (chunked, bad_length, bad_header, not_http)] == [
        b"HTTP/1.0 400 Bad Request"  # aiohttp's own answer to what it cannot parse
    ] * 4
    assert_log_is_clean(caplog)
    server = [r for r in caplog.records if r.name == "aiohttp.server"]
    prefix = "Error handling request from 127.0.0.1: "
    assert [r.getMessage().removeprefix(prefix) for r in server] == [
        "BadHttpMessage 400 Invalid character in chunk size",
        "BadHttpMessage 400 Invalid character in Content-Length",
        "BadHttpMessage 400 Invalid header value char",
        "BadHttpMethod 400 Received HTTPS traffic on an HTTP port",
    ]
    assert [r.levelname for r in server] == ["WARNING"] * 3 + ["DEBUG"]
    assert "refused a Slack request from 127.0.0.1: 400 body unreadable" in caplog.text


async def test_ssl_check_is_answered_signed_or_not(tmp_path, monkeypatch) -> None:
    probe = b"ssl_check=1&token=verification-token"
    async with slack(tmp_path, monkeypatch) as bot:
        unsigned = await send(bot, probe, FORM, signed=False)
        signed = await send(bot, probe, FORM)
        # Only the probe itself passes unsigned, not a command dressed up as one.
        # A command dressed up as the probe is not run (bolt answers the probe alone),
        # and a large one is not even read as a form.
        small = b"ssl_check=1&command=%2Fping&channel_id=C1&user_id=U1"
        dressed = await send(bot, small, FORM, signed=False)
        large = await send(bot, small + b"&x=" + b"x" * 2000, FORM, signed=False)
        await asyncio.sleep(0.2)
    assert (unsigned, signed, dressed, large) == (200, 200, 200, 401)
    assert bot.api.calls_to("chat.postMessage") == []


async def test_an_unexpected_error_is_a_500_in_one_line(tmp_path, monkeypatch, caplog) -> None:
    async def broken(request: Any) -> Any:
        raise RuntimeError("bolt fell over")

    caplog.set_level(logging.DEBUG)
    async with slack(tmp_path, monkeypatch) as bot:
        dispatch = bot.adapter.app.async_dispatch  # type: ignore[union-attr]
        monkeypatch.setattr(bot.adapter.app, "async_dispatch", broken)
        body = json_body(
            event_callback(app_mention(f"<@{BOT_USER_ID}> hi", "U1", "C1", "9.2"), "E2")
        )
        status, _ = await bot.post(body)
        monkeypatch.setattr(bot.adapter.app, "async_dispatch", dispatch)
        await mention_is_answered(bot, "1712.000001")
    (failed,) = [r for r in caplog.records if "failed: 500" in r.getMessage()]
    assert status == 500 and failed.levelno == logging.ERROR
    assert failed.getMessage().endswith("failed: 500 RuntimeError: bolt fell over")
    assert_log_is_clean(caplog)


def test_a_flood_costs_a_few_lines_and_says_how_many_it_held_back(caplog) -> None:
    from confab.adapters.slack.http_events import _Throttle

    logger = logging.getLogger("tests.flood")
    throttle = _Throttle(3, window_s=0.2)
    with caplog.at_level(logging.INFO, logger="tests.flood"):
        for n in range(50):
            throttle.log(logger, logging.WARNING, "refused %d", n)
        time.sleep(0.25)
        throttle.log(logger, logging.WARNING, "refused %d", 50)
    assert [r.getMessage() for r in caplog.records] == [
        "refused 0",
        "refused 1",
        "refused 2",
        "47 more lines about Slack HTTP requests were not logged",
        "refused 50",
    ]
