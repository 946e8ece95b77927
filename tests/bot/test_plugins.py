"""Skills and adapters are found through entry points; broken ones are left out."""

from __future__ import annotations

import logging
from importlib.metadata import EntryPoint

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
