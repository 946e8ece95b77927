"""``!forget me`` and ``!forget channel``, through the real router, on both databases."""

from __future__ import annotations

from pathlib import Path

from confab.bot.config import RouterConfig
from confab.bot.testing import ChatHarness, RecordingAdapter, ScriptedBackend
from confab.skills.forget import ForgetSkill
from confab.skills.ping import PingSkill
from confab.skills.qa import AskSkill
from confab.storage.conversations import ConversationKey

SKILLS = [AskSkill, PingSkill, ForgetSkill]
ADMINS = RouterConfig(admins=["test:boss"])


def harness(tmp_path: Path, url: str) -> ChatHarness:
    return ChatHarness(
        SKILLS, tmp_path, model=ScriptedBackend(), router_config=ADMINS, database_url=url
    )


async def stored(chat: ChatHarness, channel: str) -> list[tuple[str, str]]:
    turns = await chat.store.channel_messages(ConversationKey("test", channel))
    return [(t.author_id, t.text) for t in turns]


async def test_forget_me_deletes_what_i_said_everywhere_and_the_replies_i_got(
    tmp_path: Path, any_db_url: str
) -> None:
    async with harness(tmp_path, any_db_url) as chat:
        await chat.ask("hello", author="ada")
        await chat.ask("!ping", author="ada", channel="general")
        await chat.send("lunch?", author="ada", channel="general", addressed=False)
        await chat.ask("hi", author="bob")

        answer = await chat.ask("!forget me", author="ada")
        # Her three turns, the command itself, and the two replies she got.
        assert answer == (
            "Done: I deleted 4 messages of yours (this one too), everywhere on this platform "
            "and my 2 replies to them."
        )
        assert await stored(chat, "general") == []
        assert await stored(chat, "dm") == [
            ("bob", "hi"),
            ("confab", "This is a scripted answer."),
            ("confab", answer),  # the reply to the request, which is no longer stored
        ]
        # The confirmation answered her, even though its request is gone: the next
        # forget takes it too.
        again = await chat.ask("!forget me", author="ada")
        assert again == (
            "Done: I deleted 1 message of yours (this one too), everywhere on this platform "
            "and my 1 reply to them."
        )
        assert await stored(chat, "dm") == [
            ("bob", "hi"),
            ("confab", "This is a scripted answer."),
            ("confab", again),
        ]


async def test_forget_channel_is_for_admins_and_deletes_the_whole_channel(
    tmp_path: Path, any_db_url: str
) -> None:
    async with harness(tmp_path, any_db_url) as chat:
        await chat.ask("!ping", author="ada", channel="general")
        await chat.send("chatter", author="bob", channel="general", addressed=False)
        await chat.ask("!ping", author="ada", channel="random")

        refused = await chat.ask("!forget channel", author="ada", channel="general")
        assert refused == "Only an admin can run `!forget channel`."
        assert len(await stored(chat, "general")) == 4  # the refused request is kept too

        answer = await chat.ask("!forget channel", author="boss", channel="general")
        assert answer == (
            "Done: I deleted this channel's history: 4 messages (this one too) and my 1 reply."
        )
        assert await stored(chat, "general") == [("confab", answer)]
        assert len(await stored(chat, "random")) == 2


async def test_forget_without_me_or_channel_explains_itself(tmp_path: Path, db_url: str) -> None:
    async with harness(tmp_path, db_url) as chat:
        await chat.ask("hello", author="ada")
        said = {
            "!forget": "`what` is missing",
            "!forget everything": "`what` must be one of `me`, `channel`",
            "!forget me please": "`please` is one word too many",
        }
        for request, why in said.items():
            answer = await chat.ask(request, author="ada")
            assert answer == f"Usage: `!forget <me|channel>` — {why}."
        assert ("ada", "hello") in await stored(chat, "dm")


class ConsoleLike(RecordingAdapter):
    platform = "console"


async def test_every_console_user_is_an_admin_by_default(tmp_path: Path, db_url: str) -> None:
    assert RouterConfig().admins == ["console:*"]
    async with ChatHarness(SKILLS, tmp_path, adapter=ConsoleLike(), database_url=db_url) as chat:
        answer = await chat.ask("!forget channel", author="anyone")
        assert answer == "Done: I deleted this channel's history: 1 message (this one too)."
