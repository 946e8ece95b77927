"""What the web pages share: Jinja2 templates (escaped by default), the static files
(htmx and its WebSocket extension, vendored, and the style sheet), the headers
every page is sent with, and the same-origin check of what changes something.

htmx 2.0.11 and htmx-ext-ws 2.0.4 come from the npm registry (Zero-Clause BSD);
``static/VENDORED`` records their SHA-256, which ``tests/web`` checks.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

import jinja2
from aiohttp import web

STATIC = Path(str(files("confab.bot.webui") / "static"))

# No inline script and nothing from elsewhere: a message that slipped past escaping
# could still run nothing. Inline styles are allowed for htmx's own indicator style.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; "
        "base-uri 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def templates(package: str) -> jinja2.Environment:
    """The templates of ``package`` (its ``templates`` folder) and the shared ones,
    HTML-escaped unless a value is marked safe."""
    loader = jinja2.ChoiceLoader(
        [
            jinja2.PackageLoader(package, "templates"),
            jinja2.PackageLoader("confab.bot.webui", "templates"),
        ]
    )
    return jinja2.Environment(
        loader=loader,
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def html_response(text: str, status: int = 200) -> web.Response:
    """A page or fragment, sent with :data:`SECURITY_HEADERS`."""
    return web.Response(
        text=text, status=status, content_type="text/html", headers=SECURITY_HEADERS
    )


def same_origin(request: web.Request) -> bool:
    """Whether the request comes from a page of this server, or names no page at all
    (neither ``Origin`` nor ``Referer``, as from a script): another site's page, or an
    opaque ``null`` origin, cannot post or open a socket here as one of our visitors."""
    origin = request.headers.get("Origin")
    if origin is None:
        referer = request.headers.get("Referer", "")
        return not referer or referer.split("://", 1)[-1].split("/", 1)[0] == request.host
    return origin.split("://", 1)[-1] == request.host
