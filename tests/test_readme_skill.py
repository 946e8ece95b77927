"""The README's dice skill and its test, run as written: a skill with typed arguments in
at most 15 lines and its test in at most 5."""

from __future__ import annotations

import re
from pathlib import Path
from types import ModuleType

from confab.bot.testing import ChatHarness

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()
SECTION = README[README.index("## Writing a skill") :]
BLOCKS = re.findall(r"```python\n(.*?)```", SECTION, re.S)


def _code_lines(block: str) -> int:
    return len([line for line in block.splitlines() if line.strip()])


def _dice() -> ModuleType:
    module = ModuleType("readme_dice")
    exec(compile(BLOCKS[0], "README.md", "exec"), module.__dict__)
    return module


def test_the_skill_and_its_test_are_as_short_as_promised() -> None:
    skill, test = BLOCKS[0], BLOCKS[1]
    assert "class Dice(Skill)" in skill and "Arg(" in skill
    assert _code_lines(skill) <= 15
    assert "async def test_dice(chat)" in test
    assert _code_lines(test) <= 5


async def test_the_readme_dice_skill_answers_and_explains_bad_input(tmp_path: Path) -> None:
    dice = _dice()
    async with ChatHarness([dice.Dice], tmp_path) as chat:
        # The README's own test, with its `chat` fixture's harness.
        namespace = {"pytest": __import__("pytest"), "Dice": dice.Dice}
        exec(compile(BLOCKS[1], "README.md", "exec"), namespace)
        await namespace["test_dice"](chat)
        assert await chat.ask("!dice two") == (
            "Usage: `!dice [count] [sides]` — `count` must be a whole number, not `two`."
        )
        total = await chat.ask("!dice 2 20")
    rolls = [int(n) for n in re.findall(r"\d+", total)]
    assert rolls[0] == sum(rolls[1:]) and all(1 <= r <= 20 for r in rolls[1:])
