"""Helpers shared by the test suites."""

from __future__ import annotations

import io
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from confab.adapters.console import ConsoleAdapter
from confab.bot.adapter import Adapter, AdapterContext
from confab.bot.app import App
from confab.bot.config import Config, build_config_model, load_config
from confab.bot.llm.backend import ModelBackend
from confab.bot.plugins import SkillCatalog, discover_adapters, discover_skills
from confab.storage.conversations import ConversationKey, ConversationStore


def console_config(
    db_url: str,
    extra_adapters: Mapping[str, type[Adapter]] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """The installed plugins' config, plus sections for ``extra_adapters``, on ``db_url``,
    with ``overrides`` (section -> key -> value) applied."""
    adapters = {**discover_adapters().adapters, **(extra_adapters or {})}
    skills = discover_skills()
    schema = build_config_model(
        {name: cls.config_model for name, cls in adapters.items()},
        {name: cls.config_model for name, cls in skills.skills.items()},
    )
    settings = {
        **(overrides or {}),
        "bot": {**(overrides or {}).get("bot", {}), "database_url": db_url},
    }
    return load_config(overrides=settings, schema=schema)


async def run_console(
    db_url: str,
    lines: str,
    model: ModelBackend | None,
    overrides: Mapping[str, Any] | None = None,
    *,
    skills: SkillCatalog | None = None,
    out: io.StringIO | None = None,
) -> tuple[str, str]:
    """Run the whole app with the console reading ``lines``; return stdout and stderr.

    ``model=None`` serves the models the config and ``confab model use`` choose;
    ``skills`` defaults to the installed ones; ``out`` is the console's stdout."""
    out, err = out or io.StringIO(), io.StringIO()

    def console(context: AdapterContext) -> ConsoleAdapter:
        return ConsoleAdapter(
            context, stdin=io.StringIO(lines), stdout=out, stderr=err, interactive=False
        )

    app = App(
        console_config(db_url, overrides=overrides),
        skills=skills or discover_skills(),
        adapters=discover_adapters(),
        enabled=["console"],
        model=model,
        adapter_factories={"console": console},
    )
    await app.run()
    return out.getvalue(), err.getvalue()


def fresh_venv(venv: Path) -> tuple[Path, Path]:
    """An empty venv without pip at ``venv``: its python and its site-packages."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    return python, Path(site)


class Clock:
    """A monotonic clock a test moves by hand (``clock.now += 30``)."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def seed_stored_history(
    store: ConversationStore, platform: str, channel: str, entries: list[tuple[str, str]]
) -> None:
    """Store ``(author, text)`` chatter in a channel, oldest first: the history of an
    adapter whose platform keeps none (the console, the web chat)."""
    for author, text in entries:
        await store.append(
            ConversationKey(platform, channel),
            role="user",
            author_id=author,
            author_name=author,
            text=text,
            addressed=False,
        )
