"""`confab kb`: adding files and folders, what is refused, re-adding, removing, searching."""

from __future__ import annotations

from pathlib import Path

import pytest

from confab.bot.cli import main

TARNWICK = Path(__file__).resolve().parents[2] / "bot" / "lab" / "examples" / "tarnwick"


@pytest.fixture
def kb(db_url: str, monkeypatch: pytest.MonkeyPatch, sentence_model: object) -> None:
    monkeypatch.setenv("CONFAB_BOT__DATABASE_URL", db_url)
    # The CLI's knowledge base builds its own sentence model: the run's shared one.
    monkeypatch.setattr("confab.bot.knowledge.base.Embedder", lambda: sentence_model)


def test_a_folder_is_added_once_changed_files_replace_theirs_and_bad_ones_are_named(
    kb: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "deploy.md").write_text("# Deploys\n\nWe deploy the web app on Thursdays.\n")
    (docs / "notes.txt").write_bytes(b"\x00\x01\x02 not text")
    (docs / "slides.pptx").write_bytes(b"PK")
    (docs / ".hidden.md").write_text("# Hidden\n\nnever added\n")
    assert main(["kb", "add", str(docs)]) == 1  # something was refused
    err = capsys.readouterr().err
    assert f"added {docs / 'deploy.md'} (1 passages)" in err
    assert "refused notes.txt: the file is not text (binary data, or not UTF-8)." in err
    assert "refused slides.pptx: .pptx files are not supported" in err
    assert "3 files: 1 added, 2 refused" in err

    assert main(["kb", "add", str(docs / "deploy.md")]) == 0
    assert "1 files: 1 unchanged" in capsys.readouterr().err
    (docs / "deploy.md").write_text("# Deploys\n\nWe deploy the web app on Tuesdays now.\n")
    assert main(["kb", "add", str(docs / "deploy.md")]) == 0
    assert "1 files: 1 replaced" in capsys.readouterr().err

    assert main(["kb", "search", "which day do we deploy the web app?"]) == 0
    out = capsys.readouterr().out
    assert "deploy.md › Deploys" in out and "Tuesdays" in out and "Thursdays" not in out

    assert main(["kb", "list"]) == 0
    (header, row) = capsys.readouterr().out.splitlines()
    assert header.split() == ["NAME", "KIND", "PASSAGES", "SCOPE", "ADDED", "SOURCE"]
    assert row.split()[:4] == ["deploy.md", "markdown", "1", "everywhere"]

    assert main(["kb", "remove", str(docs / "deploy.md")]) == 0
    assert main(["kb", "search", "which day do we deploy the web app?"]) == 0
    assert capsys.readouterr().out.endswith("no matches\n")
    assert main(["kb", "remove", "deploy.md"]) == 1
    assert "no document named 'deploy.md'" in capsys.readouterr().err


def test_documents_for_named_channels_answer_only_there(
    kb: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["kb", "add", str(TARNWICK), "--channel", "console:tarnwick"]) == 0
    capsys.readouterr()
    asked = "which port does the server listen on?"
    assert main(["kb", "search", asked, "--channel", "console:tarnwick"]) == 0
    assert "configuration.md › Configuring Tarnwick > Ports" in capsys.readouterr().out
    assert main(["kb", "search", asked, "--channel", "console:general"]) == 0
    assert capsys.readouterr().out == "no matches\n"
    assert main(["kb", "add", str(TARNWICK), "--channel", "general"]) == 2
    assert "give it as platform:channel" in capsys.readouterr().err
