"""Markdown, as Confab's skills and the model write it, rendered as Slack mrkdwn.

Slack's mrkdwn is not Markdown: ``*x*`` is bold, there are no headings, links are
``<url|text>``, and ``&``, ``<`` and ``>`` must always be escaped. That escaping is
what keeps model output from pinging anyone: ``<!channel>`` or ``<@U123>`` arrives
as plain text. The only ``<``/``>`` this module writes are the links it builds and
the quote marker at the start of a line.

The conversion is line by line and every regex here runs in linear time, so no
input (unbalanced markers, megabytes of ``*``) can make it slow or make it raise.
"""

from __future__ import annotations

import bisect
import re
import unicodedata

__all__ = ["to_mrkdwn"]

# Opening code fence: indentation, a run of 3+ backticks or tildes, the info string.
_FENCE = re.compile(r"([ \t]*)(`{3,}|~{3,})(.*)")
# ATX heading: up to 3 spaces, 1-6 '#', then whitespace or the end of the line.
_HEADING = re.compile(r" {0,3}(#{1,6})(?:[ \t]+|$)")
# Block quote marker (only the first one becomes a Slack quote).
_QUOTE = re.compile(r" {0,3}> ?")
# Bullet list item: indentation, one of - * +, whitespace, then some content.
_BULLET = re.compile(r"([ \t]*)[-*+][ \t]+(?=\S)")
# A table's delimiter cell, e.g. ``---``, ``:--``, ``:-:``.
_TABLE_CELL = re.compile(r":?-+:?")
# Link targets Slack may turn into a link; anything else is shown as text.
_LINKABLE = re.compile(r"(?:https?://|mailto:)\S", re.IGNORECASE)
# One inline token, tried at the current position. Each alternative stops at the
# first character it cannot take, so a failed attempt costs at most the distance
# to the next bracket, paren or space.
_INLINE = re.compile(
    r"(?P<esc>\\[!-/:-@\[-`{-~])"  # backslash escape of ASCII punctuation
    r"|(?P<code>`+)"  # backtick run: opens a code span if an equal run follows
    r"|(?P<auto><(?:https?://|mailto:)[^\s<>|]*>)"  # autolink <https://...>
    # [label](url): no brackets in the label, one level of parens in the url.
    r"|\[(?P<label>[^\[\]]*)\]\((?P<url>(?:[^\s()]|\([^\s()]*\))*)\)"
    r"|(?P<delim>\*+|_+|~+)"  # emphasis delimiter run
    r"|(?P<plain>[^\\`<\[*_~]+|.)",  # anything else, up to the next special character
    re.DOTALL | re.IGNORECASE,
)

# Emphasis run length (1 ``*x*``, 2 ``**x**``, 3 ``***x***``) -> Slack markers.
_Markers = dict[int, tuple[str, str]]
_BODY: _Markers = {1: ("_", "_"), 2: ("*", "*"), 3: ("*_", "_*")}
# A heading is bold as a whole, and Slack cannot nest bold in bold.
_HEADING_MARKERS: _Markers = {1: ("_", "_"), 2: ("", ""), 3: ("_", "_")}


def to_mrkdwn(markdown: str) -> str:
    """Render chat-style Markdown as Slack mrkdwn, escaping ``&``, ``<`` and ``>``.

    Meant for text posted with ``parse="none"`` and ``link_names=False``: mentions
    and special commands in the input come out as inert text. Never raises.
    """
    lines = markdown.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        fence = _FENCE.match(line)
        if fence and not (fence[2][0] == "`" and "`" in fence[3]):
            i = _code_block(lines, i, fence, out)
        elif "|" in line and i + 1 < len(lines) and _is_table_rule(lines[i + 1]):
            # Slack has no tables: show them verbatim in a code block, which keeps
            # columns aligned and stops `*` or `_` in cells from formatting.
            end = i + 2
            while end < len(lines) and "|" in lines[end] and lines[end].strip():
                end += 1
            out += ["```", *map(_escape, lines[i:end]), "```"]
            i = end
        else:
            quote = _QUOTE.match(line)
            if quote:  # a nested '>' after the first stays visible, escaped
                rest = _block_line(line[quote.end() :])
                out.append("> " + rest if rest else ">")
            else:
                out.append(_block_line(line))
            i += 1
    return "\n".join(out)


def _code_block(lines: list[str], start: int, fence: re.Match[str], out: list[str]) -> int:
    """Emit the fenced block opened at ``lines[start]``; return the index after it."""
    indent, marker = len(fence[1]), fence[2]
    body: list[str] = []
    i = start + 1
    while i < len(lines):
        closing = lines[i].strip()
        if closing and not closing.strip(marker[0]) and len(closing) >= len(marker):
            i += 1
            break
        line = lines[i]
        body.append(line[min(indent, len(line) - len(line.lstrip(" "))) :])
        i += 1
    # An unclosed fence runs to the end of the text, as in CommonMark.
    out += ["```", *map(_escape, body), "```"]
    return i


def _is_table_rule(line: str) -> bool:
    """Whether ``line`` is a table's delimiter row, e.g. ``| --- | :-: |``."""
    if "|" not in line or "-" not in line:
        return False
    cells = line.strip().strip("|").split("|")
    return all(_TABLE_CELL.fullmatch(cell.strip()) for cell in cells)


def _block_line(line: str) -> str:
    """Convert one line outside code: rule, heading, bullet, or running text."""
    rule = line.replace(" ", "").replace("\t", "")
    if len(rule) >= 3 and rule[0] in "-*_" and not rule.strip(rule[0]):
        return "———"
    heading = _HEADING.match(line)
    if heading:
        text = line[heading.end() :].rstrip(" \t")
        without_closing = text.rstrip("#")  # "## Title ##": the closing run is optional
        if without_closing != text and (not without_closing or without_closing[-1] in " \t"):
            text = without_closing
        title = _inline(text.strip(), _HEADING_MARKERS)
        return f"*{title}*" if title else ""
    bullet = _BULLET.match(line)
    if bullet:
        indent = bullet[1].expandtabs(4)
        return indent + "• " + _inline(line[bullet.end() :], _BODY)
    return _inline(line, _BODY)


def _inline(text: str, markers: _Markers, in_label: bool = False) -> str:
    """Convert code spans, links and emphasis in one line, escaping everything else."""
    runs: dict[int, list[int]] = {}  # backtick run length -> start offsets, ascending
    for run in re.finditer(r"`+", text):
        runs.setdefault(len(run[0]), []).append(run.start())
    out: list[str] = []
    openers: dict[tuple[str, int], list[int]] = {}  # delimiter kind -> indices into out
    pos = 0
    while pos < len(text):
        m = _INLINE.match(text, pos)
        if m is None:  # unreachable: the last alternative matches any character
            out.append(_escape(text[pos:]))
            break
        pos = m.end()
        if m["esc"]:
            out.append(_escape(m["esc"][1]))
        elif m["code"]:
            width = len(m["code"])
            starts = runs.get(width, [])
            k = bisect.bisect_left(starts, pos)
            if k == len(starts):  # no closing run: the backticks are literal
                out.append(m["code"])
                continue
            code = text[pos : starts[k]]
            if len(code) >= 2 and code[0] == code[-1] == " " and code.strip(" "):
                code = code[1:-1]
            out.append("`" + _escape(code) + "`")
            pos = starts[k] + width
        elif m["auto"]:
            # Inside a link label a nested link would break Slack's <url|label>.
            out.append(_escape(m["auto"]) if in_label else "<" + _escape(m["auto"][1:-1]) + ">")
        elif m["url"] is not None:
            out.append(_link(m["label"], m["url"], markers))
        elif m["delim"]:
            out.append(m["delim"])
            _emphasis(text, m, len(out) - 1, out, openers, markers)
        else:
            out.append(_escape(m["plain"]))
    return "".join(out)


def _emphasis(
    text: str,
    m: re.Match[str],
    index: int,
    out: list[str],
    openers: dict[tuple[str, int], list[int]],
    markers: _Markers,
) -> None:
    """Pair the delimiter run ``out[index]`` with an earlier opener of its kind.

    A simplification of CommonMark: runs pair only with runs of the same character
    and length, using CommonMark's flanking rules so ``2 * 3 * 4`` and
    ``snake_case_name`` stay as they are.
    """
    run = m["delim"]
    kind = (run[0], len(run))
    pair = ("~", "~") if run == "~~" else None if run[0] == "~" else markers.get(len(run))
    if pair is None:  # a lone ~, or a run too long to mean anything: literal
        return
    before = text[m.start() - 1] if m.start() > 0 else " "
    after = text[m.end()] if m.end() < len(text) else " "
    left = not after.isspace() and (not _punct(after) or before.isspace() or _punct(before))
    right = not before.isspace() and (not _punct(before) or after.isspace() or _punct(after))
    can_open, can_close = left, right
    if run[0] == "_":  # no intraword emphasis with underscores
        can_open = left and (not right or _punct(before))
        can_close = right and (not left or _punct(after))
    stack = openers.get(kind)
    if can_close and stack:
        opener = stack.pop()
        # Openers between the pair can no longer close outside it (no crossing).
        for other in openers.values():
            while other and other[-1] > opener:
                other.pop()
        out[opener], out[index] = pair
    elif can_open:
        openers.setdefault(kind, []).append(index)


def _link(label: str, url: str, markers: _Markers) -> str:
    """``[label](url)`` as ``<url|label>`` for web and mail targets, else as text."""
    text = _inline(label, markers, in_label=True)
    target = url.replace("|", "%7C")
    if _LINKABLE.match(target) and "<" not in target and ">" not in target:
        return f"<{_escape(target)}|{text}>" if text.strip() else f"<{_escape(target)}>"
    return f"{text} ({_escape(url)})" if url else text


def _punct(char: str) -> bool:
    """Unicode punctuation or symbol, as CommonMark's flanking rules define it."""
    return unicodedata.category(char)[0] in "PS"


def _escape(text: str) -> str:
    """Escape the three characters Slack reserves for its own markup."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
