"""The web chat's HTTP side, mounted at ``/chat/``: the page, its WebSocket, threads.

``GET /chat/`` asks for a name and a channel, or shows the channel;
``GET /chat/ws`` is the tab's WebSocket (htmx's ``ws`` extension: JSON form
values in, HTML fragments out); ``GET /chat/thread`` is a thread's panel.
Input is checked here: a bad name or channel is a short message on the page, a
bad frame a notice to that tab, and neither puts a traceback in the log.
"""

from __future__ import annotations

import json
import logging
import re
from typing import TYPE_CHECKING

from aiohttp import WSMsgType, web

from confab.adapters.web.markdown import code_styles
from confab.bot.messages import clean_text
from confab.bot.webui import html_response, same_origin

if TYPE_CHECKING:
    from confab.adapters.web.adapter import WebAdapter

log = logging.getLogger(__name__)

CHANNEL = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}\Z")
MAX_NAME_CHARS = 32
MAX_FRAME_BYTES = 64 * 1024
DEFAULT_CHANNEL = "general"

ADAPTER: web.AppKey[WebAdapter] = web.AppKey("adapter")


class BadVisitor(ValueError):
    """A name or channel the chat does not take; the message says why."""


def visitor_of(query: dict[str, str] | web.Request) -> tuple[str, str]:
    """The (name, channel) a page or socket asks for, cleaned, or :class:`BadVisitor`."""
    values = query.query if isinstance(query, web.Request) else query
    name = " ".join(clean_text(values.get("name", "")).split())
    channel = clean_text(values.get("channel", "")).strip().lstrip("#").lower()
    if not name:
        raise BadVisitor("Pick a name.")
    if len(name) > MAX_NAME_CHARS or not name.isprintable():
        raise BadVisitor(f"A name is up to {MAX_NAME_CHARS} printable characters.")
    if not CHANNEL.match(channel):
        raise BadVisitor("A channel name is up to 64 letters, digits, '-' or '_'.")
    return name, channel


def chat_application(adapter: WebAdapter) -> web.Application:
    app = web.Application()
    app[ADAPTER] = adapter
    app.router.add_get("/", _page)
    app.router.add_get("/ws", _socket)
    app.router.add_get("/thread", _thread)
    app.router.add_get("/code.css", _code_css)
    app.on_shutdown.append(_close_sockets)  # else the server waits for open tabs
    return app


async def _close_sockets(app: web.Application) -> None:
    await app[ADAPTER].close_sockets()


async def _page(request: web.Request) -> web.Response:
    adapter = request.app[ADAPTER]
    if "name" not in request.query:
        return _join(adapter, "", request.query.get("channel", DEFAULT_CHANNEL), None)
    try:
        name, channel = visitor_of(request)
    except BadVisitor as problem:
        name = request.query.get("name", "")[:MAX_NAME_CHARS]
        return _join(adapter, name, request.query.get("channel", "")[:64], str(problem), 400)
    page = adapter.templates.get_template("chat.html").render(
        adapter.page_context(
            name=name,
            channel=channel,
            messages=await adapter.shown_in(channel),
            prefix="!",
        )
    )
    return html_response(page)


def _join(
    adapter: WebAdapter, name: str, channel: str, problem: str | None, status: int = 200
) -> web.Response:
    page = adapter.templates.get_template("join.html").render(
        adapter.page_context(name=name, channel=channel or DEFAULT_CHANNEL, problem=problem)
    )
    return html_response(page, status)


async def _thread(request: web.Request) -> web.Response:
    adapter = request.app[ADAPTER]
    template = adapter.templates.get_template("thread.html")
    channel, root_id = request.query.get("channel", ""), request.query.get("root", "")
    if not channel or not root_id:  # closing the panel
        return html_response(template.render(adapter.page_context(root=None)))
    if not CHANNEL.match(channel):
        raise web.HTTPBadRequest(text="no such channel")
    root = await adapter.root(channel, root_id)
    if root is None or root.thread is not None:
        raise web.HTTPNotFound(text="no such message")
    messages = await adapter.shown_in(channel, thread=root.id)
    return html_response(template.render(adapter.page_context(root=root, messages=messages)))


async def _code_css(_request: web.Request) -> web.Response:
    return web.Response(
        text=code_styles(), content_type="text/css", headers={"Cache-Control": "max-age=3600"}
    )


async def _socket(request: web.Request) -> web.StreamResponse:
    from confab.adapters.web.adapter import Visitor

    adapter = request.app[ADAPTER]
    try:
        name, channel = visitor_of(request)
    except BadVisitor as problem:
        raise web.HTTPBadRequest(text=str(problem)) from None
    if not same_origin(request):
        log.info("web chat: refused a socket from origin %r", request.headers.get("Origin"))
        raise web.HTTPForbidden(text="cross-origin")
    socket = web.WebSocketResponse(heartbeat=30.0, max_msg_size=MAX_FRAME_BYTES)
    await socket.prepare(request)
    visitor = Visitor(socket, name, channel)
    adapter.join(visitor)
    try:
        async for frame in socket:
            if frame.type != WSMsgType.TEXT:
                continue
            said = _said(frame.data)
            if said is None:
                log.info("web chat: %s in #%s sent a frame that is not a message", name, channel)
                await visitor.send(adapter.notice("That could not be read as a message."))
                continue
            text, thread, ask = said
            if text:
                await adapter.said(visitor, text, thread=thread, ask=ask)
    finally:
        adapter.leave(visitor)
    return socket


def _said(data: str) -> tuple[str, str | None, bool] | None:
    """(text, thread, ask) of a frame htmx sent for a form; None when it is not one."""
    try:
        values = json.loads(data)
    except ValueError:
        return None
    if not isinstance(values, dict) or not isinstance(values.get("text", ""), str):
        return None
    thread = values.get("thread") or None
    if thread is not None and (not isinstance(thread, str) or len(thread) > 64):
        return None
    return clean_text(values.get("text", "")).strip(), thread, bool(values.get("ask"))
