"""``confab new skill NAME``: a ready package for a third-party skill.

It writes ``DIR/confab-NAME/``: a setuptools project registering the skill under
the ``confab.skills`` entry point, the skill (``src/confab_NAME/skill.py``) with
its prompts (``NAME.toml``, shipped as package data), a test using the ``chat``
fixture, and a README. A bad name or an existing folder is refused before
anything is written; the package appears whole or not at all.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import shutil
import string
import sys
from importlib.metadata import PackageNotFoundError, entry_points, version
from pathlib import Path
from typing import Any

from confab.bot.errors import ConfabError
from confab.bot.plugins import SKILL_GROUP
from confab.bot.skill_template import FILES

NEW_COMMANDS = ("new",)
# A command name (bot/messages.py NAME_PATTERN) that is also a Python identifier.
SKILL_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}\Z")


class CannotCreate(ConfabError):
    """The package cannot be written: a bad name, or its folder is there already."""


def add_new_commands(commands: Any) -> None:
    new = commands.add_parser("new", help="start a plugin package")
    kinds = new.add_subparsers(dest="kind", required=True, metavar="KIND")
    skill = kinds.add_parser("skill", help="a skill package: DIR/confab-NAME, with its test")
    skill.add_argument("name", metavar="NAME", help="its command: lowercase, e.g. dice")
    skill.add_argument("--dir", default=".", metavar="DIR", help="where to put it (default: here)")


def run_new_command(args: argparse.Namespace) -> int:
    try:
        folder = new_skill(args.name, Path(args.dir))
    except CannotCreate as error:
        print(f"confab: {error}", file=sys.stderr)
        return 2
    print(f"wrote {folder}: the {args.name!r} skill, its prompts, a test and a README")
    print(f"next: cd {folder} && pip install -e '.[test]' && pytest")
    return 0


def new_skill(name: str, parent: Path) -> Path:
    """Write the package of a skill called ``name`` into ``parent``; return its folder."""
    check_name(name)
    folder = parent / f"confab-{name}"
    if folder.exists():
        raise CannotCreate(f"{folder} exists already; choose another name or --dir")
    if parent.exists() and not parent.is_dir():
        raise CannotCreate(f"{parent} is not a folder")
    parent.mkdir(parents=True, exist_ok=True)
    values = {
        "name": name,
        "module": f"confab_{name}",
        "cls": "".join(part.capitalize() for part in name.split("_")),
        "confab": _confab_requirement(),
    }
    # Written beside the target and renamed into place: all of it or nothing.
    staging = parent / f".confab-{name}-{secrets.token_hex(4)}"
    try:
        staging.mkdir()  # unlike mkdtemp's, with the umask's permissions
        for path, text in FILES.items():
            target = staging / string.Template(path).substitute(values)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(string.Template(text).substitute(values), encoding="utf-8")
        os.rename(staging, folder)
    except OSError as error:
        raise CannotCreate(f"could not write {folder}: {error}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def check_name(name: str) -> None:
    """Refuse a name that is no lowercase identifier, or is an installed skill's."""
    if not SKILL_NAME.match(name):
        raise CannotCreate(
            f"{name!r} is not a skill name: a lowercase letter, then up to 31 lowercase "
            "letters, digits or '_' (it is the command and part of a module name)"
        )
    if entry_points(group=SKILL_GROUP, name=name):
        raise CannotCreate(f"a skill named {name!r} is installed already; choose another name")


def _confab_requirement() -> str:
    try:
        return f"confab-bot>={version('confab-bot')}"
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "confab-bot"
