"""Every built-in skill's arguments: any text is understood or answered with the skill's
own clear reply (usage, or the reason), never with "failed while answering"."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from confab.bot.config import RouterConfig, SchedulerConfig
from confab.bot.messages import clean_text
from confab.bot.testing import ChatHarness, ScriptedBackend
from confab.skills import code, write
from confab.skills.code import CodeSkill
from confab.skills.forget import ForgetSkill
from confab.skills.help import HelpSkill
from confab.skills.ping import PingSkill
from confab.skills.qa import AskSkill, PromptSkill, ResetSkill
from confab.skills.schedule import RemindSkill, ScheduleSkill
from confab.skills.summarise import SummariseSkill
from confab.skills.write import WriteSkill
from confab.storage.conversations import ConversationKey
from tests.property.markdown import ends_in_code
from tests.property.strategies import any_text, markdown_text, whens

SKILLS = [
    AskSkill,
    ResetSkill,
    PromptSkill,
    CodeSkill,
    WriteSkill,
    SummariseSkill,
    ForgetSkill,
    HelpSkill,
    PingSkill,
    ScheduleSkill,
    RemindSkill,
]
COMMANDS = sorted({name for skill in SKILLS for name in (skill.name, *skill.aliases)})
ESCAPED = ("failed while answering", "something went wrong")

noise = st.one_of(st.just(""), any_text, any_text.map(" ".__add__))
"""Anything at all, after what a command expects."""
some = st.sampled_from


def phrase(*parts: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """The parts joined by a space, then noise."""
    return st.tuples(*parts, noise).map(lambda words: " ".join(words[:-1]) + words[-1])


# What each command's arguments look like: mostly its own grammar (right and wrong),
# else anything at all.
GRAMMAR: dict[str, st.SearchStrategy[str]] = {
    "schedule": st.one_of(
        phrase(
            some(["add", "ADD"]),
            whens,
            some(["ping", "summarise", "nope", "", "1d", "ping x\n```", "summarise\t2h"]),
        ),
        phrase(some(["list", "remove", "timezone", "remove job-1"])),
        phrase(some(["timezone"]), some(["Europe/Paris", "default", "Mars/Base", "../x"])),
    ),
    "remind": phrase(whens, some(["stand-up", "", "call Ada", "notes:\n```py"])),
    "summarise": st.one_of(
        phrase(some(["", "0", "1", "50", "501", "9" * 30, "today", "2h", "30 min", "0d"])),
        st.integers(-5, 10**12).map(str),
    ),
    "code": phrase(some(["explain", "review", "fix", "write", "Fix", "run"]), markdown_text),
    "write": phrase(
        some(["", "a", "an"]),
        some(["poem", "haiku", "limerick", "song", "lyrics:", "story", "essay"]),
        some(["", "about", "about about"]),
        some(["rain", '"autumn rain"', "“curly quotes”", '"unclosed', "x" * 400]),
        some(["", "--tone wistful", '—tone "quiet and sad"', "--tone", "--length long"]),
        some(["", "--length short", "--length huge", "--colour red", "--length --tone"]),
    ),
    "forget": phrase(some(["me", "channel", "ME", "everything", ""])),
    "prompt": st.one_of(
        phrase(some(["set", "clear", "SET", "show"])), phrase(st.just("set"), any_text)
    ),
    "help": phrase(some([*COMMANDS, "!ask", "nope", ""])),
}
GRAMMAR["summarize"] = GRAMMAR["tldr"] = GRAMMAR["summarise"]
arguments = st.one_of(any_text, markdown_text)


# -- parsers that are plain functions --------------------------------------------


@given(args=GRAMMAR["code"] | arguments, default=st.sampled_from(["python", "rust", "c++", "x"]))
def test_code_arguments_are_a_request_or_the_reason_they_are_not(args: str, default: str) -> None:
    request = code.parse_request(args, default)
    if isinstance(request, str):
        assert request.endswith(".") and len(request) < 200
        return
    assert request.mode in code.MODES
    assert request.text.strip()
    assert request.mode != "write" or request.language
    code.instruction(request)  # the prompt renders with anything in it


@given(args=GRAMMAR["write"] | arguments)
def test_write_arguments_are_a_request_or_the_reason_they_are_not(args: str) -> None:
    try:
        request = write.parse_request(args)
    except write.BadRequest as problem:
        assert str(problem).endswith((".", "?"))
        return
    assert request.form in write.FORMS
    assert request.topic and request.topic == " ".join(request.topic.split())
    assert len(request.topic) <= write.MAX_TOPIC_CHARS
    assert request.tone is None or 0 < len(request.tone) <= write.MAX_TONE_CHARS
    assert request.length in write.LENGTHS


@given(
    words=st.lists(
        st.text(st.characters(exclude_categories=["Zs", "Cc", "Zl", "Zp"])).filter(
            lambda word: word and word[0] not in "\"'“„‘" and not any(c.isspace() for c in word)
        )
    )
)
def test_plain_words_split_back_into_themselves(words: list[str]) -> None:
    assert write.split_words(" ".join(words)) == words


@given(phrase=st.lists(st.sampled_from(["quiet", "and", "sad", "dog's", "'tis"]), min_size=1))
def test_a_quoted_phrase_is_one_word(phrase: list[str]) -> None:
    words = write.split_words(f'haiku about rain --tone "{" ".join(phrase)}" --length short')
    assert words == ["haiku", "about", "rain", "--tone", " ".join(phrase), "--length", "short"]


# -- every skill, through the router -------------------------------------------


@pytest.fixture
async def chat(tmp_path: Path) -> AsyncIterator[ChatHarness]:
    """The built-in skills with a scripted model and a scheduler that never runs jobs
    (so nothing is posted between a message and its answer); ``boss`` is an admin."""
    harness = ChatHarness(
        SKILLS,
        tmp_path,
        model=ScriptedBackend(["Here:\n```python\nprint(1)\n```", "- a point\n- another"]),
        router_config=RouterConfig(admins=["test:boss"]),
        scheduler=SchedulerConfig(enabled=False),
    )
    async with harness:
        yield harness


channels = itertools.count()


@settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data(), command=st.sampled_from(COMMANDS), admin=st.booleans())
async def test_any_arguments_get_one_clear_answer(
    chat: ChatHarness, data: st.DataObject, command: str, admin: bool
) -> None:
    args = data.draw(GRAMMAR.get(command, arguments) | arguments, label="args")
    channel = f"c{next(channels)}"
    author = "boss" if admin else f"person-{channel}"  # one each: no rate limit
    typed = f"!{command} {args}"
    posted = await chat.send(typed, channel=channel, author=author)
    assert len(posted) == 1, [p.text for p in posted]
    answer = posted[0].text
    assert answer.strip()
    assert not any(escaped in answer for escaped in ESCAPED), answer
    assert not ends_in_code(answer), "what a reply quotes never opens a code block"
    turns = await chat.store.channel_messages(ConversationKey("test", channel))
    said = [turn.text for turn in turns if turn.role == "user"]
    # Stored as typed, unless rejected before any skill ran, or it was `forget me`.
    assert said in ([clean_text(typed)], [])


@pytest.mark.parametrize(
    ("typed", "answer"),
    [
        ("!summarise " + "9" * 5000, "**Summary of"),
        ("!summarise " + "0" * 5000 + "1", "**Summary of"),
    ],
)
async def test_a_huge_count_is_the_most_summarise_reads(
    tmp_path: Path, typed: str, answer: str
) -> None:
    """int() refuses more than 4,300 digits: summarise crashed on a long number."""
    config = RouterConfig(max_input_chars=10_000)
    async with ChatHarness([SummariseSkill], tmp_path, router_config=config) as harness:
        await harness.send("something to sum up", channel="general", addressed=False)
        assert (await harness.ask(typed, channel="general")).startswith(answer)


async def test_a_scheduled_command_word_ends_at_any_whitespace(chat: ChatHarness) -> None:
    answer = await chat.ask("!schedule add daily 09:00 ping\n```", author="boss", channel="x")
    assert answer.startswith("Scheduled `")
    assert not ends_in_code(answer)


async def test_help_reads_one_command_word_with_or_without_a_long_prefix(
    tmp_path: Path,
) -> None:
    """`help` stripped the prefix's characters, not the prefix: "help" became "elp"."""
    config = RouterConfig(prefixes=["h!"])
    async with ChatHarness([HelpSkill, PingSkill], tmp_path, router_config=config) as harness:
        assert (await harness.ask("h!help help")).startswith("`h!help [command]`")
        assert (await harness.ask("h!help h!ping now")).startswith("`h!ping`")
        answer = await harness.ask("h!help no`pe\n```")
        assert answer == "There is no command `h!nope`."


async def test_a_job_is_quoted_on_one_line_that_opens_no_code_block(chat: ChatHarness) -> None:
    added = await chat.ask("!schedule add daily 09:00 ping x\n```", author="boss", channel="j")
    assert added.startswith("Scheduled `") and "`ping x '''`" in added
    listed = await chat.ask("!schedule list", author="boss", channel="j")
    assert "`ping x '''`" in listed
    assert not ends_in_code(added) and not ends_in_code(listed)
