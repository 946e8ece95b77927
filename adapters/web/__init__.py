"""The web chat adapter: a page at ``/chat/`` of the app's HTTP server (``[web]``)."""

from confab.adapters.web.adapter import WebAdapter

__all__ = ["WebAdapter"]
