"""Rate limits and permissions, as the people in a channel meet them."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from confab.bot.config import RouterConfig
from confab.bot.limits import ChannelSlots, UserRateLimit
from confab.bot.router import BUSY
from confab.bot.skill import Skill, SkillContext
from confab.bot.testing import ChatHarness, ScriptedBackend
from confab.skills.help import HelpSkill
from confab.skills.ping import PingSkill
from confab.skills.qa import AskSkill
from confab.storage.conversations import ConversationKey

SLOW_DOWN = "You're sending messages faster than I can answer"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_a_person_over_the_rate_gets_one_notice_then_quiet(tmp_path: Path) -> None:
    config = RouterConfig(user_burst=3, user_rate_per_minute=6)  # one message per 10 s
    async with ChatHarness([PingSkill], tmp_path, router_config=config) as chat:
        clock = Clock()
        chat.router.rate = UserRateLimit(6, 3, clock=clock)
        answers = [await chat.ask("!ping", author="ada", channel="c") for _ in range(6)]

        assert answers[:3] == ["pong"] * 3
        assert answers[3].startswith(SLOW_DOWN) and "wait 10 s" in answers[3]
        assert answers[4:] == ["", ""]  # no flood of notices
        assert await chat.ask("!ping", author="bob", channel="c") == "pong"  # others unaffected

        clock.now += 10  # one message's worth refilled
        assert await chat.ask("!ping", author="ada", channel="c") == "pong"
        assert (await chat.ask("!ping", author="ada", channel="c")).startswith(SLOW_DOWN)


async def test_unaddressed_chatter_does_not_spend_the_budget(tmp_path: Path) -> None:
    config = RouterConfig(user_burst=1, user_rate_per_minute=1)
    async with ChatHarness([PingSkill], tmp_path, router_config=config) as chat:
        for n in range(5):
            await chat.send(f"just talking {n}", author="ada", channel="c", addressed=False)
        assert await chat.ask("!ping", author="ada", channel="c") == "pong"


async def test_admins_are_not_rate_limited(tmp_path: Path) -> None:
    config = RouterConfig(user_burst=1, user_rate_per_minute=1, admins=["test:boss"])
    async with ChatHarness([PingSkill], tmp_path, router_config=config) as chat:
        answers = [await chat.ask("!ping", author="boss") for _ in range(5)]
    assert answers == ["pong"] * 5


def test_the_bucket_forgets_people_whose_budget_is_full_again(monkeypatch) -> None:
    monkeypatch.setattr("confab.bot.limits.PRUNE_ABOVE", 10)
    clock = Clock()
    rate = UserRateLimit(60, 2, clock=clock)
    for n in range(10):
        assert rate.take("test", f"u{n}").allowed
    clock.now += 5  # everyone refilled
    rate.take("test", "newcomer")
    assert len(rate._buckets) == 1


class Gate:
    """A model that answers only when the test opens the gate."""

    def __init__(self) -> None:
        self.open = asyncio.Event()
        self.waiting = 0

    def script(self) -> ScriptedBackend:
        gate = self

        class Slow(ScriptedBackend):
            async def stream(self, messages, params=None):  # type: ignore[no-untyped-def]
                gate.waiting += 1
                await gate.open.wait()
                async for piece in super().stream(messages, params):
                    yield piece

        return Slow(["Answer."])


async def test_a_full_channel_answers_busy_and_other_channels_carry_on(tmp_path: Path) -> None:
    gate = Gate()
    config = RouterConfig(channel_concurrency=2, channel_queue=1)
    async with ChatHarness(
        [AskSkill, PingSkill], tmp_path, model=gate.script(), router_config=config
    ) as chat:
        asked = [
            asyncio.create_task(chat.send(f"question {n}", author=f"u{n}", channel="busy"))
            for n in range(4)
        ]
        for _ in range(100):  # until two are answering
            await asyncio.sleep(0.01)
            if gate.waiting == 2:
                break
        await asyncio.sleep(0.05)  # the third waits its turn, the fourth is refused
        assert [p.text for p in chat.adapter.posted] == [BUSY]

        assert await chat.ask("!ping", channel="quiet") == "pong"
        gate.open.set()
        await asyncio.gather(*asked)

        ids = {m.text: m.id for m in chat.adapter.timeline if m.channel == "busy"}
        answers = {p.reply_to: p.text for p in chat.adapter.posted}
        replies = [answers[ids[f"question {n}"]] for n in range(4)]
        assert replies == ["Answer.", "Answer.", "Answer.", BUSY]
        assert len(chat.adapter.posted) == 5  # and nothing else: the ping's pong
        assert chat.router.slots.busy("test", "busy") == 0
        turns = await chat.store.recent(_key("busy"), limit=20)
        questions = [t.text for t in turns if t.role == "user"]
        assert sorted(questions) == [f"question {n}" for n in range(4)]  # the refused one too


async def test_channel_places_are_given_in_arrival_order_and_served_in_it() -> None:
    slots = ChannelSlots(concurrency=1, queue=3)
    order: list[int] = []
    release = asyncio.Event()

    async def one(n: int) -> None:
        place = slots.admit("p", "c")
        assert place is not None
        try:
            await place.turn()
            order.append(n)
            await release.wait()
        finally:
            place.leave()

    tasks = [asyncio.create_task(one(n)) for n in range(4)]
    await asyncio.sleep(0.01)
    assert slots.admit("p", "c") is None  # one running, three waiting: full
    release.set()
    await asyncio.gather(*tasks)
    assert order == [0, 1, 2, 3]
    assert slots.busy("p", "c") == 0


async def test_a_place_given_up_while_waiting_goes_back() -> None:
    slots = ChannelSlots(concurrency=1, queue=1)
    first, second = slots.admit("p", "c"), slots.admit("p", "c")
    assert first is not None and second is not None
    await first.turn()
    waiting = asyncio.create_task(second.turn())
    await asyncio.sleep(0)
    waiting.cancel()
    await asyncio.gather(waiting, return_exceptions=True)
    second.leave()
    second.leave()  # leaving twice is harmless
    assert slots.busy("p", "c") == 1
    third = slots.admit("p", "c")
    assert third is not None
    first.leave()
    await third.turn()  # the slot the first held is free, the cancelled wait took none
    third.leave()
    assert slots.busy("p", "c") == 0


class Vault(Skill):
    name = "vault"
    help = "Guard the secrets."
    usage = "open | lock | rename NAME | status"
    admin_commands = ("open", "lock", "rename NAME")

    async def run(self, ctx: SkillContext) -> None:
        await ctx.reply(f"vault {ctx.args or 'status'} done")


class Purge(Skill):
    name = "purge"
    help = "Delete everything."
    admin_only = True

    async def run(self, ctx: SkillContext) -> None:
        await ctx.reply("purged")


ADMINS = RouterConfig(admins=["test:boss"])


async def test_declared_admin_commands_are_enforced_by_the_router(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = RouterConfig(admins=["test:boss"], user_burst=100)
    async with ChatHarness([Vault, Purge], tmp_path, router_config=config) as chat:
        with caplog.at_level(logging.INFO, logger="confab.bot.router"):
            assert (
                await chat.ask("!vault open", author="ada")
                == "Only an admin can run `!vault open`."
            )
        assert "denied test:ada the admin command vault open" in caplog.text
        assert (
            await chat.ask("!vault LOCK now", author="ada")
            == "Only an admin can run `!vault lock`."
        )
        assert await chat.ask("!vault open", author="boss") == "vault open done"
        # "rename NAME": the word alone is open to everyone, with a name it is not
        assert await chat.ask("!vault rename", author="ada") == "vault rename done"
        assert (
            await chat.ask("!vault rename x", author="ada")
            == "Only an admin can run `!vault rename`."
        )
        assert await chat.ask("!vault", author="ada") == "vault status done"
        assert await chat.ask("!vault opener", author="ada") == "vault opener done"
        assert (
            await chat.ask("!vault\nopen", author="ada") == "Only an admin can run `!vault open`."
        )

        assert await chat.ask("!purge", author="ada") == "Only an admin can run `!purge`."
        assert await chat.ask("!purge", author="boss") == "purged"
        # A native slash command is named as the person typed it.
        denied = await chat.ask("open", author="ada", command="vault")
        assert denied == "Only an admin can run `/vault open`."


async def test_help_lists_only_what_the_asker_may_run(tmp_path: Path) -> None:
    async with ChatHarness([Vault, Purge, HelpSkill], tmp_path, router_config=ADMINS) as chat:
        for_ada = await chat.ask("!help", author="ada")
        for_boss = await chat.ask("!help", author="boss")
        assert "`!purge`" not in for_ada and "`!vault" in for_ada
        assert "`!purge`" in for_boss
        assert await chat.ask("!help purge", author="ada") == "There is no command `!purge`."
        vault = await chat.ask("!help vault", author="ada")
        assert "Admins only: `!vault open`, `!vault lock`, `!vault rename NAME`" in vault


def test_a_malformed_admin_declaration_is_reported() -> None:
    class Bad(Skill):
        name = "bad"
        help = "Bad."
        admin_commands = ("Open Sesame now",)

        async def run(self, ctx: SkillContext) -> None:
            return None

    assert Bad.declaration_problems() == [
        "admin command 'Open Sesame now' must be a lowercase word, optionally followed by a name"
    ]


def _key(channel: str) -> ConversationKey:
    return ConversationKey("test", channel)


async def test_a_question_that_waited_its_turn_sees_the_answer_before_it(tmp_path: Path) -> None:
    model = ScriptedBackend(["answer one", "answer two"], delay_s=0.05)
    config = RouterConfig(channel_concurrency=1, channel_queue=5)
    async with ChatHarness([AskSkill], tmp_path, model=model, router_config=config) as chat:
        await asyncio.gather(
            chat.send("question one", channel="c", author="ada"),
            chat.send("question two", channel="c", author="bob"),
        )
    seen = [m.content for m in model.prompts[1]]
    assert seen[-3:] == ["ada: question one", "answer one", "bob: question two"]
