"""How a passage names its source: a link where the platform has one, and always who
said it and when (for a document: its name and heading)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from confab.bot.knowledge.passage import Passage

Link = Callable[[str, str, str | None], Awaitable[str | None]]
"""(channel, message id, thread) -> a URL to the message, or None."""


def when(passage: Passage) -> str:
    moment = passage.started_at
    return f"{moment:%d %b %Y %H:%M} UTC".lstrip("0")


async def source_of(passage: Passage, link: Link | None) -> str:
    """One line naming where a passage comes from, e.g.
    ``#backend, Ana, 3 Nov 2026 14:05 UTC: https://…`` or ``setup.md › Install``."""
    if not passage.from_messages:
        where = f"{passage.document}"
        return f"{where} › {passage.heading}" if passage.heading else where
    place = f"#{passage.channel}" + (" (thread)" if passage.thread else "")
    label = f"{place}, {passage.authors}, {when(passage)}"
    url = None
    if link is not None and passage.message_id:
        url = await link(passage.channel, passage.message_id, passage.thread)
    return f"{label}: {url}" if url else label
