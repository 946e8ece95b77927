"""Discord messages as Confab's platform-neutral :class:`~confab.bot.messages.Message`."""

from __future__ import annotations

import re

import discord

from confab.adapters.discord.config import DiscordConfig
from confab.bot.messages import Attachment, Author, Message, parse_command

PLATFORM = "discord"
_MENTION = re.compile(r"<(@!?|@&|#)(\d+)>")


class MessageReader:
    """Reads what a Discord message says and who is addressed, for one bot."""

    def __init__(self, config: DiscordConfig, client: discord.Client, commands: set[str]) -> None:
        self._config = config
        self._client = client
        self._commands = commands  # the skills' names and aliases

    def message(self, message: discord.Message) -> Message:
        """``message`` as Confab sees it."""
        user = self._client.user
        assert user is not None
        channel, thread = place(message.channel, message.channel.id)
        mentioned = any(m.id == user.id for m in message.mentions)
        text = self._readable(message)
        command = args = None
        parsed = parse_command(text, [self._config.command_prefix])
        if parsed is not None and parsed[0] in self._commands:
            command, args = parsed
        direct = is_direct(message.channel)
        return Message(
            platform=PLATFORM,
            channel=channel,
            thread=thread,
            author=self.author(message.author),
            text=text,
            addressed=(
                isinstance(message.channel, discord.DMChannel)
                or mentioned
                or self._replies_to_me(message)
                or (
                    isinstance(message.channel, discord.Thread)
                    and message.channel.owner_id == user.id
                )
            ),
            direct=direct,
            from_self=message.author.id == user.id,
            id=str(message.id),
            command=command,
            args=args or "",
            created_at=message.created_at,
            attachments=tuple(attachment(file) for file in message.attachments),
        )

    def _readable(self, message: discord.Message) -> str:
        """The text with the bot's mention removed and other mentions as names."""
        user = self._client.user
        assert user is not None
        names = {str(m.id): m.display_name for m in message.mentions}
        roles = {str(r.id): r.name for r in message.role_mentions}
        channels = {str(c.id): getattr(c, "name", c.id) for c in message.channel_mentions}

        def name(found: re.Match[str]) -> str:
            kind, ident = found[1], found[2]
            if kind.startswith("@!") or kind == "@":
                return "" if ident == str(user.id) else f"@{names.get(ident, 'someone')}"
            if kind == "@&":
                return f"@{roles.get(ident, 'role')}"
            return f"#{channels.get(ident, 'channel')}"

        return re.sub(r"[ \t]{2,}", " ", _MENTION.sub(name, message.content)).strip()

    def _replies_to_me(self, message: discord.Message) -> bool:
        resolved = message.reference.resolved if message.reference else None
        user = self._client.user
        return (
            isinstance(resolved, discord.Message)
            and user is not None
            and resolved.author.id == user.id
        )

    def author(self, user: discord.abc.User) -> Author:
        return Author(str(user.id), user.display_name, user.bot, self._admin(user))

    def _admin(self, user: discord.abc.User) -> bool:
        if user.id in self._config.admin_user_ids:
            return True
        # A member's role ids as Discord sent them: ``Member.roles`` drops the roles
        # of a guild not yet cached (an interaction can come before the guild).
        role_ids = set(getattr(user, "_roles", ())) | {r.id for r in getattr(user, "roles", ())}
        return bool(role_ids & set(self._config.admin_role_ids))


def place(channel: object, channel_id: int | None) -> tuple[str, str | None]:
    """(channel, thread) ids as Confab names them: a thread is a thread of its parent."""
    if isinstance(channel, discord.Thread) and channel.parent_id is not None:
        return str(channel.parent_id), str(channel.id)
    return str(channel_id), None


_DIRECT_TYPES = (discord.ChannelType.private, discord.ChannelType.group)


def is_direct(channel: object) -> bool:
    """Whether a channel is a private conversation: a DM or a group DM, whether
    discord.py has it cached or knows it only by type (an interaction's channel)."""
    return getattr(channel, "type", None) in _DIRECT_TYPES


def attachment(file: discord.Attachment) -> Attachment:
    """A Discord attachment as Confab's :class:`~confab.bot.messages.Attachment`."""
    return Attachment(
        name=file.filename,
        size=file.size,
        url=file.url,
        id=str(file.id),
        content_type=file.content_type or "",
    )
