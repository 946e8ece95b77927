"""Cutting long text into messages without breaking Markdown code fences."""

from __future__ import annotations

import re
from dataclasses import dataclass

MIN_LIMIT = 100  # below this, a reopened fence line could leave no room for progress
MAX_INFO_CHARS = 30  # a fence's language tag is cut to this when the fence is reopened

FENCE_LINE = re.compile(r"^ {0,3}(?P<marker>`{3,}|~{3,})(?P<info>[^`\n]*)$")
"""A CommonMark code fence line: its marker and info string (the language tag)."""


@dataclass(frozen=True, slots=True)
class Fence:
    marker: str
    info: str

    @property
    def opener(self) -> str:
        return f"{self.marker}{self.info.strip()[:MAX_INFO_CHARS]}\n"


def open_fence(text: str) -> Fence | None:
    """The code fence still open at the end of ``text``, if any (CommonMark rules)."""
    current: Fence | None = None
    for line in text.split("\n"):
        match = FENCE_LINE.match(line)
        if not match:
            continue
        marker, info = match["marker"], match["info"]
        if current is None:
            current = Fence(marker, info)
        elif (
            marker[0] == current.marker[0]
            and len(marker) >= len(current.marker)
            and not info.strip()
        ):
            current = None
    return current


def _cut_point(text: str, budget: int) -> int:
    """Where to end a message of at most ``budget`` characters: a paragraph, line or word end."""
    window_start = budget // 2
    for separator in ("\n\n", "\n", " "):
        found = text.rfind(separator, window_start, budget)
        if found != -1:
            return found + len(separator)
    return budget


@dataclass(frozen=True, slots=True)
class Split:
    """One cut: ``head`` fits the limit; ``closer``/``opener`` are what the cut added."""

    head: str
    rest: str
    closer: str = ""
    opener: str = ""


def split_message(text: str, limit: int) -> Split:
    """Cut ``text`` into a head of at most ``limit`` characters and the rest.

    A code fence open at the cut is closed at the end of the head and reopened
    (same marker and language) at the start of the rest, so each message renders
    on its own. Nothing else is added or removed.
    """
    if limit < MIN_LIMIT:
        raise ValueError(f"message limit {limit} is below the minimum of {MIN_LIMIT}")
    if len(text) <= limit:
        return Split(text, "")
    budget = limit
    while True:
        cut = _cut_point(text, budget)
        head, rest = text[:cut], text[cut:]
        fence = open_fence(head)
        if fence is None:
            return Split(head, rest)
        closer = ("" if head.endswith("\n") else "\n") + fence.marker
        if len(head) + len(closer) <= limit:
            return Split(head + closer, fence.opener + rest, closer, fence.opener)
        budget = limit - len(closer)
