"""Slack events as Confab's platform-neutral :class:`~confab.bot.messages.Message`."""

from __future__ import annotations

import html
import logging
import re
from collections import OrderedDict
from datetime import UTC, datetime
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

log = logging.getLogger(__name__)

PLATFORM = "slack"
NAMES_KEPT = 5000
# Slack's own markup in message text: <@U123>, <#C123|general>, <!here>, <url|label>.
_MARKUP = re.compile(r"<([@#!]?)([^<>|]*)(?:\|([^<>]*))?>")


def mentions(text: str, user_id: str) -> bool:
    """Whether Slack text mentions the user (``<@U123>`` or ``<@U123|name>``)."""
    return re.search(rf"<@{re.escape(user_id)}(?:\|[^>]*)?>", text) is not None


def message_id(channel: str, ts: str) -> str:
    """A message's id across Slack's retries and redeliveries: its channel and timestamp."""
    return f"{channel}:{ts}"


def is_direct(channel: str, channel_type: str | None) -> bool:
    """Whether a conversation is private to its members: a DM (``im``) or a group DM
    (``mpim``). Without a ``channel_type`` (``app_mention`` events, history, slash
    commands), a DM still shows in its id, which starts with ``D``."""
    if channel_type:
        return channel_type in ("im", "mpim")
    return channel.startswith("D")


def sent_at(ts: str) -> datetime:
    try:
        return datetime.fromtimestamp(float(ts), UTC)
    except (TypeError, ValueError):
        return datetime.now(UTC)


class Names:
    """People's display names by user id, from ``users.info``, cached."""

    def __init__(self, client: AsyncWebClient) -> None:
        self._client = client
        self._names: OrderedDict[str, str] = OrderedDict()

    async def of(self, user_id: str) -> str:
        if user_id in self._names:
            return self._names[user_id]
        try:
            response = await self._client.users_info(user=user_id)
        except SlackApiError as error:
            log.debug("users.info %s failed: %s", user_id, error.response.get("error"))
            if error.response.get("error") != "user_not_found":
                return user_id  # not cached: ask again next time
            response = None
        except Exception as error:  # a name is never worth an unanswered message
            log.debug("users.info %s failed: %s", user_id, error)
            return user_id
        user: dict[str, Any] = (response.get("user") if response else None) or {}
        profile: dict[str, Any] = user.get("profile") or {}
        name = (
            profile.get("display_name")
            or profile.get("real_name")
            or user.get("real_name")
            or user.get("name")
            or user_id
        )
        self._names[user_id] = name
        while len(self._names) > NAMES_KEPT:
            self._names.popitem(last=False)
        return name

    async def readable(self, text: str, bot_user_id: str | None) -> str:
        """Slack's markup as plain text: the bot's mention removed, people by name."""
        parts: list[str] = []
        last = 0
        for found in _MARKUP.finditer(text):
            parts.append(text[last : found.start()])
            last = found.end()
            sigil, target, label = found[1], found[2], found[3]
            if sigil == "@":
                if target != bot_user_id:
                    parts.append("@" + (label or await self.of(target)))
            elif sigil == "#":
                parts.append("#" + (label or target))
            elif sigil == "!":
                parts.append("@" + (label or target.split("^")[0]).lstrip("@"))
            else:
                parts.append(f"{label} ({target})" if label and label != target else target)
        parts.append(text[last:])
        readable = html.unescape("".join(parts))
        return re.sub(r"[ \t]{2,}", " ", readable).strip()
