"""Files shared in Slack: read from events, downloaded with the bot token.

Slack serves a file's ``url_private_download`` only with the bot token in an
``Authorization`` header, and without the ``files:read`` scope it answers 200
with its HTML login page instead of the file: that page is an error here, not
content. The token goes only to Slack's own hosts (and to ``slack.api_base_url``'s),
never to wherever a URL points.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import aiohttp
import yarl
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from confab.adapters.downloads import fetch_attachment, unavailable
from confab.adapters.slack.incoming import PLATFORM
from confab.bot.adapter import check_declared_size
from confab.bot.messages import Attachment

log = logging.getLogger(__name__)

SLACK_FILE_DOMAINS = ("slack.com", "slack-gov.com")
NO_CONTENT_MODES = ("tombstone", "hidden_by_limit")  # deleted, or past a free plan's limit
HTML_TYPES = ("text/html", "application/xhtml+xml")
NO_SCOPE = "I couldn't download {name} from Slack: the app may lack the files:read permission."


def attachments(files: Iterable[dict[str, Any]] | None) -> tuple[Attachment, ...]:
    """The files of a Slack message (its ``files``) as Confab's attachments."""
    found = []
    for file in files or ():
        if not isinstance(file, dict) or file.get("mode") in NO_CONTENT_MODES:
            continue
        if file.get("id") or _url(file):
            found.append(_attachment(file))
    return tuple(found)


def _attachment(file: dict[str, Any]) -> Attachment:
    """One Slack file object as an attachment. A file of a shared (Slack Connect)
    channel may come as its id alone; its URL is looked up when it is downloaded."""
    try:
        size = int(file.get("size") or 0)
    except (TypeError, ValueError):
        size = 0
    return Attachment(
        name=str(file.get("name") or file.get("title") or file.get("id") or "file"),
        size=size,
        url=_url(file),
        id=str(file.get("id") or ""),
        content_type=str(file.get("mimetype") or ""),
    )


def _url(file: dict[str, Any]) -> str:
    return str(file.get("url_private_download") or file.get("url_private") or "")


class SlackFiles:
    """Downloads files for one Slack app, with its Web API client's token."""

    def __init__(self, client: AsyncWebClient, api_url: str) -> None:
        self._client = client
        self._api_host = yarl.URL(api_url).host

    async def download(self, attachment: Attachment, *, max_bytes: int) -> bytes:
        check_declared_size(attachment, max_bytes)
        if not attachment.url:
            attachment = await self._described(attachment)
        url = attachment.url
        if not self._hosted_by_slack(url):
            raise unavailable(attachment, PLATFORM, f"not a Slack file URL: {_host(url)}")
        return await fetch_attachment(
            attachment,
            url,
            max_bytes=max_bytes,
            platform=PLATFORM,
            headers={"Authorization": f"Bearer {self._client.token}"},
            proxy=self._client.proxy,
            check=lambda response: _not_a_login_page(attachment, response),
        )

    async def _described(self, attachment: Attachment) -> Attachment:
        """The attachment with its URL (and size) from ``files.info``."""
        if not attachment.id:
            raise unavailable(attachment, PLATFORM, "neither a URL nor a file id")
        try:
            response = await self._client.files_info(file=attachment.id)
        except SlackApiError as error:
            reason = f"files.info: {error.response.get('error')}"
            raise unavailable(attachment, PLATFORM, reason) from None
        except (aiohttp.ClientError, TimeoutError) as error:
            raise unavailable(attachment, PLATFORM, f"files.info: {error!r}") from None
        file = response.get("file")
        described = _attachment(file) if isinstance(file, dict) else None
        if described is None or not described.url:
            raise unavailable(attachment, PLATFORM, "files.info gave no download URL")
        return described

    def _hosted_by_slack(self, url: str) -> bool:
        try:
            parsed = yarl.URL(url)
        except (TypeError, ValueError):
            return False
        host = (parsed.host or "").lower()
        if host and host == self._api_host:
            return parsed.scheme in ("http", "https")
        return parsed.scheme == "https" and any(
            host == domain or host.endswith("." + domain) for domain in SLACK_FILE_DOMAINS
        )


def _not_a_login_page(attachment: Attachment, response: aiohttp.ClientResponse) -> None:
    """Slack answers a request it will not serve (no files:read) with its login page."""
    wanted_html = attachment.content_type in HTML_TYPES or attachment.name.lower().endswith(
        (".html", ".htm")
    )
    if response.content_type in HTML_TYPES and not wanted_html:
        raise unavailable(
            attachment,
            PLATFORM,
            "Slack served an HTML page instead of the file (is the files:read scope granted?)",
            user_message=NO_SCOPE.format(name=attachment.name),
        )


def _host(url: str) -> str:
    try:
        return yarl.URL(url).host or "no host"
    except (TypeError, ValueError):
        return "an invalid URL"
