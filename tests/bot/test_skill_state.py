"""``ctx.state``: a skill's own key-value store per channel, person and everywhere, in
SQLite and PostgreSQL, surviving a restart and removed by ``!forget``."""

from __future__ import annotations

from pathlib import Path

import pytest

from confab import Arg, Skill, SkillContext
from confab.bot.config import RouterConfig
from confab.bot.testing import ChatHarness
from confab.skills.forget import ForgetSkill

ADMINS = RouterConfig(user_burst=10_000, admins=["test:boss"])


class Counter(Skill):
    """Counts per channel, per person and in all; ``!count set KEY VALUE`` stores any JSON."""

    name = "count"
    help = "Count."
    arguments = (Arg("key", default=""), Arg("value", default="", rest=True))

    async def run(self, ctx: SkillContext) -> None:
        assert ctx.state is not None
        if ctx.options["key"]:
            try:
                await ctx.state.user.set(ctx.options["key"], {"said": ctx.options["value"]})
            except ValueError as error:
                await ctx.reply(f"refused: {error}")
                return
            await ctx.reply(str(await ctx.state.user.items()))
            return
        counts = []
        for scope in (ctx.state.channel, ctx.state.user, ctx.state.everywhere):
            number = await scope.get("n", 0) + 1
            await scope.set("n", number)
            counts.append(number)
        await ctx.reply(" ".join(map(str, counts)))


class Other(Skill):
    name = "other"
    help = "Reads the same key."

    async def run(self, ctx: SkillContext) -> None:
        assert ctx.state is not None
        await ctx.reply(repr(await ctx.state.channel.get("n")))


def harness(tmp_path: Path, url: str) -> ChatHarness:
    return ChatHarness(
        [Counter, Other, ForgetSkill], tmp_path, router_config=ADMINS, database_url=url
    )


async def test_each_scope_counts_apart_and_survives_a_restart(
    tmp_path: Path, any_db_url: str
) -> None:
    async with harness(tmp_path, any_db_url) as chat:
        assert await chat.ask("!count", author="ada", channel="a") == "1 1 1"
        assert await chat.ask("!count", author="bob", channel="a") == "2 1 2"
        assert await chat.ask("!count", author="ada", channel="b") == "1 2 3"
        assert await chat.ask("!other", author="ada", channel="a") == "None"  # its own keys only
    async with harness(tmp_path, any_db_url) as chat:  # a new process on the same database
        assert await chat.ask("!count", author="ada", channel="a") == "3 3 4"


async def test_forget_me_and_forget_channel_remove_the_state_they_cover(
    tmp_path: Path, any_db_url: str
) -> None:
    async with harness(tmp_path, any_db_url) as chat:
        await chat.ask("!count", author="ada", channel="a")
        await chat.ask("!count", author="boss", channel="a")
        await chat.ask("!forget me", author="ada", channel="a")
        # ada's own count starts again; the channel's and the global one are not hers.
        assert await chat.ask("!count", author="ada", channel="a") == "3 1 3"
        await chat.ask("!forget channel", author="boss", channel="a")
        assert await chat.ask("!count", author="boss", channel="a") == "1 2 4"


@pytest.mark.parametrize(
    ("typed", "answer"),
    [
        ("!count lang fr", "{'lang': {'said': 'fr'}}"),
        ("!count " + "k" * 201 + " x", "refused: a state key is a string of 1 to 200 characters"),
        (
            "!count big " + "x" * 70_000,
            "refused: state 'big' is 70012 bytes; at most 65536 are kept",
        ),
    ],
)
async def test_values_are_json_within_a_size_limit(tmp_path: Path, typed: str, answer: str) -> None:
    config = RouterConfig(user_burst=10_000, max_input_chars=100_000)
    async with ChatHarness([Counter], tmp_path, router_config=config) as chat:
        assert (await chat.ask(typed)).startswith(answer)
