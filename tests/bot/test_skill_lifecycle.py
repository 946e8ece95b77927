"""Skills' start(app) and stop() hooks: called in order, failures contained, stop bounded."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from confab import Skill, SkillApp, SkillContext
from confab.bot import skill_lifecycle
from confab.bot.plugins import SkillCatalog
from confab.bot.testing import ChatHarness, ScriptedBackend
from confab.skills.ping import PingSkill
from tests.helpers import run_console

calls: list[str] = []


class Ticker(Skill):
    """Keeps a background task that posts into a channel, and counts its starts."""

    name = "ticker"
    help = "Ticks."

    async def start(self, app: SkillApp) -> None:
        calls.append("ticker start")
        starts = await app.state.get("starts", 0) + 1
        await app.state.set("starts", starts)
        self.task = asyncio.create_task(app.post(app.platforms[0], "news", f"tick {starts}"))

    async def stop(self) -> None:
        calls.append("ticker stop")
        await self.task

    async def run(self, ctx: SkillContext) -> None:
        await ctx.reply("ticking")


class Broken(Skill):
    name = "broken"
    help = "Fails to start."

    async def start(self, app: SkillApp) -> None:
        calls.append("broken start")
        raise RuntimeError("no client")

    async def stop(self) -> None:
        calls.append("broken stop")  # never: it did not start

    async def run(self, ctx: SkillContext) -> None:
        await ctx.reply("still here")


class Slow(Skill):
    name = "slow"
    help = "Takes for ever to stop."

    async def start(self, app: SkillApp) -> None:
        calls.append("slow start")

    async def stop(self) -> None:
        calls.append("slow stop")
        await asyncio.Event().wait()

    async def run(self, ctx: SkillContext) -> None:
        await ctx.reply("slow")


@pytest.fixture(autouse=True)
def fresh_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    calls.clear()
    monkeypatch.setattr(skill_lifecycle, "STOP_S", 0.2)


async def test_hooks_run_in_order_and_reverse_with_failures_contained(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with ChatHarness([Slow, Ticker, Broken, PingSkill], tmp_path) as chat:
        assert calls == ["broken start", "slow start", "ticker start"]  # by name, as help lists
        for _ in range(200):  # the ticker's task posts in the background
            if [p for p in chat.adapter.posted if p.sent.channel == "news"]:
                break
            await asyncio.sleep(0.01)
        assert await chat.ask("!broken") == "still here"  # a failed start leaves it answering
    assert calls[3:] == ["ticker stop", "slow stop"]  # the started ones, in reverse
    assert [p.text for p in chat.adapter.posted if p.sent.channel == "news"] == ["tick 1"]
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("confab.")]
    assert "skill broken failed to start; it answers all the same" in messages
    assert "skill slow did not stop within 0 s; left behind" in messages
    async with ChatHarness([Ticker], tmp_path) as again:  # its state outlives the process
        pass
    assert [p.text for p in again.adapter.posted if p.sent.channel == "news"] == ["tick 2"]


async def test_confab_run_starts_and_stops_the_skills_hooks(db_url: str) -> None:
    out, _ = await run_console(
        db_url,
        "!ticker\n",
        ScriptedBackend(),
        {"router": {"default_skill": "ticker"}},
        skills=SkillCatalog({"ticker": Ticker}),
    )
    assert calls == ["ticker start", "ticker stop"]
    assert sorted(out.splitlines()) == ["tick 1", "ticking"]
