"""``confab init``: a commented ``config.toml`` to start from.

The file is ``config.example.toml`` (shipped in this package, so every key is
there with its comment and default) with the chosen adapters, database and
model backend set. On a terminal the command asks for whatever its flags leave
open; otherwise the flags and their defaults decide. An existing file is
replaced only with ``--force``. It prints the next steps: the environment
variables holding the chosen adapters' secrets, ``confab config check`` and
``confab run``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel

from confab.bot.config import DEFAULT_CONFIG_FILE
from confab.bot.errors import ConfabError
from confab.bot.extras import install_command, local_model_missing
from confab.bot.llm.packaged import SMOLLM2

INIT_COMMANDS = ("init",)
EXAMPLE_FILE = "config.example.toml"
DEFAULT_OPENAI_URL = "http://127.0.0.1:8000/v1"
# Defaults that follow $XDG_DATA_HOME / $XDG_CACHE_HOME: left commented out in
# the written file, so they go on following them.
PATH_KEYS = (("model", "cache_dir"), ("model", "loras_dir"), ("console", "history_file"))
Backend = Literal["bundled", "openai"]


class CannotInit(ConfabError):
    """The file cannot be written: it exists, or a choice is not one Confab takes."""


@dataclass(frozen=True)
class InitChoices:
    """What ``confab init`` sets in the file."""

    adapters: tuple[str, ...] = ("console",)
    # None: the default SQLite file; else a database URL without its password.
    database_url: str | None = None
    model: Backend = "bundled"
    openai_url: str = DEFAULT_OPENAI_URL
    # The database URL carried a password, which stays out of the file.
    password_dropped: bool = False


def add_init_commands(commands: Any) -> None:
    init = commands.add_parser("init", help="write a commented config.toml to start from")
    init.add_argument(
        "--path", default=str(DEFAULT_CONFIG_FILE), metavar="PATH", help="default: ./config.toml"
    )
    init.add_argument("--force", action="store_true", help="replace an existing file")
    init.add_argument("--adapters", metavar="LIST", help="e.g. console,discord,slack")
    init.add_argument("--database", metavar="DB", help="sqlite (default) or a postgresql://... URL")
    init.add_argument("--model", choices=("bundled", "openai"), help="the model backend")
    init.add_argument("--openai-url", metavar="URL", help=f"default: {DEFAULT_OPENAI_URL}")


def run_init_command(
    args: argparse.Namespace,
    adapters: Mapping[str, type[Any]],
    ask: Callable[[str], str] | None = None,
    left_out: Mapping[str, str] | None = None,
) -> int:
    """Write the file ``args`` describe; ``ask`` (``input`` on a terminal) fills the rest.
    ``left_out`` says why a registered adapter is not available (its extra is missing)."""
    left_out = left_out or {}
    if ask is None and sys.stdin.isatty():
        ask = input
    target = Path(args.path).expanduser()
    try:
        if target.exists() and not args.force:
            raise CannotInit(f"{target} exists already; pass --force to replace it")
        choices = (
            ask_choices(ask, args, sorted(adapters), left_out)
            if ask is not None
            else choices_from(
                args.adapters, args.database, args.model, args.openai_url, adapters, left_out
            )
        )
        write_config(target, config_text(example_config(), choices))
    except CannotInit as error:
        print(f"confab: {error}", file=sys.stderr)
        return 2
    except (EOFError, KeyboardInterrupt):
        print("\nconfab: init cancelled; nothing written", file=sys.stderr)
        return 130
    print("\n".join(next_steps(target, choices, adapters)))
    return 0


def example_config() -> str:
    """``config.example.toml`` as shipped in the package."""
    return resources.files("confab.bot").joinpath(EXAMPLE_FILE).read_text(encoding="utf-8")


def choices_from(
    adapters: str | None,
    database: str | None,
    model: str | None,
    openai_url: str | None,
    installed: Mapping[str, Any],
    left_out: Mapping[str, str] | None = None,
) -> InitChoices:
    """The choices that flags give, each checked; unset ones take their defaults."""
    if openai_url is not None and model != "openai":
        raise CannotInit("--openai-url goes with --model openai")
    url, dropped = parse_database(database or "sqlite")
    return InitChoices(
        adapters=parse_adapters(adapters or "console", installed, left_out),
        database_url=url,
        model="openai" if model == "openai" else "bundled",
        openai_url=parse_openai_url(openai_url or DEFAULT_OPENAI_URL),
        password_dropped=dropped,
    )


def ask_choices(
    ask: Callable[[str], str],
    args: argparse.Namespace,
    installed: Sequence[str],
    left_out: Mapping[str, str] | None = None,
) -> InitChoices:
    """Ask for what the flags leave open, again after an answer that does not fit."""
    known = dict.fromkeys(installed)

    def question(prompt: str, default: str, given: str | None, check: Callable[[str], Any]) -> Any:
        if given is not None:
            return check(given)
        while True:
            answer = ask(f"{prompt} [{default}]: ").strip() or default
            try:
                return check(answer)
            except CannotInit as error:
                print(f"  {error}", file=sys.stderr)

    adapters = question(
        f"Adapters to run ({', '.join(installed)})",
        "console",
        args.adapters,
        lambda answer: parse_adapters(answer, known, left_out),
    )
    url, dropped = question(
        "Database: sqlite, or a postgresql://USER@HOST/DB URL",
        "sqlite",
        args.database,
        parse_database,
    )
    model = question(
        "Model: bundled, or openai (an OpenAI-compatible server)",
        "bundled",
        args.model,
        parse_model,
    )
    openai_url = DEFAULT_OPENAI_URL
    if model == "openai":
        openai_url = question(
            "  Its base URL, up to /v1", DEFAULT_OPENAI_URL, args.openai_url, parse_openai_url
        )
    return InitChoices(adapters, url, model, openai_url, dropped)


def parse_adapters(
    text: str, installed: Mapping[str, Any], left_out: Mapping[str, str] | None = None
) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(name.strip() for name in text.split(",") if name.strip()))
    unknown = [name for name in names if name not in installed]
    left_out = left_out or {}
    if missing := [f"{name}: {left_out[name]}" for name in unknown if name in left_out]:
        raise CannotInit("; ".join(missing))  # registered, but its extra is not installed
    if unknown or not names:
        raise CannotInit(
            f"no such adapter: {', '.join(unknown) or '(none given)'}; "
            f"installed: {', '.join(sorted(installed))}"
        )
    return names


def parse_database(text: str) -> tuple[str | None, bool]:
    """``(url, password_dropped)``: None for the default SQLite file; a PostgreSQL URL
    in asyncpg's form, without a password (it belongs in the environment)."""
    text = text.strip()
    if text == "sqlite":
        return None, False
    if text.startswith("sqlite+aiosqlite:///"):
        return text, False
    scheme, found, rest = text.partition("://")
    if not found or scheme not in ("postgres", "postgresql", "postgresql+asyncpg") or not rest:
        raise CannotInit(f"{text!r} is not sqlite or a postgresql://USER@HOST/DB URL")
    parts = urlsplit(f"postgresql+asyncpg://{rest}")
    credentials, at, place = parts.netloc.rpartition("@")
    user, colon, _password = credentials.partition(":")
    netloc = f"{user}@{place}" if at else place
    return urlunsplit(parts._replace(netloc=netloc)), bool(colon)


def parse_model(text: str) -> Backend:
    if text not in ("bundled", "openai"):
        raise CannotInit(f"{text!r} is not bundled or openai")
    return "openai" if text == "openai" else "bundled"


def parse_openai_url(text: str) -> str:
    if not text.startswith(("http://", "https://")):
        raise CannotInit(f"{text!r} does not start with http:// or https://")
    return text.rstrip("/")


def config_text(example: str, choices: InitChoices) -> str:
    """``example`` with ``choices`` set; the path defaults commented out (see PATH_KEYS)."""
    text = set_key(example, "bot", "adapters", json.dumps(list(choices.adapters)))
    if choices.database_url is None:
        text = comment_out(text, "bot", "database_url")
    else:
        text = set_key(text, "bot", "database_url", json.dumps(choices.database_url))
    backend = "openai" if choices.model == "openai" else "transformers"
    text = set_key(text, "model", "backend", json.dumps(backend))
    text = set_key(text, "model.openai", "base_url", json.dumps(choices.openai_url))
    for section, key in PATH_KEYS:
        text = comment_out(text, section, key)
    header = (
        "# Written by `confab init`, which set bot.adapters, the database and the model\n"
        "# backend. The default paths (the SQLite file, model.cache_dir, model.loras_dir,\n"
        "# console.history_file) are commented out, so that they follow $XDG_DATA_HOME\n"
        "# and $XDG_CACHE_HOME.\n#\n"
    )
    return header + text


def _key_line(lines: list[str], section: str, key: str) -> int:
    """The index of ``key = ...`` in ``[section]``; a missing key is a bug of the example."""
    header = f"[{section}]"
    start = lines.index(header)  # ValueError: the example lacks the section
    pattern = re.compile(rf"{re.escape(key)}\s*=")
    for index in range(start + 1, len(lines)):
        if lines[index].startswith("["):
            break
        if pattern.match(lines[index]):
            return index
    raise ValueError(f"{EXAMPLE_FILE} has no {section}.{key}")


def set_key(text: str, section: str, key: str, value: str) -> str:
    """``text`` with ``key`` of ``[section]`` set to the TOML ``value``."""
    lines = text.split("\n")
    lines[_key_line(lines, section, key)] = f"{key} = {value}"
    return "\n".join(lines)


def comment_out(text: str, section: str, key: str) -> str:
    """``text`` with the line of ``key`` in ``[section]`` turned into a comment."""
    lines = text.split("\n")
    index = _key_line(lines, section, key)
    lines[index] = f"# {lines[index]}"
    return "\n".join(lines)


def write_config(target: Path, text: str) -> None:
    """Write ``text`` to ``target`` whole (beside it, then renamed into place)."""
    staging = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging.write_text(text, encoding="utf-8")
        os.replace(staging, target)
    except OSError as error:
        staging.unlink(missing_ok=True)
        raise CannotInit(f"cannot write {target}: {error.strerror}") from None


def secret_variables(choices: InitChoices, adapters: Mapping[str, type[Any]]) -> list[str]:
    """``VARIABLE (what it holds)`` for each secret the chosen setup reads."""
    found: list[str] = []
    for name in choices.adapters:
        model = getattr(adapters.get(name), "config_model", None)
        if isinstance(model, type) and issubclass(model, BaseModel):
            for field, info in model.model_fields.items():
                if field.endswith("_env") and isinstance(info.default, str) and info.default:
                    found.append(f"{info.default} ({name}.{field})")
    if choices.model == "openai":
        found.append("CONFAB_OPENAI_API_KEY (model.openai.api_key_env), if the server wants one")
    if choices.password_dropped:
        found.append("PGPASSWORD (the database password, kept out of the file)")
    return found


def next_steps(target: Path, choices: InitChoices, adapters: Mapping[str, type[Any]]) -> list[str]:
    """What to do after the file is written, as lines to print."""
    database = "the default SQLite file" if choices.database_url is None else "PostgreSQL"
    model = "the bundled model" if choices.model == "bundled" else choices.openai_url
    lines = [f"wrote {target}: adapters {', '.join(choices.adapters)}; {database}; {model}"]
    option = "" if target == DEFAULT_CONFIG_FILE else f" --config {target}"
    steps = []
    secrets = secret_variables(choices, adapters)
    if secrets:
        steps.append(
            "set these environment variables (secrets never go in the file):\n"
            + "\n".join(f"     {variable}" for variable in secrets)
        )
    if choices.model == "bundled" and local_model_missing():
        steps.append(
            f"install the in-process model: {install_command('local')}, then {SMOLLM2.install}"
        )
    steps += [
        f"check the settings: confab config check{option}",
        f"start the bot: confab run{option}",
    ]
    lines.append("next steps:")
    lines += [f"  {number}. {step}" for number, step in enumerate(steps, 1)]
    return lines
