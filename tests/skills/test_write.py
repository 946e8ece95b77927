"""``!write FORM [about] TOPIC [--tone TONE] [--length LENGTH]``, through the real router."""

from __future__ import annotations

from pathlib import Path

import pytest

from confab.bot.skill import ChatMessage
from confab.bot.testing import ChatHarness, ScriptedBackend
from confab.skills.write import WriteConfig, WriteSkill

SYSTEM = (
    "You are a creative writer. You write original, vivid pieces. "
    "Reply with the piece only: no introduction and no comments after it."
)
POEM = "The sea rolls in,\ngrey and slow.\n\nThe gulls cry out\nwhere the cold winds blow."


def harness(
    tmp_path: Path, model: ScriptedBackend, config: WriteConfig | None = None
) -> ChatHarness:
    return ChatHarness([WriteSkill(config or WriteConfig())], tmp_path, model=model)


def request_text(model: ScriptedBackend) -> str:
    """The user turn of the only prompt the model was given."""
    [prompt] = model.prompts
    assert [message.role for message in prompt] == ["system", "user"]
    return prompt[1].content


async def test_a_poem_is_asked_for_with_its_form_tone_and_length_and_streamed_back(
    tmp_path: Path,
) -> None:
    model = ScriptedBackend([POEM])
    async with harness(tmp_path, model) as chat:
        answer = await chat.ask('!write poem about the sea --tone "dark and moody" --length long')

    assert answer == POEM
    [prompt] = model.prompts
    assert prompt == [
        ChatMessage("system", SYSTEM),
        ChatMessage(
            "user",
            "Write a poem about the sea. Use short lines in stanzas. "
            "The tone is dark and moody. Make it long and rich in detail.",
        ),
    ]
    [params] = model.params
    assert (params.temperature, params.max_new_tokens) == (0.5, 400)


async def test_options_go_anywhere_about_is_optional_and_song_means_lyrics(
    tmp_path: Path,
) -> None:
    model = ScriptedBackend([POEM])
    async with harness(tmp_path, model) as chat:
        await chat.ask("!write --length short a Song --tone cheerful Monday mornings")

    assert request_text(model) == (
        "Write song lyrics about Monday mornings. "
        "Write verses and a chorus, and label each part. "
        "The tone is cheerful. Keep it short."
    )
    assert model.params[0].max_new_tokens == 100


@pytest.mark.parametrize(
    ("request_", "max_new_tokens"),
    [
        ("story about a lost key --length short", 200),
        ("story about a lost key", 400),  # medium by default
        ("story about a lost key --length long", 800),
        ("haiku about frost --length long", 200),  # a haiku is always short
        ("limerick about a cat --length long", 400),  # a limerick at most medium
        ("limerick about a cat --length short", 200),
    ],
)
async def test_length_and_temperature_come_from_the_config(
    tmp_path: Path, request_: str, max_new_tokens: int
) -> None:
    model = ScriptedBackend([POEM])
    config = WriteConfig(max_new_tokens=800, temperature=1.1)
    async with harness(tmp_path, model, config) as chat:
        await chat.ask(f"!write {request_}")

    params = model.params[0]  # a limerick short of five lines is asked for again
    assert (params.temperature, params.max_new_tokens) == (1.1, max_new_tokens)


async def test_a_short_budget_never_drops_below_48_tokens_and_the_default_length_is_configurable(
    tmp_path: Path,
) -> None:
    model = ScriptedBackend([POEM])
    config = WriteConfig(max_new_tokens=120, default_length="short")
    async with harness(tmp_path, model, config) as chat:
        await chat.ask("!write story about rain")

    assert request_text(model).endswith("Keep it short.")
    assert model.params[0].max_new_tokens == 48


async def test_a_haiku_is_asked_for_as_three_lines_and_cut_to_them(tmp_path: Path) -> None:
    chatty = (
        "Sure! Here is a haiku about autumn leaves:\n\n"
        "**Falling Leaves**\n\n"
        '1. "Red leaves drift and fall (5)\n'
        "2. Whispering to the cold ground (7)\n"
        '3. Autumn says goodbye" (5)\n\n'
        "I hope you enjoyed this haiku! Let me know if you want another."
    )
    model = ScriptedBackend([chatty])
    async with harness(tmp_path, model) as chat:
        answer = await chat.ask("!write haiku about autumn leaves --length long")

    assert answer == "Red leaves drift and fall\nWhispering to the cold ground\nAutumn says goodbye"
    # Fixed forms say nothing of length: the form decides it.
    assert request_text(model) == (
        "Write a haiku about autumn leaves. A haiku is three lines of 5, 7 and 5 syllables, "
        "with no title. Write only the three lines."
    )


async def test_a_haiku_written_on_one_line_is_laid_out_five_seven_five(tmp_path: Path) -> None:
    one_line = (
        "Here is your haiku: Leaves fall softly down the cold wind whispers of change "
        "winter waits nearby"
    )
    async with harness(tmp_path, ScriptedBackend([one_line])) as chat:
        answer = await chat.ask("!write haiku autumn")

    assert (
        answer == "Leaves fall softly down\nthe cold wind whispers of change\nwinter waits nearby"
    )


async def test_a_limerick_keeps_five_lines_and_loses_the_chatter(tmp_path: Path) -> None:
    rambling = (
        "Here's a limerick for you:\n\n"
        "There once was a cat from Peru\n"
        "Who dreamed he was eating his shoe.\n"
        "He woke with a fright\n"
        "In the middle of night\n"
        "And found that his dream had come true!\n\n"
        "There once was a second cat too"
    )
    model = ScriptedBackend([rambling])
    async with harness(tmp_path, model) as chat:
        answer = await chat.ask("!write limerick about a cat")

    assert answer.splitlines() == [
        "There once was a cat from Peru",
        "Who dreamed he was eating his shoe.",
        "He woke with a fright",
        "In the middle of night",
        "And found that his dream had come true!",
    ]
    assert "five lines that rhyme AABBA" in request_text(model)


@pytest.mark.parametrize("form", ["haiku", "poem"])
async def test_an_empty_answer_gets_an_honest_reply(tmp_path: Path, form: str) -> None:
    async with harness(tmp_path, ScriptedBackend(["  \n "])) as chat:
        answer = await chat.ask(f"!write {form} about nothing at all")

    assert answer == "I couldn't write that one; try another topic."


async def test_apostrophes_and_curly_quotes_are_what_people_meant(tmp_path: Path) -> None:
    model = ScriptedBackend([POEM])
    async with harness(tmp_path, model) as chat:
        await chat.ask("!write story about my dog's bone —tone “wry but kind”")

    assert request_text(model).startswith(
        "Write a story about my dog's bone. Write it in prose paragraphs"
    )
    assert "The tone is wry but kind." in request_text(model)


async def test_a_channels_system_prompt_is_for_ask_not_write(tmp_path: Path) -> None:
    model = ScriptedBackend([POEM])
    async with harness(tmp_path, model) as chat:
        await chat.settings.update("test", "dm", system_prompt="Talk like a pirate.")
        await chat.ask("!write poem about bread")

    [prompt] = model.prompts
    assert prompt[0].content.startswith("You are a creative writer.")
    assert prompt[1].content.startswith("Write a poem about bread.")


@pytest.mark.parametrize(
    ("request_", "problem"),
    [
        ("", "Usage: `!write FORM [about] TOPIC [--tone TONE] [--length short|medium|long]`"),
        ("sonnet about love", "`sonnet` is not a form I know."),
        ("poem about love --length epic", "`--length` is short, medium or long, not `epic`."),
        ("poem about love --tone", "`--tone` needs a value after it."),
        ("poem about love --tone --length short", "`--tone` needs a value after it."),
        ('poem about love --tone "dark and', 'A quote (") is never closed.'),
        ("haiku about", "What should the haiku be about?"),
        ("poem about love --rhyme yes", "I don't know the option `--rhyme`."),
        ("poem about " + "very " * 60 + "long", "That topic is 304 characters long"),
    ],
)
async def test_bad_requests_get_usage_naming_the_problem_and_never_reach_the_model(
    tmp_path: Path, request_: str, problem: str
) -> None:
    model = ScriptedBackend()
    async with harness(tmp_path, model) as chat:
        answer = await chat.ask(f"!write {request_}".strip())

    assert answer.startswith(problem)
    assert "Usage: `!write FORM [about] TOPIC" in answer
    assert "Forms: poem, story, haiku, limerick, lyrics (or song)." in answer
    assert 'Example: `!write haiku about autumn rain --tone "quiet and sad"`' in answer
    assert model.prompts == []


async def test_a_limerick_short_of_five_lines_is_tried_again_then_said_to_be_short(
    tmp_path: Path,
) -> None:
    four = "There once was a cat from Peru\nWho dreamed he was eating a shoe\nHe woke\nWhat a joke"
    model = ScriptedBackend([four, four])
    async with harness(tmp_path, model) as chat:
        answer = await chat.ask("!write limerick about a cat")
    assert len(model.prompts) == 2
    assert model.params[1].seed != model.params[0].seed
    assert answer.endswith("(Only 4 lines came out; a limerick has five.)")


async def test_a_limerick_of_five_lines_on_the_second_try_is_shown_alone(tmp_path: Path) -> None:
    five = "A\nB\nC\nD\nE"
    model = ScriptedBackend(["A\nB\nC", five])
    async with harness(tmp_path, model) as chat:
        assert await chat.ask("!write limerick about letters") == five


async def test_a_haiku_never_ends_on_a_comma(tmp_path: Path) -> None:
    model = ScriptedBackend(
        ["Rain on the window,\nthe kettle sings to itself,\nthe cat dreams of fish,\nand"]
    )
    async with harness(tmp_path, model) as chat:
        answer = await chat.ask("!write haiku about rain")
    assert answer == "Rain on the window,\nthe kettle sings to itself,\nthe cat dreams of fish"
