"""Reading an attachment's bytes over HTTP, never more than the caller will take.

Shared by the Discord and Slack adapters: the declared size is checked before
the request, the ``Content-Length`` before the body, and the running total while
the body streams in, so a platform that declares less than it sends (or nothing)
still cannot make the bot hold more than ``max_bytes``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

import aiohttp
import yarl

from confab.bot.adapter import AttachmentTooLarge, AttachmentUnavailable, check_declared_size
from confab.bot.messages import Attachment

log = logging.getLogger(__name__)

CHUNK_BYTES = 64 * 1024
TIMEOUT = aiohttp.ClientTimeout(total=300, connect=15, sock_read=60)

ResponseCheck = Callable[[aiohttp.ClientResponse], None]


async def fetch_attachment(
    attachment: Attachment,
    url: str,
    *,
    max_bytes: int,
    platform: str,
    headers: Mapping[str, str] | None = None,
    proxy: str | None = None,
    check: ResponseCheck | None = None,
) -> bytes:
    """GET ``url`` for ``attachment``: its body, at most ``max_bytes`` of it.

    ``check`` looks at a 200 response before its body is read, and raises
    :class:`AttachmentUnavailable` for what the platform serves instead of the
    file (a login page, say). Any other failure is an ``AttachmentUnavailable``
    too, logged once here with the attachment and the cause.
    """
    check_declared_size(attachment, max_bytes)
    where = _without_query(url)
    if not url.startswith(("http://", "https://")):
        raise unavailable(attachment, platform, f"not an http(s) URL: {where}")
    try:
        async with (
            aiohttp.ClientSession(timeout=TIMEOUT) as session,
            session.get(url, headers=dict(headers or {}), proxy=proxy) as response,
        ):
            if response.status != 200:
                raise unavailable(attachment, platform, f"HTTP {response.status} from {where}")
            if check is not None:
                check(response)
            length = response.content_length
            if length is not None and length > max_bytes:
                raise AttachmentTooLarge(attachment, max_bytes, found=f"Content-Length {length}")
            body = bytearray()
            # Never asks for more than one byte past the limit, whatever was declared.
            while chunk := await response.content.read(min(CHUNK_BYTES, max_bytes + 1 - len(body))):
                body += chunk
                if len(body) > max_bytes:
                    found = f"more than {max_bytes} bytes sent"
                    raise AttachmentTooLarge(attachment, max_bytes, found=found)
            return bytes(body)
    except (aiohttp.ClientError, TimeoutError) as error:
        raise unavailable(attachment, platform, f"{where}: {error!r}") from None


def unavailable(
    attachment: Attachment, platform: str, reason: str, *, user_message: str | None = None
) -> AttachmentUnavailable:
    """The error (logged here, once) for an attachment the platform did not hand over;
    ``reason`` is for the log, ``user_message`` (a sentence) replaces the plain one."""
    log.warning(
        "could not download %s attachment %s (%r): %s",
        platform,
        attachment.id or "?",
        attachment.name,
        reason,
    )
    return AttachmentUnavailable(
        user_message or f"I couldn't download {attachment.name} from {platform.capitalize()}.",
        f"{platform} attachment {attachment.id or attachment.name!r}: {reason}",
    )


def _without_query(url: str) -> str:
    """The URL for a log line: signed query parameters (Discord's CDN) left out."""
    try:
        return str(yarl.URL(url).with_query(None).with_fragment(None))
    except (TypeError, ValueError):
        return "an invalid URL"
