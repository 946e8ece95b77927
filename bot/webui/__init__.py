"""What the web pages share: Jinja2 templates (escaped by default), the static files
(htmx and its WebSocket extension, vendored, and the style sheet), and the headers
every page is sent with.

htmx 2.0.11 and htmx-ext-ws 2.0.4 come from the npm registry (Zero-Clause BSD);
``static/VENDORED`` records their SHA-256, which ``tests/web`` checks.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

import jinja2

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
