"""The Slack adapter: slack-bolt's AsyncApp in Socket Mode or HTTP mode."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import aiohttp
from aiohttp import web
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from confab.adapters.slack.config import EVENTS_PATH, PRIVATE_FLAG, SlackConfig
from confab.adapters.slack.files import SlackFiles, attachments
from confab.adapters.slack.incoming import PLATFORM, Names, is_direct, mentions, message_id, sent_at
from confab.adapters.slack.mrkdwn import to_mrkdwn
from confab.adapters.slack.permalinks import Permalinks
from confab.adapters.slack.tools import ManifestTool
from confab.bot.adapter import Adapter, AdapterContext, Capabilities, Limits, MessageHandler
from confab.bot.errors import AdapterError, CannotPost, MessageTooLong, RateLimited
from confab.bot.messages import Attachment, Author, Message, SentMessage, parse_command
from confab.bot.pacing import Rate, WriteWindow, WriteWindows

log = logging.getLogger(__name__)

THREADS_KEPT = 5000  # threads the bot took part in, whose messages are addressed to it
HISTORY_PAGE = 200  # conversations.history allows up to 1,000; Slack advises 200
HISTORY_MAX = 5000  # messages read at most for one history request
RATE_LIMIT_RETRIES = 3
NOT_A_MEMBER = ("not_in_channel", "channel_not_found")
# Refusals after which nothing more can be posted in that channel.
NO_ENTRY = (*NOT_A_MEMBER, "is_archived", "restricted_action", "team_access_not_granted")
# Slack's published limits: chat.update is Tier 3 (50 a minute per workspace), kept
# smooth rather than in bursts; chat.postMessage about one a second per channel.
WORKSPACE_EDITS = Rate(writes=5, per_s=6.0)
CHANNEL_POSTS = Rate(writes=3, per_s=3.0)
START_RETRY_FIRST_S = 2.0  # backoff of attempts to reach Slack at start, doubled up to
START_RETRY_MAX_S = 120.0
CLOSE_TIMEOUT_S = 5.0
RESPONSE_URL_MAX_CHARS = 39_000  # Slack cuts a message's text at 40,000
# Message events that are people talking (not joins, edits, deletions ...).
CHAT_SUBTYPES = (None, "thread_broadcast", "file_share", "me_message")


@dataclass
class _CommandAnswer:
    """A slash command being answered. Collected and posted once complete through the
    command's ``response_url`` when only the asker may see it (``--private``), or
    when the bot may not post in the channel (it was never invited)."""

    response_url: str
    private: bool
    collecting: bool = False
    texts: dict[str, str] = field(default_factory=dict)  # in order of sending


class SlackAdapter(Adapter):
    """A Slack app; ``build_app()`` makes its bolt ``AsyncApp`` without connecting."""

    platform = PLATFORM
    config_model = SlackConfig
    capabilities = Capabilities(edit=True, threads=True, history=True, typing=False, downloads=True)
    limits = Limits(max_message_chars=3000, min_edit_interval_s=1.2)
    tools = (ManifestTool,)

    def __init__(self, context: AdapterContext) -> None:
        super().__init__(context)
        config = context.config
        assert isinstance(config, SlackConfig)
        self.config = config
        self.limits = Limits(config.max_message_chars, config.edit_interval_s)  # type: ignore[misc]
        self._skills = [info.name for info in context.skills]
        self._handler: MessageHandler | None = None
        self._threads: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._command_answers: dict[str, _CommandAnswer] = {}
        self._stopped = asyncio.Event()
        self._edits = WriteWindows(WORKSPACE_EDITS)
        self._posts = WriteWindows(CHANNEL_POSTS)
        self.app: AsyncApp | None = None
        self.client: AsyncWebClient | None = None
        self._names: Names | None = None
        self._files: SlackFiles | None = None
        self._permalinks: Permalinks | None = None
        self.bot_user_id: str | None = None
        self.bot_id: str | None = None
        self._team = self._user = "?"  # for the log line saying the bot is up
        self._serving = False  # HTTP mode: the events endpoint is up
        self._socket: Any = None  # Socket Mode: slack_sdk's client, once connecting

    # -- building and running ----------------------------------------------------

    def build_app(self) -> AsyncApp:
        """The bolt app with Confab's listeners, its Web API client at ``api_base_url``."""
        token = self._secret(self.config.bot_token_env, "bot token (xoxb-...)")
        secret = os.environ.get(self.config.signing_secret_env, "").strip()
        if self.config.mode == "http" and not secret:
            self._secret(self.config.signing_secret_env, "signing secret")
        client = AsyncWebClient(token=token, base_url=self.config.web_api_url)
        client.retry_handlers.append(
            AsyncRateLimitErrorRetryHandler(max_retry_count=RATE_LIMIT_RETRIES)
        )
        app = AsyncApp(
            client=client,
            # Socket Mode needs no signing secret; bolt wants a value all the same.
            signing_secret=secret or "unused-in-socket-mode",
            # HTTP mode checks each request's signature on its raw bytes before bolt
            # sees it (confab.adapters.slack.http_events); Socket Mode has none.
            request_verification_enabled=False,
            process_before_response=False,
        )
        app.event("app_mention")(self._on_mention)
        app.event("message")(self._on_message)
        for name in self._slash_commands():
            app.command(f"/{name}")(self._on_command)
        self.app, self.client, self._names = app, client, Names(client)
        self._files = SlackFiles(client, self.config.web_api_url)
        self._permalinks = Permalinks(client)
        return app

    def _slash_commands(self) -> list[str]:
        if self.config.command_style == "umbrella":
            return [self.config.command_name]
        return self._skills

    def bind(self, handler: MessageHandler) -> None:
        """Deliver incoming messages to ``handler`` (``run`` does it; tests drive the app)."""
        self._handler = handler

    async def run(self, handler: MessageHandler) -> None:
        self.bind(handler)
        app = self.app or self.build_app()
        if not await self._reach_slack():
            return  # stopped before Slack could be reached
        if self.config.mode == "http":
            await self._serve_http(app)
        else:
            await self._serve_socket_mode(app)

    async def _serve_http(self, app: AsyncApp) -> None:
        from confab.adapters.slack.http_events import events_app

        secret = os.environ[self.config.signing_secret_env].strip()  # as build_app reads it
        runner = web.AppRunner(events_app(app, signing_secret=secret, path=EVENTS_PATH))
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.config.host, self.config.port)
            await site.start()
            self._serving = True
            log.info(
                "Slack: serving team %s as @%s, HTTP mode, events at http://%s:%d%s",
                self._team,
                self._user,
                self.config.host,
                self.config.port,
                EVENTS_PATH,
            )
            await self._stopped.wait()
        finally:
            self._serving = False
            await runner.cleanup()

    async def _serve_socket_mode(self, app: AsyncApp) -> None:
        from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

        app_token = self._secret(self.config.app_token_env, "app-level token (xapp-...)")
        handler = AsyncSocketModeHandler(app, app_token)
        self._socket = handler.client
        # slack_sdk keeps trying while Slack cannot be reached, and reconnects a
        # dropped socket itself; a stop request must not wait for either.
        connecting = asyncio.create_task(handler.connect_async())  # type: ignore[no-untyped-call]
        stopping = asyncio.create_task(self._stopped.wait())
        try:
            await asyncio.wait({connecting, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if connecting.done():
                connecting.result()  # raises what stopped the connection
                log.info("Slack: connected to team %s as @%s, Socket Mode", self._team, self._user)
                await stopping
        finally:
            for task in (connecting, stopping):
                task.cancel()
            try:
                await asyncio.wait_for(handler.close_async(), CLOSE_TIMEOUT_S)  # type: ignore[no-untyped-call]
            except Exception as error:  # TimeoutError included
                log.warning("closing the Slack socket did not finish: %r", error)

    async def stop(self) -> None:
        self._stopped.set()

    @property
    def status(self) -> str:
        if self.config.mode == "http":
            return "ok" if self._serving else "connecting"
        socket = self._socket
        if socket is None:
            return "connecting"
        # What slack_sdk's is_connected() reads, less its ping-pong check (a coroutine):
        # it reconnects a dropped or stale socket by itself.
        session = getattr(socket, "current_session", None)
        if getattr(socket, "closed", False) or getattr(socket, "stale", False):
            return "disconnected"
        if session is None:
            return "connecting"
        return "disconnected" if session.closed else "ok"

    async def _reach_slack(self) -> bool:
        """Who the bot is (``auth.test``), trying again with backoff while Slack cannot
        be reached; False when a stop came first. A refused token raises at once."""
        delay, attempt = START_RETRY_FIRST_S, 1
        while not self._stopped.is_set():
            try:
                await self._who_am_i()
                return True
            except (OSError, aiohttp.ClientError, TimeoutError) as error:
                wait = delay * random.uniform(0.5, 1.5)
                log.warning(
                    "cannot reach Slack (attempt %d: %s); trying again in %.0f s",
                    attempt,
                    str(error) or type(error).__name__,
                    wait,
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopped.wait(), wait)
                delay, attempt = min(delay * 2, START_RETRY_MAX_S), attempt + 1
        return False

    async def _who_am_i(self) -> None:
        assert self.client is not None
        try:
            identity = await self.client.auth_test()
        except SlackApiError as error:
            if error.response.status_code >= 500:  # Slack is having trouble: try again
                raise aiohttp.ClientError(
                    f"auth.test answered {error.response.status_code}"
                ) from None
            raise AdapterError(
                "Slack is not configured.",
                f"Slack refused the bot token in {self.config.bot_token_env}: "
                f"{error.response.get('error')}",
            ) from None
        self.bot_user_id = identity.get("user_id")
        self.bot_id = identity.get("bot_id")
        self._team = f"{identity.get('team') or '?'} ({identity.get('team_id') or '?'})"
        self._user = str(identity.get("user") or self.bot_user_id)

    def _secret(self, variable: str, what: str) -> str:
        value = os.environ.get(variable, "").strip()
        if not value:
            raise AdapterError(
                "Slack is not configured.",
                f"no Slack {what}: set the environment variable {variable}",
            )
        return value

    # -- incoming ----------------------------------------------------------------

    async def _on_mention(self, event: dict[str, Any], context: dict[str, Any]) -> None:
        # A mention outside a thread starts one: the thread is the conversation.
        thread = event.get("thread_ts") or event.get("ts")
        await self._deliver(event, context, addressed=True, thread=thread)

    async def _on_message(self, event: dict[str, Any], context: dict[str, Any]) -> None:
        if event.get("subtype") not in CHAT_SUBTYPES:
            return
        bot = context.get("bot_user_id") or self.bot_user_id
        if bot and event.get("channel_type") != "im" and mentions(event.get("text", ""), bot):
            return  # the app_mention event of the same message answers it
        channel, thread = event.get("channel", ""), event.get("thread_ts")
        addressed = event.get("channel_type") == "im" or (
            thread is not None and await self._took_part(channel, thread, event, bot)
        )
        await self._deliver(event, context, addressed=addressed, thread=thread)

    async def _took_part(
        self, channel: str, thread: str, event: dict[str, Any], bot: str | None
    ) -> bool:
        """Whether the bot answered in this thread (or started it): then it is addressed."""
        if (channel, thread) in self._threads or (bot and event.get("parent_user_id") == bot):
            return True
        # Threads answered before a restart, or by another process, are in storage.
        stored = await self.context.channel_log.messages(PLATFORM, channel, thread=thread, limit=50)
        if any(message.from_self for message in stored):
            self._remember_thread(channel, thread)
            return True
        return False

    async def _deliver(
        self, event: dict[str, Any], context: dict[str, Any], *, addressed: bool, thread: str | None
    ) -> None:
        if self._handler is None or self._names is None:
            return
        bot = context.get("bot_user_id") or self.bot_user_id
        channel, ts = event.get("channel", ""), event.get("ts", "")
        user = event.get("user") or event.get("bot_id") or "unknown"
        text = await self._names.readable(event.get("text", ""), bot)
        message = Message(
            platform=PLATFORM,
            channel=channel,
            thread=thread,
            author=self._author(user, await self._names.of(user), bool(event.get("bot_id"))),
            text=text,
            addressed=addressed,
            direct=is_direct(channel, event.get("channel_type")),
            from_self=bool(bot) and user == bot,
            id=message_id(channel, ts),
            created_at=sent_at(ts),
            attachments=attachments(event.get("files")),
        )
        await self._handler(message, self)  # the router reads "!ask ..." commands

    async def _on_command(self, ack: Callable[[], Awaitable[Any]], command: dict[str, Any]) -> None:
        await ack()  # within Slack's 3 seconds; the answer follows by chat.postMessage
        if self._handler is None or self._names is None:
            return
        name = command.get("command", "").lstrip("/")
        text = command.get("text", "").strip()
        private = PRIVATE_FLAG in text.split()
        if private:
            text = " ".join(word for word in text.split() if word != PRIVATE_FLAG)
        if self.config.command_style == "umbrella":
            parsed = parse_command("/" + text, ["/"]) if text else None
            name, text = parsed if parsed else ("help", "")
        user, channel = command.get("user_id", ""), command.get("channel_id", "")
        ident = f"command-{command.get('trigger_id') or channel + ':' + name}"
        message = Message(
            platform=PLATFORM,
            channel=channel,
            author=self._author(user, await self._names.of(user)),
            text=f"/{name} {text}".strip(),
            addressed=True,
            # Slack names a DM "directmessage" in a command's payload.
            direct=command.get("channel_name") == "directmessage" or is_direct(channel, None),
            id=ident,
            command=name,
            args=text,
            command_prefix=self._typed_prefix(),
        )
        answer = self._command_answers[ident] = _CommandAnswer(
            command.get("response_url", ""), private, collecting=private
        )
        try:
            await self._handler(message, self)
        finally:
            del self._command_answers[ident]
            if answer.collecting:
                await self._respond(answer)

    def _typed_prefix(self) -> str:
        """How this workspace types a skill's command: ``/ask``, or ``/confab ask``."""
        if self.config.command_style == "umbrella":
            return f"/{self.config.command_name} "
        return "/"

    def _author(self, user: str, name: str, is_bot: bool = False) -> Author:
        return Author(user, name, is_bot, admin=user in self.config.admin_user_ids)

    # -- outgoing ----------------------------------------------------------------

    async def send(
        self, channel: str, text: str, *, thread: str | None = None, reply_to: str | None = None
    ) -> SentMessage:
        self._check_length(text)
        command = self._command_answers.get(reply_to or "")
        if command is not None and command.collecting:
            return self._collect(command, channel, text)
        try:
            with _writing(channel, answering_command=command is not None):
                response = await self._client().chat_postMessage(
                    channel=channel,
                    thread_ts=thread,
                    text=to_mrkdwn(text),
                    mrkdwn=True,
                    parse="none",
                    link_names=False,
                    unfurl_links=False,
                    unfurl_media=False,
                )
        except SlackApiError:
            # Only a command's answer gets here: it has its response_url still.
            if command is None or not command.response_url:
                raise
            log.info("not a member of %s; answering the command through its response_url", channel)
            command.collecting = True
            return self._collect(command, channel, text)
        if thread is not None:
            self._remember_thread(channel, thread)
        return SentMessage(str(response["ts"]), channel, thread)

    def _remember_thread(self, channel: str, thread: str) -> None:
        self._threads[(channel, thread)] = None
        while len(self._threads) > THREADS_KEPT:
            self._threads.popitem(last=False)

    async def edit(self, sent: SentMessage, text: str) -> None:
        self._check_length(text)
        for command in self._command_answers.values():
            if sent.id in command.texts:
                command.texts[sent.id] = text
                return
        with _writing(sent.channel):
            await self._client().chat_update(
                channel=sent.channel,
                ts=sent.id,
                text=to_mrkdwn(text),
                parse="none",
                link_names=False,
            )

    def write_window(self, channel: str, *, thread: str | None, edit: bool) -> WriteWindow:
        # One bot token is one workspace: its edits share one window.
        return self._edits.of("workspace") if edit else self._posts.of(channel)

    @staticmethod
    def _collect(command: _CommandAnswer, channel: str, text: str) -> SentMessage:
        ident = f"collected-{id(command)}-{len(command.texts)}"
        command.texts[ident] = text
        return SentMessage(ident, channel)

    async def _respond(self, command: _CommandAnswer) -> None:
        """Post a collected answer through the command's response_url, as one message
        (a response_url takes five posts at most)."""
        kind = "ephemeral" if command.private else "in_channel"
        text = to_mrkdwn("".join(command.texts.values()))[:RESPONSE_URL_MAX_CHARS]
        try:
            response = await AsyncWebhookClient(command.response_url).send(
                text=text, response_type=kind
            )
        except Exception as error:  # the answer is lost; say so in the log
            log.warning("could not answer a command through its response_url: %s", error)
            return
        if response.status_code != 200:
            log.warning(
                "Slack refused a command's answer through its response_url: %s %s",
                response.status_code,
                response.body[:200],
            )

    def _check_length(self, text: str) -> None:
        if len(text) > self.config.max_message_chars:
            raise MessageTooLong(
                "That answer is too long.",
                f"{len(text)} > {self.config.max_message_chars} characters",
            )

    def _client(self) -> AsyncWebClient:
        if self.client is None:
            self.build_app()
        assert self.client is not None
        return self.client

    async def history(
        self,
        channel: str,
        *,
        thread: str | None = None,
        since: datetime | None = None,
        limit: int = 100,
    ) -> list[Message]:
        client = self._client()
        names = self._names
        assert names is not None
        oldest = f"{since.timestamp():.6f}" if since is not None else None
        if thread is not None:
            try:
                found = await self._pages(client.conversations_replies, channel, oldest, ts=thread)
            except SlackApiError as error:
                if error.response.get("error") != "thread_not_found":
                    raise
                found = []
            if len(found) <= 1:  # a mention's own thread: what it asks about is the channel
                thread = None
        if thread is None:
            found = await self._pages(client.conversations_history, channel, oldest, limit=limit)
        chat = [m for m in found if m.get("subtype") in (*CHAT_SUBTYPES, "bot_message")]
        chat.sort(key=lambda m: float(m.get("ts", 0)))
        return [await self._from_history(channel, thread, m) for m in chat[-limit:]]

    async def _pages(
        self,
        method: Callable[..., Awaitable[Any]],
        channel: str,
        oldest: str | None,
        *,
        limit: int = HISTORY_MAX,
        **options: Any,
    ) -> list[dict[str, Any]]:
        """Messages of a history method, page by page: the newest ``limit`` of a channel
        (it pages newest first), or a whole thread (oldest first) up to HISTORY_MAX."""
        found: list[dict[str, Any]] = []
        cursor = None
        while len(found) < min(limit, HISTORY_MAX):
            page = await method(
                channel=channel,
                limit=HISTORY_PAGE,
                cursor=cursor,
                **({"oldest": oldest} if oldest else {}),
                **options,
            )
            found.extend(page.get("messages") or [])
            cursor = (page.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                break
        return found

    async def _from_history(self, channel: str, thread: str | None, raw: dict[str, Any]) -> Message:
        assert self._names is not None
        user = raw.get("user") or raw.get("bot_id") or "unknown"
        mine = user == self.bot_user_id or (
            self.bot_id is not None and raw.get("bot_id") == self.bot_id
        )
        name = self.context.bot_name if mine else await self._names.of(user)
        message = Message(
            platform=PLATFORM,
            channel=channel,
            thread=thread,
            author=self._author(user, name, bool(raw.get("bot_id"))),
            text=await self._names.readable(raw.get("text", ""), self.bot_user_id),
            direct=is_direct(channel, None),
            from_self=mine,
            id=message_id(channel, str(raw.get("ts", ""))),
            created_at=sent_at(str(raw.get("ts", ""))),
            attachments=attachments(raw.get("files")),
        )
        return message

    async def download(self, attachment: Attachment, *, max_bytes: int) -> bytes:
        self._client()
        assert self._files is not None
        return await self._files.download(attachment, max_bytes=max_bytes)

    async def link(self, channel: str, message_id: str, *, thread: str | None = None) -> str | None:
        self._client()
        assert self._permalinks is not None
        return await self._permalinks.of(channel, message_id)


@contextlib.contextmanager
def _writing(channel: str, *, answering_command: bool = False) -> Iterator[None]:
    """Slack's refusals of a write, as Confab's: a rate limit that outlasted
    slack_sdk's own retries, or a channel the bot cannot post in. A command's
    answer keeps the refusal (it can go through the command's response_url)."""
    try:
        yield
    except SlackApiError as error:
        reason = error.response.get("error")
        if error.response.status_code == 429 or reason == "ratelimited":
            raise RateLimited.after(
                error.response.headers.get("Retry-After"), f"Slack rate-limits writes in {channel}"
            ) from None
        if reason in NO_ENTRY and not (answering_command and reason in NOT_A_MEMBER):
            raise CannotPost(
                "I can't post there.", f"Slack refuses the bot's messages in {channel}: {reason}"
            ) from None
        raise
