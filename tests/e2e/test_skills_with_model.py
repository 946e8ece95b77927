"""The four built-in skills answering from the real bundled model (loaded once per run)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from confab.bot.llm.transformers_backend import TransformersBackend
from confab.bot.testing import ChatHarness
from confab.skills.code import CodeConfig, CodeSkill
from confab.skills.qa import AskSkill
from confab.skills.summarise import SummariseConfig, SummariseSkill
from confab.skills.write import WriteConfig, WriteSkill

pytestmark = pytest.mark.model


async def test_ask_answers_the_question(tmp_path: Path, bundled_model: TransformersBackend) -> None:
    async with ChatHarness([AskSkill], tmp_path, model=bundled_model) as chat:
        answer = await chat.ask("What is the capital of France?")
    assert "Paris" in answer


async def test_summarise_sums_up_a_channel(
    tmp_path: Path, bundled_model: TransformersBackend
) -> None:
    skill = SummariseSkill(SummariseConfig(max_new_tokens=64))
    async with ChatHarness([skill], tmp_path, model=bundled_model) as chat:
        for author, text in [
            ("ada", "Should we release version 2.0 on Friday?"),
            ("bob", "Yes, the tests pass. I will write the release notes."),
            ("ada", "Great, Friday it is. Who tells the customers?"),
        ]:
            await chat.send(text, author=author, channel="team", addressed=False)
        answer = await chat.ask("!summarise", channel="team")
    header, _, body = answer.partition("\n\n")
    assert header == "**Summary of the last 50 messages** (3 messages)"
    assert len(body.split()) >= 5


async def test_code_writes_python_in_a_fenced_block(
    tmp_path: Path, bundled_model: TransformersBackend
) -> None:
    skill = CodeSkill(CodeConfig(max_new_tokens=96))
    async with ChatHarness([skill], tmp_path, model=bundled_model) as chat:
        answer = await chat.ask("!code write a Python function that adds two numbers")
    code = answer.split("```python\n", 1)[1].split("\n```", 1)[0]
    assert "def " in code
    # Either the code parses, or the reply says plainly that it does not.
    try:
        ast.parse(code)
    except SyntaxError:
        assert "This code still does not parse" in answer


async def test_a_haiku_has_three_lines(tmp_path: Path, bundled_model: TransformersBackend) -> None:
    skill = WriteSkill(WriteConfig(max_new_tokens=160))
    async with ChatHarness([skill], tmp_path, model=bundled_model) as chat:
        answer = await chat.ask("!write haiku about the sea")
    lines = answer.splitlines()
    assert len(lines) == 3
    assert all(line.strip() for line in lines)
    assert sum(len(line.split()) for line in lines) >= 6
    assert "Here" not in lines[0] and not lines[0].endswith(":")
