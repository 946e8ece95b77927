"""Chat Markdown as HTML that is safe to show: CommonMark with raw HTML off, every line
break kept (as Discord and Slack show them), code blocks highlighted by Pygments."""

from __future__ import annotations

import functools

from markdown_it import MarkdownIt
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_by_name
from pygments.util import ClassNotFound

CODE_CLASS = "code"


def _highlighted(code: str, language: str, _attributes: str) -> str:
    """A fenced block of a known language as Pygments' (escaped) HTML; "" leaves the
    block to markdown-it, which escapes it."""
    if not language:
        return ""
    try:
        lexer = get_lexer_by_name(language.split()[0])
    except ClassNotFound:
        return ""
    body: str = highlight(code, lexer, HtmlFormatter(nowrap=True))
    return f'<pre class="{CODE_CLASS}"><code>{body}</code></pre>'


@functools.cache
def _parser() -> MarkdownIt:
    # "html": False escapes any HTML typed or generated; link targets other than
    # http(s), mailto and relative ones (javascript:, data:) are refused by markdown-it.
    return (
        MarkdownIt("commonmark", {"html": False, "breaks": True, "highlight": _highlighted})
        .enable("table")
        .enable("strikethrough")
    )


def rendered(text: str) -> str:
    """``text`` (chat Markdown) as an HTML fragment."""
    html: str = _parser().render(text)
    return html


@functools.cache
def code_styles() -> str:
    """The CSS of Pygments' classes, scoped to highlighted blocks."""
    return str(HtmlFormatter(style="default").get_style_defs(f".{CODE_CLASS}"))
