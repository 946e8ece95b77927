"""Messages that break bots, through the router into real storage, on SQLite and on
PostgreSQL: each gets one short clear reply or a normal answer, and the database
holds each turn whole (or not at all), never half of one.

Text that no database or platform takes as it is is made storable once, where a
:class:`~confab.bot.messages.Message` is made: NUL characters are dropped (PostgreSQL text
cannot hold them) and lone UTF-16 surrogates become U+FFFD (UTF-8 cannot encode
them; JSON's ``"\\ud800"`` decodes to one). Everything else is kept as it was.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from confab.bot.config import RouterConfig
from confab.bot.llm.backend import ChatMessage
from confab.bot.messages import clean_text
from confab.bot.testing import ChatHarness, ScriptedBackend
from confab.skills.help import HelpSkill
from confab.skills.ping import PingSkill
from confab.skills.qa import AskSkill
from confab.storage.conversations import ConversationKey
from tests.property.strategies import any_text

ESCAPED = ("failed while answering", "something went wrong")
MEGABYTE = 1024 * 1024
EMPTY = "Your message was empty: ask me something."


ODD_QUESTION = "say something odd"
ODD_ANSWER = "zero\x00byte and \udc80 half"


def answer_to_the_last_question(prompt: Sequence[ChatMessage]) -> str:
    question = prompt[-1].content
    return ODD_ANSWER if question == ODD_QUESTION else f"You said {len(question)} characters."


@pytest.fixture
async def chat(tmp_path: Path, any_db_url: str) -> AsyncIterator[ChatHarness]:
    """The Q&A skills on SQLite or PostgreSQL, with a model that says how long the
    question it saw was, and the largest input the config allows."""
    harness = ChatHarness(
        [AskSkill, HelpSkill, PingSkill],
        tmp_path,
        model=ScriptedBackend(answer_to_the_last_question),
        router_config=RouterConfig(max_input_chars=1_000_000),
        database_url=any_db_url,
    )
    async with harness:
        yield harness


async def exchange(chat: ChatHarness, text: str, **options: object) -> tuple[str, list[str]]:
    """Send ``text`` in a channel of its own: the one answer, and the stored turns."""
    channel = str(options.pop("channel", f"c{next(channels)}"))
    posted = await chat.send(text, channel=channel, **options)  # type: ignore[arg-type]
    assert len(posted) == 1, [p.text for p in posted]
    answer = posted[0].text
    assert not any(escaped in answer for escaped in ESCAPED), answer
    turns = await chat.store.channel_messages(ConversationKey("test", clean_text(channel)))
    return answer, [turn.text for turn in turns]


channels = itertools.count()


async def test_a_megabyte_message_is_refused_whole_and_nothing_is_stored(
    chat: ChatHarness,
) -> None:
    for text in ("x" * MEGABYTE, "!ask " + "é" * MEGABYTE, "\u200b" * (MEGABYTE + 1)):
        answer, stored = await exchange(chat, text)
        assert answer == (
            f"Your message is too long ({len(text):,} characters; the limit is 1,000,000). "
            "Please shorten it."
        )
        assert stored == []


async def test_megabyte_chatter_is_stored_whole_or_not_at_all(chat: ChatHarness) -> None:
    text = "chatter " * (MEGABYTE // 8)
    assert await chat.send(text, channel="general", addressed=False) == []
    stored = await chat.store.channel_messages(ConversationKey("test", "general"))
    assert [turn.text for turn in stored] in ([], [text])


async def test_nul_characters_are_dropped_and_the_rest_answered(chat: ChatHarness) -> None:
    answer, stored = await exchange(chat, "what is\x00 a monad?\x00")
    assert answer == "You said 16 characters."
    assert stored == ["what is a monad?", answer]
    answer, stored = await exchange(chat, "!ask\x00 hi")  # NUL inside the command
    assert stored == ["!ask hi", answer]


async def test_lone_surrogates_become_replacement_characters(chat: ChatHarness) -> None:
    answer, stored = await exchange(chat, "broken \ud800 emoji \ud83d\ude00 and \udfff")
    assert stored == ["broken \ufffd emoji 😀 and \ufffd", answer]
    assert answer == f"You said {len(stored[0])} characters."


async def test_right_to_left_and_zero_width_text_is_kept_exactly(chat: ChatHarness) -> None:
    text = "שלום \u200fעולם\u200e مرحبا \u202eabc\u202c a\u200bb\u200dc \ufeff 👩\u200d💻 🇫🇷"
    answer, stored = await exchange(chat, text)
    assert stored == [text, answer]
    assert isinstance(chat.model, ScriptedBackend)
    assert chat.model.prompts[-1][-1].content == text


@pytest.mark.parametrize("text", ["", " ", "\n\n\t ", "\u3000\u2028", "\x00", "  \x00 \n"])
async def test_only_whitespace_or_only_a_mention_gets_the_empty_reply(
    chat: ChatHarness, text: str
) -> None:
    """A mention alone arrives as "" (the adapter removes the mention itself)."""
    answer, stored = await exchange(chat, text)
    assert (answer, stored) == (EMPTY, [])


async def test_a_command_with_only_whitespace_gets_its_usage(chat: ChatHarness) -> None:
    answer, stored = await exchange(chat, "!ask \n\t\x00 ")
    assert answer == "Ask me something, e.g. `!ask what is a monad?`"
    assert stored == ["!ask \n\t ", answer]


async def test_a_model_answer_with_nul_and_surrogates_is_shown_and_stored_clean(
    chat: ChatHarness,
) -> None:
    answer, stored = await exchange(chat, ODD_QUESTION)
    assert answer == "zerobyte and \ufffd half"
    assert stored == [ODD_QUESTION, answer]


async def test_names_and_channels_with_nul_and_surrogates_are_stored(chat: ChatHarness) -> None:
    answer, stored = await exchange(chat, "hi", author="eve\x00\ud800", channel="room\x00")
    assert stored == ["hi", answer]
    turns = await chat.store.channel_messages(ConversationKey("test", "room"))
    assert turns[0].author_name == "eve\ufffd"


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=any_text)
async def test_any_text_is_answered_once_and_stored_whole(chat: ChatHarness, text: str) -> None:
    answer, stored = await exchange(chat, text, author=f"p{next(channels)}")
    if stored:
        assert len(stored) == 2 and stored[1] == answer, "the question, then its answer"
    else:
        assert answer == EMPTY or answer.startswith("I don't know the command")
