"""How each kind of file the knowledge base reads is parsed into a title and its sections.

There is one parser per kind in :data:`confab.bot.knowledge.documents.SUPPORTED`:
:func:`markdown`, :func:`text` and :func:`html` take the decoded text, its line
ends made ``\n``, and :func:`pdf` takes the file's bytes. Each returns the title
the document gives itself (``""`` when it has none) and its sections in order.
Reading the file, its size limit and refusing a file with no text belong to
:mod:`confab.bot.knowledge.documents`; only :func:`pdf` refuses a file itself, with
:class:`DocumentRefused` (kept here so that both modules can raise it), as only
the PDF reader can tell a password-protected, malformed or scanned file.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from html.parser import HTMLParser

from confab.bot.errors import ConfabError
from confab.bot.textsplit import FENCE_LINE


@dataclass(frozen=True, slots=True)
class Section:
    """Plain text under one path of headings (``"Install > Linux"``; ``""`` when none).

    Whitespace is normalised within lines (code keeps its indentation) and
    paragraphs are separated by a blank line.
    """

    heading: str
    text: str


class DocumentRefused(ConfabError):
    """A file cannot be added; ``user_message`` is one sentence naming the file and why."""


def _lines(text: str) -> str:
    """``text`` with whitespace runs made one space within lines, and blank lines dropped."""
    return "\n".join(" ".join(line.split()) for line in text.split("\n") if line.strip())


class _Sections:
    """Paragraphs gathered under the path of headings a parser has reached."""

    def __init__(self) -> None:
        self.title = ""  # the first level-1 heading
        self._path: list[tuple[int, str]] = []
        self._paragraphs: list[str] = []
        self._sections: list[Section] = []

    def heading(self, level: int, text: str) -> None:
        self._close()
        if not (text := " ".join(text.split())):
            return
        if level == 1 and not self.title:
            self.title = text
        while self._path and self._path[-1][0] >= level:
            self._path.pop()
        self._path.append((level, text))

    def paragraph(self, text: str) -> None:
        if text:
            self._paragraphs.append(text)

    def finish(self) -> tuple[Section, ...]:
        self._close()
        return tuple(self._sections)

    def _close(self) -> None:
        if self._paragraphs:
            heading = " > ".join(text for _, text in self._path)
            self._sections.append(Section(heading, "\n\n".join(self._paragraphs)))
            self._paragraphs = []


_ATX = re.compile(r" {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*")
_SETEXT = re.compile(r" {0,3}(=+|-+)[ \t]*")
_BREAK = re.compile(r" {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*")
_LINK = re.compile(r"!?\[([^\]]*)\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
_AUTOLINK = re.compile(r"<((?:https?|mailto):[^>\s]+)>")


def _unlink(text: str) -> str:
    text = _LINK.sub(lambda m: f"{m[1]} ({m[2]})" if m[1] else m[2], text)
    return _AUTOLINK.sub(r"\1", text)


def markdown(text: str) -> tuple[str, tuple[Section, ...]]:
    """The title (the first level-1 heading) and sections of a Markdown file."""
    lines = text.split("\n")
    start = 0
    if lines[0].strip() == "---":  # YAML front matter, whose end would read as a heading
        end = next((i for i, line in enumerate(lines[1:], 1) if line.strip() == "---"), 0)
        start = end + 1 if end else 0
    sections = _Sections()
    paragraph: list[str] = []
    fence: re.Match[str] | None = None  # the line that opened the code block we are in
    code: list[str] = []

    def end_paragraph() -> None:
        sections.paragraph(_lines(_unlink("\n".join(paragraph))))
        paragraph.clear()

    for line in lines[start:]:
        if fence is not None:
            code.append(line.rstrip())
            closer = FENCE_LINE.match(line)
            if (
                closer
                and closer["marker"][0] == fence["marker"][0]
                and len(closer["marker"]) >= len(fence["marker"])
                and not closer["info"].strip()
            ):
                sections.paragraph("\n".join(code))
                fence, code = None, []
        elif opener := FENCE_LINE.match(line):
            end_paragraph()
            fence, code = opener, [line.strip()]
        elif heading := _ATX.fullmatch(line):
            end_paragraph()
            sections.heading(len(heading[1]), _unlink(heading[2] or ""))
        elif paragraph and (underline := _SETEXT.fullmatch(line)):
            sections.heading(1 if underline[1][0] == "=" else 2, _unlink(" ".join(paragraph)))
            paragraph.clear()
        elif not line.strip() or _BREAK.fullmatch(line):
            end_paragraph()
        else:
            paragraph.append(line)
    end_paragraph()
    sections.paragraph("\n".join(code).rstrip())  # a block the file never closed
    return sections.title, sections.finish()


_BLANK_LINE = re.compile(r"\n\s*\n")


def text(text: str) -> tuple[str, tuple[Section, ...]]:
    """The sections of a plain text file (one, with no heading); it has no title."""
    sections = _Sections()
    for block in _BLANK_LINE.split(text):
        sections.paragraph(_lines(block))
    return "", sections.finish()


_SKIPPED = frozenset({"script", "style", "nav", "header", "footer", "noscript", "template"})
_HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
_BLOCKS = frozenset(
    {"p", "div", "pre", "blockquote", "section", "article", "main", "aside", "figcaption", "hr"}
    | {"ul", "ol", "li", "dl", "dt", "dd", "table", "caption", "tr", "th", "td"}
)
_SPACES = re.compile(r"\s+")


class _HTMLSections(HTMLParser):
    """The sections of an HTML page: headings build the path, block elements end paragraphs."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.sections = _Sections()
        self.title = ""  # of <title>
        self._skipping = 0  # depth inside elements whose content is not the page's text
        self._in_title = False
        self._pre = 0
        self._heading = 0  # the level of the heading being read; 0 outside one
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIPPED:
            self._skipping += 1
        elif self._skipping:
            return
        elif tag == "title":
            self._in_title = True
        elif tag in _HEADINGS:
            self._end_block()
            self._heading = int(tag[1])
        elif tag == "br":
            self._text.append("\n")
        elif tag in _BLOCKS:
            self._end_block()
            if tag == "pre":
                self._pre += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED:
            self._skipping = max(0, self._skipping - 1)
        elif self._skipping:
            return
        elif tag == "title":
            self._in_title = False
        elif tag in _HEADINGS and self._heading:
            self.sections.heading(self._heading, "".join(self._text))
            self._heading, self._text = 0, []
        elif tag in _BLOCKS:
            self._end_block()  # before leaving <pre>, so its text keeps its layout
            if tag == "pre":
                self._pre = max(0, self._pre - 1)

    def handle_data(self, data: str) -> None:
        if self._skipping:
            return
        if self._in_title:
            self.title = " ".join(f"{self.title} {data}".split())
        else:
            self._text.append(data if self._pre else _SPACES.sub(" ", data))

    def finish(self) -> tuple[Section, ...]:
        self.close()
        self._heading = 0
        self._end_block()
        return self.sections.finish()

    def _end_block(self) -> None:
        if self._heading:  # a block inside a heading is part of the heading
            return
        text = "".join(self._text)
        if self._pre:
            self.sections.paragraph(
                "\n".join(line.rstrip() for line in text.split("\n")).strip("\n")
            )
        else:
            self.sections.paragraph(_lines(text))
        self._text = []


def html(text: str) -> tuple[str, tuple[Section, ...]]:
    """The title (of ``<title>``, else the first ``<h1>``) and sections of an HTML page."""
    parser = _HTMLSections()
    parser.feed(text)
    sections = parser.finish()
    return parser.title or parser.sections.title, sections


def pdf(name: str, data: bytes) -> tuple[str, tuple[Section, ...]]:
    """The title (from its metadata) and sections (one a page) of the PDF file ``name``."""
    try:
        from pypdf import PdfReader  # only when a PDF comes: 0.04 s of every start

        reader = PdfReader(io.BytesIO(data))
        # pypdf logs what it works around as warnings (never a traceback); the reader has
        # already tried the empty password that owner-only protection uses.
        if reader.is_encrypted and not reader.decrypt(""):
            raise DocumentRefused(f"{name}: the PDF is password-protected.")
        title = reader.metadata.title if reader.metadata else None
        pages = [page.extract_text() for page in reader.pages]
    except DocumentRefused:
        raise
    except Exception as error:  # malformed files raise pypdf's errors and plain ones alike
        reason = (str(error).strip().split("\n")[0].rstrip(".") or type(error).__name__)[:100]
        raise DocumentRefused(
            f"{name}: the PDF could not be read ({reason}).",
            f"pypdf could not read {name}: {error!r}",
        ) from error
    sections = []
    for number, page in enumerate(pages, 1):
        text = "\n\n".join(filter(None, (_lines(block) for block in _BLANK_LINE.split(page))))
        if text:
            sections.append(Section(f"page {number}", text))
    if not sections:
        raise DocumentRefused(f"{name}: the PDF has no text layer (scanned pages?).")
    return (title or "").strip(), tuple(sections)
