"""The admin page's HTTP side, mounted at ``/admin/``: the login and one view per tab.

Every view but the login needs a session (else a redirect to the login); every
POST must carry the session's CSRF token and come from this server's own pages
(its ``Origin``), or it is refused with 403 before anything changes. A change
is made through :class:`~confab.bot.admin.desk.AdminDesk`, then the browser is
sent back to the view with one line saying what happened (POST, redirect, GET).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn

from aiohttp import web

from confab.bot.admin.auth import Credential, LoginLimit, Session, Sessions, csrf_matches
from confab.bot.admin.desk import AdminDesk, AdminRefused, channel_named
from confab.bot.admin.figures import LiveFigures
from confab.bot.config import WebConfig
from confab.bot.config_view import render_config
from confab.bot.errors import ConfabError
from confab.bot.webui import html_response, same_origin, templates
from confab.storage.browse import ConversationSummary
from confab.storage.conversations import StoredTurn

log = logging.getLogger(__name__)

COOKIE = "confab_admin"
LOGIN_COOKIE = "confab_login"  # the login form's own CSRF token (double submit)
MAX_UPLOAD_BYTES = 64 * 1024 * 1024
TABS = (
    ("activity", "Activity"),
    ("conversations", "Conversations"),
    ("skills", "Skills"),
    ("jobs", "Jobs"),
    ("models", "Models"),
    ("knowledge", "Knowledge"),
    ("config", "Config"),
    ("changes", "Changes"),
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SESSION: web.RequestKey[Session] = web.RequestKey("session", Session)
PAGES: web.AppKey[AdminPages] = web.AppKey("pages")


class AdminPages:
    """The admin views over ``desk``, open to whoever logs in with ``credential``."""

    def __init__(
        self,
        desk: AdminDesk,
        credential: Credential,
        config: WebConfig,
        figures: LiveFigures,
        bot_name: str,
    ) -> None:
        self.desk = desk
        self.credential = credential
        self.config = config
        self.figures = figures
        self.bot_name = bot_name
        self.sessions = Sessions(config.session_ttl_s)
        self.limit = LoginLimit(config.login_attempts, config.login_window_s)
        self.templates = templates("confab.bot.admin")
        self._flash: dict[str, tuple[str, bool]] = {}  # session id -> (what happened, ok)

    def application(self) -> web.Application:
        app = web.Application(middlewares=[_guarded], client_max_size=MAX_UPLOAD_BYTES)
        app[PAGES] = self
        routes = [
            web.get("/", self.index),
            web.get("/login", self.login_form),
            web.post("/login", self.login),
            web.post("/logout", self.logout),
            web.get("/activity", self.activity),
            web.get("/activity/figures", self.figures_now),
            web.get("/conversations", self.conversations),
            web.get("/skills", self.skills),
            web.post("/skills", self.switch_skill),
            web.get("/jobs", self.jobs),
            web.post("/jobs", self.change_job),
            web.get("/models", self.models),
            web.post("/models", self.use_model),
            web.get("/knowledge", self.knowledge),
            web.post("/knowledge", self.add_document),
            web.post("/knowledge/remove", self.remove_document),
            web.get("/config", self.config_view),
            web.get("/changes", self.changes),
        ]
        app.add_routes(routes)
        return app

    # -- rendering -----------------------------------------------------------------

    def page(self, request: web.Request, template: str, tab: str, **values: Any) -> web.Response:
        session = request[SESSION]
        said = self._flash.pop(session.id, None)
        text = self.templates.get_template(template).render(
            bot_name=self.bot_name,
            tabs=TABS,
            tab=tab,
            session=session,
            said=said,
            **values,
        )
        return html_response(text)

    def back(self, request: web.Request, where: str, said: str, ok: bool = True) -> NoReturn:
        """Send the browser back to ``where``, which then says ``said``."""
        self._flash[request[SESSION].id] = (said, ok)
        raise web.HTTPSeeOther(where)

    # -- login ---------------------------------------------------------------------

    async def index(self, _request: web.Request) -> web.Response:
        raise web.HTTPFound("/admin/activity")

    async def login_form(
        self, request: web.Request, problem: str | None = None, status: int = 200
    ) -> web.Response:
        token = request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(32)
        text = self.templates.get_template("login.html").render(
            bot_name=self.bot_name, problem=problem, csrf=token
        )
        response = html_response(text, status)
        response.set_cookie(
            LOGIN_COOKIE, token, path="/admin", httponly=True, samesite="Strict",
            secure=self.config.secure_cookies,
        )  # fmt: skip
        return response

    async def login(self, request: web.Request) -> web.Response:
        address = request.remote or "?"
        wait = self.limit.retry_after(address)
        if wait > 0:
            log.warning("admin login from %s refused: too many failed attempts", address)
            response = await self.login_form(
                request, f"Too many failed attempts; try again in {int(wait) + 1} s.", 429
            )
            response.headers["Retry-After"] = str(int(wait) + 1)
            return response
        form = await request.post()
        who = " ".join(str(form.get("who", "")).split())[:64]
        secret = str(form.get("secret", ""))
        if not who:
            return await self.login_form(request, "Say who you are (it names your changes).", 400)
        accepted, method = self.credential.accepts(secret)
        if not accepted:
            self.limit.failed(address)
            log.warning("admin login as %r from %s refused: wrong credential", who, address)
            return await self.login_form(request, "That is not the admin password or token.", 403)
        self.limit.succeeded(address)
        session = self.sessions.open(who, method)
        log.info("admin %s logged in from %s (%s)", who, address, method)
        response = web.HTTPSeeOther("/admin/activity")
        response.set_cookie(
            COOKIE, session.id, path="/admin", httponly=True, samesite="Strict",
            secure=self.config.secure_cookies, max_age=int(self.config.session_ttl_s),
        )  # fmt: skip
        response.del_cookie(LOGIN_COOKIE, path="/admin")
        raise response

    async def logout(self, request: web.Request) -> web.Response:
        session = request[SESSION]
        self.sessions.close(session.id)
        log.info("admin %s logged out", session.who)
        response = web.HTTPSeeOther("/admin/login")
        response.del_cookie(COOKIE, path="/admin")
        raise response

    # -- views -----------------------------------------------------------------------

    async def activity(self, request: web.Request) -> web.Response:
        return self.page(request, "activity.html", "activity", figures=self.figures.now())

    async def figures_now(self, request: web.Request) -> web.Response:
        text = self.templates.get_template("figures.html").render(figures=self.figures.now())
        return html_response(text)

    async def conversations(self, request: web.Request) -> web.Response:
        browser = self.desk.browser
        platform = request.query.get("platform", "") or None
        query = request.query.get("q", "").strip()[:200]
        chosen = request.query.get("id", "")
        opened: ConversationSummary | None = None
        turns: list[StoredTurn] = []
        if chosen.isdigit() and len(chosen) < 10:  # an id the database's integer can hold
            opened, turns = await browser.conversation(int(chosen))
        return self.page(
            request,
            "conversations.html",
            "conversations",
            platforms=await browser.platforms(),
            platform=platform or "",
            q=query,
            found=await browser.search(query, platform=platform) if query else None,
            listed=await browser.conversations(platform=platform),
            opened=opened,
            turns=turns,
        )

    async def skills(self, request: web.Request) -> web.Response:
        channels = await self.desk.browser.channels()
        chosen = request.query.get("channel", "")
        place = None
        if chosen:
            try:
                place = channel_named(chosen)
            except AdminRefused as refused:
                self._flash[request[SESSION].id] = (refused.user_message, False)
        elif channels:
            place = channels[0]
        switches = await self.desk.switches(*place) if place else []
        return self.page(
            request,
            "skills.html",
            "skills",
            channels=[f"{p}:{c}" for p, c in channels],
            channel=f"{place[0]}:{place[1]}" if place else "",
            switches=switches,
        )

    async def switch_skill(self, request: web.Request) -> web.Response:
        form = await request.post()
        channel, skill = str(form.get("channel", "")), str(form.get("skill", ""))
        on = form.get("on") == "1"
        where = f"/admin/skills?channel={_quoted(channel)}"
        try:
            platform, place = channel_named(channel)
            await self.desk.switch(request[SESSION].who, platform, place, skill, on)
        except AdminRefused as refused:
            self.back(request, where, refused.user_message, ok=False)
        self.back(request, where, f"{skill} is {'on' if on else 'off'} in {channel}.")

    async def jobs(self, request: web.Request) -> web.Response:
        return self.page(request, "jobs.html", "jobs", jobs=await self.desk.jobs())

    async def change_job(self, request: web.Request) -> web.Response:
        form = await request.post()
        job, action = str(form.get("job", "")), str(form.get("action", ""))
        try:
            if action == "remove":
                await self.desk.remove_job(request[SESSION].who, job)
            elif action in ("pause", "resume"):
                await self.desk.pause_job(request[SESSION].who, job, paused=action == "pause")
            else:
                raise AdminRefused(f"{action!r} is not something a job can do.")
        except AdminRefused as refused:
            self.back(request, "/admin/jobs", refused.user_message, ok=False)
        self.back(request, "/admin/jobs", f"Job {job}: {action}d.")

    async def models(self, request: web.Request) -> web.Response:
        from confab.bot.model_commands import kind_label, last_scores, parameters_label

        models = await self.desk.models()
        return self.page(
            request,
            "models.html",
            "models",
            models=models,
            kind_label=kind_label,
            parameters_label=parameters_label,
            last_scores=last_scores,
        )

    async def use_model(self, request: web.Request) -> web.Response:
        form = await request.post()
        name = str(form.get("name", "")).strip() or None
        channel = str(form.get("channel", "")).strip() or None
        try:
            await self.desk.use_model(request[SESSION].who, name, channel)
        except AdminRefused as refused:
            self.back(request, "/admin/models", refused.user_message, ok=False)
        where = f"in {channel}" if channel else "by default"
        self.back(request, "/admin/models", f"{name or 'The default'} now answers {where}.")

    async def knowledge(self, request: web.Request) -> web.Response:
        try:
            documents, off = await self.desk.documents(), None
        except AdminRefused as refused:
            documents, off = [], refused.user_message
        return self.page(request, "knowledge.html", "knowledge", documents=documents, off=off)

    async def add_document(self, request: web.Request) -> web.Response:
        form = await request.post()
        upload = form.get("file")
        channels = str(form.get("channels", "")).replace(",", " ").split()
        if not isinstance(upload, web.FileField) or not upload.filename:
            self.back(request, "/admin/knowledge", "Choose a file to add.", ok=False)
        try:
            added = await self.desk.add_document(
                request[SESSION].who, upload.filename, upload.file.read(), channels
            )
        except ConfabError as refused:  # refused by the desk or by the document reader
            self.back(request, "/admin/knowledge", refused.user_message, ok=False)
        doc = added.document
        self.back(
            request, "/admin/knowledge", f"{doc.name}: {added.outcome}, {doc.chunks} passages."
        )

    async def remove_document(self, request: web.Request) -> web.Response:
        form = await request.post()
        name = str(form.get("name", ""))
        try:
            await self.desk.remove_document(request[SESSION].who, name)
        except AdminRefused as refused:
            self.back(request, "/admin/knowledge", refused.user_message, ok=False)
        self.back(request, "/admin/knowledge", f"Removed {name}.")

    async def config_view(self, request: web.Request) -> web.Response:
        return self.page(request, "config.html", "config", text=render_config(self.desk.config))

    async def changes(self, request: web.Request) -> web.Response:
        return self.page(request, "changes.html", "changes", changes=self.desk.audit.latest())


def _quoted(text: str) -> str:
    from urllib.parse import quote

    return quote(text, safe=":")


@web.middleware
async def _guarded(request: web.Request, handler: Handler) -> web.StreamResponse:
    pages = request.app[PAGES]
    login = request.path.rstrip("/").endswith("/login")
    if request.method == "POST" and not same_origin(request):
        log.warning(
            "admin: refused a %s from another site (%s)",
            request.path,
            request.headers.get("Origin"),
        )
        raise web.HTTPForbidden(text="cross-site request refused")
    if login:
        if request.method == "POST":
            form = await request.post()
            cookie = request.cookies.get(LOGIN_COOKIE, "")
            if not cookie or cookie != str(form.get("csrf", "")):
                log.info("admin: a login without its form's token was refused")
                return await pages.login_form(request, "The login form expired; try again.", 403)
        return await handler(request)
    session = pages.sessions.get(request.cookies.get(COOKIE))
    if session is None:
        if request.method == "GET" and not request.headers.get("HX-Request"):
            raise web.HTTPSeeOther("/admin/login")
        raise web.HTTPUnauthorized(text="log in again")
    if request.method == "POST":
        form = await request.post()
        sent = request.headers.get("X-CSRF-Token") or str(form.get("csrf", ""))
        if not csrf_matches(session, sent):
            log.warning("admin: %s %s without its CSRF token refused", session.who, request.path)
            raise web.HTTPForbidden(text="the form's token is missing or stale; reload the page")
    request[SESSION] = session
    return await handler(request)
