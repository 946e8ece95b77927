"""The channel a message came from, as a skill sees it: its history and its settings."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from confab.bot.adapter import Adapter
from confab.bot.audit import Audit
from confab.bot.errors import NotAllowed, SkillError, Unsupported
from confab.bot.messages import Message, parse_command
from confab.storage.channels import ChannelSettingsStore
from confab.storage.records import ChannelSettings


class AdapterHistory:
    """Implements :class:`confab.bot.skill.ChannelHistory` on the adapter's history primitive."""

    def __init__(
        self,
        adapter: Adapter,
        message: Message,
        prefixes: Sequence[str],
        is_command: Callable[[str], bool],
    ) -> None:
        self._adapter = adapter
        self._message = message
        self._prefixes = list(prefixes)
        self._is_command = is_command  # "!heads up" is chat, not a command

    async def read(self, *, limit: int, since: datetime | None = None) -> list[Message]:
        if not self._adapter.capabilities.history:
            raise Unsupported(
                "I can't read this channel's history on this platform.",
                f"{self._adapter.platform} declares no history",
            )
        messages = await self._adapter.history(
            self._message.channel, thread=self._message.thread, since=since, limit=limit
        )
        return [self._with_command(message) for message in messages]

    def _with_command(self, message: Message) -> Message:
        if message.command is not None:
            return message
        parsed = parse_command(message.text, self._prefixes)
        if parsed is None or not self._is_command(parsed[0]):
            return message
        return message.with_command(*parsed)


class StoredChannelControls:
    """Implements :class:`confab.bot.skill.ChannelControls` over the channel settings store."""

    def __init__(
        self, store: ChannelSettingsStore, message: Message, *, admin: bool, audit: Audit
    ) -> None:
        self._store = store
        self._message = message
        self._admin = admin
        self._audit = audit

    def _changed(self, what: str) -> None:
        self._audit.changed_in_chat(self._message, what)

    async def settings(self) -> ChannelSettings:
        return await self._store.get(self._message.platform, self._message.channel)

    def _admin_only(self, what: str) -> Message:
        """The message, if its author may ``what``; :class:`NotAllowed` otherwise.

        The router refuses declared admin commands first; this is the second line.
        """
        message = self._message
        if not self._admin:
            raise NotAllowed(
                f"Only an admin can {what}.",
                f"{message.platform}:{message.author.id} is not in router.admins",
            )
        return message

    async def set_timezone(self, name: str | None) -> ChannelSettings:
        message = self._admin_only("change this channel's timezone")
        try:
            settings = await self._store.update(message.platform, message.channel, timezone=name)
        except ValueError:
            raise SkillError(
                f"I don't know the timezone {name!r}; use an IANA name such as Europe/Paris."
            ) from None
        self._changed(f"set the timezone to {name}" if name else "reset the timezone")
        return settings

    async def set_system_prompt(self, prompt: str | None) -> ChannelSettings:
        message = self._admin_only("change this channel's system prompt")
        settings = await self._store.update(message.platform, message.channel, system_prompt=prompt)
        self._changed(
            "set the system prompt" if prompt is not None else "cleared the system prompt"
        )
        return settings

    async def set_enabled_skills(self, names: Sequence[str] | None) -> ChannelSettings:
        message = self._admin_only("switch skills on or off in this channel")
        enabled = tuple(names) if names is not None else None
        settings = await self._store.update(
            message.platform, message.channel, enabled_skills=enabled
        )
        self._changed(
            "set the skills to " + ("all" if enabled is None else ", ".join(enabled) or "none")
        )
        return settings

    async def set_training_optin(self, optin: bool) -> ChannelSettings:
        message = self._admin_only("opt this channel in or out of training")
        settings = await self._store.update(message.platform, message.channel, training_optin=optin)
        self._changed(f"opted {'in to' if optin else 'out of'} training exports")
        return settings
