"""The distribution claims one import name, ``confab``, and its face loads no database
or model code."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

from confab.bot.extras import EXTRAS

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


def _requirement_name(requirement: str) -> str:
    name = re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0]
    return re.sub(r"[-_.]+", "-", name).lower()


def _third_party_imports() -> dict[str, list[str]]:
    """Top-level modules outside the standard library that the installed code imports."""
    found: dict[str, list[str]] = {}
    for folder in (*FOLDERS, "confab"):
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    top = name.split(".")[0]
                    if top not in sys.stdlib_module_names and top != "confab":
                        found.setdefault(top, []).append(str(path.relative_to(ROOT)))
    return found


def test_every_module_the_code_imports_is_declared_by_the_base_or_an_extra() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {_requirement_name(r) for r in project["dependencies"]}
    for extra in ("local", "discord", "slack", "testing"):
        declared |= {_requirement_name(r) for r in project["optional-dependencies"][extra]}
    providers = packages_distributions()
    undeclared = {
        module: files
        for module, files in _third_party_imports().items()
        if not {_requirement_name(d) for d in providers.get(module, [module])} & declared
    }
    assert undeclared == {}


def test_the_base_install_holds_neither_the_local_model_nor_a_platform() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    base = {_requirement_name(r) for r in project["dependencies"]}
    extras = project["optional-dependencies"]
    assert {"torch", "transformers", "peft", "discord-py", "slack-bolt"} & base == set()
    assert extras["all"] == ["confab-bot[local,discord,slack]"]
    # The sentence that names a missing extra names the extra that really provides it.
    providers = packages_distributions()
    for module, (extra, _, distribution) in EXTRAS.items():
        assert _requirement_name(distribution) in {_requirement_name(r) for r in extras[extra]}, (
            module
        )
        assert _requirement_name(distribution) in map(_requirement_name, providers[module])
