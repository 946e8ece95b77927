"""``!code fix|write`` run their candidates against tests in the sandbox and show the first
that passes (a scripted model; the real sandbox)."""

from __future__ import annotations

from pathlib import Path

from confab.bot.testing import ChatHarness, ScriptedBackend
from confab.skills.code import CodeConfig, CodeSkill, guess_language, parse_request
from confab.skills.code_checks import given_tests, named_functions, written_tests

WRONG_ADD = "```python\ndef add(a, b):\n    return a - b\n```"
RIGHT_ADD = "```python\ndef add(a, b):\n    return a + b\n```\nIt adds them."
MODEL_TESTS = "```python\nassert add(1, 2) == 3\nassert add(0, 0) == 0\n```"


def harness(tmp_path: Path, model: ScriptedBackend, **settings: object) -> ChatHarness:
    return ChatHarness([CodeSkill(CodeConfig(**settings))], tmp_path, model=model)


async def test_the_first_candidate_that_passes_is_shown_and_said_to_pass(tmp_path: Path) -> None:
    model = ScriptedBackend([WRONG_ADD, RIGHT_ADD, WRONG_ADD, MODEL_TESTS])
    async with harness(tmp_path, model) as chat:
        reply = await chat.ask("!code write a function add(a, b) that returns the sum")
    assert reply == (
        "```python\ndef add(a, b):\n    return a + b\n```\nIt adds them.\n\n"
        "✅ I ran it in a sandbox and it passed 3 checks I wrote for it."
    )
    # Three candidates and the tests, asked for together: one batch.
    assert len(model.prompts) == 4
    answer, *others, _tests = model.params
    assert {p.seed for p in others} == {1, 2} and answer.seed is None
    assert all(p.temperature == 0.7 for p in others) and answer.temperature == 0.2
    assert "three Python assert statements" in model.prompts[3][1].content


async def test_the_persons_own_tests_are_used_and_no_tests_are_asked_for(tmp_path: Path) -> None:
    wrong = "```python\ndef double(x):\n    return x + x + x\n```"
    right = "```python\ndef double(x):\n    return 2 * x\n```"
    model = ScriptedBackend([wrong, wrong, right])
    async with harness(tmp_path, model) as chat:
        reply = await chat.ask(
            "!code fix\n```python\ndef double(x):\n    return x + x + x\n```\n"
            "double(2) should return 4, and double(0) returns 0."
        )
    assert len(model.prompts) == 3
    assert reply.startswith(right)
    assert reply.endswith("✅ I ran it in a sandbox and it passed 3 checks.")


async def test_when_no_candidate_passes_the_closest_is_shown_with_a_plain_warning(
    tmp_path: Path,
) -> None:
    hangs = "```python\ndef add(a, b):\n    while True:\n        pass\n```"
    model = ScriptedBackend([hangs, WRONG_ADD, hangs, MODEL_TESTS])
    async with harness(tmp_path, model, check_timeout_s=2.0) as chat:
        reply = await chat.ask("!code write a function add(a, b) that returns the sum")
    assert reply.startswith(WRONG_ADD)  # it ran and passed one check; the others hung
    assert "⚠️ None of my attempts passed every check I wrote for it" in reply
    assert "Check it before use." in reply
    assert "✅" not in reply


async def test_a_prose_refusal_is_never_shown_as_code(tmp_path: Path) -> None:
    refusal = "I am sorry, but I cannot write that function for you."
    model = ScriptedBackend([refusal])
    async with harness(tmp_path, model) as chat:
        reply = await chat.ask("!code fix def f(x): return x +")
    assert "```" not in reply
    assert reply == "The model gave me no code for that. Try rephrasing the request."


async def test_checks_can_be_turned_off(tmp_path: Path) -> None:
    model = ScriptedBackend([WRONG_ADD])
    async with harness(tmp_path, model, run_checks=False) as chat:
        reply = await chat.ask("!code write a function add(a, b) that returns the sum")
    assert reply == WRONG_ADD
    assert len(model.prompts) == 1


def test_a_one_line_function_is_recognised_as_python() -> None:
    assert guess_language("def f(x): return x * 2") == "python"
    request = parse_request("fix def area(r): return 3.14 * r ^ 2", "python")
    assert not isinstance(request, str) and request.language == "python"


def test_tests_are_read_from_what_the_person_wrote() -> None:
    text = (
        "def f(x): ...\n>>> f(2)\n4\nassert f(3) == 6\n"
        "Also f(0) returns 0, and is_even(4) should return True."
    )
    assert given_tests(text) == [
        "assert f(3) == 6",
        "assert f(2) == 4",
        "assert f(0) == 0",
        "assert is_even(4) == True",
    ]
    assert given_tests("make it faster, e.g. using a dict") == []


def test_only_model_tests_that_call_the_named_function_are_kept() -> None:
    answer = "```python\nassert add(1, 2) == 3\nassert total([1]) == 1\nassert add(1,\n```"
    assert named_functions("a function add(a, b) that adds, e.g. (1, 2)") == ["add"]
    assert written_tests(answer, ["add"]) == ["assert add(1, 2) == 3"]
