"""``!summarise``: the window read, what the model is shown, and map-reduce over long chats."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from confab.bot.adapter import Capabilities
from confab.bot.errors import ModelBusy
from confab.bot.llm.backend import ChatMessage, GenerationParams
from confab.bot.messages import Author, Message
from confab.bot.testing import ChatHarness, RecordingAdapter, ScriptedBackend
from confab.skills.ping import PingSkill
from confab.skills.summarise import SummariseConfig, SummariseSkill


def transcript(prompt: Sequence[ChatMessage]) -> list[str]:
    """The chat lines of a summary prompt (after the instruction's blank line)."""
    return prompt[-1].content.split("\n\n", 1)[1].splitlines()


def said(adapter: RecordingAdapter, author: str, text: str, minutes_ago: float) -> None:
    adapter.timeline.append(
        Message(
            platform="test",
            channel="general",
            author=Author(author, author),
            text=text,
            created_at=datetime.now(UTC) - timedelta(minutes=minutes_ago),
        )
    )


async def test_the_chat_is_summarised_without_commands_or_the_bots_messages(
    tmp_path: Path,
) -> None:
    model = ScriptedBackend(["- ada wants lunch at noon; bob agrees."])
    async with ChatHarness([SummariseSkill, PingSkill], tmp_path, model=model) as chat:
        await chat.send("lunch at noon?", author="ada", channel="general", addressed=False)
        await chat.ask("!ping", author="bob", channel="general")
        await chat.send("works for me", author="bob", channel="general", addressed=False)
        await chat.send("  ", author="bob", channel="general", addressed=False)
        answer = await chat.ask("!summarise", author="cy", channel="general")
    assert answer == (
        "**Summary of the last 50 messages** (2 messages)\n\n- ada wants lunch at noon; bob agrees."
    )
    (prompt,) = model.prompts
    assert prompt[0].role == "system"
    assert "who said what" in prompt[1].content and "decisions" in prompt[1].content
    assert transcript(prompt) == ["ada: lunch at noon?", "bob: works for me"]


async def test_the_last_n_messages_and_the_aliases(tmp_path: Path) -> None:
    model = ScriptedBackend(["- summary"])
    async with ChatHarness([SummariseSkill], tmp_path, model=model) as chat:
        for n in range(5):
            await chat.send(f"message {n}", author="ada", channel="general", addressed=False)
        assert (await chat.ask("!summarise 2", channel="general")).startswith(
            "**Summary of the last 2 messages** (2 messages)"
        )
        await chat.ask("!tldr 3", channel="general")
        await chat.ask("!summarize 1", channel="general")
    assert transcript(model.prompts[0]) == ["ada: message 3", "ada: message 4"]
    # The earlier commands and summaries count among the last N, and are left out.
    assert transcript(model.prompts[1]) == ["ada: message 4"]
    assert len(model.prompts) == 2


async def test_max_messages_caps_what_is_read(tmp_path: Path) -> None:
    model = ScriptedBackend(["- summary"])
    skill = SummariseSkill(SummariseConfig(max_messages=3))
    async with ChatHarness([skill], tmp_path, model=model) as chat:
        for n in range(6):
            await chat.send(f"message {n}", author="ada", channel="general", addressed=False)
        answer = await chat.ask("!summarise 100", channel="general")
    assert answer.startswith("**Summary of the last 3 messages (the most I read)** (3 messages)")
    assert transcript(model.prompts[0]) == ["ada: message 3", "ada: message 4", "ada: message 5"]


async def test_a_time_window_reads_only_messages_that_recent(tmp_path: Path) -> None:
    model = ScriptedBackend(["- summary"])
    adapter = RecordingAdapter()
    said(adapter, "ada", "three hours ago", 180)
    said(adapter, "bob", "ninety minutes ago", 90)
    said(adapter, "ada", "ten minutes ago", 10)
    async with ChatHarness([SummariseSkill], tmp_path, model=model, adapter=adapter) as chat:
        assert (await chat.ask("!summarise 2h", channel="general")).startswith(
            "**Summary of the last 2 hours** (2 messages)"
        )
        await chat.ask("!summarise 30 min", channel="general")
        await chat.ask("!summarise 1d", channel="general")
    assert transcript(model.prompts[0]) == ["bob: ninety minutes ago", "ada: ten minutes ago"]
    assert transcript(model.prompts[1]) == ["ada: ten minutes ago"]
    assert len(transcript(model.prompts[2])) == 3


async def test_today_starts_at_midnight_in_the_channels_timezone(tmp_path: Path) -> None:
    zone = "Pacific/Kiritimati"  # UTC+14: its midnight is rarely UTC's
    midnight = datetime.now(ZoneInfo(zone)).replace(hour=0, minute=0, second=0, microsecond=0)
    minutes_since = (datetime.now(UTC) - midnight).total_seconds() / 60
    adapter = RecordingAdapter()
    said(adapter, "ada", "late last night", minutes_since + 1)
    said(adapter, "bob", "just after midnight", minutes_since - 0.1)
    model = ScriptedBackend(["- summary"])
    async with ChatHarness([SummariseSkill], tmp_path, model=model, adapter=adapter) as chat:
        await chat.settings.update("test", "general", timezone=zone)
        assert (await chat.ask("!summarise today", channel="general")).startswith(
            "**Summary of today** (1 message)"
        )
    assert transcript(model.prompts[0]) == ["bob: just after midnight"]


async def test_nothing_to_summarise_is_said_plainly(tmp_path: Path) -> None:
    model = ScriptedBackend()
    adapter = RecordingAdapter()
    said(adapter, "ada", "yesterday's news", 60 * 30)
    async with ChatHarness([SummariseSkill], tmp_path, model=model, adapter=adapter) as chat:
        assert await chat.ask("!summarise", channel="quiet") == (
            "There is nothing to summarise in the last 50 messages."
        )
        assert await chat.ask("!summarise 2h", channel="general") == (
            "There is nothing to summarise in the last 2 hours."
        )
    assert model.prompts == []


@pytest.mark.parametrize("args", ["0", "-5", "2 weeks", "yesterday", "99999d", "abc", "²", "٣h"])
async def test_arguments_it_does_not_understand_get_the_usage(tmp_path: Path, args: str) -> None:
    model = ScriptedBackend()
    async with ChatHarness([SummariseSkill], tmp_path, model=model) as chat:
        answer = await chat.ask(f"!summarise {args}", channel="general")
    assert answer.startswith("Usage: `!summarise` (the last 50 messages), `!summarise 100`")
    assert model.prompts == []


async def test_a_platform_without_history_gets_a_clear_reply(tmp_path: Path) -> None:
    adapter = RecordingAdapter(capabilities=Capabilities(history=False))
    async with ChatHarness([SummariseSkill], tmp_path, adapter=adapter) as chat:
        answer = await chat.ask("!summarise", channel="general")
    assert answer == "I can't read this channel's history on this platform."


class Summaries(ScriptedBackend):
    """Answers map prompts with 'part N', reduce prompts with '- final'; tracks concurrency."""

    def __init__(self, *, summary_words: int = 1, **options: object) -> None:
        super().__init__(self.answer, delay_s=0.001, **options)  # type: ignore[arg-type]
        self.summary_words = summary_words
        self.running = 0
        self.most_at_once = 0

    def answer(self, prompt: Sequence[ChatMessage]) -> str:
        text = prompt[-1].content
        if text.startswith("This is part"):
            part = text.split()[3]
            return f"part{part} " + "detail " * (self.summary_words - 1)
        return "- final"

    async def stream(
        self, messages: Sequence[ChatMessage], params: GenerationParams | None = None
    ) -> AsyncIterator[str]:
        self.running += 1
        self.most_at_once = max(self.most_at_once, self.running)
        try:
            async for piece in super().stream(messages, params):
                await asyncio.sleep(0)
                yield piece
        finally:
            self.running -= 1


async def long_chat(chat: ChatHarness, messages: int) -> list[str]:
    lines = []
    for n in range(messages):
        text = f"message {n} " + "blah " * 8
        await chat.send(text, author="ada", channel="general", addressed=False)
        lines.append(f"ada: {text.strip()}")
    return lines


async def test_a_chat_too_long_for_one_prompt_is_summarised_map_reduce(tmp_path: Path) -> None:
    # 600 tokens of window, 50 for the answer: about 60 messages of 10 words fit
    # no single prompt, so they go in chunks of at most 100 tokens (8 lines).
    model = Summaries(context_window=600)
    config = SummariseConfig(max_new_tokens=50, chunk_tokens=100, max_parallel=3)
    async with ChatHarness([SummariseSkill(config)], tmp_path, model=model) as chat:
        lines = await long_chat(chat, 60)
        answer = await chat.ask("!summarise 60", channel="general")

    *maps, reduce = model.prompts
    assert len(maps) == 8  # ceil(60 / 8)
    assert answer == "**Summary of the last 60 messages** (60 messages, in 8 parts)\n\n- final"
    # Every message is in exactly one chunk, in order, and each chunk fits its budget.
    assert [line for prompt in maps for line in transcript(prompt)] == lines
    assert all(sum(len(line.split()) + 1 for line in transcript(p)) <= 100 for p in maps)
    assert {p[-1].content.split("\n\n")[0][:17] for p in maps} == {"This is part 1 of"} | {
        f"This is part {n} of" for n in range(2, 9)
    }
    # The reduce merges the chunk summaries, in order; chunks ran concurrently.
    assert reduce[-1].content.startswith("Below are summaries of consecutive parts")
    assert [line for line in transcript(reduce) if line.startswith("part")] == [
        f"part{n}" for n in range(1, 9)
    ]
    assert model.most_at_once == 3
    assert all(params.max_new_tokens == 50 for params in model.params)


async def test_too_many_chunk_summaries_are_merged_in_rounds(tmp_path: Path) -> None:
    # Long chunk summaries: seven of them do not fit one reduce prompt.
    model = Summaries(context_window=600, summary_words=120)
    config = SummariseConfig(max_new_tokens=50, chunk_tokens=100)
    async with ChatHarness([SummariseSkill(config)], tmp_path, model=model) as chat:
        await long_chat(chat, 60)
        answer = await chat.ask("!summarise 60", channel="general")
    reduces = [p for p in model.prompts if p[-1].content.startswith("Below are summaries")]
    assert len(reduces) > 1
    assert answer.endswith("- final")
    assert all(model.count_tokens(p) <= 600 - 50 for p in model.prompts)


async def test_a_very_long_message_is_cut_not_dropped(tmp_path: Path) -> None:
    model = Summaries(context_window=600)
    config = SummariseConfig(max_new_tokens=50, chunk_tokens=100)
    async with ChatHarness([SummariseSkill(config)], tmp_path, model=model) as chat:
        await chat.send("word " * 1000, author="ada", channel="general", addressed=False)
        await chat.send("short one", author="bob", channel="general", addressed=False)
        await chat.ask("!summarise", channel="general")
    *maps, _reduce = model.prompts
    cut, short = [line for prompt in maps for line in transcript(prompt)]
    assert cut.startswith("ada: word word") and cut.endswith("…")
    assert 90 <= len(cut.split()) < 100
    assert short == "bob: short one"


@pytest.mark.parametrize(
    ("model_wrote", "shown"),
    [
        ("- ada asked.\n- bob agreed.", "- ada asked.\n- bob agreed."),
        (
            "Here is a summary:\n\n1. ada asked about lunch.\n2) bob agreed.",
            "- ada asked about lunch.\n- bob agreed.",
        ),
        (
            "The chat is about lunch. Ada asked when! Bob said noon?\nNo decision.",
            "- The chat is about lunch.\n- Ada asked when!\n- Bob said noon?\n- No decision.",
        ),
        ("* one\n\n  * two", "- one\n- two"),
        ("version 2.0 ships", "- version 2.0 ships"),
    ],
)
async def test_the_summary_is_shown_as_bullet_points(
    tmp_path: Path, model_wrote: str, shown: str
) -> None:
    model = ScriptedBackend([model_wrote])
    async with ChatHarness([SummariseSkill], tmp_path, model=model) as chat:
        await chat.send("lunch?", author="ada", channel="general", addressed=False)
        answer = await chat.ask("!summarise", channel="general")
    assert answer.split("\n\n", 1)[1] == shown


class CharByChar(ScriptedBackend):
    async def stream(
        self, messages: Sequence[ChatMessage], params: GenerationParams | None = None
    ) -> AsyncIterator[str]:
        async for piece in super().stream(messages, params):
            for character in piece:
                yield character


@pytest.mark.parametrize(
    ("model_wrote", "shown"),
    [
        ("Sure! Here is a summary:\n- a", "- a"),
        ("Sure! The team chose Friday. Ada asks, e.g. who tells them?", None),
        ("## Decisions\n- Friday\nOpen: who tells the customers?", None),
        ("", "The model gave no summary; please try again."),
        ("Here is the summary:", "The model gave no summary; please try again."),
    ],
)
async def test_bullets_do_not_depend_on_how_the_text_streams(
    tmp_path: Path, model_wrote: str, shown: str | None
) -> None:
    answers = []
    for n, backend in enumerate((ScriptedBackend([model_wrote]), CharByChar([model_wrote]))):
        async with ChatHarness([SummariseSkill], tmp_path / str(n), model=backend) as chat:
            await chat.send("lunch?", author="ada", channel="general", addressed=False)
            answers.append((await chat.ask("!summarise", channel="general")).split("\n\n", 1)[1])
    assert answers[0] == answers[1]
    if shown is not None:
        assert answers[0] == shown
    elif model_wrote.startswith("Sure"):
        assert answers[0] == "- The team chose Friday.\n- Ada asks, e.g. who tells them?"
    else:
        assert answers[0] == "**Decisions**\n- Friday\n- Open: who tells the customers?"


async def test_a_failing_chunk_is_one_clear_error_and_no_half_summary(tmp_path: Path) -> None:
    class BusyOnSecondChunk(Summaries):
        async def stream(
            self, messages: Sequence[ChatMessage], params: GenerationParams | None = None
        ) -> AsyncIterator[str]:
            if messages[-1].content.startswith("This is part 2 of"):
                raise ModelBusy("queue full")
            async for piece in super().stream(messages, params):
                yield piece

    model = BusyOnSecondChunk(context_window=600)
    config = SummariseConfig(max_new_tokens=50, chunk_tokens=100)
    async with ChatHarness([SummariseSkill(config)], tmp_path, model=model) as chat:
        await long_chat(chat, 60)
        posted = await chat.send("!summarise 60", channel="general")
    assert [p.text for p in posted] == ["I'm busy answering others; please try again in a moment."]


async def test_a_time_window_says_when_it_was_capped(tmp_path: Path) -> None:
    adapter = RecordingAdapter()
    for n in range(5):
        said(adapter, "ada", f"message {n}", 30 - n)
    skill = SummariseSkill(SummariseConfig(max_messages=3))
    model = ScriptedBackend(["- summary"])
    async with ChatHarness([skill], tmp_path, model=model, adapter=adapter) as chat:
        answer = await chat.ask("!summarise 1h", channel="general")
    assert answer.startswith("**Summary of the last hour (the newest 3 messages)** (3 messages)")


async def test_chat_that_starts_with_the_prefix_is_still_chat(tmp_path: Path) -> None:
    model = ScriptedBackend(["- summary"])
    async with ChatHarness([SummariseSkill], tmp_path, model=model) as chat:
        await chat.send("!heads up, deploy at 3", author="ada", channel="general", addressed=False)
        await chat.ask("!ping", author="bob", channel="general")  # no such skill here
        await chat.ask("!tldr", channel="general")
    assert transcript(model.prompts[-1]) == ["ada: !heads up, deploy at 3", "bob: !ping"]


async def test_decisions_owners_and_dates_the_summary_left_out_are_added(tmp_path: Path) -> None:
    model = ScriptedBackend(["- The team talked about the release."])
    async with ChatHarness([SummariseSkill], tmp_path, model=model) as chat:
        for author, text in [
            ("ada", "morning all"),
            ("ada", "Should we ship 2.0 on Friday?"),
            ("bob", "Yes, we agreed. I'll write the release notes by Thursday."),
            ("carol", "nice weather today"),
            ("carol", "I will tell the customers."),
        ]:
            await chat.send(text, author=author, channel="team", addressed=False)
        answer = await chat.ask("!summarise", channel="team")
    summary, _, added = answer.partition("\n\n**Decisions, owners and dates**\n")
    assert summary.endswith("- The team talked about the release.")
    assert added.splitlines() == [
        "- ada: Should we ship 2.0 on Friday?",
        "- bob: Yes, we agreed. I'll write the release notes by Thursday.",
        "- carol: I will tell the customers.",
    ]
    assert "morning all" not in answer
    assert "weather" not in answer  # a date in chatter is not a plan


async def test_facts_the_summary_kept_are_not_repeated(tmp_path: Path) -> None:
    model = ScriptedBackend(["- bob will write the release notes by Thursday."])
    async with ChatHarness([SummariseSkill], tmp_path, model=model) as chat:
        await chat.send(
            "I'll write the release notes by Thursday.", author="bob", channel="t", addressed=False
        )
        answer = await chat.ask("!summarise", channel="t")
    assert answer.endswith("- bob will write the release notes by Thursday.")
    assert "Decisions, owners and dates" not in answer
