"""A loopback Slack for adapter tests: a fake Web API server that slack_sdk's
`AsyncWebClient` talks to over real HTTP (and that takes commands' response_url
posts). What Slack posts to an app is built in `slack_payloads`. Nothing here
reaches the internet."""

from __future__ import annotations

import base64
import itertools
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from aiohttp import web

BOT_USER_ID = "UBOT"
BOT_ID = "BBOT"
TEAM_ID = "T1"
APP_ID = "A1"
VERIFICATION_TOKEN = "verification-token"

Json = dict[str, Any]


@dataclass(frozen=True)
class SlackCall:
    """One Web API request as the fake received it: `params` merges query and body;
    `at` is when it arrived (`time.monotonic`), `status` the HTTP status answered."""

    method: str
    params: dict[str, Any]
    token: str | None
    at: float = field(default_factory=time.monotonic, compare=False)
    status: int = field(default=200, compare=False)


@dataclass
class StoredMessage:
    """A message in a channel as `conversations.history` would show it."""

    channel: str
    ts: str
    user: str
    text: str
    thread_ts: str | None = None
    bot_id: str | None = None
    reply_count: int = 0

    def to_json(self) -> Json:
        body: Json = {"type": "message", "user": self.user, "text": self.text, "ts": self.ts}
        if self.bot_id is not None:
            body["bot_id"] = self.bot_id
        if self.thread_ts is not None:
            body["thread_ts"] = self.thread_ts
        if self.reply_count:
            body["reply_count"] = self.reply_count
        return body


@dataclass
class StoredFile:
    """A file shared in Slack, served at its `url_private_download` to the bot token."""

    id: str
    name: str
    content: bytes
    mimetype: str
    size: int  # what Slack declares, normally len(content)

    def to_json(self, base: str) -> Json:
        where = f"{base}files-pri/{TEAM_ID}-{self.id}"
        return {
            "id": self.id,
            "name": self.name,
            "title": self.name,
            "mimetype": self.mimetype,
            "filetype": self.name.rpartition(".")[2],
            "size": self.size,
            "mode": "hosted",
            "url_private": f"{where}/{self.name}",
            "url_private_download": f"{where}/download/{self.name}",
        }


LOGIN_PAGE = b"<!DOCTYPE html><html><head><title>Slack</title></head><body>Sign in</body></html>"


@dataclass(frozen=True)
class _Failure:
    status: int
    error: str
    retry_after: int | None


@dataclass
class FakeSlack:
    """The Slack Web API on 127.0.0.1: records every call, answers Slack-shaped JSON.

    Point `AsyncWebClient(token=..., base_url=fake.base_url)` at it. Channels exist as
    soon as something is posted or seeded in them; an unseen channel reads as empty.
    """

    port: int = 0
    calls: list[SlackCall] = field(default_factory=list)
    messages: dict[str, list[StoredMessage]] = field(default_factory=dict)
    users: dict[str, Json] = field(default_factory=dict)
    files: dict[str, StoredFile] = field(default_factory=dict)
    # Slack serves files only to a token with the files:read scope; others get its login page.
    files_read_scope: bool = True
    _failures: dict[str, list[_Failure]] = field(default_factory=dict)
    _ts: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    def calls_to(self, method: str) -> list[SlackCall]:
        return [call for call in self.calls if call.method == method]

    def next_ts(self) -> str:
        return f"1700000000.{next(self._ts) * 100:06d}"

    def seed(
        self,
        channel: str,
        user: str,
        text: str,
        ts: str | None = None,
        thread_ts: str | None = None,
    ) -> StoredMessage:
        """Put a message in a channel (or a thread) as if a person had written it."""
        return self._store(StoredMessage(channel, ts or self.next_ts(), user, text, thread_ts))

    def add_user(
        self, user_id: str, name: str, real_name: str = "", display_name: str = ""
    ) -> None:
        real_name = real_name or name
        self.users[user_id] = {
            "id": user_id,
            "name": name,
            "real_name": real_name,
            "profile": {"display_name": display_name, "real_name": real_name},
        }

    def add_file(
        self,
        name: str,
        content: bytes,
        mimetype: str = "text/plain",
        size: int | None = None,
    ) -> Json:
        """Store a file; the Slack file object (as in a message's `files`) to share it.
        `size` is what Slack declares, when it should differ from the content's."""
        file = StoredFile(
            f"F{len(self.files) + 1}",
            name,
            content,
            mimetype,
            len(content) if size is None else size,
        )
        self.files[file.id] = file
        return file.to_json(self.root_url)

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def fail_next(
        self,
        method: str,
        *,
        status: int = 200,
        error: str | None = None,
        retry_after: int | None = None,
        times: int = 1,
    ) -> None:
        """Make the next `times` calls to `method` fail: HTTP 429 with Retry-After
        when `status=429`, otherwise `{"ok": false, "error": error}`."""
        if status == 429:
            failure = _Failure(
                429, error or "ratelimited", 1 if retry_after is None else retry_after
            )
        else:
            failure = _Failure(status, error or "internal_error", retry_after)
        self._failures.setdefault(method, []).extend([failure] * times)

    def thread(self, channel: str, thread_ts: str) -> list[StoredMessage]:
        """The thread's parent then its replies, oldest first."""
        return sorted(
            (m for m in self.messages.get(channel, []) if thread_ts in (m.ts, m.thread_ts)),
            key=lambda m: Decimal(m.ts),
        )

    def _store(self, message: StoredMessage) -> StoredMessage:
        channel = self.messages.setdefault(message.channel, [])
        if message.thread_ts is not None and message.thread_ts != message.ts:
            parent = next((m for m in channel if m.ts == message.thread_ts), None)
            if parent is not None:
                parent.thread_ts = parent.ts
                parent.reply_count += 1
        channel.append(message)
        return message

    def _find(self, channel: str, ts: str) -> StoredMessage | None:
        return next((m for m in self.messages.get(channel, []) if m.ts == ts), None)

    # The HTTP side.

    def build_app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._handle)
        app.router.add_post("/hooks/{hook}", self._response_url)
        app.router.add_get("/files-pri/{team_file}/download/{name}", self._download)
        return app

    @property
    def hooks_url(self) -> str:
        """Where slash commands' ``response_url`` points: ``hooks_url + "NAME"``."""
        return f"http://127.0.0.1:{self.port}/hooks/"

    async def _response_url(self, request: web.Request) -> web.Response:
        """A command's response_url: records the JSON posted to it as method 'hook:NAME'."""
        self.calls.append(
            SlackCall(f"hook:{request.match_info['hook']}", await request.json(), None)
        )
        return web.Response(text="ok")

    async def _download(self, request: web.Request) -> web.StreamResponse:
        """A file's url_private_download, recorded as method 'download:FILE_ID'. Streamed
        in chunks without a Content-Length, so a reader cannot trust one."""
        file_id = request.match_info["team_file"].removeprefix(f"{TEAM_ID}-")
        header = request.headers.get("Authorization", "")
        token = header.removeprefix("Bearer ") if header.startswith("Bearer ") else None
        self.calls.append(SlackCall(f"download:{file_id}", {}, token))
        file = self.files.get(file_id)
        if file is None:
            return web.Response(status=404, text="Not Found")
        if not token or not self.files_read_scope:
            return web.Response(body=LOGIN_PAGE, content_type="text/html")
        response = web.StreamResponse(headers={"Content-Type": file.mimetype})
        response.enable_chunked_encoding()
        await response.prepare(request)
        for start in range(0, len(file.content), 16 * 1024):
            await response.write(file.content[start : start + 16 * 1024])
        await response.write_eof()
        return response

    async def _handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        params: dict[str, Any] = dict(request.query)
        if request.content_type == "application/json":
            params.update(await request.json())
        elif request.can_read_body:
            params.update(await request.post())
        token = params.pop("token", None)
        header = request.headers.get("Authorization", "")
        if header.startswith("Bearer "):
            token = header.removeprefix("Bearer ")
        arrived = time.monotonic()
        if failures := self._failures.get(method):
            failure = failures.pop(0)
            self.calls.append(SlackCall(method, params, token, arrived, failure.status))
            headers = (
                {} if failure.retry_after is None else {"Retry-After": str(failure.retry_after)}
            )
            body = {"ok": False, "error": failure.error}
            return web.json_response(body, status=failure.status, headers=headers)
        self.calls.append(SlackCall(method, params, token, arrived))
        if not token:
            return web.json_response({"ok": False, "error": "not_authed"})
        answer = self._routes().get(method)
        if answer is None:
            return web.json_response({"ok": False, "error": "unknown_method"})
        try:
            return web.json_response(answer(params))
        except KeyError:  # a required argument is missing, as Slack words it
            return web.json_response({"ok": False, "error": "invalid_arguments"})

    def _routes(self) -> dict[str, Any]:
        return {
            "auth.test": self._auth_test,
            "chat.postMessage": self._post_message,
            "chat.update": self._update,
            "chat.postEphemeral": self._post_ephemeral,
            "conversations.history": self._history,
            "conversations.replies": self._replies,
            "users.info": self._users_info,
            "chat.getPermalink": self._permalink,
            "files.info": self._files_info,
            "apps.connections.open": self._connections_open,
        }

    def _auth_test(self, params: Json) -> Json:
        return {
            "ok": True,
            "url": "https://test.slack.com/",
            "team": "T",
            "user": "confab",
            "team_id": TEAM_ID,
            "user_id": BOT_USER_ID,
            "bot_id": BOT_ID,
        }

    def _post_message(self, params: Json) -> Json:
        channel = str(params["channel"])
        thread_ts = params.get("thread_ts")
        message = self._store(
            StoredMessage(
                channel,
                self.next_ts(),
                BOT_USER_ID,
                str(params.get("text", "")),
                None if thread_ts is None else str(thread_ts),
                BOT_ID,
            )
        )
        return {"ok": True, "channel": channel, "ts": message.ts, "message": message.to_json()}

    def _update(self, params: Json) -> Json:
        channel, ts = str(params["channel"]), str(params["ts"])
        message = self._find(channel, ts)
        if message is None:
            return {"ok": False, "error": "message_not_found"}
        message.text = str(params.get("text", ""))
        return {
            "ok": True,
            "channel": channel,
            "ts": ts,
            "text": message.text,
            "message": message.to_json(),
        }

    def _post_ephemeral(self, params: Json) -> Json:
        return {"ok": True, "message_ts": self.next_ts()}

    def _history(self, params: Json) -> Json:
        oldest = Decimal(str(params.get("oldest", "0")))
        latest = Decimal(str(params["latest"])) if "latest" in params else None
        # Replies stay in their threads; only top-level messages and parents show here.
        visible = [
            m
            for m in self.messages.get(str(params["channel"]), [])
            if m.thread_ts in (None, m.ts)
            and Decimal(m.ts) > oldest
            and (latest is None or Decimal(m.ts) < latest)
        ]
        visible.sort(key=lambda m: Decimal(m.ts), reverse=True)
        return _page(visible, params)

    def _replies(self, params: Json) -> Json:
        thread = self.thread(str(params["channel"]), str(params["ts"]))
        if not thread:
            return {"ok": False, "error": "thread_not_found"}
        return _page(thread, params)

    def _users_info(self, params: Json) -> Json:
        user = self.users.get(str(params.get("user")))
        if user is None:
            return {"ok": False, "error": "user_not_found"}
        return {"ok": True, "user": user}

    def _permalink(self, params: Json) -> Json:
        channel, ts = str(params["channel"]), str(params["message_ts"])
        return {
            "ok": True,
            "channel": channel,
            "permalink": f"https://test.slack.com/archives/{channel}/p{ts.replace('.', '')}",
        }

    def _files_info(self, params: Json) -> Json:
        file = self.files.get(str(params["file"]))
        if file is None:
            return {"ok": False, "error": "file_not_found"}
        return {"ok": True, "file": file.to_json(self.root_url)}

    def _connections_open(self, params: Json) -> Json:
        return {"ok": True, "url": "ws://127.0.0.1:1/never"}


def _page(messages: list[StoredMessage], params: Json) -> Json:
    """One page of `messages` from the cursor on, with Slack's opaque `next_cursor`."""
    limit = int(params.get("limit") or 100)
    cursor = str(params.get("cursor") or "")
    start = int(base64.b64decode(cursor).decode().removeprefix("next:")) if cursor else 0
    page = messages[start : start + limit]
    more = start + limit < len(messages)
    next_cursor = base64.b64encode(f"next:{start + limit}".encode()).decode() if more else ""
    return {
        "ok": True,
        "messages": [m.to_json() for m in page],
        "has_more": more,
        "response_metadata": {"next_cursor": next_cursor},
    }


@asynccontextmanager
async def running_fake_slack(port: int = 0) -> AsyncIterator[FakeSlack]:
    """Serve a fresh `FakeSlack` on loopback (on `port`, or a free one) for the block."""
    fake = FakeSlack()
    runner = web.AppRunner(fake.build_app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    fake.port = runner.addresses[0][1]
    try:
        yield fake
    finally:
        await runner.cleanup()
