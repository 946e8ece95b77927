"""``!code explain|review|fix|write``, through the real router with a scripted model."""

from __future__ import annotations

from pathlib import Path

import pytest

from confab.bot.skill import ChatMessage, GenerationParams
from confab.bot.testing import ChatHarness, ScriptedBackend
from confab.skills.code import PROMPTS, CodeConfig, CodeSkill

SYSTEM = PROMPTS.render("system")
BROKEN = "```python\ndef area(r)\n    return 3.14 * r ** 2\n```"
FIXED = "```python\ndef area(r):\n    return 3.14 * r ** 2\n```\nI added the missing colon."


def harness(
    tmp_path: Path, model: ScriptedBackend, config: CodeConfig | None = None
) -> ChatHarness:
    """The skill with one candidate and no sandbox run: what the model is asked and how
    its answer is tidied (the checked path is tested in test_code_checks.py)."""
    config = (config or CodeConfig()).model_copy(update={"run_checks": False})
    return ChatHarness([CodeSkill(config)], tmp_path, model=model)


async def test_explain_sends_fenced_code_and_streams_the_answer_as_is(tmp_path: Path) -> None:
    answer = "It builds a list.\n\n```python\nsquares = [n * n for n in nums]\n```\nEach step..."
    model = ScriptedBackend([answer])
    async with harness(tmp_path, model) as chat:
        reply = await chat.ask("!code explain\n```python\nsquares = [n * n for n in nums]\n```")
    assert reply == answer
    [prompt] = model.prompts
    assert prompt[0] == ChatMessage("system", SYSTEM)
    assert prompt[1].role == "user"
    assert prompt[1].content == (
        "Explain what this python code does, step by step, in plain words.\n\n"
        "```python\nsquares = [n * n for n in nums]\n```"
    )
    assert model.params == [GenerationParams(max_new_tokens=384, temperature=0.2)]


async def test_generation_settings_and_default_language_come_from_the_config(
    tmp_path: Path,
) -> None:
    model = ScriptedBackend(["```rust\nfn main() {}\n```"])
    config = CodeConfig(max_new_tokens=100, temperature=0.7, default_language="rust")
    async with harness(tmp_path, model, config) as chat:
        await chat.ask("!code write an empty program")
    assert model.params == [GenerationParams(max_new_tokens=100, temperature=0.7)]
    assert "Write rust code for this task: an empty program" in model.prompts[0][1].content
    assert "```rust fenced block" in model.prompts[0][1].content


async def test_inline_code_is_unwrapped_and_text_around_a_block_goes_along(
    tmp_path: Path,
) -> None:
    model = ScriptedBackend(["Looks fine."])
    async with harness(tmp_path, model) as chat:
        await chat.ask("!code review `total = sum(prices) / len(prices)`")
        await chat.ask("!code REVIEW is this safe?\n```js\neval(input)\n```")
    inline, fenced = (prompt[1].content for prompt in model.prompts)
    assert inline.startswith("Review this python code.")
    assert inline.endswith("```python\ntotal = sum(prices) / len(prices)\n```")
    assert "`total" not in inline
    assert fenced.startswith("Review this javascript code.")
    assert "```javascript\neval(input)\n```" in fenced
    assert fenced.endswith("The user adds: is this safe?")


async def test_bare_code_that_is_not_python_is_just_code(tmp_path: Path) -> None:
    model = ScriptedBackend(["It prints the lines that contain TODO."])
    async with harness(tmp_path, model) as chat:
        reply = await chat.ask("!code explain\ngrep -rn TODO src | sort")
    assert reply == "It prints the lines that contain TODO."
    assert model.prompts[0][1].content == (
        "Explain what this code does, step by step, in plain words.\n\n"
        "```\ngrep -rn TODO src | sort\n```"
    )


async def test_a_stream_that_stops_inside_a_code_block_gets_it_closed(tmp_path: Path) -> None:
    model = ScriptedBackend(["Like this:\n```python\nfor n in nums:"])
    async with harness(tmp_path, model) as chat:
        reply = await chat.ask("!code explain for n in nums: print(n)")
    assert reply == "Like this:\n```python\nfor n in nums:\n```"


class CharByChar(ScriptedBackend):
    """Streams one character at a time, as a worst case for anything reading the stream."""

    async def stream(self, messages, params=None):  # type: ignore[no-untyped-def]
        async for piece in super().stream(messages, params):
            for character in piece:
                yield character


async def test_a_streamed_explanation_gets_its_untagged_fences_tagged(tmp_path: Path) -> None:
    answer = "Like this:\n```\nfor n in nums:\n    print(n)\n```\nThen `n` is...\n~~~\nx\n"
    model = CharByChar([answer])
    async with harness(tmp_path, model) as chat:
        reply = await chat.ask("!code explain for n in nums: print(n)")
    assert reply == (
        "Like this:\n```python\nfor n in nums:\n    print(n)\n```\nThen `n` is...\n"
        "~~~python\nx\n~~~"
    )


@pytest.mark.parametrize(
    "code",
    ["console.log(a + b)", 'fmt.Println("hi")', 'printf("%d", x);', "ls -la", "x = (1,"],
)
async def test_code_that_merely_parses_as_python_is_not_called_python(
    tmp_path: Path, code: str
) -> None:
    model = ScriptedBackend(["It prints."])
    async with harness(tmp_path, model) as chat:
        await chat.ask(f"!code explain {code}")
    assert model.prompts[0][1].content.startswith("Explain what this code does")


async def test_python_in_the_answer_is_checked_even_when_the_request_had_no_language(
    tmp_path: Path,
) -> None:
    model = ScriptedBackend([BROKEN, FIXED])
    async with harness(tmp_path, model) as chat:
        reply = await chat.ask("!code fix area(r) returns the wrong thing")
    assert reply == FIXED
    assert "expected ':'" in model.prompts[1][-1].content


async def test_fix_tags_an_untagged_fence_with_the_language(tmp_path: Path) -> None:
    model = ScriptedBackend([FIXED.replace("```python", "```")])
    async with harness(tmp_path, model) as chat:
        reply = await chat.ask(f"!code fix\n{BROKEN}")
    assert reply == FIXED
    [prompt] = model.prompts
    assert prompt[1].content.startswith(
        "Fix the bugs in this python code. Reply with only the corrected code in one "
        "```python fenced block"
    )
    assert "def area(r)\n    return 3.14 * r ** 2" in prompt[1].content


async def test_write_wraps_bare_code_in_the_language_the_request_names(tmp_path: Path) -> None:
    model = ScriptedBackend(['fn main() {\n    println!("hi");\n}'])
    async with harness(tmp_path, model) as chat:
        reply = await chat.ask("!code write a program that says hi, in Rust")
    # Not Python, so not parsed and not retried.
    assert reply == '```rust\nfn main() {\n    println!("hi");\n}\n```'
    assert len(model.prompts) == 1
    assert model.prompts[0][1].content.startswith(
        "Write rust code for this task: a program that says hi, in Rust"
    )


async def test_valid_python_is_answered_after_one_call(tmp_path: Path) -> None:
    # Small models often start the code on the fence line.
    model = ScriptedBackend(["```def reverse(s):\n    return s[::-1]\n```"])
    async with harness(tmp_path, model) as chat:
        reply = await chat.ask("!code write a function that reverses a string")
    assert reply == "```python\ndef reverse(s):\n    return s[::-1]\n```"
    assert len(model.prompts) == 1
    assert "Write python code for this task" in model.prompts[0][1].content


async def test_an_answer_without_code_is_retried_then_owned_up_to(tmp_path: Path) -> None:
    model = ScriptedBackend(["", "   "])
    async with harness(tmp_path, model) as chat:
        reply = await chat.ask("!code write a function that reverses a string")
    assert len(model.prompts) == 2
    assert "Your code does not parse: there is no code in the answer." in (
        model.prompts[1][3].content
    )
    assert reply == "The model gave me no code for that. Try rephrasing the request."


async def test_python_that_does_not_parse_is_sent_back_once_with_the_error(
    tmp_path: Path,
) -> None:
    first = "```python\ndef area(r)\n    return 3.14 * r ** 2\n```"
    model = ScriptedBackend([first, FIXED])
    async with harness(tmp_path, model) as chat:
        reply = await chat.ask("!code write a function for the area of a circle")
    assert reply == FIXED
    assert len(model.prompts) == 2
    retry = model.prompts[1]
    assert retry[:3] == [*model.prompts[0], ChatMessage("assistant", first)]
    assert retry[3] == ChatMessage(
        "user",
        "Your code does not parse: expected ':' (line 1). Reply with the corrected full code "
        "in one ```python fenced block.",
    )


async def test_python_that_still_does_not_parse_comes_with_an_honest_warning(
    tmp_path: Path,
) -> None:
    second = "```python\nprint('unclosed\n```"
    model = ScriptedBackend(["```python\nx = (1,\n```", second])
    async with harness(tmp_path, model) as chat:
        reply = await chat.ask("!code fix\n```py\nx = (1,\n```")
    assert len(model.prompts) == 2
    assert "'(' was never closed (line 1)" in model.prompts[1][3].content
    assert reply.startswith(second + "\n\n⚠️ This code still does not parse: ")
    assert reply.endswith("(line 1). Check it before use.")
    assert "x = (1," not in reply


async def test_code_in_another_language_is_never_parsed_as_python(tmp_path: Path) -> None:
    answer = "```javascript\nconst total = items.reduce((a, b) => a + b, 0);\n```"
    model = ScriptedBackend([answer])
    async with harness(tmp_path, model) as chat:
        reply = await chat.ask(
            "!code fix\n```js\nconst total = items.reduce((a, b) => a + b);\n```"
        )
    assert reply == answer
    assert len(model.prompts) == 1


async def test_a_channels_system_prompt_is_for_ask_not_code(tmp_path: Path) -> None:
    model = ScriptedBackend(["It doubles x."])
    async with harness(tmp_path, model) as chat:
        await chat.settings.update("test", "dm", system_prompt="Talk like a pirate.")
        await chat.ask("!code explain print(x * 2)")
    assert model.prompts[0][0].content.startswith("You are a careful programming assistant")
    assert model.prompts[0][1].content.startswith("Explain what this python code does")


@pytest.mark.parametrize(
    ("request_text", "problem"),
    [
        ("!code", "Tell me what to do with the code."),
        ("!code translate print(1)", "I don't know the mode `translate`."),
        ("!code fix", "Give me the code to fix."),
        ("!code explain\n```python\n```", "Give me the code to explain."),
        ("!code write   ", "Give me a description of the code to write."),
    ],
)
async def test_bad_requests_get_the_usage_and_no_model_call(
    tmp_path: Path, request_text: str, problem: str
) -> None:
    model = ScriptedBackend()
    async with harness(tmp_path, model) as chat:
        reply = await chat.ask(request_text)
    assert reply.startswith(f"{problem}\n\nUsage: `!code explain|review|fix|write ")
    for mode in ("explain", "review", "fix", "write"):
        assert f"- `!code {mode}" in reply
    assert model.prompts == []
