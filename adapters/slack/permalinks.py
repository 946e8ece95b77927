"""Links to Slack messages, from ``chat.getPermalink``, kept once found (they never change)."""

from __future__ import annotations

import logging
import re
from collections import OrderedDict

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

log = logging.getLogger(__name__)

PERMALINKS_KEPT = 4096
_TS = re.compile(r"\d+\.\d+")


class Permalinks:
    """A message's permalink by channel and timestamp; the latest few thousand cached."""

    def __init__(self, client: AsyncWebClient) -> None:
        self._client = client
        self._links: OrderedDict[tuple[str, str], str] = OrderedDict()

    async def of(self, channel: str, message_id: str) -> str | None:
        """The permalink of a message, or None (logged) when Slack gives none.

        ``message_id`` is a Confab message id (``CHANNEL:TS``) or a bare timestamp
        (a sent message's id).
        """
        ts = message_id.rpartition(":")[2]
        if not _TS.fullmatch(ts):
            return None  # a slash command's id: no message of Slack's own
        key = (channel, ts)
        if (found := self._links.get(key)) is not None:
            self._links.move_to_end(key)
            return found
        try:
            response = await self._client.chat_getPermalink(channel=channel, message_ts=ts)
        except SlackApiError as error:
            log.warning(
                "no Slack permalink for message %s in %s: %s",
                ts,
                channel,
                error.response.get("error"),
            )
            return None
        except (aiohttp.ClientError, TimeoutError) as error:
            log.warning("no Slack permalink for message %s in %s: %r", ts, channel, error)
            return None
        permalink = response.get("permalink")
        if not isinstance(permalink, str) or not permalink:
            log.warning("no Slack permalink for message %s in %s: none in the answer", ts, channel)
            return None
        self._links[key] = permalink
        while len(self._links) > PERMALINKS_KEPT:
            self._links.popitem(last=False)
        return permalink
