"""Skills and adapters are found through entry points; broken ones are left out."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from confab.bot.plugins import ADAPTER_GROUP, SKILL_GROUP, discover_adapters, discover_skills


def point(name: str, value: str, group: str = SKILL_GROUP) -> EntryPoint:
    return EntryPoint(name=name, value=value, group=group)


def test_builtins_register_through_installed_entry_points() -> None:
    skills = discover_skills()
    assert {"ask", "help", "ping"} <= set(skills.skills)
    assert skills.skills["ask"].aliases == ("q",)
    assert "console" in discover_adapters().adapters


def test_a_skill_that_fails_to_import_is_logged_and_left_out(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.ERROR):
        catalog = discover_skills(
            [
                point("ping", "confab.skills.ping:PingSkill"),
                point("broken", "tests.bot.plugins_broken:Anything"),
            ]
        )
    assert list(catalog.skills) == ["ping"]
    assert "import failed" in catalog.failed["broken"]
    assert any("'broken'" in r.getMessage() and r.exc_info for r in caplog.records)


def test_bad_declarations_and_name_clashes_are_left_out() -> None:
    catalog = discover_skills(
        [
            point("ping", "confab.skills.ping:PingSkill"),
            point("again", "confab.skills.ping:PingSkill"),
            point("notaskill", "confab.bot.messages:Message"),
            point("badname", "tests.bot.plugins_fixtures:BadName"),
            point("nohelp", "tests.bot.plugins_fixtures:NoHelp"),
        ]
    )
    assert list(catalog.skills) == ["ping"]
    assert "taken" in catalog.failed["again"]
    assert "not a Skill subclass" in catalog.failed["notaskill"]
    assert "must be lowercase" in catalog.failed["badname"]
    assert "help must be" in catalog.failed["nohelp"]


def test_adapters_are_checked_too() -> None:
    catalog = discover_adapters(
        [
            point("console", "confab.adapters.console:ConsoleAdapter", ADAPTER_GROUP),
            point("fake", "confab.skills.ping:PingSkill", ADAPTER_GROUP),
            point("gone", "nowhere.at.all:Adapter", ADAPTER_GROUP),
        ]
    )
    assert list(catalog.adapters) == ["console"]
    assert set(catalog.failed) == {"fake", "gone"}


def test_an_adapter_whose_extra_is_missing_is_left_out_with_the_pip_command(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.DEBUG):
        catalog = discover_adapters(
            [point("discord", "tests.bot.plugins_missing_extra:Adapter", ADAPTER_GROUP)]
        )
    assert catalog.adapters == {}
    assert catalog.failed == {
        "discord": "the Discord adapter needs discord.py, which is not installed: "
        "pip install 'confab-bot[discord]'"
    }
    # An install choice, not a fault: no error and no traceback in the log.
    assert [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info] == []


def test_a_console_session_imports_no_other_adapter_and_accepts_their_sections(
    tmp_path: Path,
) -> None:
    """discord.py and slack-bolt cost a console start 0.15 to 0.3 s for nothing."""
    config = tmp_path / "config.toml"
    config.write_text(
        "[bot]\n"
        f'database_url = "sqlite+aiosqlite:///{tmp_path / "confab.db"}"\n'
        "[knowledge]\nenabled = false\n"
        '[model]\nbackend = "openai"\n'
        '[model.openai]\nbase_url = "http://127.0.0.1:9/v1"\nmodel = "any"\nmax_retries = 0\n'
        "[discord]\nenabled = true\n[slack]\nenabled = true\n"
    )
    script = (
        "import sys\n"
        "from confab.bot.cli import main\n"
        f"status = main(['console', '--config', {str(config)!r}])\n"
        "sdks = ('discord', 'slack_bolt', 'slack_sdk')\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & set(sdks)), file=sys.stderr)\n"
        "sys.exit(status)\n"
    )
    environment = {k: v for k, v in os.environ.items() if not k.startswith("CONFAB_")}
    done = subprocess.run(
        [sys.executable, "-c", script],
        input="!help\n",
        capture_output=True,
        text=True,
        env={**environment, "HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path / "data")},
        cwd=tmp_path,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "!ask" in done.stdout  # the help answered
    assert done.stderr.strip().splitlines()[-1] == "[]"
