"""Cutting long text into messages without breaking Markdown code fences."""

from __future__ import annotations

import re
from dataclasses import dataclass

MIN_LIMIT = 100  # below this, a reopened fence line could leave no room for progress
MAX_INFO_CHARS = 30  # a fence's language tag is cut to this when the fence is reopened

FENCE_LINE = re.compile(r"^ {0,3}(?P<marker>`{3,}(?=[^`]*$)|~{3,})(?P<info>.*)$")
"""A CommonMark code fence line: its marker and info string (the language tag).

A backtick fence's info string holds no backtick; a tilde fence's may."""

_STARTS_LIKE_FENCE = re.compile(r" {0,3}(?:`{3}|~{3})")
"""The start of a line that is, or could be cut into, a fence line."""
_ENDS_LIKE_FENCE = re.compile(r" {0,3}(?:`{0,2}|~{0,2})")
"""The end of a text that more streamed text could turn into the start of a fence line."""


@dataclass(frozen=True, slots=True)
class Fence:
    marker: str
    info: str

    def opener(self, max_info_chars: int = MAX_INFO_CHARS) -> str:
        """The line that reopens this fence, its language tag cut to ``max_info_chars``."""
        return f"{self.marker}{self.info.strip()[:max_info_chars]}\n"


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
    """Where to end a message of at most ``budget`` characters: a paragraph, line or word end.

    A cut inside a line never leaves the rest starting like a code fence (which
    would open a block the text never had), and a line that starts like a fence
    is kept whole, moved to the next message, unless it is too long for that.
    The cut is always past the first character, so every message makes progress.
    """
    window_start = budget // 2
    for separator in ("\n\n", "\n"):
        found = text.rfind(separator, window_start, budget)
        if found != -1:
            return found + len(separator)
    line_start = text.rfind("\n", 0, window_start) + 1  # of the line the cut falls in
    if _STARTS_LIKE_FENCE.match(text, line_start):
        # Before the fence line, unless the message would be that one fence line
        # alone: reopened, it would be the same text again.
        head = text[:line_start].rstrip("\n")
        if head and FENCE_LINE.match(head) is None:
            return line_start
        return budget
    found = text.rfind(" ", window_start, budget)
    while found != -1:
        if not _may_start_fence(text, found + 1):
            return found + 1
        found = text.rfind(" ", window_start, found)
    for cut in range(budget, window_start, -1):
        if not _may_start_fence(text, cut):
            return cut
    return budget  # a run of backticks as long as half a message


def _may_start_fence(text: str, index: int) -> bool:
    """Whether a line starting at ``index`` would start like a fence line, now or once
    more text arrives (a stream is split before its end is known)."""
    return bool(_STARTS_LIKE_FENCE.match(text, index) or _ENDS_LIKE_FENCE.fullmatch(text, index))


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
    on its own. Nothing else is added or removed, and the rest is always shorter
    than ``text``. A fence whose marker is so long that closing and reopening it
    would take over a third of a message is cut like plain text.
    """
    if limit < MIN_LIMIT:
        raise ValueError(f"message limit {limit} is below the minimum of {MIN_LIMIT}")
    if len(text) <= limit:
        return Split(text, "")
    budget = limit
    while True:
        # The budget only shrinks, by at most a sixth of the limit (a closer that
        # fits the rule below), so a cut stays past any reopened fence line.
        cut = _cut_point(text, budget)
        head, rest = text[:cut], text[cut:]
        fence = open_fence(head)
        if fence is None:
            return Split(head, rest)
        closer = ("" if head.endswith("\n") else "\n") + fence.marker
        # Closing and reopening take at most a third of a message (the language
        # tag is shortened to fit), so the next message still makes progress.
        room = limit // 3 - len(closer) - len(fence.marker) - 1
        if room < 0:
            return Split(head, rest)
        opener = fence.opener(min(MAX_INFO_CHARS, room))
        if len(head) + len(closer) <= limit:
            return Split(head + closer, opener + rest, closer, opener)
        budget = limit - len(closer)


def shorten(text: str, limit: int) -> str:
    """``text`` in at most ``limit`` characters, cut at a word end with "…" when it is
    longer, so what is left reads whole (a description with a length cap, say)."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    head = text[: limit - 1]
    if not text[limit - 1].isspace() and " " in head:
        head = head.rsplit(" ", 1)[0]  # not in the middle of a word
    return head.rstrip(" ,;:-–—(") + "…"
