"""The distribution claims one import name, ``confab``, and its face loads no database
or model code."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = ("bot", "adapters", "skills", "storage")
HEAVY = ("sqlalchemy", "torch", "transformers", "numpy", "discord", "slack_bolt", "aiohttp")


def test_every_package_folder_is_installed_under_confab() -> None:
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    on_disk = {"confab"} | {
        "confab." + ".".join(init.parent.relative_to(ROOT).parts)
        for folder in FOLDERS
        for init in (ROOT / folder).rglob("__init__.py")
    }
    assert set(setuptools["packages"]) == on_disk
    assert setuptools["package-dir"] == {"confab": "confab"} | {f"confab.{f}": f for f in FOLDERS}


def test_no_module_imports_a_folder_by_its_bare_name() -> None:
    """In a checkout `bot` happens to be importable; installed, only `confab.bot` is."""
    bare = []
    for folder in (*FOLDERS, "confab", "tests", "bench"):
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                names = []
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                bare += [
                    f"{path.relative_to(ROOT)}:{node.lineno} {name}"
                    for name in names
                    if name.split(".")[0] in FOLDERS
                ]
    assert bare == []


def test_the_public_face_loads_no_database_model_or_platform_code() -> None:
    probe = (
        "import sys, confab\n"
        "from confab import Skill, SkillContext, SkillError\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    )
    shown = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd="/"
    )
    assert shown.stdout.strip() == "[]"


def _confab_imports(path: Path) -> list[str]:
    """The ``confab...`` modules ``path`` imports, at any depth (``TYPE_CHECKING`` included)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found += [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
    return [name for name in found if name.split(".")[0] == "confab"]


def _imports_under(folder: str, pattern: str, forbidden: tuple[str, ...]) -> list[str]:
    return [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in sorted((ROOT / folder).glob(pattern))
        for name in _confab_imports(path)
        if any(name == prefix or name.startswith(prefix + ".") for prefix in forbidden)
    ]


def test_serving_imports_neither_storage_nor_the_lab() -> None:
    """The model package serves from config alone; the lab builds on it, never the reverse."""
    assert _imports_under("bot/llm", "*.py", ("confab.storage", "confab.bot.lab")) == []


def test_storage_imports_nothing_of_the_bot() -> None:
    assert _imports_under("storage", "**/*.py", ("confab.bot",)) == []
