"""The router against any message: one answer for what is addressed to the bot, silence
for the rest, nothing raised, and each message stored exactly as it was said."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from confab.bot.config import RouterConfig
from confab.bot.messages import clean_text, parse_command
from confab.bot.router import INVISIBLE
from confab.bot.skill import Skill, SkillContext
from confab.bot.testing import ChatHarness, ScriptedBackend
from confab.skills.help import HelpSkill
from confab.skills.ping import PingSkill
from confab.skills.qa import AskSkill
from confab.storage.conversations import ConversationKey
from tests.property.strategies import AWKWARD, any_text

PREFIXES = ["!", "?", "confab:"]
MAX_INPUT = 200
ESCAPED = ("failed while answering", "something went wrong")


class EchoSkill(Skill):
    """Answers with exactly the arguments it was given."""

    name = "echo"
    aliases = ("e",)
    help = "Repeat the arguments."

    async def run(self, ctx: SkillContext) -> None:
        await ctx.reply(f"[{ctx.args}]")


COMMANDS = {"echo", "e", "ask", "q", "help", "ping"}

messages = st.one_of(
    any_text,
    # A prefix, maybe a command, then anything: most reach a skill or the unknown-command reply.
    st.builds(
        lambda space, prefix, command, rest: space + prefix + command + rest,
        st.sampled_from(["", " ", "\n", "\u200b", "\ufeff"]),
        st.sampled_from([*PREFIXES, "! ", "!!", "/", "<@U1> !"]),
        st.sampled_from(["echo", "E", "ping", "help", "ask", "nope", "", "é", "echo\u200b"]),
        any_text,
    ),
    # Around the size limit.
    st.builds(
        lambda n, c: c * n, st.integers(MAX_INPUT - 2, MAX_INPUT + 2), st.sampled_from(AWKWARD)
    ),
)


@pytest.fixture
async def chat(tmp_path: Path) -> AsyncIterator[ChatHarness]:
    config = RouterConfig(prefixes=PREFIXES, default_skill="echo", max_input_chars=MAX_INPUT)
    skills = [EchoSkill, AskSkill, HelpSkill, PingSkill]
    async with ChatHarness(skills, tmp_path, model=ScriptedBackend(), router_config=config) as c:
        yield c


channels = itertools.count()


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=messages, addressed=st.booleans())
async def test_any_message_gets_one_answer_or_none_and_is_stored_as_said(
    chat: ChatHarness, text: str, addressed: bool
) -> None:
    channel = f"c{next(channels)}"
    posted = await chat.send(text, channel=channel, author=f"person-{channel}", addressed=addressed)
    said = clean_text(text)  # what can be stored and shown: no NUL, no lone surrogate
    parsed = parse_command(said, PREFIXES)
    known = parsed is not None and parsed[0] in COMMANDS
    answers = [p.text for p in posted]
    stored = [
        turn.text
        for turn in await chat.store.channel_messages(ConversationKey("test", channel))
        if turn.role == "user"
    ]
    assert not any(escaped in answer for answer in answers for escaped in ESCAPED), answers

    if not addressed and not known:
        assert answers == []
        kept = said.strip() and len(said) <= MAX_INPUT
        assert stored == ([said] if kept else []), "chatter is kept as said, unless too long"
        return
    assert len(answers) == 1, answers
    (answer,) = answers
    if len(said) > MAX_INPUT:
        assert answer.startswith("Your message is too long")
        assert stored == []
    elif parsed is None and not said.translate(INVISIBLE).strip():
        assert answer == "Your message was empty: ask me something."
        assert stored == []
    elif parsed is not None and not known:
        assert answer.startswith(f"I don't know the command `{parsed[0]}`")
        assert stored == [said], "kept, like every message answered"
    else:
        assert stored == [said]
        if parsed is None:
            assert answer == f"[{said.strip()}]", "the default skill gets the whole text"
        elif parsed[0] in ("echo", "e"):
            assert answer == f"[{parsed[1]}]", "a command gets exactly its arguments"
