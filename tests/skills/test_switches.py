"""``!skills``: admins switch skills on and off per channel; help and routing follow."""

from __future__ import annotations

from pathlib import Path

from confab.bot.config import RouterConfig
from confab.bot.testing import ChatHarness
from confab.skills.help import HelpSkill
from confab.skills.ping import PingSkill
from confab.skills.qa import AskSkill
from confab.skills.switches import SkillsSkill

ADMINS = RouterConfig(user_burst=10_000, admins=["test:boss"])
SKILLS = [AskSkill, PingSkill, HelpSkill, SkillsSkill]


async def test_a_switched_off_skill_is_refused_here_only_and_left_out_of_help(
    tmp_path: Path, any_db_url: str
) -> None:
    async with ChatHarness(SKILLS, tmp_path, router_config=ADMINS, database_url=any_db_url) as chat:
        assert await chat.ask("!skills disable ping", author="boss", channel="a") == (
            "Done: `ping` switched off in this channel."
        )
        assert await chat.ask("!ping", author="ada", channel="a") == (
            "`!ping` is switched off in this channel; an admin can switch it on with "
            "`!skills enable ping`."
        )
        assert await chat.ask("!ping", author="ada", channel="b") == "pong"
        listing = await chat.ask("!help", author="ada", channel="a")
        assert "`!ping`" not in listing and "`!ask <question>`" in listing
        assert "Switched off in this channel: 1 (`!skills` lists them)." in listing
        assert await chat.ask("!skills", author="ada", channel="a") == (
            "On in this channel: `ask`, `help`, `skills`.\nSwitched off: `ping`."
        )
        assert await chat.ask("!skills enable ping", author="boss", channel="a") == (
            "Done: `ping` switched on in this channel."
        )
        assert await chat.ask("!ping", author="ada", channel="a") == "pong"
        stored = await chat.settings.get("test", "a")
    assert stored.enabled_skills is None  # all on again: the default, not a frozen list


async def test_only_admins_switch_and_help_and_skills_stay_on(tmp_path: Path) -> None:
    async with ChatHarness(SKILLS, tmp_path, router_config=ADMINS) as chat:
        assert await chat.ask("!skills disable ping", author="ada", channel="a") == (
            "Only an admin can run `!skills disable`."
        )
        assert await chat.ask("!skills disable help skills", author="boss", channel="a") == (
            "`help`, `skills` always stay on, so the switches can be undone."
        )
        assert await chat.ask("!skills disable nope", author="boss", channel="a") == (
            "No skill called `nope` here; `!skills` lists them."
        )
        await chat.ask("!skills disable ask ping", author="boss", channel="a")
        assert (await chat.ask("what is up?", author="ada", channel="a")).startswith(
            "`!ask` is switched off in this channel"
        )
        assert await chat.ask("!skills reset", author="boss", channel="a") == (
            "Done: every skill answers in this channel again."
        )
        assert await chat.ask("!ping", author="ada", channel="a") == "pong"
