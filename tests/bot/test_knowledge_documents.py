"""Documents a team adds to the knowledge base are read into sections under their
headings, cut into passages for retrieval, or refused whole with one sentence that
names the file and the reason."""

from __future__ import annotations

import hashlib
import io
import logging
from pathlib import Path

import pytest
from pypdf import PdfReader, PdfWriter

from confab.bot.knowledge.documents import (
    DocumentRefused,
    ReadDocument,
    Section,
    documents_under,
    passages,
    read_document,
    read_document_bytes,
)

MB = 1 << 20
LIMIT = 20 * MB


def pdf(*pages: list[str]) -> bytes:
    """A minimal valid PDF: each page shows its lines in Helvetica (an empty list: no text)."""
    count = len(pages)
    font = 3 + 2 * count
    kids = " ".join(f"{3 + 2 * i} 0 R" for i in range(count))
    bodies = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Kids [{kids}] /Count {count} >>".encode(),
    ]
    for i, lines in enumerate(pages):
        shown = [f"({line}) Tj T*" for line in lines]
        stream = "\n".join(["BT", "/F1 12 Tf", "72 720 Td", "14 TL", *shown, "ET"]).encode()
        bodies.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792]"
            f" /Resources << /Font << /F1 {font} 0 R >> >> /Contents {4 + 2 * i} 0 R >>".encode()
        )
        bodies.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream))
    bodies.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(bodies, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(bodies) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(bodies) + 1,
        xref,
    )
    return bytes(out)


def encrypted(data: bytes, user_password: str, owner_password: str | None = None) -> bytes:
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(data)))
    writer.encrypt(user_password, owner_password)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def refusal(path: Path, max_bytes: int = LIMIT) -> str:
    with pytest.raises(DocumentRefused) as refused:
        read_document(path, max_bytes=max_bytes)
    return refused.value.user_message


def write(folder: Path, name: str, data: bytes | str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


SETUP_MD = """\
# Setup

Confab answers   questions
from your team's documents.

## Install

### Linux

Run the installer:

```sh
# not a heading

./install.sh
```

### macOS

See [the guide](https://example.com/mac).

## Use

Ask away.
"""


def test_markdown_sections_follow_the_nested_headings_and_keep_code_whole(
    tmp_path: Path,
) -> None:
    document = read_document(write(tmp_path, "setup.md", SETUP_MD), max_bytes=LIMIT)

    assert (document.name, document.kind, document.title) == ("setup.md", "markdown", "Setup")
    assert document.sections == (
        Section("Setup", "Confab answers questions\nfrom your team's documents."),
        Section(
            "Setup > Install > Linux",
            "Run the installer:\n\n```sh\n# not a heading\n\n./install.sh\n```",
        ),
        Section("Setup > Install > macOS", "See the guide (https://example.com/mac)."),
        Section("Setup > Use", "Ask away."),
    )
    # Cut small, the code block's own blank line still does not split it.
    linux = [p.text for p in passages(document, max_chars=45) if p.heading.endswith("Linux")]
    assert linux == ["Run the installer:", "```sh\n# not a heading\n\n./install.sh\n```"]


def test_setext_headings_build_the_path_as_atx_ones_do(tmp_path: Path) -> None:
    text = "Guide\n=====\n\nHello.\n\nInstall\n-------\n\nRun it.\n\n---\n\nStill installing.\n"

    document = read_document(write(tmp_path, "guide.markdown", text), max_bytes=LIMIT)

    assert document.title == "Guide"
    assert document.sections == (
        Section("Guide", "Hello."),
        Section("Guide > Install", "Run it.\n\nStill installing."),
    )


def test_plain_text_is_paragraphs_without_headings_titled_by_the_file_stem(
    tmp_path: Path,
) -> None:
    text = "\ufeffFirst  line\r\nsame paragraph\r\n\r\n\r\n# Second\r\n"

    document = read_document(write(tmp_path, "notes.txt", text), max_bytes=LIMIT)

    assert document.title == "notes"
    assert document.sections == (Section("", "First line\nsame paragraph\n\n# Second"),)


def test_html_drops_scripts_and_navigation_and_decodes_entities(tmp_path: Path) -> None:
    page = """<!doctype html><html><head><title>Fish &amp; Chips</title>
    <style>p { color: red }</style><script>var secret = "in script";</script></head>
    <body><header><a href="/">Home</a></header><nav><ul><li>Menu item</li></ul></nav>
    <h1>Menu</h1><p>Cod &amp; chips,
       &lt;hot&gt;&nbsp;and&#33;</p>
    <h2>Sides <em>today</em></h2><ul><li>Peas</li><li>Gravy<br>extra</li></ul>
    <pre>  fry()
      serve()</pre>
    <footer>Copyright</footer></body></html>"""

    document = read_document(write(tmp_path, "menu.html", page), max_bytes=LIMIT)

    assert (document.kind, document.title) == ("html", "Fish & Chips")
    assert document.sections == (
        Section("Menu", "Cod & chips, <hot> and!"),
        Section("Menu > Sides today", "Peas\n\nGravy\nextra\n\n  fry()\n      serve()"),
    )
    everything = " ".join(s.text for s in document.sections)
    for dropped in ("secret", "color", "Home", "Menu item", "Copyright"):
        assert dropped not in everything


def test_html_in_a_declared_charset_is_read(tmp_path: Path) -> None:
    page = '<meta charset="iso-8859-1"><p>Caf\xe9 cr\xe8me</p>'.encode("latin-1")

    document = read_document(write(tmp_path, "cafe.htm", page), max_bytes=LIMIT)

    assert document.sections == (Section("", "Café crème"),)


def test_pdf_text_is_read_page_by_page(tmp_path: Path) -> None:
    data = pdf(["Install guide", "Run the installer."], [], ["Second page text."])

    document = read_document(write(tmp_path, "guide.pdf", data), max_bytes=LIMIT)

    assert (document.kind, document.title, document.size) == ("pdf", "guide", len(data))
    assert document.sections == (
        Section("page 1", "Install guide\nRun the installer."),
        Section("page 3", "Second page text."),
    )


def test_a_password_protected_pdf_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "secret.pdf", encrypted(pdf(["Top secret."]), "pw"))

    assert refusal(path) == "secret.pdf: the PDF is password-protected."


def test_a_pdf_protected_only_against_editing_is_read(tmp_path: Path) -> None:
    path = write(tmp_path, "locked.pdf", encrypted(pdf(["Read me."]), "", "owner"))

    assert read_document(path, max_bytes=LIMIT).sections == (Section("page 1", "Read me."),)


def test_a_malformed_pdf_is_refused_without_a_traceback_in_the_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for number, data in enumerate([pdf(["Half a file."])[:150], b"%PDF-1.4\n\x00\x01garbage"]):
        message = refusal(write(tmp_path, f"x{number}.pdf", data))

        assert message.startswith(f"x{number}.pdf: the PDF could not be read (")
        assert message.endswith(").")
    assert not [record for record in caplog.records if record.exc_info]
    assert "Traceback" not in caplog.text


def test_a_pdf_without_a_text_layer_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "scan.pdf", pdf([], []))

    assert refusal(path) == "scan.pdf: the PDF has no text layer (scanned pages?)."


def test_unsupported_files_are_refused_by_name(tmp_path: Path) -> None:
    path = write(tmp_path, "report.docx", b"PK\x03\x04 a zip")

    assert refusal(path) == (
        "report.docx: .docx files are not supported (Markdown, plain text, HTML or PDF)."
    )
    assert refusal(write(tmp_path, "Makefile", "all:\n")).startswith(
        "Makefile: files without a suffix are not supported"
    )


def test_files_without_text_are_refused(tmp_path: Path) -> None:
    assert refusal(write(tmp_path, "empty.md", b"")) == "empty.md: the file has no text."
    assert refusal(write(tmp_path, "blank.txt", " \n\n\t\n")) == "blank.txt: the file has no text."
    script_only = "<html><script>alert(1)</script><nav>Home</nav></html>"
    assert refusal(write(tmp_path, "app.html", script_only)) == "app.html: the file has no text."


def test_binary_content_in_a_text_file_is_refused(tmp_path: Path) -> None:
    expected = "notes.txt: the file is not text (binary data, or not UTF-8)."
    assert refusal(write(tmp_path, "notes.txt", b"plain start\x00\x01\x02")) == expected
    assert refusal(write(tmp_path, "notes.txt", b"\xff\xfe\x89PNG")) == expected


def test_a_file_over_the_limit_is_refused_with_both_sizes_before_it_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "big.pdf"
    with path.open("wb") as file:
        file.truncate(int(31.2 * MB))  # sparse: no disk space spent
    monkeypatch.setattr(Path, "open", lambda *args, **kwargs: pytest.fail("the file was read"))

    assert refusal(path) == ("big.pdf: 31.2 MB is over the 20 MB limit ([knowledge] max_file_mb).")
    with pytest.raises(DocumentRefused, match=r"a\.md: 2\.1 MB is over the 2 MB limit"):
        read_document_bytes("a.md", b"x" * (2 * MB + 1), max_bytes=2 * MB)


def test_a_folder_or_a_missing_file_given_to_read_is_refused(tmp_path: Path) -> None:
    (tmp_path / "notes.md").mkdir()

    assert refusal(tmp_path / "notes.md") == "notes.md: this is a folder, not a file."
    assert refusal(tmp_path / "gone.md") == "gone.md: no such file."


def test_sha256_is_the_digest_of_the_bytes_and_follows_changes(tmp_path: Path) -> None:
    path = write(tmp_path, "faq.md", "# FAQ\n\nYes.\n")
    before = read_document(path, max_bytes=LIMIT)
    path.write_text("# FAQ\n\nNo.\n")
    after = read_document(path, max_bytes=LIMIT)

    assert before.sha256 == hashlib.sha256(b"# FAQ\n\nYes.\n").hexdigest()
    assert after.sha256 == hashlib.sha256(b"# FAQ\n\nNo.\n").hexdigest()
    assert before.sha256 != after.sha256


def test_an_attachment_reads_as_the_same_file_on_disk_does(tmp_path: Path) -> None:
    for name, data in [("setup.md", SETUP_MD.encode()), ("guide.pdf", pdf(["Hello."]))]:
        from_disk = read_document(write(tmp_path, name, data), max_bytes=LIMIT)

        assert read_document_bytes(name, data, max_bytes=LIMIT) == from_disk
    with pytest.raises(DocumentRefused, match=r"^report\.docx: \.docx files are not supported"):
        read_document_bytes("report.docx", b"PK", max_bytes=LIMIT)


def document(*sections: Section) -> ReadDocument:
    return ReadDocument("doc.md", "markdown", "0" * 64, 0, "doc", sections)


def test_passages_cut_a_long_section_at_paragraph_ends_and_merge_tiny_paragraphs() -> None:
    long = [f"Paragraph {n} " + "word " * 40 for n in range(6)]  # about 220 characters each
    tiny = ["Yes.", "No.", "Maybe."]
    text = "\n\n".join([*tiny, *(p.strip() for p in long)])

    pieces = passages(document(Section("FAQ", text), Section("", "Short.")), max_chars=500)

    assert all(len(piece.text) <= 500 for piece in pieces)
    assert [piece.heading for piece in pieces] == ["FAQ"] * (len(pieces) - 1) + [""]
    assert pieces[0].text.startswith("Yes.\n\nNo.\n\nMaybe.\n\nParagraph 0 ")
    assert len(pieces) == 4  # three of two long paragraphs each (one with the tiny ones), one short
    # Every paragraph survives whole, in order, with none cut in the middle.
    rejoined = [p for piece in pieces[:-1] for p in piece.text.split("\n\n")]
    assert rejoined == text.split("\n\n")
    assert pieces[-1] == Section("", "Short.")


def test_a_paragraph_longer_than_a_passage_is_cut_at_sentence_ends_then_anywhere() -> None:
    sentences = [f"Sentence number {n} says something useful." for n in range(30)]
    unbroken = "x" * 250

    pieces = passages(
        document(Section("Long", " ".join(sentences) + "\n\n" + unbroken)), max_chars=200
    )

    assert all(len(piece.text) <= 200 and piece.heading == "Long" for piece in pieces)
    texts = [piece.text for piece in pieces]
    assert all(text.endswith(".") for text in texts[:-2])  # cut after a sentence ends
    assert " ".join(texts[:-2]) == " ".join(sentences)
    assert texts[-2:] == ["x" * 200, "x" * 50]


def test_a_section_that_fits_is_one_passage() -> None:
    section = Section("A > B", "One.\n\nTwo.\n\nThree.")

    assert passages(document(section)) == [section]


def test_documents_under_walks_folders_in_order_and_skips_hidden_names(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    for name in ["b.md", "a.txt", "sub/z.pdf", "sub/c.docx", ".git/config", ".hidden.md", "sub/.x"]:
        write(docs, name, "text")
    single = write(tmp_path, ".single.md", "asked for by name")

    found = list(documents_under([docs, single]))

    assert found == [docs / "a.txt", docs / "b.md", docs / "sub/c.docx", docs / "sub/z.pdf", single]


def test_documents_under_refuses_a_missing_path_before_yielding_any(tmp_path: Path) -> None:
    write(tmp_path, "a.md", "text")
    walk = documents_under([tmp_path / "a.md", tmp_path / "notes"])

    with pytest.raises(DocumentRefused) as refused:
        next(walk)
    assert refused.value.user_message == f"{tmp_path / 'notes'}: no such file or folder."
