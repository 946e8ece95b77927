"""What the HTTP server serves of the pages, and how it refuses what it does not take."""

from __future__ import annotations

import hashlib
import json

import aiohttp
import pytest

from confab.adapters.web import WebAdapter
from confab.bot.testing import ScriptedBackend
from confab.bot.webui import STATIC
from tests.bot.web_helpers import serving
from tests.web.conftest import ADMIN_TOKEN

WEB = {"web": (WebAdapter, WebAdapter)}


def test_the_vendored_scripts_are_the_recorded_releases() -> None:
    rows = [line.split() for line in (STATIC / "VENDORED").read_text().splitlines()]
    recorded = {row[0]: row[3] for row in rows if row and not row[0].startswith("#")}
    assert set(recorded) == {"htmx.min.js", "htmx-ws.min.js"}
    for name, sha256 in recorded.items():
        assert hashlib.sha256((STATIC / name).read_bytes()).hexdigest() == sha256, name


async def test_without_the_web_adapter_or_a_credential_no_page_is_served(db_url: str) -> None:
    async with serving(db_url, ScriptedBackend()) as served:
        for path in ("/", "/chat/", "/admin/", "/admin/login", "/static/htmx.min.js"):
            status, _ = await served.get(path)
            assert status == 404, path
        assert (await served.health())[0] == 200


async def test_a_bad_name_or_channel_is_one_sentence_on_the_join_page(db_url: str) -> None:
    async with serving(db_url, ScriptedBackend(), extra=WEB) as served:
        status, page = await served.get("/chat/?name=ada&channel=no%20spaces%21")
        assert status == 400
        assert "A channel name is up to 64 letters, digits" in page
        status, page = await served.get("/chat/?name=&channel=general")
        assert status == 400 and "Pick a name." in page
        status, page = await served.get("/chat/?name=ada&channel=General")
        assert status == 200 and "#general" in page


async def test_sockets_refuse_other_sites_and_frames_that_are_not_messages(db_url: str) -> None:
    model = ScriptedBackend(["ok"])
    async with serving(db_url, model, extra=WEB) as served, aiohttp.ClientSession() as session:
        url = f"{served.url}/chat/ws?name=ada&channel=general"
        async with session.get(f"{served.url}/chat/?name=ada&channel=general") as response:
            assert "default-src 'self'" in response.headers["Content-Security-Policy"]
        try:
            await session.ws_connect(url, origin="https://evil.example")
        except aiohttp.WSServerHandshakeError as refused:
            assert refused.status == 403
        else:
            raise AssertionError("a socket from another site was opened")
        async with session.ws_connect(url, origin=served.url) as socket:
            for frame in ("not json", json.dumps([1, 2]), json.dumps({"text": 5})):
                await socket.send_str(frame)
                notice = await socket.receive_str(timeout=5)
                assert "That could not be read as a message." in notice
            await socket.send_str(json.dumps({"text": "hello", "ask": "on"}))
            shown = [await socket.receive_str(timeout=5) for _ in range(2)]
            assert "hello" in shown[0] and "ok" in shown[1]
        assert model.prompts and model.prompts[-1][-1].content == "hello"


async def _logged_in(session: aiohttp.ClientSession, url: str) -> None:
    async with session.get(f"{url}/admin/login") as response:
        page = await response.text()
    token = page.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    form = {"csrf": token, "who": "grace", "secret": ADMIN_TOKEN}
    async with session.post(f"{url}/admin/login", data=form, headers={"Origin": url}) as response:
        assert response.status == 200 and str(response.url).endswith("/admin/activity")


async def test_odd_admin_queries_are_answered_not_failed(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONFAB_ADMIN_TOKEN", ADMIN_TOKEN)
    jar = aiohttp.CookieJar(unsafe=True)  # cookies of an IP address's server
    async with (
        serving(db_url, ScriptedBackend(), extra=WEB) as served,
        aiohttp.ClientSession(cookie_jar=jar) as session,
    ):
        await _logged_in(session, served.url)
        for path, expected in [
            ("/admin/skills?channel=nocolon", "is not a channel"),
            ("/admin/skills?channel=web:" + "x" * 300, "is not a channel"),
            ("/admin/conversations?id=99999999999999999999", "By platform and channel"),
            ("/admin/conversations?id=12&q=%25%25", "0 turns with"),
            ("/admin/jobs", "No jobs are scheduled."),
        ]:
            async with session.get(served.url + path) as response:
                assert response.status == 200, path
                assert expected in await response.text(), path
        form = {"channel": "web:general", "skill": "nosuch", "on": "0"}
        async with session.post(
            f"{served.url}/admin/skills", data=form, headers={"Origin": served.url}
        ) as response:
            assert response.status == 403  # no CSRF token: refused before anything
