"""Reading the documents a team adds to the knowledge base, cut into sections for retrieval.

Files come from ``confab kb add PATH…`` or are attached in chat. Each one is read
whole or refused whole with :class:`DocumentRefused`, whose sentence names the
file and the reason; :func:`passages` then cuts its sections into the pieces
that are embedded and retrieved.
"""

from __future__ import annotations

import hashlib
import io
import math
import re
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

from pypdf import PdfReader

from bot.errors import ConfabError
from bot.textsplit import FENCE_LINE, open_fence

SUPPORTED: dict[str, str] = {
    ".md": "markdown",
    ".markdown": "markdown",
    ".txt": "text",
    ".text": "text",
    ".html": "html",
    ".htm": "html",
    ".pdf": "pdf",
}
"""The file name endings the knowledge base reads, and the kind each one is read as."""

_KINDS = "Markdown, plain text, HTML or PDF"
_MB = 1 << 20


@dataclass(frozen=True, slots=True)
class Section:
    """Plain text under one path of headings (``"Install > Linux"``; ``""`` when none).

    Whitespace is normalised within lines (code keeps its indentation) and
    paragraphs are separated by a blank line.
    """

    heading: str
    text: str


@dataclass(frozen=True, slots=True)
class ReadDocument:
    """A file read whole: what the knowledge base stores, and its digest to skip re-adding it."""

    name: str
    kind: str
    sha256: str
    size: int
    title: str
    sections: tuple[Section, ...]


class DocumentRefused(ConfabError):
    """A file cannot be added; ``user_message`` is one sentence naming the file and why."""


def read_document(path: Path, *, max_bytes: int) -> ReadDocument:
    """Read the file at ``path`` (its kind from its suffix), or refuse it whole.

    A file larger than ``max_bytes`` is refused before it is read.
    """
    name = path.name
    try:
        info = path.stat()
    except FileNotFoundError:
        raise DocumentRefused(f"{name}: no such file.", f"{path} does not exist") from None
    except OSError as error:
        raise _unreadable(name, path, error) from error
    if stat.S_ISDIR(info.st_mode):
        raise DocumentRefused(f"{name}: this is a folder, not a file.")
    if not stat.S_ISREG(info.st_mode):  # a pipe or a device would never end, or block
        raise DocumentRefused(f"{name}: this is not a regular file.")
    kind = _kind(name)
    _check_size(name, info.st_size, max_bytes)
    try:
        with path.open("rb") as file:
            data = file.read(max_bytes + 1)  # it may have grown since it was measured
    except OSError as error:
        raise _unreadable(name, path, error) from error
    return _read(name, kind, data, max_bytes)


def read_document_bytes(name: str, data: bytes, *, max_bytes: int) -> ReadDocument:
    """Read a file attached in chat, its kind from the suffix of ``name``, or refuse it whole."""
    return _read(name, _kind(name), data, max_bytes)


def passages(document: ReadDocument, *, max_chars: int = 1200) -> list[Section]:
    """The retrieval units of ``document``: pieces of at most ``max_chars``, each under its heading.

    A section that fits is one passage. A longer one is cut at paragraph ends,
    consecutive paragraphs sharing a passage while they fit (so tiny ones are
    merged); a paragraph too long on its own is cut at sentence ends, else line
    ends, else spaces, else anywhere. A fenced code block counts as one paragraph.
    The heading is not counted in ``max_chars``.
    """
    if max_chars < 1:
        raise ValueError(f"max_chars must be positive, not {max_chars}")
    result: list[Section] = []
    for section in document.sections:
        pieces = [piece for p in _paragraphs(section.text) for piece in _cut(p, max_chars)]
        current: list[str] = []
        length = 0
        for piece in pieces:
            if current and length + 2 + len(piece) > max_chars:
                result.append(Section(section.heading, "\n\n".join(current)))
                current, length = [], 0
            length += len(piece) + (2 if current else 0)
            current.append(piece)
        if current:
            result.append(Section(section.heading, "\n\n".join(current)))
    return result


def documents_under(paths: Sequence[Path]) -> Iterator[Path]:
    """The files to add for ``confab kb add PATH…``: each file as given, each folder's files.

    Folders are walked recursively in sorted order, skipping hidden names; every
    regular file is yielded, supported or not, so the caller can report each by
    name. All paths are checked before the first file is yielded: one that does
    not exist raises :class:`DocumentRefused`.
    """
    for path in paths:
        if not path.exists():
            raise DocumentRefused(f"{path}: no such file or folder.")
    seen: set[Path] = set()
    for path in paths:
        if path.is_dir():
            yield from _walk(path, seen)
        else:
            yield path


def _walk(folder: Path, seen: set[Path]) -> Iterator[Path]:
    real = folder.resolve()
    if real in seen:  # a linked folder that leads back up the tree, or a folder given twice
        return
    seen.add(real)
    try:
        entries = sorted(folder.iterdir())
    except OSError as error:
        raise DocumentRefused(
            f"{folder}: the folder could not be read ({error.strerror or error}).",
            f"listing {folder}: {error}",
        ) from error
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            yield from _walk(entry, seen)
        elif entry.is_file():
            yield entry


def kind_of(name: str) -> str:
    """The kind a file of this name is read as; :class:`DocumentRefused` for other kinds
    (checked before anything is read or downloaded)."""
    return _kind(name)


def _kind(name: str) -> str:
    suffix = Path(name).suffix.lower()
    if suffix in SUPPORTED:
        return SUPPORTED[suffix]
    what = f"{suffix} files" if suffix else "files without a suffix"
    raise DocumentRefused(f"{name}: {what} are not supported ({_KINDS}).")


def _unreadable(name: str, path: Path, error: OSError) -> DocumentRefused:
    return DocumentRefused(
        f"{name}: the file could not be read ({error.strerror or error}).",
        f"reading {path}: {error}",
    )


def _check_size(name: str, size: int, max_bytes: int) -> None:
    if size > max_bytes:
        raise DocumentRefused(
            f"{name}: {_megabytes(size)} MB is over the {_megabytes(max_bytes)} MB limit"
            " ([knowledge] max_file_mb)."
        )


def _megabytes(size: int) -> str:
    # Rounded up, so a file just over the limit never reads as equal to it.
    tenths = math.ceil(size * 10 / _MB)
    return str(tenths // 10) if tenths % 10 == 0 else f"{tenths / 10:.1f}"


def _read(name: str, kind: str, data: bytes, max_bytes: int) -> ReadDocument:
    _check_size(name, len(data), max_bytes)
    no_text = DocumentRefused(f"{name}: the file has no text.")
    if not data.strip():
        raise no_text
    if kind == "pdf":
        title, sections = _pdf(name, data)
    else:
        text = _decode(name, kind, data).replace("\r\n", "\n").replace("\r", "\n")
        title, sections = {"markdown": _markdown, "text": _text, "html": _html}[kind](text)
    if not sections:
        raise no_text
    digest = hashlib.sha256(data).hexdigest()
    return ReadDocument(name, kind, digest, len(data), title or Path(name).stem, sections)


_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?([\w.:-]+)""", re.IGNORECASE)


def _decode(name: str, kind: str, data: bytes) -> str:
    encodings = ["utf-8-sig"]
    if kind == "html" and (declared := _CHARSET.search(data[:4096])):
        encodings.append(declared[1].decode("ascii"))
    if b"\x00" not in data:  # valid UTF-8, yet no text file holds one
        for encoding in encodings:
            try:
                return data.decode(encoding)
            except (UnicodeDecodeError, LookupError):
                continue
    raise DocumentRefused(f"{name}: the file is not text (binary data, or not UTF-8).")


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


def _markdown(text: str) -> tuple[str, tuple[Section, ...]]:
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


def _text(text: str) -> tuple[str, tuple[Section, ...]]:
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


def _html(text: str) -> tuple[str, tuple[Section, ...]]:
    parser = _HTMLSections()
    parser.feed(text)
    sections = parser.finish()
    return parser.title or parser.sections.title, sections


def _pdf(name: str, data: bytes) -> tuple[str, tuple[Section, ...]]:
    try:
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


def _paragraphs(text: str) -> list[str]:
    paragraphs: list[str] = []
    for block in text.split("\n\n"):
        if paragraphs and open_fence(paragraphs[-1]) is not None:
            paragraphs[-1] += "\n\n" + block  # a blank line inside a code block ends no paragraph
        else:
            paragraphs.append(block)
    return paragraphs


# Where a paragraph too long for one passage is cut, best first: each pattern's group
# is the whitespace the cut replaces.
_CUTS = (
    re.compile(r"[.!?…][\"'”’)\]]*(\s)"),
    re.compile(r"(\n)"),
    re.compile(r"(\s)"),
)


def _cut(text: str, max_chars: int) -> list[str]:
    pieces = []
    while len(text) > max_chars:
        window = text[: max_chars + 1]
        least = max(1, max_chars // 2)  # a cut nearer the start would leave a scrap
        cut = max_chars
        for pattern in _CUTS:
            points = [m.start(1) for m in pattern.finditer(window) if m.start(1) >= least]
            if points:
                cut = points[-1]
                break
        pieces.append(text[:cut].rstrip())
        text = text[cut:].lstrip()
    if text:
        pieces.append(text)
    return pieces
