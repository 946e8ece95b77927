"""Whatever the model writes, Confab's Discord messages ping nobody.

Every request that carries message content (a channel post or edit, an
interaction's original response, a follow-up or its edit, an error reply) must
tell Discord to parse no mention at all: no @everyone/@here, no role, no user,
not even the person replied to. The pings stay visible as text.

The channel side runs on dpytest, the interaction side on the faked HTTP edge of
``test_discord_interactions``; both with Confab's real adapter, router and store.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import discord
import pytest

from confab.bot.errors import SkillError
from confab.bot.skill import Skill, SkillContext
from confab.skills.qa import AskSkill
from tests.adapters.test_discord import discord_bot, open_thread
from tests.adapters.test_discord_interactions import (
    CHANNEL_EDIT,
    CHANNEL_SEND,
    FOLLOWUP,
    FOLLOWUP_EDIT,
    ORIGINAL,
    FakeDiscord,
    confab,
    fake,
    interaction_id,
)

__all__ = ["fake"]  # the interaction tests' fixture, used here by name

PINGS = "@everyone @here <@&123> <@456> <@!456>"
# Long enough for three Discord messages or more, every kind of ping in each.
SPLIT_ANSWER = "".join(
    f"Part {n}: hey {PINGS}, read this. " + "Some filler words here. " * 12 + "\n\n"
    for n in range(16)
)


class QuoteSkill(Skill):
    """Refuses with an error that quotes what it was given, as many skills' errors do."""

    name = "quote"
    help = "Refuse to quote."
    usage = "<text>"

    async def run(self, ctx: SkillContext) -> None:
        raise SkillError(f"I can't quote {ctx.args}.")


def pings_nobody(body: dict[str, Any]) -> bool:
    """Discord parses no mention of any kind in the message this body creates or edits."""
    mentions = body.get("allowed_mentions")
    return (
        isinstance(mentions, dict)
        and mentions.get("parse") == []
        and not mentions.get("users")
        and not mentions.get("roles")
        and not mentions.get("replied_user", False)
    )


def content_bodies(fake: FakeDiscord) -> list[dict[str, Any]]:
    """Every JSON body the bot sent to the fake Discord with message text in it."""
    return [r.json for r in fake.requests if isinstance(r.json, dict) and "content" in r.json]


# -- channel messages (gateway events) -------------------------------------------


@pytest.mark.parametrize("reply_in_thread", [False, True])
async def test_a_split_answer_full_of_pings_pings_nobody_in_any_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reply_in_thread: bool
) -> None:
    async def create_thread(message: discord.Message, *, name: str, **_: Any) -> discord.Thread:
        return open_thread(message.channel, name)  # type: ignore[arg-type]

    monkeypatch.setattr(discord.Message, "create_thread", create_thread)
    assert 5000 < len(SPLIT_ANSWER) < 6000
    async with discord_bot(
        tmp_path, [SPLIT_ANSWER], edit_interval_s=0.2, reply_in_thread=reply_in_thread
    ) as world:
        await world.say("!ask say it loud")
        shown = world.shown()
        bodies = world.bodies()
        places = set(world.channels.values())
    assert len(shown) >= 3 and all(PINGS in text for text in shown)
    assert "".join(shown) == SPLIT_ANSWER  # the pings are shown as text, nothing dropped
    assert len(places) == (2 if reply_in_thread else 1)  # continued in a thread, or not
    assert len(bodies) > len(shown)  # edits too, not only the first posts
    assert all(pings_nobody(body) for body in bodies)


async def test_an_error_reply_quoting_pings_pings_nobody(tmp_path: Path) -> None:
    async with discord_bot(tmp_path, skills=[AskSkill, QuoteSkill]) as world:
        await world.say(f"!quote {PINGS}")
        shown = world.shown()
        bodies = world.bodies()
    # The adapter reads mentions in what people write as names; @everyone stays.
    assert len(shown) == 1 and shown[0].startswith("I can't quote @everyone @here @")
    assert bodies and all(pings_nobody(body) for body in bodies)


# -- slash commands (interactions) -----------------------------------------------


async def test_a_slash_answer_split_into_follow_ups_pings_nobody(
    tmp_path: Path, fake: FakeDiscord
) -> None:
    async with confab(tmp_path, fake, [SPLIT_ANSWER]) as bot:
        await bot.slash("ask", "say it loud")
    routes = {(r.method, r.path) for r in fake.requests}
    assert {("PATCH", ORIGINAL), ("POST", FOLLOWUP), ("PATCH", FOLLOWUP_EDIT)} <= routes
    shown = list(fake.shown.values())
    assert len(shown) >= 3 and "".join(shown) == SPLIT_ANSWER
    assert all(pings_nobody(body) for body in content_bodies(fake))


async def test_an_answer_moved_to_the_channel_when_the_token_expires_pings_nobody(
    tmp_path: Path, fake: FakeDiscord, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        "confab.adapters.discord.adapter.INTERACTION_LIFETIME", timedelta(milliseconds=600)
    )
    answer = " ".join(f"{PINGS} word{n}" for n in range(30))
    async with confab(tmp_path, fake, [answer], delay_s=0.02) as bot:
        await bot.slash("ask", "take your time")
    routes = [(r.method, r.path) for r in fake.requests]
    assert ("POST", CHANNEL_SEND) in routes and ("PATCH", CHANNEL_EDIT) in routes
    bodies = content_bodies(fake)
    assert len(bodies) >= 4  # original edits, the "continues below" edit, channel post, edits
    assert all(pings_nobody(body) for body in bodies)


async def test_a_slash_command_answered_in_the_channel_pings_nobody(
    tmp_path: Path, fake: FakeDiscord
) -> None:
    # Too late to acknowledge: the whole split answer goes to the channel instead.
    async with confab(tmp_path, fake, [SPLIT_ANSWER]) as bot:
        await bot.slash("ask", "late", ident=interaction_id(timedelta(seconds=5)))
    posts = [(r.method, r.path) for r in fake.requests].count(("POST", CHANNEL_SEND))
    assert posts >= 3 and posts == len(fake.shown)
    assert "".join(fake.shown.values()) == SPLIT_ANSWER
    assert all(pings_nobody(body) for body in content_bodies(fake))


async def test_a_slash_command_error_quoting_pings_pings_nobody(
    tmp_path: Path, fake: FakeDiscord
) -> None:
    async with confab(tmp_path, fake, skills=[QuoteSkill]) as bot:
        await bot.slash("quote", PINGS)
    assert fake.shown == {"@original": f"I can't quote {PINGS}."}
    bodies = content_bodies(fake)
    assert bodies and all(pings_nobody(body) for body in bodies)
