"""Stored channel messages as :class:`~confab.bot.messages.Message` objects.

The console has no platform history, so its history (and later summaries)
come from what the router stored.
"""

from __future__ import annotations

from datetime import datetime

from confab.bot.messages import Author, Message, args_after_command
from confab.storage.conversations import ConversationKey, ConversationStore


class StoredChannelLog:
    """Implements :class:`confab.bot.adapter.ChannelLog` over the conversation store."""

    def __init__(self, store: ConversationStore) -> None:
        self._store = store

    async def messages(
        self,
        platform: str,
        channel: str,
        *,
        thread: str | None = None,
        since: datetime | None = None,
        limit: int = 200,
    ) -> list[Message]:
        turns = await self._store.channel_messages(
            ConversationKey(platform, channel, thread), since=since, limit=limit
        )
        return [
            Message(
                platform=platform,
                channel=channel,
                thread=thread,
                author=Author(turn.author_id, turn.author_name, is_bot=turn.role == "assistant"),
                text=turn.text,
                addressed=turn.addressed,
                from_self=turn.role == "assistant",
                id=turn.platform_message_id or f"turn-{turn.id}",
                command=turn.command,
                args=args_after_command(turn.text) if turn.command else "",
                created_at=turn.created_at,
            )
            for turn in turns
        ]
