"""Q&A: what the model is shown (memory, trimming, speakers, system prompt) and ``!reset``."""

from __future__ import annotations

from pathlib import Path

import pytest

from confab.bot.adapter import Capabilities
from confab.bot.config import RouterConfig
from confab.bot.llm.backend import ChatMessage
from confab.bot.testing import ChatHarness, RecordingAdapter, ScriptedBackend
from confab.skills.qa import AskConfig, AskSkill, PromptSkill, ResetSkill
from confab.storage.conversations import ConversationKey

ADMINS = RouterConfig(admins=["test:boss"])


def texts(prompt: list[ChatMessage]) -> list[str]:
    return [message.content for message in prompt]


@pytest.mark.fact_checks
async def test_the_prompt_holds_the_system_prompt_memory_and_question(tmp_path: Path) -> None:
    model = ScriptedBackend(["Paris."] * 4 + ["About two million."])  # three checks agree
    async with ChatHarness([AskSkill], tmp_path, model=model) as chat:
        await chat.ask("Capital of France?")
        assert await chat.ask("How many live there?") == "About two million."
    system, *rest = model.prompts[-1]
    assert system.role == "system"
    assert system.content.startswith("You are Confab, a helpful assistant in a team chat.")
    assert [(m.role, m.content) for m in rest] == [
        ("user", "Capital of France?"),
        ("assistant", "Paris."),
        ("user", "How many live there?"),
    ]


async def test_old_turns_are_dropped_first_when_the_context_window_is_full(
    tmp_path: Path,
) -> None:
    # 340 tokens of window, 256 reserved for the answer: room for about two exchanges.
    model = ScriptedBackend(lambda prompt: "word " * 5, context_window=340)
    async with ChatHarness([AskSkill], tmp_path, model=model) as chat:
        for index in range(6):
            await chat.ask(f"question {index} " + "padding " * 4)
    newest = texts(model.prompts[-1])
    assert newest[-1].startswith("question 5")
    assert not any(text.startswith("question 0") for text in newest)
    assert any(text.startswith("question 4") for text in newest)
    assert model.prompts[-1][1].role == "user"  # never starts on an orphaned answer


async def test_history_turns_and_sampling_come_from_the_skills_config(tmp_path: Path) -> None:
    config = AskConfig(max_history_turns=2, max_new_tokens=64, temperature=0.5)
    model = ScriptedBackend(["A1", "A2", "A3"])
    async with ChatHarness([AskSkill(config)], tmp_path, model=model) as chat:
        for question in ("Q1", "Q2", "Q3"):
            await chat.ask(question)
    assert texts(model.prompts[-1])[1:] == ["Q2", "A2", "Q3"]
    assert (model.params[-1].max_new_tokens, model.params[-1].temperature) == (64, 0.5)


async def test_in_a_shared_channel_the_model_is_told_who_said_what(tmp_path: Path) -> None:
    model = ScriptedBackend(["Noon.", "Also noon."])
    async with ChatHarness([AskSkill], tmp_path, model=model) as chat:
        await chat.ask("When is lunch?", author="ada", channel="general")
        await chat.ask("And for me?", author="bob", channel="general")
        await chat.ask("Just me here", author="ada", channel="dm")
    assert texts(model.prompts[1])[1:] == ["ada: When is lunch?", "Noon.", "bob: And for me?"]
    assert texts(model.prompts[2])[1:] == ["Just me here"]


async def test_reset_starts_a_fresh_conversation_in_this_thread_only(tmp_path: Path) -> None:
    model = ScriptedBackend(["A1", "A2", "A3", "A4"])
    adapter = RecordingAdapter(capabilities=Capabilities(threads=True))
    async with ChatHarness([AskSkill, ResetSkill], tmp_path, model=model, adapter=adapter) as chat:
        await chat.ask("Q1", channel="general", thread="t1")
        await chat.ask("other thread", channel="general", thread="t2")
        answer = await chat.ask("!reset", channel="general", thread="t1")
        assert answer.startswith("Fresh start: I've put our earlier conversation in this thread")
        await chat.ask("Q2", channel="general", thread="t1")
        await chat.ask("Q3", channel="general", thread="t1")
        await chat.ask("still here?", channel="general", thread="t2")
        # The reset hides; it does not delete.
        stored = await chat.store.channel_messages(ConversationKey("test", "general", "t1"))
        assert [t.text for t in stored if t.role == "user"] == ["Q1", "!reset", "Q2", "Q3"]
    assert texts(model.prompts[2])[1:] == ["Q2"]
    assert texts(model.prompts[3])[1:] == ["Q2", "A3", "Q3"]
    assert texts(model.prompts[4])[1:] == ["other thread", "A2", "still here?"]


async def test_an_admin_sets_the_channels_system_prompt_for_ask(tmp_path: Path) -> None:
    model = ScriptedBackend(["Arr."])
    skills = [AskSkill, PromptSkill]
    async with ChatHarness(skills, tmp_path, model=model, router_config=ADMINS) as chat:
        refused = await chat.ask("!prompt set Talk like a pirate.", author="ada", channel="c")
        assert refused == "Only an admin can run `!prompt set`."
        assert (await chat.settings.get("test", "c")).system_prompt is None

        done = await chat.ask("!prompt set Talk like a pirate.", author="boss", channel="c")
        assert done.startswith("Done: `ask` answers in this channel with that system prompt")
        assert await chat.ask("!prompt", author="ada", channel="c") == (
            "This channel's system prompt:\n> Talk like a pirate."
        )
        await chat.ask("Where is the treasure?", author="ada", channel="c")
        await chat.ask("Where is the treasure?", author="ada", channel="elsewhere")
        assert model.prompts[0][0] == ChatMessage("system", "Talk like a pirate.")
        assert model.prompts[1][0].content.startswith("You are Confab")

        await chat.ask("!prompt set\nBe brief.\nBe kind.", author="boss", channel="c")
        assert (await chat.settings.get("test", "c")).system_prompt == "Be brief.\nBe kind."
        await chat.ask("!prompt clear", author="boss", channel="c")
        await chat.ask("Again?", author="ada", channel="c")
        assert model.prompts[2][0].content.startswith("You are Confab")


async def test_the_configured_system_prompt_replaces_the_built_in_one(tmp_path: Path) -> None:
    model = ScriptedBackend()
    skill = AskSkill(AskConfig(system_prompt="Answer in French."))
    async with ChatHarness([skill], tmp_path, model=model) as chat:
        await chat.ask("hello")
    assert model.prompts[0][0] == ChatMessage("system", "Answer in French.")


async def test_bad_arguments_get_usage_not_the_model(tmp_path: Path) -> None:
    model = ScriptedBackend()
    skills = [AskSkill, PromptSkill]
    async with ChatHarness(skills, tmp_path, model=model, router_config=ADMINS) as chat:
        assert await chat.ask("!ask") == "Ask me something, e.g. `!ask what is a monad?`"
        for wrong in ("!prompt sett x", "!prompt set", "!prompt clear now"):
            assert (await chat.ask(wrong, author="boss")).startswith("Usage: `!prompt` shows")
        assert await chat.ask("!prompt set", author="ada") == "Only an admin can run `!prompt set`."
        too_long = await chat.ask("!prompt set " + "x" * 2001, author="boss")
        assert too_long == "That prompt is 2,001 characters; the limit is 2,000."
    assert model.prompts == []


async def test_the_answer_streams_into_one_message(tmp_path: Path) -> None:
    model = ScriptedBackend(["one two three four"])
    async with ChatHarness([AskSkill], tmp_path, model=model) as chat:
        (posted,) = await chat.send("count")
    assert posted.versions[-1] == "one two three four"
    assert len(posted.versions) > 1  # shown as it arrived, then edited


async def test_a_calculation_is_computed_without_the_model(tmp_path: Path) -> None:
    model = ScriptedBackend(["32"])
    async with ChatHarness([AskSkill], tmp_path, model=model) as chat:
        assert await chat.ask("what is 17 + 25?") == "17 + 25 = **42**"
        assert await chat.ask("convert 5 miles to km") == "5 miles = **8.04672 kilometres**"
    assert model.prompts == []


async def test_calculations_can_be_left_to_the_model(tmp_path: Path) -> None:
    model = ScriptedBackend(["32"])
    skill = AskSkill(AskConfig(calculate=False))
    async with ChatHarness([skill], tmp_path, model=model) as chat:
        assert await chat.ask("17 + 25") == "32"


@pytest.mark.fact_checks
async def test_a_fact_the_checks_agree_on_is_answered(tmp_path: Path) -> None:
    model = ScriptedBackend(
        ["The capital of France is Paris.", "Paris.", "It is Paris.", "Paris, of course."]
    )
    async with ChatHarness([AskSkill], tmp_path, model=model) as chat:
        assert await chat.ask("What is the capital of France?") == (
            "The capital of France is Paris."
        )
    answer, *checks = model.params
    assert len(checks) == 3
    assert {params.seed for params in checks} == {1, 2, 3}
    assert all(params.temperature > answer.temperature for params in checks)
    # All four were asked the same question, at the same time (so in one batch).
    assert all(prompt == model.prompts[0] for prompt in model.prompts)


@pytest.mark.fact_checks
async def test_an_answer_the_checks_contradict_is_owned_up_to(tmp_path: Path) -> None:
    model = ScriptedBackend(
        [
            "The Velmorian Empire was founded by King Otto in 1204.",
            "It was founded by Queen Mara in 980.",
            "Emperor Vel ruled it from Castra.",
            "The Lanthir dynasty ruled it.",
        ]
    )
    async with ChatHarness([AskSkill], tmp_path, model=model) as chat:
        reply = await chat.ask("Who founded the Velmorian Empire?")
    assert reply.startswith("I'm not sure about that")
    assert "Otto" not in reply


@pytest.mark.fact_checks
async def test_chat_and_questions_about_the_conversation_are_not_checked(
    tmp_path: Path,
) -> None:
    model = ScriptedBackend(["Hello!", "You are Ada."])
    async with ChatHarness([AskSkill], tmp_path, model=model) as chat:
        assert await chat.ask("hi there") == "Hello!"
        assert await chat.ask("what is my name?") == "You are Ada."
    assert len(model.prompts) == 2


async def test_what_people_said_earlier_is_restated_in_the_system_prompt(tmp_path: Path) -> None:
    model = ScriptedBackend(["Nice to meet you.", "Noted.", "You are Ada."])
    async with ChatHarness([AskSkill], tmp_path, model=model) as chat:
        await chat.ask("My name is Ada Lovelace.", author="ada")
        await chat.ask("is it raining?", author="ada")
        await chat.ask("I work on billing", author="ada")
        await chat.ask("what is my name?", author="ada")
    system = model.prompts[-1][0].content
    assert system.endswith(
        "Earlier in this conversation:\n"
        "- ada said: My name is Ada Lovelace.\n"
        "- ada said: I work on billing\n"
        "Use these facts when they answer the question."
    )
    assert "raining" not in system  # questions are not facts


async def test_the_recap_can_be_turned_off(tmp_path: Path) -> None:
    model = ScriptedBackend(["Hi.", "You are Ada."])
    skill = AskSkill(AskConfig(recap_statements=0))
    async with ChatHarness([skill], tmp_path, model=model) as chat:
        await chat.ask("My name is Ada.")
        await chat.ask("what is my name?")
    assert "Earlier in this conversation" not in model.prompts[-1][0].content
