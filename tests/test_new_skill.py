"""``confab new skill NAME``: a package that installs, registers its skill and passes its
own test in a fresh environment; a bad name is refused with nothing written."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pytest

from confab.bot.cli import main
from tests.helpers import fresh_venv


def files_under(folder: Path) -> list[str]:
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*"))


def test_a_new_skill_package_passes_its_own_test_installed_in_a_fresh_venv(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    started = time.monotonic()
    assert main(["new", "skill", "dice", "--dir", str(tmp_path / "work")]) == 0
    package = tmp_path / "work" / "confab-dice"
    assert str(package) in capsys.readouterr().out
    assert files_under(package) == [
        "README.md",
        "pyproject.toml",
        "src",
        "src/confab_dice",
        "src/confab_dice/__init__.py",
        "src/confab_dice/dice.toml",
        "src/confab_dice/skill.py",
        "tests",
        "tests/test_dice.py",
    ]

    # A fresh venv that sees confab-bot and its dependencies (and its editable
    # finder) through this venv's site-packages, but holds nothing else.
    venv = tmp_path / "fresh"
    python, fresh_site = fresh_venv(venv)
    ours = sysconfig.get_paths()["purelib"]
    (fresh_site / "confab_dev.pth").write_text(f"import site; site.addsitedir({ours!r})\n")

    # Built into a wheel by setuptools and installed from it, as `pip install` would.
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    offline = ["--no-deps", "--no-build-isolation", "--no-index", "--no-cache-dir"]
    subprocess.run(
        [*pip, *offline, "--prefix", str(venv), str(package)],
        check=True,
        timeout=120,
    )
    installed = fresh_site / "confab_dice"
    assert (installed / "dice.toml").read_text().startswith("# Prompts of the `dice` skill")
    assert (fresh_site / "confab_dice-0.1.0.dist-info" / "entry_points.txt").exists()

    # Out of the package folder, so only the installed copy is importable.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    ran = subprocess.run(
        [python, "-m", "pytest", "-p", "no:cacheprovider", "-q", str(package / "tests")],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "3 passed" in ran.stdout

    probe = (
        "import confab_dice\n"
        "from confab.bot.plugins import discover_skills\n"
        "catalog = discover_skills()\n"
        "print(catalog.skills['dice'].__module__, catalog.failed, confab_dice.__file__)\n"
    )
    found = subprocess.run(
        [python, "-c", probe], cwd=elsewhere, capture_output=True, text=True, check=True
    )
    module, failed, where = found.stdout.split(maxsplit=2)
    assert (module, failed) == ("confab_dice.skill", "{}")
    assert Path(where.strip()) == installed / "__init__.py"
    # Seconds, not minutes: CI runs this every time.
    assert time.monotonic() - started < 60


@pytest.mark.parametrize(
    "name",
    ["Dice", "dice-roller", "2dice", "_dice", "dice roller", "", "d" * 33, "dice\n", "ping"],
)
def test_a_bad_name_is_refused_with_nothing_written(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["new", "skill", name, "--dir", str(tmp_path)]) == 2
    said = capsys.readouterr()
    assert said.out == "" and len(said.err.strip().splitlines()) == 1
    assert said.err.startswith("confab: ")
    assert list(tmp_path.iterdir()) == []


def test_an_existing_folder_is_refused_and_left_as_it_was(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "confab-dice").mkdir()
    (tmp_path / "confab-dice" / "notes.txt").write_text("mine")
    assert main(["new", "skill", "dice", "--dir", str(tmp_path)]) == 2
    assert "exists already" in capsys.readouterr().err
    assert files_under(tmp_path) == ["confab-dice", "confab-dice/notes.txt"]
