"""``ctx.state``: a skill's own key-value store, kept in the database between messages
and restarts, in three scopes: this channel, this person, and everywhere.

    count = await ctx.state.channel.get("rolls", 0)
    await ctx.state.channel.set("rolls", count + 1)
    await ctx.state.user.set("language", "fr")

Values are JSON (numbers, strings, booleans, None, lists and dicts of them), at most
:data:`MAX_VALUE_BYTES` each. Each skill sees only its own keys. ``!forget me``
deletes every skill's state of that person on the platform, ``!forget channel``
that of the channel.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from confab.bot.messages import Message
from confab.storage.records import GLOBAL_SCOPE, channel_scope, user_scope

if TYPE_CHECKING:  # the public face loads no database code
    from confab.storage.skill_state import SkillStateStore

MAX_VALUE_BYTES = 64 * 1024
MAX_KEY_CHARS = 200


class StateScope:
    """One skill's keys in one scope."""

    def __init__(self, store: SkillStateStore, skill: str, scope: str) -> None:
        self._store = store
        self._skill = skill
        self._scope = scope

    async def get(self, key: str, default: Any = None) -> Any:
        """The value stored under ``key``, or ``default`` when there is none."""
        value = await self._store.get(self._skill, self._scope, _checked(key))
        return default if value is None else value

    async def set(self, key: str, value: Any) -> None:
        """Store ``value`` (JSON) under ``key``, replacing what was there; None deletes it."""
        if value is None:
            await self.delete(key)
            return
        try:
            size = len(json.dumps(value, allow_nan=False).encode())
        except (TypeError, ValueError) as error:
            raise ValueError(f"state {key!r} must be JSON: {error}") from None
        if size > MAX_VALUE_BYTES:
            raise ValueError(f"state {key!r} is {size} bytes; at most {MAX_VALUE_BYTES} are kept")
        await self._store.set(self._skill, self._scope, _checked(key), value)

    async def delete(self, key: str) -> bool:
        """Remove ``key``; False when it was not there."""
        return await self._store.delete(self._skill, self._scope, _checked(key))

    async def items(self) -> dict[str, Any]:
        """Every key of this skill in this scope, with its value."""
        return await self._store.items(self._skill, self._scope)


class SkillState:
    """Implements ``ctx.state`` for one skill answering one message."""

    def __init__(self, store: SkillStateStore, skill: str, message: Message) -> None:
        self.channel = StateScope(store, skill, channel_scope(message.platform, message.channel))
        self.user = StateScope(store, skill, user_scope(message.platform, message.author.id))
        self.everywhere = StateScope(store, skill, GLOBAL_SCOPE)


def _checked(key: str) -> str:
    if not isinstance(key, str) or not key or len(key) > MAX_KEY_CHARS:
        raise ValueError(f"a state key is a string of 1 to {MAX_KEY_CHARS} characters, not {key!r}")
    return key
