"""Reading the documents a team adds to the knowledge base, cut into sections for retrieval.

Files come from ``confab kb add PATH…`` or are attached in chat. Each one is read
whole or refused whole with :class:`DocumentRefused`, whose sentence names the
file and the reason; :func:`passages` then cuts its sections into the pieces
that are embedded and retrieved.
"""

from __future__ import annotations

import hashlib
import math
import re
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from confab.bot.knowledge import formats
from confab.bot.knowledge.formats import DocumentRefused, Section
from confab.bot.textsplit import open_fence

__all__ = [
    "SUPPORTED",
    "DocumentRefused",
    "ReadDocument",
    "Section",
    "documents_under",
    "kind_of",
    "passages",
    "read_document",
    "read_document_bytes",
]

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
class ReadDocument:
    """A file read whole: what the knowledge base stores, and its digest to skip re-adding it."""

    name: str
    kind: str
    sha256: str
    size: int
    title: str
    sections: tuple[Section, ...]


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
        title, sections = formats.pdf(name, data)
    else:
        text = _decode(name, kind, data).replace("\r\n", "\n").replace("\r", "\n")
        parse = {"markdown": formats.markdown, "text": formats.text, "html": formats.html}[kind]
        title, sections = parse(text)
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
