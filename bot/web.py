"""The app's HTTP server (``[web]``): ``GET /healthz``, ``GET /metrics``, and the
pages mounted on it: the web chat at ``/chat/`` and the admin page at ``/admin/``,
with their shared files at ``/static/``. ``/`` leads to the chat where it is on.

``/healthz`` answers 200 with each part's status as JSON while the bot is up (a
model still loading included, see :mod:`confab.bot.health`), 503 with the same
body naming what is down. ``/metrics`` is the Prometheus text format of
:class:`~confab.bot.metrics.PrometheusMetrics`. Any other path is a 404.

Nothing a client sends puts a traceback in the log: requests are not logged, a
handler that fails answers 500 with one log line, and HTTP that aiohttp cannot
parse is one warning line.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web
from aiohttp.typedefs import Middleware
from prometheus_client import CONTENT_TYPE_LATEST

from confab.bot.config import WebConfig
from confab.bot.errors import ConfabError
from confab.bot.health import Health
from confab.bot.metrics import PrometheusMetrics
from confab.bot.server_log import OneLineServerLog, described

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class WebServer:
    """Serves ``/healthz`` from ``health`` and ``/metrics`` from ``metrics`` on
    ``config.host``:``config.port`` between :meth:`start` and :meth:`stop`."""

    def __init__(
        self,
        config: WebConfig,
        health: Callable[[], Awaitable[Health]],
        metrics: PrometheusMetrics,
        pages: Mapping[str, web.Application] | None = None,
    ) -> None:
        """``pages``: sub-applications by the path they are mounted at (``/chat``)."""
        self.config = config
        self._health = health
        self._metrics = metrics
        self._pages = dict(pages or {})
        self._runner: web.AppRunner | None = None
        self.port: int | None = None  # the port listened on, once started (for port 0)

    def application(self) -> web.Application:
        middlewares: list[Middleware] = [_one_line_errors]
        if self._pages:  # /chat and /admin lead to /chat/ and /admin/
            middlewares.append(web.normalize_path_middleware(append_slash=True))
        app = web.Application(
            middlewares=middlewares, handler_args={"logger": OneLineServerLog(_emit)}
        )
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/metrics", self._metrics_text)
        if self._pages:
            from confab.bot.webui import STATIC

            app.router.add_static("/static/", STATIC, append_version=False)
            app.router.add_get("/", self._index)
            for path, page in self._pages.items():
                app.add_subapp(path, page)
        return app

    async def start(self) -> None:
        """Listen; raises :class:`ConfabError` when the address cannot be had."""
        runner = web.AppRunner(self.application(), access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self.config.host, self.config.port)
        try:
            await site.start()
        except OSError as error:
            await runner.cleanup()
            raise ConfabError(
                "The web server could not start.",
                f"web: cannot listen on {self.config.host}:{self.config.port}: "
                f"{error.strerror or error}",
            ) from None
        self._runner = runner
        self.port = _bound_port(runner, self.config.port)
        pages = "".join(f", {path}/" for path in self._pages)
        log.info(
            "serving /healthz and /metrics%s at http://%s:%d", pages, self.config.host, self.port
        )

    async def stop(self) -> None:
        """Stop listening and close open connections. Safe to repeat."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def _healthz(self, _request: web.Request) -> web.Response:
        health = await self._health()
        return web.json_response(health.as_json(), status=200 if health.ok else 503)

    async def _index(self, _request: web.Request) -> web.Response:
        raise web.HTTPFound(f"{next(iter(self._pages))}/")

    async def _metrics_text(self, _request: web.Request) -> web.Response:
        response = web.Response(body=self._metrics.render())
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response


@web.middleware
async def _one_line_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException:
        raise  # 404, 405 ...: an answer, not a failure
    except Exception as error:
        log.error("web: %s %s failed: %s", request.method, request.path, described(error))
        return web.json_response({"error": "internal error"}, status=500)


def _bound_port(runner: web.AppRunner, configured: int) -> int:
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    return configured


def _emit(logger: logging.Logger, level: int, text: str) -> None:
    logger.log(level, "web: %s", text)
