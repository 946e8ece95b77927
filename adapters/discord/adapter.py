"""The Discord adapter: connection, slash commands, answers and their edits."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import aiohttp
import discord
import yarl
from discord.ext import commands

from confab.adapters.discord.commands import slash_command
from confab.adapters.discord.config import DiscordConfig
from confab.adapters.discord.incoming import PLATFORM, MessageReader, is_direct, place
from confab.adapters.downloads import fetch_attachment
from confab.bot.adapter import Adapter, AdapterContext, Capabilities, Limits, MessageHandler
from confab.bot.errors import AdapterError, CannotPost, MessageTooLong, RateLimited
from confab.bot.messages import Attachment, Message, SentMessage
from confab.bot.pacing import Rate, WriteWindow, WriteWindows

log = logging.getLogger(__name__)

MAX_MESSAGE_CHARS = 2000
JUMP_URL = "https://discord.com/channels/{guild}/{channel}/{message}"
START_RETRY_FIRST_S = 2.0  # backoff of connection attempts at start, doubled up to
START_RETRY_MAX_S = 120.0
TYPING_REFRESH_S = 8.0
KEPT_FOR_EDITS = 256  # sent messages kept to edit; older ones are edited by id
# Interaction tokens live 15 minutes; stop using one a little before.
INTERACTION_LIFETIME = timedelta(minutes=15) - timedelta(seconds=30)
NO_MENTIONS = discord.AllowedMentions.none()
CONTINUED = "(This answer took long: it continues below.)"
CHAT_TYPES = (discord.MessageType.default, discord.MessageType.reply)  # not joins, pins ...
# Discord lets a bot write 5 messages (posts and edits) per 5 s in one channel.
CHANNEL_WRITES = Rate(writes=5, per_s=5.0)
# Refusals that mean the bot may not write in a channel at all (not a hiccup).
NO_ENTRY_CODES = {10003: "unknown channel", 50001: "missing access", 50013: "missing permissions"}
INTENT_HELP = (
    "Discord refused the message content intent. In the developer portal "
    "(https://discord.com/developers/applications), open this application, go to Bot, "
    "and turn on 'Message Content Intent' under Privileged Gateway Intents."
)
# Gateway close codes after which reconnecting cannot help; what each means.
FATAL_CLOSES = {
    4004: "Discord closed the connection: the bot token in {token_env} was revoked or reset "
    "(close code 4004); put the new token there and restart",
    4010: "Discord closed the connection: invalid shard (close code 4010)",
    4011: "Discord closed the connection: this bot is in too many servers for one connection "
    "and needs sharding, which Confab does not do (close code 4011)",
    4012: "Discord closed the connection: invalid gateway API version (close code 4012); "
    "check discord.gateway_url",
    4013: "Discord closed the connection: invalid intents (close code 4013)",
    4014: INTENT_HELP + " (close code 4014)",
}


@dataclass
class _Answer:
    """What the adapter knows about the message being answered, while it is."""

    title: str = ""  # what was asked: the name of a thread the answer may open
    interaction: discord.Interaction | None = None
    deferred: bool = False
    original_used: bool = False
    first: discord.Message | None = None  # the first message of a channel answer
    thread: discord.Thread | None = None  # opened for a long answer (reply_in_thread)
    thread_refused: bool = False
    sent_ids: list[str] = field(default_factory=list)  # through the interaction


@dataclass
class _Edits:
    """How to edit the messages sent through interactions (by ``SentMessage.id``)."""

    by_id: dict[str, tuple[discord.Interaction, int | None]] = field(default_factory=dict)
    # Answers whose interaction token expired mid-stream continue in a channel message.
    moved: dict[str, discord.Message] = field(default_factory=dict)
    # The latest messages sent to channels, edited without a lookup.
    posted: OrderedDict[str, discord.Message | discord.PartialMessage] = field(
        default_factory=OrderedDict
    )

    def remember(self, message: discord.Message) -> None:
        self.posted[str(message.id)] = message
        while len(self.posted) > KEPT_FOR_EDITS:
            self.posted.popitem(last=False)


class _RecentChannels:
    """The channels messages came from lately, by id, for answering without a lookup."""

    def __init__(self) -> None:
        self._by_id: OrderedDict[str, Any] = OrderedDict()

    def remember(self, channel: Any) -> None:
        self._by_id[str(channel.id)] = channel
        self._by_id.move_to_end(str(channel.id))
        while len(self._by_id) > KEPT_FOR_EDITS:
            self._by_id.popitem(last=False)

    def get(self, ident: str) -> Any:
        return self._by_id.get(ident)


class _ReconnectInOneLine(logging.Filter):
    """discord.py logs each attempt to reconnect a lost gateway with a traceback of
    the network error; the error's name and words say all an operator needs."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.msg == "Attempting a reconnect in %.2fs":
            error = record.exc_info[1]
            record.msg = f"Discord connection lost ({type(error).__name__}: {error}); {record.msg}"
            record.exc_info = record.exc_text = None
        return True


def _reconnects_in_one_line() -> None:
    client_log = logging.getLogger("discord.client")
    if not any(isinstance(known, _ReconnectInOneLine) for known in client_log.filters):
        client_log.addFilter(_ReconnectInOneLine())


class _Client(commands.Bot):
    """discord.py's bot, minus its own command processing: Confab's router runs commands."""

    def __init__(
        self, on_setup: Callable[[], Awaitable[None]], *, intents: discord.Intents
    ) -> None:
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=intents,
            allowed_mentions=NO_MENTIONS,
            help_command=None,
        )
        self._on_setup = on_setup

    async def setup_hook(self) -> None:
        await self._on_setup()

    async def on_message(self, message: discord.Message, /) -> None:
        return None  # the adapter's listener hands every message to the router


class DiscordAdapter(Adapter):
    """A Discord bot; ``client`` is its ``commands.Bot``, built without connecting."""

    platform = PLATFORM
    config_model = DiscordConfig
    capabilities = Capabilities(edit=True, threads=True, history=True, typing=True, downloads=True)
    limits = Limits(max_message_chars=MAX_MESSAGE_CHARS, min_edit_interval_s=1.0)

    def __init__(self, context: AdapterContext) -> None:
        super().__init__(context)
        config = context.config
        assert isinstance(config, DiscordConfig)
        self.config = config
        self.limits = Limits(MAX_MESSAGE_CHARS, config.edit_interval_s)  # type: ignore[misc]
        intents = discord.Intents.default()
        intents.message_content = True
        _reconnects_in_one_line()
        self.client = _Client(self._sync_commands, intents=intents)
        self.client.add_listener(self._on_message, "on_message")
        self.client.add_listener(self._on_ready, "on_ready")
        self._handler: MessageHandler | None = None
        self._answers: dict[str, _Answer] = {}
        self._edits = _Edits()
        self._channels = _RecentChannels()
        self._windows = WriteWindows(CHANNEL_WRITES)
        self._stopping = asyncio.Event()
        commands = {name for info in context.skills for name in (info.name, *info.aliases)}
        self._reader = MessageReader(config, self.client, commands)
        for info in context.skills:
            self.client.tree.add_command(slash_command(info, self._on_command))

    # -- connection --------------------------------------------------------------

    def bind(self, handler: MessageHandler) -> None:
        """Deliver incoming messages to ``handler`` (``run`` does it; tests drive the
        client without connecting)."""
        self._handler = handler

    async def run(self, handler: MessageHandler) -> None:
        self.bind(handler)
        token = os.environ.get(self.config.token_env, "").strip()
        if not token:
            raise AdapterError(
                "Discord is not configured.",
                f"no Discord bot token: set the environment variable {self.config.token_env}",
            )
        if self.config.api_base_url:
            discord.http.Route.BASE = self.config.api_base_url
        if self.config.gateway_url:
            discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(self.config.gateway_url)
        delay = START_RETRY_FIRST_S
        attempt = 1
        while not self._stopping.is_set():
            try:
                async with self.client:
                    await self.client.start(token, reconnect=True)
                return
            except discord.PrivilegedIntentsRequired:
                raise AdapterError("Discord is not configured.", INTENT_HELP) from None
            except discord.LoginFailure:
                raise AdapterError(
                    "Discord is not configured.",
                    f"Discord refused the bot token in {self.config.token_env}",
                ) from None
            except discord.ConnectionClosed as error:
                if error.code not in FATAL_CLOSES:
                    raise
                reason = FATAL_CLOSES[error.code].format(token_env=self.config.token_env)
                raise AdapterError("Discord is not configured.", reason) from None
            except (
                OSError,
                aiohttp.ClientError,
                discord.GatewayNotFound,
                discord.DiscordServerError,
            ) as error:
                # Once connected, discord.py reconnects by itself; before, it is ours to do.
                wait = delay * random.uniform(0.5, 1.5)
                log.warning(
                    "cannot reach Discord (attempt %d: %s); trying again in %.0f s",
                    attempt,
                    _reason(error),
                    wait,
                )
                self._reopen()
                await self._pause(wait)
                delay = min(delay * 2, START_RETRY_MAX_S)
                attempt += 1

    def _reopen(self) -> None:
        """Make the closed client ready for another start. Leaving ``async with`` closed
        its HTTP session, and with it the connector the next session would reuse."""
        self.client.clear()
        self.client.http.connector = discord.utils.MISSING

    async def _pause(self, seconds: float) -> None:
        """Wait between attempts to connect; a stop ends the wait."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def stop(self) -> None:
        self._stopping.set()
        await self.client.close()

    @property
    def status(self) -> str:
        # Read from the client rather than followed through its events: a listener runs
        # as a task of its own, which may never run when the loop is closing.
        if self.client.is_closed():
            return "disconnected"
        if not self.client.is_ready():
            return "connecting"  # before the first READY (and between start attempts)
        socket = self.client.ws
        # discord.py reconnects a lost gateway by itself, on a new socket.
        return "ok" if socket is not None and socket.open else "reconnecting"

    async def _on_ready(self) -> None:
        user = self.client.user
        log.info(
            "Discord: connected as %s (id %s) in %d servers",
            user,
            getattr(user, "id", "?"),
            len(self.client.guilds),
        )

    async def _sync_commands(self) -> None:
        if not self.config.sync_commands:
            return
        tree = self.client.tree
        targets: list[discord.Object | None] = [
            discord.Object(guild_id) for guild_id in self.config.command_guild_ids
        ] or [None]
        for guild in targets:
            where = f"guild {guild.id}" if guild else "all guilds"
            try:
                if guild is not None:
                    tree.copy_global_to(guild=guild)
                await tree.sync(guild=guild)
            except Exception as error:  # one guild's refusal must not stop the start
                log.warning(
                    "could not sync slash commands to %s (%s); invite the bot with the "
                    "applications.commands scope, or set discord.sync_commands = false",
                    where,
                    error,
                )
            else:
                log.info("synced %d slash commands to %s", len(tree.get_commands()), where)

    # -- incoming ----------------------------------------------------------------

    async def _on_message(self, message: discord.Message) -> None:
        user = self.client.user
        if self._handler is None or user is None or message.author.id == user.id:
            return
        if message.type not in CHAT_TYPES:
            return
        try:
            converted = self._reader.message(message)
        except Exception:  # a message discord.py could not make sense of
            log.exception("could not read Discord message %s in %s", message.id, message.channel)
            return
        self._channels.remember(message.channel)
        key = converted.id or ""
        if key in self._answers:  # a replay of a message being answered: the router drops it
            await self._handler(converted, self)
            return
        answer = self._answers[key] = _Answer(title=converted.args or converted.text)
        wanted = (converted.addressed or converted.command is not None) and not message.author.bot
        typing = asyncio.create_task(_keep_typing(message.channel)) if wanted else None
        try:
            await self._handler(converted, self)
        finally:
            if typing is not None:
                typing.cancel()
            if self._answers.get(key) is answer:
                del self._answers[key]

    async def _on_command(self, interaction: discord.Interaction, name: str, text: str) -> None:
        answer = _Answer(title=text, interaction=interaction)
        try:
            await interaction.response.defer(thinking=True)
            answer.deferred = True
        except discord.HTTPException as error:  # too late, or Discord hiccuped
            log.warning(
                "could not acknowledge /%s in time (%s); answering in the channel", name, error
            )
        if self._handler is None:
            return
        channel, thread = place(interaction.channel, interaction.channel_id)
        user = interaction.user
        message = Message(
            platform=self.platform,
            channel=channel,
            thread=thread,
            author=self._reader.author(user),
            text=f"/{name} {text}".strip(),
            addressed=True,
            direct=is_direct(interaction.channel),
            id=f"interaction-{interaction.id}",
            command=name,
            args=text.strip(),
            command_prefix="/",
            created_at=interaction.created_at,
        )
        self._answers[message.id or ""] = answer
        try:
            await self._handler(message, self)
        finally:
            self._answers.pop(message.id or "", None)
            for sent_id in answer.sent_ids:
                self._edits.by_id.pop(sent_id, None)
                self._edits.moved.pop(sent_id, None)

    # -- outgoing ----------------------------------------------------------------

    async def send(
        self, channel: str, text: str, *, thread: str | None = None, reply_to: str | None = None
    ) -> SentMessage:
        _check_length(text)
        with _writing(thread or channel):
            return await self._send(channel, text, thread=thread, reply_to=reply_to)

    def write_window(self, channel: str, *, thread: str | None, edit: bool) -> WriteWindow:
        return self._windows.of(thread or channel)  # posts and edits alike

    async def _send(
        self, channel: str, text: str, *, thread: str | None, reply_to: str | None
    ) -> SentMessage:
        answer = self._answers.get(reply_to or "")
        # An interaction that was never acknowledged takes no follow-ups: the channel does.
        if (
            answer is not None
            and answer.interaction
            and answer.deferred
            and _token_alive(answer.interaction)
        ):
            return await self._send_to_interaction(
                answer, answer.interaction, channel, thread, text
            )
        target = await self._channel(thread or channel)
        if answer is not None and answer.first is not None and self.config.reply_in_thread:
            target = await self._answer_thread(answer, target)
        reference = None
        if answer is not None and answer.first is None and reply_to and reply_to.isdigit():
            reference = discord.MessageReference(
                message_id=int(reply_to), channel_id=target.id, fail_if_not_exists=False
            )
        posted = await target.send(
            text, allowed_mentions=NO_MENTIONS, reference=reference, mention_author=False
        )
        if answer is not None:
            answer.first = answer.first or posted
        self._edits.remember(posted)
        return SentMessage(str(posted.id), channel, _thread_of(posted, thread))

    async def _send_to_interaction(
        self,
        answer: _Answer,
        interaction: discord.Interaction,
        channel: str,
        thread: str | None,
        text: str,
    ) -> SentMessage:
        if answer.deferred and not answer.original_used:
            answer.original_used = True
            await interaction.edit_original_response(content=text, allowed_mentions=NO_MENTIONS)
            sent_id, webhook_message = f"interaction-{interaction.id}-original", None
        else:
            posted = await interaction.followup.send(text, wait=True, allowed_mentions=NO_MENTIONS)
            sent_id, webhook_message = str(posted.id), posted.id
        self._edits.by_id[sent_id] = (interaction, webhook_message)
        answer.sent_ids.append(sent_id)
        return SentMessage(sent_id, channel, thread)

    async def edit(self, sent: SentMessage, text: str) -> None:
        _check_length(text)
        with _writing(sent.thread or sent.channel):
            await self._edit(sent, text)

    async def _edit(self, sent: SentMessage, text: str) -> None:
        moved = self._edits.moved.get(sent.id)
        if moved is not None:
            await moved.edit(content=text, allowed_mentions=NO_MENTIONS)
            return
        through = self._edits.by_id.get(sent.id)
        if through is None:
            posted = self._edits.posted.get(sent.id)
            if posted is None:
                target = await self._channel(sent.thread or sent.channel)
                posted = target.get_partial_message(int(sent.id))
            await posted.edit(content=text, allowed_mentions=NO_MENTIONS)
            return
        interaction, webhook_message = through
        if not _token_alive(interaction):
            # The token is about to die: the answer goes on in a channel message,
            # and the response it started in says where.
            del self._edits.by_id[sent.id]
            try:
                if webhook_message is None:
                    await interaction.edit_original_response(
                        content=CONTINUED, allowed_mentions=NO_MENTIONS
                    )
                else:
                    await interaction.followup.edit_message(
                        webhook_message, content=CONTINUED, allowed_mentions=NO_MENTIONS
                    )
            except discord.HTTPException as error:
                log.debug("could not point the expiring response onwards: %s", error)
            target = await self._channel(sent.thread or sent.channel)
            self._edits.moved[sent.id] = await target.send(text, allowed_mentions=NO_MENTIONS)
            return
        if webhook_message is None:
            await interaction.edit_original_response(content=text, allowed_mentions=NO_MENTIONS)
        else:
            await interaction.followup.edit_message(
                webhook_message, content=text, allowed_mentions=NO_MENTIONS
            )

    async def history(
        self,
        channel: str,
        *,
        thread: str | None = None,
        since: datetime | None = None,
        limit: int = 100,
    ) -> list[Message]:
        target = await self._channel(thread or channel)
        found = [
            message
            async for message in target.history(limit=limit)
            if (since is None or message.created_at >= since) and message.type in CHAT_TYPES
        ]
        found.sort(key=lambda message: message.id)  # snowflakes grow with time
        return [self._reader.message(message) for message in found[-limit:]]

    async def download(self, attachment: Attachment, *, max_bytes: int) -> bytes:
        # Discord's CDN wants no credentials; its URLs are signed and expire after a day.
        return await fetch_attachment(
            attachment,
            attachment.url,
            max_bytes=max_bytes,
            platform=PLATFORM,
            proxy=getattr(self.client.http, "proxy", None),
        )

    async def link(self, channel: str, message_id: str, *, thread: str | None = None) -> str | None:
        """The message's jump link, from the channel cache alone (no request to Discord)."""
        where = thread or channel
        if not (_snowflake(message_id) and _snowflake(where)):
            return None  # an interaction's answer, say: no message Discord can point to
        known = self._cached_channel(where)
        if known is None and thread is not None and _snowflake(channel):
            known = self._cached_channel(channel)  # a thread not cached: its parent's guild
        if known is None:
            return None
        if is_direct(known):
            return JUMP_URL.format(guild="@me", channel=where, message=message_id)
        guild = getattr(known, "guild", None)
        if guild is None:
            return None
        return JUMP_URL.format(guild=guild.id, channel=where, message=message_id)

    def _cached_channel(self, ident: str) -> Any:
        # DM channels are not in discord.py's cache: remember those messages came from.
        return self._channels.get(ident) or self.client.get_channel(int(ident))

    async def _channel(self, ident: str) -> Any:  # a text channel, thread or DM
        channel = self._cached_channel(ident)
        if channel is None:
            channel = await self.client.fetch_channel(int(ident))
        if not isinstance(channel, discord.abc.Messageable):
            raise AdapterError("I can't post there.", f"Discord channel {ident} takes no messages")
        return channel

    async def _answer_thread(
        self, answer: _Answer, target: discord.abc.Messageable
    ) -> discord.abc.Messageable:
        """The thread a long answer continues in, opened on its first message; the
        channel itself when the thread cannot be opened (a permission, say)."""
        if (
            answer.thread is None
            and not answer.thread_refused
            and answer.first is not None
            and isinstance(target, discord.TextChannel)
        ):
            try:
                answer.thread = await answer.first.create_thread(name=_thread_name(answer.title))
            except discord.HTTPException as error:
                log.warning("could not open a thread for an answer in %s: %s", target.id, error)
                answer.thread_refused = True
        return answer.thread or target


@contextlib.contextmanager
def _writing(where: str) -> Iterator[None]:
    """Discord's refusals of a write, as Confab's: a rate limit that outlasted
    discord.py's own retries, or a channel the bot may not write in."""
    try:
        yield
    except discord.HTTPException as error:
        if error.status == 429:
            raise RateLimited.after(
                error.response.headers.get("Retry-After"),
                f"Discord rate-limits writes in {where}: {error.text}",
            ) from None
        if error.code in NO_ENTRY_CODES:
            raise CannotPost(
                "I can't post there.",
                f"Discord refuses the bot's messages in channel {where}: "
                f"{NO_ENTRY_CODES[error.code]} (code {error.code})",
            ) from None
        raise


def _reason(error: BaseException) -> str:
    """An error in a few words, for a log line: its message, or its type's name."""
    return str(error) or type(error).__name__


def _snowflake(ident: str) -> bool:
    return ident.isascii() and ident.isdigit()


def _token_alive(interaction: discord.Interaction) -> bool:
    """Whether the interaction's token still has a safe margin of its 15 minutes."""
    return interaction.created_at + INTERACTION_LIFETIME > discord.utils.utcnow()


def _check_length(text: str) -> None:
    if len(text) > MAX_MESSAGE_CHARS:
        raise MessageTooLong(
            "That answer is too long.", f"{len(text)} > {MAX_MESSAGE_CHARS} characters"
        )


def _thread_of(posted: discord.Message, thread: str | None) -> str | None:
    if isinstance(posted.channel, discord.Thread):
        return str(posted.channel.id)
    return thread


def _thread_name(text: str) -> str:
    first_line = " ".join(text.split("\n", 1)[0].split())
    return (first_line[:90] or "Answer").strip("*_`# ") or "Answer"


async def _keep_typing(channel: discord.abc.Messageable) -> None:
    """Show "typing…" until cancelled (Discord shows it for 10 s per request).

    Runs beside the answer, so a slow or refused indicator never delays it.
    """
    try:
        while True:
            await channel.typing()
            await asyncio.sleep(TYPING_REFRESH_S)
    except asyncio.CancelledError:
        raise
    except Exception as error:  # cosmetic: the answer goes out regardless
        log.debug("no typing indicator in %s: %s", getattr(channel, "id", "?"), error)
