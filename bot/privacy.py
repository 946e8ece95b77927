"""Who is an admin, and the privacy requests a skill can make for a message's author."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from confab.bot.errors import NotAllowed
from confab.bot.messages import Message
from confab.storage.conversations import ConversationStore
from confab.storage.records import Forgotten
from confab.storage.skill_state import SkillStateStore, channel_scope, user_scope

log = logging.getLogger(__name__)


def is_admin(admins: Sequence[str], message: Message) -> bool:
    """Whether the adapter marked the author an admin, or ``router.admins`` names them
    (``platform:id``) or their whole platform."""
    return (
        message.author.admin
        or f"{message.platform}:{message.author.id}" in admins
        or f"{message.platform}:*" in admins
    )


class StoredPrivacy:
    """Implements :class:`confab.bot.skill.Privacy` for one message over the conversation store."""

    def __init__(
        self, store: ConversationStore, state: SkillStateStore, message: Message, *, admin: bool
    ) -> None:
        self._store = store
        self._state = state
        self._message = message
        self._admin = admin

    async def forget_author(self) -> Forgotten:
        message = self._message
        forgotten = await self._store.forget_author(message.platform, message.author.id)
        await self._state.forget_scope(user_scope(message.platform, message.author.id))
        log.info(
            "forgot %s:%s on request: %d turns, %d replies",
            message.platform,
            message.author.id,
            forgotten.messages,
            forgotten.replies,
        )
        return forgotten

    async def forget_channel(self) -> Forgotten:
        message = self._message
        if not self._admin:
            raise NotAllowed(
                "Only an admin can make me forget a whole channel.",
                f"{message.platform}:{message.author.id} is not in router.admins",
            )
        forgotten = await self._store.forget_channel(message.platform, message.channel)
        await self._state.forget_scope(channel_scope(message.platform, message.channel))
        log.info(
            "forgot channel %s/%s at %s's request: %d turns, %d replies",
            message.platform,
            message.channel,
            message.author.id,
            forgotten.messages,
            forgotten.replies,
        )
        return forgotten
