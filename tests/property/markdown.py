"""How a chat client reads Markdown code blocks, written apart from ``confab.bot.textsplit``
so the tests do not check the splitter against itself."""

from __future__ import annotations

import re

FENCE = re.compile(r" {0,3}(`{3,}|~{3,})(.*)")


def kinds(text: str) -> str:
    """One letter per character of ``text`` as a CommonMark reader sees it: ``f`` on a
    fence line, ``c`` in a code block, ``p`` in prose (a line's newline goes with it)."""
    out = []
    fence = ""  # the marker of the open block
    lines = text.split("\n")
    for index, line in enumerate(lines):
        found = FENCE.fullmatch(line)
        if fence:
            closes = (
                found is not None
                and found[1][0] == fence[0]
                and len(found[1]) >= len(fence)
                and not found[2].strip()
            )
            kind = "f" if closes else "c"
            if closes:
                fence = ""
        elif found is not None and (found[1][0] == "~" or "`" not in found[2]):
            kind, fence = "f", found[1]
        else:
            kind = "p"
        out.append(kind * (len(line) + (index < len(lines) - 1)))
    return "".join(out)


def ends_in_code(text: str) -> bool:
    """Whether a code block is still open at the end of ``text``."""
    return kinds(text + "\nx").endswith("c")
