"""A loopback Discord for adapter tests: REST v10 and the gateway on 127.0.0.1, which
the real discord.py client talks to over real HTTP and a real WebSocket. Nothing here
reaches the internet, and nothing here imports discord.py: it is Discord's side.

Point ``discord.http.Route.BASE`` at :attr:`FakeDiscord.api_base_url` and
``DiscordWebSocket.DEFAULT_GATEWAY`` at :attr:`FakeDiscord.gateway_url` (Confab's
``[discord] api_base_url`` and ``gateway_url`` do both); ``/gateway/bot`` and READY's
``resume_gateway_url`` point at the same socket, so every path lands here.

The world: one guild with one text channel, a human member and the bot, a DM channel
with the human, and threads as they are opened. What discord.py relies on, and so
this fake does as Discord does:

- JSON bodies carry ``Content-Type: application/json`` exactly: discord.py compares
  the header verbatim and reads anything else (``...; charset=utf-8``) as text.
- Every response carries ``Via``: discord.py retries a 429 only when it has one, and
  takes one without it for a Cloudflare ban.
- Snowflakes grow from a counter but encode the time: discord.py reads a message's
  ``created_at`` and an interaction's 15-minute token life from the id.
- Gateway frames are JSON text. discord.py asks for ``compress=zlib-stream`` but
  inflates binary frames only and parses text frames as they come.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import json
import secrets
import socket
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import WSMsgType, web

Json = dict[str, Any]
Handler = Callable[[web.Request], Any]

API_PREFIX = "/api/v10"
GATEWAY_PATH = "/gateway"
TOKEN = "fake-discord-bot-token"
# Fixed ids for the world, so a config (or a subprocess) can name them up front.
# A bot user's id is its application's id, as for every application made since 2018.
BOT_ID = APP_ID = "1100000000000000001"
GUILD_ID = "1100000000000000002"
CHANNEL_ID = "1100000000000000003"
HUMAN_ID = "1100000000000000004"
DM_CHANNEL_ID = "1100000000000000005"
ADMIN_ROLE_ID = "1100000000000000006"
OWNER_ID = "1100000000000000007"

DISCORD_EPOCH_MS = 1_420_070_400_000
TEXT, DM, PUBLIC_THREAD = 0, 1, 11
DEFAULT_MESSAGE, REPLY, CHAT_INPUT_COMMAND = 0, 19, 20
EPHEMERAL, LOADING = 1 << 6, 1 << 7
GATEWAY_MESSAGE_CONTENT_LIMITED = 1 << 19  # an unverified app granted the intent
PRIVILEGED_INTENTS = (1 << 1) | (1 << 8) | (1 << 15)  # members, presences, content
MAX_CONTENT = 2000
# Close codes after which Discord forgets the session: the client must identify again.
SESSION_ENDING_CLOSES = frozenset({1000, 1001, 4004, 4007, 4009, 4010, 4011, 4012, 4013, 4014})
EVERYONE_PERMISSIONS = "2248473465835073"  # view, send, read history, threads, ...


def free_port() -> int:
    """A loopback port nothing listens on now (for a Discord that is not up yet)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def snowflake_time(snowflake: str) -> str:
    """The ISO 8601 time a snowflake encodes."""
    ms = (int(snowflake) >> 22) + DISCORD_EPOCH_MS
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat()


class Snowflakes:
    """Discord ids: a millisecond timestamp over a counter, always increasing."""

    def __init__(self) -> None:
        self._last = 0

    def next(self) -> str:
        stamped = (int(time.time() * 1000) - DISCORD_EPOCH_MS) << 22
        self._last = max(self._last + 1, stamped)
        return str(self._last)


@dataclass(frozen=True)
class Person:
    """A Discord user, and the guild member they are."""

    id: str
    username: str
    global_name: str | None = None
    bot: bool = False
    roles: tuple[str, ...] = ()

    def user_json(self) -> Json:
        return {
            "id": self.id,
            "username": self.username,
            "discriminator": "0",
            "global_name": self.global_name,
            "avatar": None,
            "bot": self.bot,
            "public_flags": 0,
            "flags": 0,
            "banner": None,
            "accent_color": None,
            "avatar_decoration_data": None,
        }

    def member_json(self, *, with_user: bool = True) -> Json:
        member: Json = {
            "roles": list(self.roles),
            "joined_at": "2024-01-01T00:00:00+00:00",
            "nick": None,
            "avatar": None,
            "banner": None,
            "premium_since": None,
            "communication_disabled_until": None,
            "deaf": False,
            "mute": False,
            "flags": 0,
            "pending": False,
        }
        return {"user": self.user_json(), **member} if with_user else member


BOT = Person(BOT_ID, "confab", None, bot=True)
HUMAN = Person(HUMAN_ID, "ada", "Ada")


@dataclass
class Channel:
    """A text channel, a DM or a thread."""

    id: str
    name: str
    type: int = TEXT
    guild_id: str | None = GUILD_ID
    parent_id: str | None = None  # a thread's channel
    owner_id: str | None = None  # who opened a thread

    def to_json(self) -> Json:
        if self.type == DM:
            return {
                "id": self.id,
                "type": DM,
                "last_message_id": None,
                "flags": 0,
                "recipients": [HUMAN.user_json()],
            }
        body: Json = {
            "id": self.id,
            "type": self.type,
            "guild_id": self.guild_id,
            "name": self.name,
            "parent_id": self.parent_id,
            "position": 0,
            "permission_overwrites": [],
            "nsfw": False,
            "topic": None,
            "last_message_id": None,
            "rate_limit_per_user": 0,
            "flags": 0,
        }
        if self.type == PUBLIC_THREAD:
            body |= {
                "owner_id": self.owner_id,
                "message_count": 0,
                "member_count": 1,
                "total_message_sent": 0,
                "thread_metadata": {
                    "archived": False,
                    "auto_archive_duration": 1440,
                    "archive_timestamp": now_iso(),
                    "locked": False,
                    "create_timestamp": now_iso(),
                },
            }
        return body


@dataclass
class StoredMessage:
    """A message as the channel shows it now (edits applied)."""

    id: str
    channel_id: str
    author: Person
    content: str
    type: int = DEFAULT_MESSAGE
    flags: int = 0
    mentions: tuple[Person, ...] = ()
    reference: str | None = None  # the message it replies to
    edited_at: str | None = None
    interaction: Json | None = None  # the command an interaction's answer answers
    thread_id: str | None = None  # a thread opened on it

    @property
    def by_bot(self) -> bool:
        return self.author.id == BOT_ID


@dataclass(frozen=True)
class Write:
    """One write Discord accepted: a message, an edit, a callback, a command sync
    (whose JSON list is ``body["commands"]``)."""

    at: float  # time.monotonic()
    method: str
    route: str  # the route as Discord's docs write it: /channels/{channel_id}/messages
    channel: str | None
    body: Json
    message: str | None = None  # the message it created or changed


@dataclass(frozen=True)
class Hit:
    """One REST request, with the status it got (faults included)."""

    at: float
    method: str
    route: str | None  # None for a route this fake does not know
    path: str
    status: int


@dataclass(frozen=True)
class Identify:
    """One IDENTIFY the gateway received."""

    at: float
    token: str
    intents: int
    properties: Json


@dataclass
class _Fault:
    method: str
    route: str
    status: int
    body: Json
    headers: dict[str, str]
    left: int

    def matches(self, method: str, route: str, path: str) -> bool:
        if self.left <= 0 or self.method != method:
            return False
        return self.route in (route, "*") or fnmatch.fnmatchcase(path, self.route)


@dataclass
class _Interaction:
    id: str
    token: str
    channel_id: str
    name: str
    user: Person
    created: float
    acknowledged: bool = False
    original: str | None = None  # the response's message id


@dataclass
class _Session:
    id: str
    sequence: int = 0
    sent: list[Json] = field(default_factory=list)  # dispatches, for a RESUME's replay
    socket: web.WebSocketResponse | None = None


DEFAULT_FAULTS: dict[int, Json] = {
    401: {"message": "401: Unauthorized", "code": 0},
    403: {"message": "Missing Access", "code": 50001},
    404: {"message": "Unknown Channel", "code": 10003},
    500: {"message": "500: Internal Server Error", "code": 0},
    502: {"message": "502: Bad Gateway", "code": 0},
}


def rate_limited(
    retry_after: float = 1.0, *, is_global: bool = False
) -> tuple[Json, dict[str, str]]:
    """The body and headers of a 429, as Discord sends them."""
    body = {
        "message": "You are being rate limited.",
        "retry_after": retry_after,
        "global": is_global,
    }
    headers = {
        "Retry-After": str(max(1, round(retry_after))),
        "X-RateLimit-Limit": "5",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": f"{time.time() + retry_after:.3f}",
        "X-RateLimit-Reset-After": f"{retry_after:.3f}",
        "X-RateLimit-Bucket": "f0a1b2c3d4e5f60718293a4b5c6d7e8f",
        "X-RateLimit-Scope": "shared" if not is_global else "global",
    }
    if is_global:
        headers["X-RateLimit-Global"] = "true"
    return body, headers


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    # Exactly "application/json": json_response's "; charset=utf-8" reads as text to discord.py.
    return web.Response(
        body=json.dumps(body).encode(),
        status=status,
        headers={"Content-Type": "application/json", **(headers or {})},
    )


def _error(status: int, code: int, message: str) -> web.Response:
    return _json({"message": message, "code": code}, status)


def _option_type(value: object) -> int:
    if isinstance(value, bool):
        return 5
    if isinstance(value, int):
        return 4
    if isinstance(value, float):
        return 10
    return 3


class FakeDiscord:
    """Discord's REST API and gateway for one bot, recording what the bot does.

    ``writes`` holds every write Discord accepted, in order; ``requests`` every REST
    request with its status; ``unknown`` the requests to routes this fake lacks.
    """

    def __init__(
        self, *, port: int = 0, token: str = TOKEN, heartbeat_interval_ms: int = 1000
    ) -> None:
        self.port = port
        self.token = token
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.ack_heartbeats = True  # False: a zombie connection that discord.py must notice
        self.refuse_privileged_intents = False  # True: IDENTIFY asking for them gets 4014
        self.callback_deadline_s = 3.0  # an interaction not acknowledged by then is gone
        self.writes: list[Write] = []
        self.requests: list[Hit] = []
        self.unknown: list[tuple[str, str]] = []  # (method, path)
        self.identifies: list[Identify] = []
        self.resumes = 0
        self.heartbeats = 0
        self.commands: dict[str | None, list[Json]] = {}  # by guild id; None: global
        self.connected = asyncio.Event()  # a session is READY (or RESUMED) now
        self.channels: dict[str, Channel] = {
            CHANNEL_ID: Channel(CHANNEL_ID, "general"),
            DM_CHANNEL_ID: Channel(DM_CHANNEL_ID, "", DM, None),
        }
        self.messages: dict[str, list[StoredMessage]] = {}
        self._ids = Snowflakes()
        self._faults: list[_Fault] = []
        self._interactions: dict[str, _Interaction] = {}  # by token
        self._sessions: dict[str, _Session] = {}
        self._sockets: set[web.WebSocketResponse] = set()
        self._closing: set[web.WebSocketResponse] = set()  # closed by this side

    # -- where it is -------------------------------------------------------------

    @property
    def api_base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{API_PREFIX}"

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}{GATEWAY_PATH}"

    def config(self) -> dict[str, str]:
        """The ``[discord]`` keys that point a bot here."""
        return {"api_base_url": self.api_base_url, "gateway_url": self.gateway_url}

    # -- what the bot did ----------------------------------------------------------

    def writes_to(self, route: str, method: str | None = None) -> list[Write]:
        return [w for w in self.writes if w.route == route and method in (None, w.method)]

    def hits(self, route: str, method: str | None = None) -> list[Hit]:
        return [h for h in self.requests if h.route == route and method in (None, h.method)]

    def shown(self, channel: str = CHANNEL_ID) -> list[str]:
        """What everyone sees of the bot's messages in ``channel``, edits applied, oldest
        first (interaction answers included, ephemeral ones not)."""
        return [
            m.content
            for m in self.messages.get(channel, [])
            if m.by_bot and not m.flags & EPHEMERAL
        ]

    def message(self, message_id: str) -> StoredMessage | None:
        return next((m for ms in self.messages.values() for m in ms if m.id == message_id), None)

    async def wait_for(self, condition: Callable[[], bool], within_s: float = 5.0) -> None:
        """Wait until ``condition()`` holds (the bot works on its own time)."""
        deadline = time.monotonic() + within_s
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"not within {within_s} s: {condition}")
            await asyncio.sleep(0.01)

    async def wait_connected(self, within_s: float = 5.0) -> None:
        """Wait until a bot's session is READY (or RESUMED)."""
        await asyncio.wait_for(self.connected.wait(), within_s)

    # -- what Discord does -----------------------------------------------------------

    def fail_next(
        self,
        method: str,
        route: str,
        status: int,
        body: Json | None = None,
        *,
        headers: dict[str, str] | None = None,
        times: int = 1,
        retry_after: float = 1.0,
    ) -> None:
        """Answer the next ``times`` requests to ``route`` with ``status``. ``route`` is a
        route as Discord's docs write it (``/channels/{channel_id}/messages``), ``*`` for
        any, or a glob on the path (``/channels/123/*``). A 429 gets Discord's body and
        rate-limit headers for ``retry_after``; others a default body for the status.
        ``headers`` replace defaults (``{"Via": ""}`` makes a 429 a Cloudflare ban)."""
        default_headers: dict[str, str] = {}
        if status == 429:
            default_body, default_headers = rate_limited(retry_after)
        else:
            default_body = DEFAULT_FAULTS.get(status, {"message": f"{status}", "code": 0})
        self._faults.append(
            _Fault(
                method.upper(),
                route,
                status,
                default_body if body is None else body,
                {**default_headers, **(headers or {})},
                times,
            )
        )

    def seed(self, channel: str, text: str, author: Person = HUMAN) -> StoredMessage:
        """Put a message in a channel's history without telling the gateway."""
        return self._store(StoredMessage(self._ids.next(), channel, author, text))

    async def dispatch(self, event: str, data: Json) -> int:
        """Send a dispatch to every READY session; return how many got it."""
        sent = 0
        for session in list(self._sessions.values()):
            if session.socket is not None and not session.socket.closed:
                await self._send_dispatch(session, event, data)
                sent += 1
        return sent

    async def dispatch_message(
        self,
        channel: str,
        text: str,
        *,
        author: Person = HUMAN,
        mentions_bot: bool = False,
    ) -> StoredMessage:
        """Someone writes ``text`` in ``channel`` (a MESSAGE_CREATE); a mention of the bot
        is written first in the text, as Discord's client puts it."""
        content = f"<@{BOT_ID}> {text}" if mentions_bot else text
        message = self._store(
            StoredMessage(
                self._ids.next(),
                channel,
                author,
                content,
                mentions=(BOT,) if mentions_bot else (),
            )
        )
        await self.dispatch("MESSAGE_CREATE", self._message_json(message, gateway=True))
        return message

    async def dispatch_slash_command(
        self,
        name: str,
        options: dict[str, str | int | float | bool] | None = None,
        *,
        channel: str = CHANNEL_ID,
        author: Person = HUMAN,
    ) -> Json:
        """Someone runs ``/name`` with ``options`` (an INTERACTION_CREATE); returns the
        interaction as sent, whose ``token`` names its webhook routes."""
        registered = next(
            (
                (scope, command)
                for scope in (GUILD_ID, None)
                for command in self.commands.get(scope, [])
                if command["name"] == name
            ),
            None,
        )
        if registered is not None:
            known = {option["name"] for option in registered[1].get("options", [])}
            if unknown := set(options or {}) - known:
                # Discord sends only the options a command was registered with.
                raise ValueError(f"/{name} has no option {sorted(unknown)}; it has {sorted(known)}")
        ident = self._ids.next()
        token = f"interaction-token-{ident}"
        self._interactions[token] = _Interaction(
            ident, token, channel, name, author, time.monotonic()
        )
        data: Json = {
            "id": registered[1]["id"] if registered else self._ids.next(),
            "name": name,
            "type": 1,
            "options": [
                {"name": key, "type": _option_type(value), "value": value}
                for key, value in (options or {}).items()
            ],
        }
        if registered and registered[0] is not None:
            data["guild_id"] = registered[0]
        where = self.channels[channel]
        interaction: Json = {
            "id": ident,
            "application_id": APP_ID,
            "type": 2,
            "data": data,
            "token": token,
            "version": 1,
            "channel_id": channel,
            "channel": {**where.to_json(), "permissions": EVERYONE_PERMISSIONS},
            "app_permissions": EVERYONE_PERMISSIONS,
            "locale": "en-US",
            "entitlements": [],
            "entitlement_sku_ids": [],
            "attachment_size_limit": 10 * 1024 * 1024,
        }
        if where.guild_id is not None:
            interaction |= {
                "guild_id": where.guild_id,
                "guild": {"id": where.guild_id, "locale": "en-US", "features": []},
                "guild_locale": "en-US",
                "member": {**author.member_json(), "permissions": EVERYONE_PERMISSIONS},
                "authorizing_integration_owners": {"0": where.guild_id},
                "context": 0,
            }
        else:
            interaction |= {
                "user": author.user_json(),
                "authorizing_integration_owners": {"1": author.id},
                "context": 1,
            }
        await self.dispatch("INTERACTION_CREATE", interaction)
        return interaction

    async def close_gateway(self, code: int = 4000, reason: str = "") -> None:
        """Close every open gateway socket with ``code`` (4000: please reconnect;
        4004: bad token; 4010-4014: shard and intent refusals; ...)."""
        for ws in list(self._sockets):
            if code in SESSION_ENDING_CLOSES:
                self._forget(ws)
            self._closing.add(ws)
            await ws.close(code=code, message=reason.encode())

    async def request_reconnect(self) -> None:
        """Send op 7 RECONNECT, as Discord does before moving a session."""
        for ws in list(self._sockets):
            await ws.send_str(json.dumps({"op": 7, "d": None, "s": None, "t": None}))

    # -- the HTTP side -----------------------------------------------------------------

    def build_app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware])
        app.router.add_get(GATEWAY_PATH, self._gateway)
        for method, route, handler in self._routes():
            app.router.add_route(method, API_PREFIX + route, handler)
        app.router.add_route("*", "/{tail:.*}", self._unknown)
        return app

    def _routes(self) -> list[tuple[str, str, Handler]]:
        messages = "/channels/{channel_id}/messages"
        original = "/webhooks/{application_id}/{interaction_token}/messages/@original"
        followup = "/webhooks/{application_id}/{interaction_token}"
        return [
            ("GET", "/users/@me", self._me),
            ("GET", "/oauth2/applications/@me", self._application),
            ("GET", "/gateway", self._gateway_info),
            ("GET", "/gateway/bot", self._gateway_info),
            ("PUT", "/applications/{application_id}/commands", self._sync_commands),
            ("GET", "/applications/{application_id}/commands", self._get_commands),
            (
                "PUT",
                "/applications/{application_id}/guilds/{guild_id}/commands",
                self._sync_commands,
            ),
            (
                "GET",
                "/applications/{application_id}/guilds/{guild_id}/commands",
                self._get_commands,
            ),
            ("GET", "/channels/{channel_id}", self._get_channel),
            ("POST", messages, self._create_message),
            ("GET", messages, self._history),
            ("GET", messages + "/{message_id}", self._get_message),
            ("PATCH", messages + "/{message_id}", self._edit_message),
            ("POST", messages + "/{message_id}/threads", self._create_thread),
            ("POST", "/channels/{channel_id}/typing", self._typing),
            ("POST", "/interactions/{interaction_id}/{interaction_token}/callback", self._callback),
            ("GET", original, self._get_webhook_message),
            ("PATCH", original, self._edit_webhook_message),
            ("POST", followup, self._followup),
            ("GET", followup + "/messages/{message_id}", self._get_webhook_message),
            ("PATCH", followup + "/messages/{message_id}", self._edit_webhook_message),
        ]

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path == GATEWAY_PATH:
            response: web.StreamResponse = await handler(request)
            return response
        canonical = (
            request.match_info.route.resource.canonical if request.match_info.route.resource else ""
        )
        route = canonical.removeprefix(API_PREFIX) if canonical.startswith(API_PREFIX) else None
        path = request.path.removeprefix(API_PREFIX)
        fault = next(
            (f for f in self._faults if route and f.matches(request.method, route, path)), None
        )
        if fault is not None:
            fault.left -= 1
            response = _json(fault.body, fault.status, fault.headers)
        elif (
            route
            and not route.startswith(("/webhooks/", "/interactions/"))
            and (request.headers.get("Authorization") != f"Bot {self.token}")
        ):
            response = _json(DEFAULT_FAULTS[401], 401)
        else:
            try:
                response = await handler(request)
            except ValueError:  # a body that is not JSON
                response = _error(400, 50109, "The request body contains invalid JSON.")
        response.headers.setdefault("Via", "1.1 google")
        self.requests.append(Hit(time.monotonic(), request.method, route, path, response.status))
        return response

    async def _unknown(self, request: web.Request) -> web.Response:
        self.unknown.append((request.method, request.path))
        return _error(404, 0, "404: Not Found")

    def _record(
        self, request: web.Request, channel: str | None, body: Json, message: str | None = None
    ) -> None:
        canonical = request.match_info.route.resource
        route = canonical.canonical.removeprefix(API_PREFIX) if canonical else request.path
        self.writes.append(Write(time.monotonic(), request.method, route, channel, body, message))

    # -- REST: the bot and its application -------------------------------------------------

    async def _me(self, request: web.Request) -> web.Response:
        user = BOT.user_json() | {"verified": True, "mfa_enabled": False, "email": None}
        return _json(user | {"locale": "en-US", "premium_type": 0})

    async def _application(self, request: web.Request) -> web.Response:
        owner = Person(OWNER_ID, "owner", "Owner")
        return _json(
            {
                "id": APP_ID,
                "name": BOT.username,
                "icon": None,
                "description": "",
                "summary": "",
                "type": None,
                "bot_public": True,
                "bot_require_code_grant": False,
                "verify_key": "0" * 64,
                "owner": owner.user_json(),
                "team": None,
                "flags": 0 if self.refuse_privileged_intents else GATEWAY_MESSAGE_CONTENT_LIMITED,
                "bot": BOT.user_json(),
                "interactions_endpoint_url": None,
                "approximate_guild_count": 1,
                "redirect_uris": [],
                "tags": [],
                "hook": True,
            }
        )

    async def _gateway_info(self, request: web.Request) -> web.Response:
        body: Json = {"url": self.gateway_url}
        if request.path.endswith("/bot"):
            body |= {
                "shards": 1,
                "session_start_limit": {
                    "total": 1000,
                    "remaining": 1000 - len(self.identifies),
                    "reset_after": 86_400_000,
                    "max_concurrency": 1,
                },
            }
        return _json(body)

    async def _sync_commands(self, request: web.Request) -> web.Response:
        guild = request.match_info.get("guild_id")
        payload = await _body(request)
        commands = [
            {
                "id": self._ids.next(),
                "application_id": APP_ID,
                "version": self._ids.next(),
                "type": 1,
                "default_member_permissions": None,
                "dm_permission": True,
                "nsfw": False,
                "options": [],
                **command,
                **({"guild_id": guild} if guild else {}),
            }
            for command in (payload if isinstance(payload, list) else [])
        ]
        self.commands[guild] = commands
        self._record(request, None, {"commands": payload})
        return _json(commands)

    async def _get_commands(self, request: web.Request) -> web.Response:
        return _json(self.commands.get(request.match_info.get("guild_id"), []))

    # -- REST: channels and messages -----------------------------------------------------

    async def _get_channel(self, request: web.Request) -> web.Response:
        channel = self.channels.get(request.match_info["channel_id"])
        if channel is None:
            return _error(404, 10003, "Unknown Channel")
        return _json(channel.to_json())

    async def _create_message(self, request: web.Request) -> web.Response:
        channel = request.match_info["channel_id"]
        if channel not in self.channels:
            return _error(404, 10003, "Unknown Channel")
        body = await _body(request)
        content = str(body.get("content") or "")
        if refusal := _refuse_content(content, body):
            return refusal
        reference = (body.get("message_reference") or {}).get("message_id")
        message = self._store(
            StoredMessage(
                self._ids.next(),
                channel,
                BOT,
                content,
                REPLY if reference else DEFAULT_MESSAGE,
                reference=None if reference is None else str(reference),
            )
        )
        self._record(request, channel, body, message.id)
        await self.dispatch("MESSAGE_CREATE", self._message_json(message, gateway=True))
        return _json(self._message_json(message))

    async def _edit_message(self, request: web.Request) -> web.Response:
        channel = request.match_info["channel_id"]
        message = self._find(channel, request.match_info["message_id"])
        if message is None:
            return _error(404, 10008, "Unknown Message")
        if not message.by_bot:
            return _error(403, 50005, "Cannot edit a message authored by another user")
        body = await _body(request)
        if refusal := _refuse_content(str(body.get("content") or "x"), body):
            return refusal
        self._edit(message, body)
        self._record(request, channel, body, message.id)
        await self.dispatch("MESSAGE_UPDATE", self._message_json(message, gateway=True))
        return _json(self._message_json(message))

    async def _get_message(self, request: web.Request) -> web.Response:
        message = self._find(request.match_info["channel_id"], request.match_info["message_id"])
        if message is None:
            return _error(404, 10008, "Unknown Message")
        return _json(self._message_json(message))

    async def _history(self, request: web.Request) -> web.Response:
        channel = request.match_info["channel_id"]
        if channel not in self.channels:
            return _error(404, 10003, "Unknown Channel")
        limit = max(1, min(100, int(request.query.get("limit", "50"))))
        found = sorted(self.messages.get(channel, []), key=lambda m: int(m.id), reverse=True)
        if "before" in request.query:
            found = [m for m in found if int(m.id) < int(request.query["before"])]
        if "after" in request.query:
            found = [m for m in found if int(m.id) > int(request.query["after"])][-limit:]
        return _json([self._message_json(m) for m in found[:limit]])

    async def _create_thread(self, request: web.Request) -> web.Response:
        parent = request.match_info["channel_id"]
        message = self._find(parent, request.match_info["message_id"])
        if message is None:
            return _error(404, 10008, "Unknown Message")
        if message.thread_id is not None:
            return _error(400, 160004, "A thread has already been created for this message")
        body = await _body(request)
        # A thread opened on a message takes that message's id.
        thread = Channel(
            message.id, str(body.get("name", ""))[:100], PUBLIC_THREAD, GUILD_ID, parent, BOT_ID
        )
        self.channels[thread.id] = thread
        message.thread_id = thread.id
        self._record(request, parent, body, message.id)
        await self.dispatch("THREAD_CREATE", thread.to_json() | {"newly_created": True})
        return _json(thread.to_json())

    async def _typing(self, request: web.Request) -> web.Response:
        if request.match_info["channel_id"] not in self.channels:
            return _error(404, 10003, "Unknown Channel")
        return web.Response(status=204)

    # -- REST: interactions and their webhooks ----------------------------------------------

    async def _callback(self, request: web.Request) -> web.Response:
        interaction = self._interactions.get(request.match_info["interaction_token"])
        if interaction is None or interaction.id != request.match_info["interaction_id"]:
            return _error(404, 10062, "Unknown interaction")
        if time.monotonic() - interaction.created > self.callback_deadline_s:
            return _error(404, 10062, "Unknown interaction")
        if interaction.acknowledged:
            return _error(400, 40060, "Interaction has already been acknowledged.")
        body = await _body(request)
        kind = int(body.get("type", 0))
        data = body.get("data") or {}
        interaction.acknowledged = True
        message = None
        if kind in (4, 5):  # a message now, or "thinking..." until the original is edited
            message = self._store(
                StoredMessage(
                    self._ids.next(),
                    interaction.channel_id,
                    BOT,
                    str(data.get("content") or "") if kind == 4 else "",
                    CHAT_INPUT_COMMAND,
                    int(data.get("flags") or 0) | (LOADING if kind == 5 else 0),
                    interaction=self._interaction_metadata(interaction),
                )
            )
            interaction.original = message.id
        self._record(request, interaction.channel_id, body, None if message is None else message.id)
        if request.query.get("with_response") not in ("1", "true", "True"):
            return web.Response(status=204)
        answer: Json = {
            "interaction": {
                "id": interaction.id,
                "type": 2,
                "response_message_id": None if message is None else message.id,
                "response_message_loading": kind == 5,
                "response_message_ephemeral": bool(message and message.flags & EPHEMERAL),
            }
        }
        if message is not None:
            answer["resource"] = {"type": kind, "message": self._message_json(message)}
        return _json(answer)

    async def _followup(self, request: web.Request) -> web.Response:
        interaction = self._webhook(request)
        if interaction is None:
            return _error(404, 10015, "Unknown Webhook")
        if not interaction.acknowledged:
            return _error(404, 10015, "Unknown Webhook")
        body = await _body(request)
        if refusal := _refuse_content(str(body.get("content") or ""), body):
            return refusal
        message = self._store(
            StoredMessage(
                self._ids.next(),
                interaction.channel_id,
                BOT,
                str(body.get("content") or ""),
                CHAT_INPUT_COMMAND,
                int(body.get("flags") or 0),
                interaction=self._interaction_metadata(interaction),
            )
        )
        self._record(request, interaction.channel_id, body, message.id)
        if request.query.get("wait") not in ("1", "true", "True"):
            return web.Response(status=204)
        return _json(self._message_json(message))

    async def _edit_webhook_message(self, request: web.Request) -> web.Response:
        interaction, message = self._webhook_message(request)
        if interaction is None:
            return _error(404, 10015, "Unknown Webhook")
        if message is None:
            return _error(404, 10008, "Unknown Message")
        body = await _body(request)
        if refusal := _refuse_content(str(body.get("content") or "x"), body):
            return refusal
        self._edit(message, body)
        message.flags &= ~LOADING
        self._record(request, interaction.channel_id, body, message.id)
        return _json(self._message_json(message))

    async def _get_webhook_message(self, request: web.Request) -> web.Response:
        interaction, message = self._webhook_message(request)
        if interaction is None:
            return _error(404, 10015, "Unknown Webhook")
        if message is None:
            return _error(404, 10008, "Unknown Message")
        return _json(self._message_json(message))

    def _webhook(self, request: web.Request) -> _Interaction | None:
        if request.match_info["application_id"] != APP_ID:
            return None
        return self._interactions.get(request.match_info["interaction_token"])

    def _webhook_message(
        self, request: web.Request
    ) -> tuple[_Interaction | None, StoredMessage | None]:
        interaction = self._webhook(request)
        if interaction is None:
            return None, None
        ident = request.match_info.get("message_id") or interaction.original
        message = self._find(interaction.channel_id, ident or "")
        if message is None or message.interaction is None:
            return interaction, None
        if message.interaction["id"] != interaction.id:
            return interaction, None
        return interaction, message

    # -- messages as JSON ------------------------------------------------------------------

    def _store(self, message: StoredMessage) -> StoredMessage:
        self.messages.setdefault(message.channel_id, []).append(message)
        return message

    def _find(self, channel: str, message_id: str) -> StoredMessage | None:
        return next((m for m in self.messages.get(channel, []) if m.id == message_id), None)

    def _edit(self, message: StoredMessage, body: Json) -> None:
        if "content" in body:
            message.content = str(body["content"] or "")
        if "flags" in body and body["flags"] is not None:
            message.flags = int(body["flags"])
        message.edited_at = now_iso()

    def _interaction_metadata(self, interaction: _Interaction) -> Json:
        channel = self.channels[interaction.channel_id]
        owners = {"0": channel.guild_id} if channel.guild_id else {"1": interaction.user.id}
        return {
            "id": interaction.id,
            "type": 2,
            "name": interaction.name,
            "user": interaction.user.user_json(),
            "authorizing_integration_owners": owners,
        }

    def _message_json(self, message: StoredMessage, *, gateway: bool = False) -> Json:
        channel = self.channels.get(message.channel_id)
        guild_id = channel.guild_id if channel else None
        body: Json = {
            "id": message.id,
            "channel_id": message.channel_id,
            "author": message.author.user_json(),
            "content": message.content,
            "timestamp": snowflake_time(message.id),
            "edited_timestamp": message.edited_at,
            "tts": False,
            "mention_everyone": False,
            "mentions": [
                p.user_json() | ({"member": p.member_json(with_user=False)} if guild_id else {})
                for p in message.mentions
            ],
            "mention_roles": [],
            "attachments": [],
            "embeds": [],
            "components": [],
            "pinned": False,
            "type": message.type,
            "flags": message.flags,
        }
        if message.reference is not None:
            referenced = self._find(message.channel_id, message.reference)
            body["message_reference"] = {
                "type": 0,
                "message_id": message.reference,
                "channel_id": message.channel_id,
                **({"guild_id": guild_id} if guild_id else {}),
            }
            body["referenced_message"] = referenced and self._message_json(referenced)
        if message.interaction is not None:
            body |= {
                "webhook_id": APP_ID,
                "application_id": APP_ID,
                "interaction_metadata": message.interaction,
            }
        if message.thread_id is not None and message.thread_id in self.channels:
            body["thread"] = self.channels[message.thread_id].to_json()
        if gateway and guild_id:
            body["guild_id"] = guild_id
            body["member"] = message.author.member_json(with_user=False)
        return body

    # -- the gateway --------------------------------------------------------------------

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True, max_msg_size=0)
        await ws.prepare(request)
        self._sockets.add(ws)
        try:
            await self._send(ws, 10, {"heartbeat_interval": self.heartbeat_interval_ms})
            async for frame in ws:
                if frame.type is not WSMsgType.TEXT:
                    continue
                payload = json.loads(frame.data)
                op, data = payload.get("op"), payload.get("d")
                if op == 1:
                    self.heartbeats += 1
                    if self.ack_heartbeats:
                        await self._send(ws, 11, None)
                elif op == 2:
                    await self._identify(ws, data)
                elif op == 6:
                    await self._resume(ws, data)
        finally:
            self._sockets.discard(ws)
            if ws not in self._closing and ws.close_code in SESSION_ENDING_CLOSES:
                self._forget(ws)  # the bot closed: its session ends with its socket
            self._closing.discard(ws)
            for session in self._sessions.values():
                if session.socket is ws:
                    session.socket = None
            if not any(s.socket is not None for s in self._sessions.values()):
                self.connected.clear()
        return ws

    async def _identify(self, ws: web.WebSocketResponse, data: Json) -> None:
        intents = int(data.get("intents", 0))
        self.identifies.append(
            Identify(time.monotonic(), str(data.get("token")), intents, data.get("properties", {}))
        )
        if data.get("token") != self.token:
            self._closing.add(ws)
            await ws.close(code=4004, message=b"Authentication failed.")
            return
        if self.refuse_privileged_intents and intents & PRIVILEGED_INTENTS:
            self._closing.add(ws)
            await ws.close(code=4014, message=b"Disallowed intent(s).")
            return
        session = _Session(secrets.token_hex(16), socket=ws)
        self._sessions[session.id] = session
        flags = 0 if self.refuse_privileged_intents else GATEWAY_MESSAGE_CONTENT_LIMITED
        ready = {
            "v": 10,
            "user": BOT.user_json() | {"verified": True, "mfa_enabled": False, "email": None},
            "guilds": [{"id": GUILD_ID, "unavailable": True}],
            "session_id": session.id,
            "session_type": "normal",
            "resume_gateway_url": self.gateway_url,
            "application": {"id": APP_ID, "flags": flags},
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "guild_join_requests": [],
            "geo_ordered_rtc_regions": ["rotterdam"],
            "user_settings": {},
            "_trace": ["fake-discord"],
        }
        await self._send_dispatch(session, "READY", ready)
        await self._send_dispatch(session, "GUILD_CREATE", self._guild_json())
        self.connected.set()

    async def _resume(self, ws: web.WebSocketResponse, data: Json) -> None:
        session = self._sessions.get(str(data.get("session_id")))
        if session is None or data.get("token") != self.token:
            await self._send(ws, 9, False)  # not resumable: identify again
            return
        self.resumes += 1
        if session.socket is not None and session.socket is not ws:
            self._closing.add(session.socket)
            await session.socket.close(code=4000)
        session.socket = ws
        seen = int(data.get("seq") or 0)
        for frame in session.sent:
            if frame["s"] > seen:
                await ws.send_str(json.dumps(frame))
        await self._send_dispatch(session, "RESUMED", {"_trace": ["fake-discord"]})
        self.connected.set()

    def _guild_json(self) -> Json:
        everyone = {"id": GUILD_ID, "name": "@everyone", "permissions": EVERYONE_PERMISSIONS}
        admins = {"id": ADMIN_ROLE_ID, "name": "Admins", "permissions": "8"}
        roles = [
            role | {"position": position, "color": 0, "hoist": False, "managed": False,
                    "mentionable": False, "flags": 0, "icon": None, "unicode_emoji": None}
            for position, role in enumerate((everyone, admins))
        ]  # fmt: skip
        return {
            "id": GUILD_ID,
            "name": "Confab Test",
            "icon": None,
            "owner_id": OWNER_ID,
            "joined_at": "2024-01-01T00:00:00+00:00",
            "large": False,
            "unavailable": False,
            "member_count": 2,
            "preferred_locale": "en-US",
            "features": [],
            "afk_timeout": 300,
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "mfa_level": 0,
            "nsfw_level": 0,
            "premium_tier": 0,
            "system_channel_id": CHANNEL_ID,
            "roles": roles,
            "emojis": [],
            "stickers": [],
            "channels": [
                c.to_json()
                for c in self.channels.values()
                if c.guild_id == GUILD_ID and c.type == TEXT
            ],
            "threads": [c.to_json() for c in self.channels.values() if c.type == PUBLIC_THREAD],
            "members": [BOT.member_json(), HUMAN.member_json()],
            "voice_states": [],
            "presences": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
        }

    async def _send(self, ws: web.WebSocketResponse, op: int, data: Any) -> None:
        await ws.send_str(json.dumps({"op": op, "d": data, "s": None, "t": None}))

    async def _send_dispatch(self, session: _Session, event: str, data: Json) -> None:
        session.sequence += 1
        frame = {"op": 0, "t": event, "s": session.sequence, "d": data}
        session.sent = [*session.sent[-999:], frame]
        if session.socket is not None and not session.socket.closed:
            with contextlib.suppress(ConnectionResetError):  # closing: a RESUME replays it
                await session.socket.send_str(json.dumps(frame))

    def _forget(self, ws: web.WebSocketResponse) -> None:
        for ident, session in list(self._sessions.items()):
            if session.socket is ws:
                del self._sessions[ident]


async def _body(request: web.Request) -> Any:
    """A request's JSON, or the ``payload_json`` of a multipart one (files attached)."""
    if not request.can_read_body:
        return {}
    if request.content_type == "multipart/form-data":
        form = await request.post()
        return json.loads(str(form.get("payload_json") or "{}"))
    return await request.json()


def _refuse_content(content: str, body: Json) -> web.Response | None:
    """Discord's refusals of a message body: too long, or nothing to show."""
    if len(content) > MAX_CONTENT:
        errors = {
            "content": {
                "_errors": [
                    {
                        "code": "BASE_TYPE_MAX_LENGTH",
                        "message": f"Must be {MAX_CONTENT} or fewer in length.",
                    }
                ]
            }
        }
        return _json({"message": "Invalid Form Body", "code": 50035, "errors": errors}, 400)
    if not content and not body.get("embeds") and not body.get("attachments"):
        return _error(400, 50006, "Cannot send an empty message")
    return None


@asynccontextmanager
async def running_fake_discord(
    port: int = 0, *, fake: FakeDiscord | None = None
) -> AsyncIterator[FakeDiscord]:
    """Serve ``fake`` (a fresh :class:`FakeDiscord` by default) on 127.0.0.1:``port``
    (a free one when 0) for the duration of the block; at its end the gateway closes
    its sockets with 1001, as Discord going away does, and the port is free again."""
    fake = fake or FakeDiscord()
    runner = web.AppRunner(fake.build_app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    fake.port = runner.addresses[0][1]
    try:
        yield fake
    finally:
        for ws in list(fake._sockets):
            fake._closing.add(ws)
            await ws.close(code=1001, message=b"Discord is going away")
        await runner.cleanup()
