"""Declared arguments: one declaration gives parsing, the usage, help and slash options."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from confab import Arg, Skill, SkillContext
from confab.bot.arguments import join_arguments, parse_arguments
from confab.bot.testing import ChatHarness
from confab.skills.help import HelpSkill


class Roll(Skill):
    name = "roll"
    help = "Roll dice."
    arguments = (
        Arg("count", int, help="how many dice", default=1, min=1, max=100),
        Arg("sides", int, help="sides of each die", default=6, min=2),
        Arg("colour", choices=("red", "blue"), default="red"),
        Arg("loud", bool, default=False),
    )

    async def run(self, ctx: SkillContext) -> None:
        await ctx.reply(" ".join(f"{k}={v!r}" for k, v in ctx.options.items()))


class Translate(Skill):
    name = "translate"
    help = "Translate a text."
    arguments = (Arg("language", help="into which"), Arg("text", rest=True, help="what to say"))

    async def run(self, ctx: SkillContext) -> None:
        await ctx.reply(f"{ctx.options['language']}|{ctx.options['text']}")


@pytest.fixture
async def chat(tmp_path: Path):  # type: ignore[no-untyped-def]
    async with ChatHarness([Roll, Translate, HelpSkill], tmp_path) as harness:
        yield harness


async def test_typed_values_reach_the_skill_with_defaults_filled_in(chat: ChatHarness) -> None:
    assert await chat.ask("!roll") == "count=1 sides=6 colour='red' loud=False"
    assert await chat.ask("!roll 3 20 BLUE yes") == "count=3 sides=20 colour='blue' loud=True"
    assert await chat.ask('!translate "New York" see you\nsoon') == "New York|see you\nsoon"


@pytest.mark.parametrize(
    ("typed", "why"),
    [
        ("!roll three", "`count` must be a whole number, not `three`"),
        ("!roll 0", "`count` must be at least 1"),
        ("!roll 101", "`count` must be at most 100"),
        ("!roll 2 6 green", "`colour` must be one of `red`, `blue`"),
        ("!roll 2 6 red maybe", "`loud` must be yes or no, not `maybe`"),
        ("!roll 2 6 red yes again", "`again` is one word too many"),
    ],
)
async def test_bad_input_gets_the_usage_and_what_is_wrong_and_the_skill_does_not_run(
    chat: ChatHarness, typed: str, why: str
) -> None:
    answer = await chat.ask(typed)
    assert answer == f"Usage: `!roll [count] [sides] [red|blue] [loud]` — {why}."


async def test_a_missing_required_argument_is_named(chat: ChatHarness) -> None:
    assert await chat.ask("!translate") == (
        "Usage: `!translate <language> <text…>` — `language` is missing."
    )
    assert await chat.ask("!translate french") == (
        "Usage: `!translate <language> <text…>` — `text` is missing."
    )


async def test_help_shows_each_argument_with_its_type_range_and_default(
    chat: ChatHarness,
) -> None:
    assert (await chat.ask("!help roll")).splitlines() == [
        "`!roll [count] [sides] [red|blue] [loud]`: Roll dice.",
        "- `count`: how many dice (a whole number; 1 to 100; 1 if left out)",
        "- `sides`: sides of each die (a whole number; at least 2; 6 if left out)",
        "- `colour` (one of `red`, `blue`; red if left out)",
        "- `loud` (yes or no; no if left out)",
    ]
    assert "`!translate <language> <text…>`: Translate a text." in await chat.ask("!help")


def test_a_declaration_that_cannot_work_is_refused_with_its_reasons() -> None:
    class Broken(Skill):
        name = "broken"
        help = "Broken."
        arguments = (
            Arg("text", rest=True),
            Arg("Count", int, default="x"),
            Arg("when", list, default=None),
            Arg("fast", bool, min=1, default=False),
            Arg("late"),
        )

        async def run(self, ctx: SkillContext) -> None:
            raise AssertionError

    assert Broken.declaration_problems() == [
        "argument 'Count' must be a lowercase identifier",
        "argument 'Count' has a default it refuses: `Count` must be a whole number, not `x`",
        "argument 'when' has type <class 'list'>; use str, int, float or bool",
        "argument 'fast' has min/max but is not a number",
        "only the last argument may take the rest of the text",
        "required argument 'late' follows an optional one",
    ]


words = st.text(st.characters(blacklist_categories=["Cs", "Cc", "Zs"]), min_size=1).filter(
    lambda w: "\u2028" not in w and "\u2029" not in w
)


@given(
    count=st.integers(1, 100),
    sides=st.none() | st.integers(2, 10**9),
    loud=st.none() | st.booleans(),
)
def test_a_slash_commands_values_read_back_as_typed_words(
    count: int, sides: int | None, loud: bool | None
) -> None:
    """Discord's typed options are joined into the words a typed command has."""
    values: dict[str, Any] = {"count": count, "sides": sides, "colour": None, "loud": loud}
    parsed = parse_arguments(Roll.arguments, join_arguments(Roll.arguments, values))
    assert parsed == {
        "count": count,
        "sides": 6 if sides is None else sides,
        "colour": "red",
        "loud": bool(loud),
    }


@given(
    language=words | st.sampled_from(["New York", "a  b", '"quoted', "it's", "“x y"]),
    text=words,
)
def test_a_phrase_and_the_rest_of_the_text_read_back(language: str, text: str) -> None:
    values = {"language": language, "text": text}
    joined = join_arguments(Translate.arguments, values)
    assert parse_arguments(Translate.arguments, joined) == {
        "language": language.strip() if " " not in language else language,
        "text": text.strip(),
    }
