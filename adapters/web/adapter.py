"""The web chat as a platform: browser tabs in channels, over one WebSocket each.

A person picks a name and a channel at ``/chat/``; each tab is one person, and
every tab in a channel sees what is said there as it is said: the bot's answers
stream in as edits of one message. Messages are Markdown, rendered on the server
(:mod:`confab.adapters.web.markdown`) and sent as HTML fragments that htmx
swaps into the page. A message is addressed to the bot when "ask" is ticked
(the default), when it mentions ``@<bot name>``, or when it is a command
(``!ask``, or ``/ask`` as in the console); otherwise it is chatter, kept and
seen by others. Any message can start a thread. History comes from what the
router stored, as for the console.

The page is served by the app's HTTP server (``[web]``) at ``/chat/``; leaving
``web`` out of ``bot.adapters`` turns it off. Names are chosen freely, so a web
chat name proves nothing: ``router.admins`` entries for ``web`` suit only a page
nobody else can reach.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections import OrderedDict
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from markupsafe import Markup

from confab.adapters.web.markdown import rendered
from confab.bot.adapter import Adapter, AdapterContext, Capabilities, Limits, MessageHandler
from confab.bot.config import WebConfig
from confab.bot.errors import MessageTooLong
from confab.bot.messages import Author, Message, SentMessage, parse_command, typed_mention
from confab.bot.webui import templates

log = logging.getLogger(__name__)

SHOWN_KEPT = 2000  # messages whose text is kept for edits and thread roots
MAX_MESSAGE_CHARS = 8000
SEND_TIMEOUT_S = 10.0  # a tab that takes longer to accept a fragment is closed


@dataclass(frozen=True, slots=True)
class Shown:
    """A message as the page shows it."""

    id: str
    channel: str
    thread: str | None
    author: str
    bot: bool
    text: str
    at: datetime
    replies: int = 0

    @property
    def html(self) -> Markup:
        return Markup(rendered(self.text))

    @property
    def time(self) -> str:
        """HH:MM in UTC; the page shows it in the reader's timezone."""
        return self.at.astimezone(UTC).strftime("%H:%M")

    @property
    def iso(self) -> str:
        return self.at.isoformat()


class Visitor:
    """One open tab: a WebSocket, the person's name and the channel they are in."""

    def __init__(self, socket: web.WebSocketResponse, name: str, channel: str) -> None:
        self.socket = socket
        self.name = name
        self.channel = channel

    async def send(self, fragment: str) -> None:
        """Send, or give up on a tab that stopped reading (the others are not held up)."""
        try:
            await asyncio.wait_for(self.socket.send_str(fragment), SEND_TIMEOUT_S)
        except TimeoutError:
            log.info("web chat: %s in #%s stopped reading; closing it", self.name, self.channel)
            with contextlib.suppress(Exception):
                await self.socket.close()
        except (ConnectionError, RuntimeError):  # the tab went away meanwhile
            pass


class WebAdapter(Adapter):
    """Browser tabs as chat users; see the module's description."""

    platform = "web"
    config_model = WebConfig
    capabilities = Capabilities(edit=True, threads=True, history=True, typing=False)
    limits = Limits(max_message_chars=MAX_MESSAGE_CHARS, min_edit_interval_s=0.1)

    def __init__(self, context: AdapterContext) -> None:
        super().__init__(context)
        self.templates = templates("confab.adapters.web")
        self._rooms: dict[str, set[Visitor]] = {}
        self._shown: OrderedDict[str, Shown] = OrderedDict()
        self._handler: MessageHandler | None = None
        self._stopped = asyncio.Event()
        self._handling: set[asyncio.Task[None]] = set()
        self._mention = typed_mention(context.bot_name)

    # -- the platform session --------------------------------------------------------

    async def run(self, handler: MessageHandler) -> None:
        self._handler = handler
        await self._stopped.wait()

    async def stop(self) -> None:
        self._stopped.set()
        self._handler = None
        await self.close_sockets()
        if self._handling:
            await asyncio.gather(*self._handling, return_exceptions=True)

    async def close_sockets(self) -> None:
        """Close every tab's socket (the tabs reconnect to a server that comes back)."""
        visitors = [v for room in self._rooms.values() for v in room]
        await asyncio.gather(*(v.socket.close() for v in visitors), return_exceptions=True)

    def http_application(self) -> tuple[str, web.Application]:
        from confab.adapters.web.page import chat_application

        return "/chat", chat_application(self)

    @property
    def status(self) -> str:
        return "stopped" if self._stopped.is_set() else "ok"

    # -- from the page ---------------------------------------------------------------

    def join(self, visitor: Visitor) -> None:
        self._rooms.setdefault(visitor.channel, set()).add(visitor)

    def leave(self, visitor: Visitor) -> None:
        room = self._rooms.get(visitor.channel)
        if room is not None:
            room.discard(visitor)
            if not room:
                del self._rooms[visitor.channel]

    async def said(self, visitor: Visitor, text: str, *, thread: str | None, ask: bool) -> None:
        """A person sent ``text`` from the page: show it to the channel, then hand it to
        the router (without waiting, so the tab can go on sending)."""
        handler = self._handler
        if handler is None:
            await visitor.send(self.notice("The bot is starting or stopping; try again soon."))
            return
        if thread is not None:
            thread = await self._thread_root(visitor.channel, thread)
        shown = Shown(
            id=f"w-{secrets.token_hex(6)}",
            channel=visitor.channel,
            thread=thread,
            author=visitor.name,
            bot=False,
            text=text,
            at=datetime.now(UTC),
        )
        await self._show(shown)
        command, args = parse_command(text, ["/"]) or (None, "")
        mentioned = bool(self._mention.search(text))
        message = Message(
            platform=self.platform,
            channel=visitor.channel,
            thread=thread,
            author=Author(visitor.name, visitor.name),
            text=self._mention.sub("", text).strip() if mentioned else text,
            addressed=ask or mentioned,
            id=shown.id,
            command=command,
            args=args,
            command_prefix="/" if command else "",
            created_at=shown.at,
        )
        task = asyncio.create_task(self._handle(handler, message), name=f"web {shown.id}")
        self._handling.add(task)
        task.add_done_callback(self._handling.discard)

    async def _handle(self, handler: MessageHandler, message: Message) -> None:
        try:
            await handler(message, self)
        except Exception:  # the router answers its own failures; this is a bug
            log.exception("web: handling %s in %s failed", message.id, message.channel)

    async def _thread_root(self, channel: str, message_id: str) -> str | None:
        """The thread a reply to ``message_id`` goes to: that message's own thread, or the
        one it starts; None (the channel itself) for a message not of this channel."""
        found = await self.root(channel, message_id)
        return None if found is None else found.thread or found.id

    # -- output primitives -------------------------------------------------------------

    async def send(
        self, channel: str, text: str, *, thread: str | None = None, reply_to: str | None = None
    ) -> SentMessage:
        _check_length(text)
        shown = Shown(
            id=f"b-{secrets.token_hex(6)}",
            channel=channel,
            thread=thread,
            author=self.context.bot_name,
            bot=True,
            text=text,
            at=datetime.now(UTC),
        )
        await self._show(shown)
        return SentMessage(id=shown.id, channel=channel, thread=thread)

    async def edit(self, sent: SentMessage, text: str) -> None:
        _check_length(text)
        shown = self._shown.get(sent.id)
        if shown is None:
            raise KeyError(f"unknown message {sent.id}")
        shown = replace(shown, text=text)
        self._keep(shown)
        await self._broadcast(shown.channel, self.fragment(shown, oob=True))

    async def history(
        self,
        channel: str,
        *,
        thread: str | None = None,
        since: datetime | None = None,
        limit: int = 100,
    ) -> list[Message]:
        return await self.context.channel_log.messages(
            self.platform, channel, thread=thread, since=since, limit=limit
        )

    # -- what the page shows -------------------------------------------------------------

    async def shown_in(self, channel: str, *, thread: str | None = None) -> list[Shown]:
        """What a tab opening ``channel`` (or a thread of it) shows: the stored messages,
        newest last, as they were last edited."""
        stored = await self.history(channel, thread=thread, limit=100)
        return [self._shown.get(m.id or "") or self._as_shown(m) for m in stored]

    async def root(self, channel: str, message_id: str) -> Shown | None:
        """A message of ``channel`` as shown: kept since it was sent, else stored."""
        if (shown := self._shown.get(message_id)) is not None:
            return shown if shown.channel == channel else None
        found = [s for s in await self.shown_in(channel) if s.id == message_id]
        return found[0] if found else None

    def _as_shown(self, message: Message) -> Shown:
        return Shown(
            id=message.id or "",
            channel=message.channel,
            thread=message.thread,
            author=self.context.bot_name if message.from_self else message.author.name,
            bot=message.from_self,
            text=message.text,
            at=message.created_at,
        )

    def fragment(self, shown: Shown, *, oob: bool = False) -> str:
        return self.templates.get_template("message.html").render(m=shown, oob=oob)

    def notice(self, text: str) -> str:
        """A line for one tab only, below the channel's messages."""
        return Markup(
            '<div id="messages" hx-swap-oob="beforeend">'
            '<p class="notice muted" role="status">{}</p></div>'
        ).format(text)

    async def _show(self, shown: Shown) -> None:
        self._keep(shown)
        article = self.fragment(shown)
        if shown.thread is None:
            fragment = f'<div id="messages" hx-swap-oob="beforeend">{article}</div>'
        else:
            fragment = f'<div id="t-{shown.thread}" hx-swap-oob="beforeend">{article}</div>'
            root = self._shown.get(shown.thread)
            if root is not None:
                root = replace(root, replies=root.replies + 1)
                self._keep(root)
                count = f"{root.replies} {'reply' if root.replies == 1 else 'replies'}"
                fragment += (
                    f'<span class="replies" id="r-{root.id}" hx-swap-oob="outerHTML">{count}</span>'
                )
        await self._broadcast(shown.channel, fragment)

    def _keep(self, shown: Shown) -> None:
        self._shown[shown.id] = shown
        self._shown.move_to_end(shown.id)
        while len(self._shown) > SHOWN_KEPT:
            self._shown.popitem(last=False)

    async def _broadcast(self, channel: str, fragment: str) -> None:
        room = list(self._rooms.get(channel, ()))
        await asyncio.gather(*(visitor.send(fragment) for visitor in room))

    def shown(self, sent: SentMessage) -> str:
        """The text the page now shows for ``sent``."""
        return self._shown[sent.id].text

    def page_context(self, **values: Any) -> dict[str, Any]:
        return {"bot_name": self.context.bot_name, "max_chars": MAX_MESSAGE_CHARS, **values}


def _check_length(text: str) -> None:
    if len(text) > MAX_MESSAGE_CHARS:
        raise MessageTooLong(
            "That answer is too long.", f"{len(text)} > {MAX_MESSAGE_CHARS} characters"
        )
