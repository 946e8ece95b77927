"""`!train optin|optout` and `confab data export`: only opted-in channels, names not ids."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from confab.bot.adapter import Capabilities
from confab.bot.cli import main
from confab.bot.config import RouterConfig
from confab.bot.lab.dataset import read_dataset
from confab.bot.lab.training_export import readable
from confab.bot.testing import ChatHarness, RecordingAdapter, ScriptedBackend
from confab.skills.qa import AskSkill
from confab.skills.train import TrainSkill

ADMINS = RouterConfig(admins=["test:boss"])


def echo(messages) -> str:  # type: ignore[no-untyped-def]
    return f"About {messages[-1].content}"


async def export(tmp_path: Path, url: str, monkeypatch: pytest.MonkeyPatch) -> tuple[int, Path]:
    """`confab data export` as typed (in a thread: the command runs its own event loop)."""
    monkeypatch.setenv("CONFAB_BOT__DATABASE_URL", url)
    monkeypatch.chdir(tmp_path)  # no developer's config.toml
    out = tmp_path / "exported.jsonl"
    return await asyncio.to_thread(main, ["data", "export", "--out", str(out)]), out


async def test_only_channels_an_admin_opted_in_are_exported(
    tmp_path: Path,
    any_db_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    skills = [AskSkill, TrainSkill]
    model = ScriptedBackend(echo)
    platform = RecordingAdapter(capabilities=Capabilities(threads=True))
    async with ChatHarness(
        skills,
        tmp_path,
        model=model,
        router_config=ADMINS,
        database_url=any_db_url,
        adapter=platform,
    ) as chat:
        assert "may not be used" in await chat.ask("!train", channel="team")
        assert await chat.ask("!train optin", author="ada", channel="team") == (
            "Only an admin can run `!train optin`."
        )
        assert (await chat.ask("!train optin", author="boss", channel="team")).startswith("Done")
        await chat.ask("what is <@ada> working on with <@zed>?", author="ada", channel="team")
        await chat.ask("!ask and in <#C7|general> <!here>?", author="ada", channel="team")
        await chat.ask("a secret from elsewhere", author="ada", channel="private")
        await chat.ask("in a thread", author="bob", channel="team", thread="t1")

    code, out = await export(tmp_path, any_db_url, monkeypatch)
    assert code == 0
    assert "3 questions and answers in 2 conversations from 1 opted-in channel" in (
        capsys.readouterr().out
    )
    chats = [json.loads(line)["messages"] for line in out.read_text().splitlines()]
    assert chats == [
        [
            {"role": "user", "content": "what is @ada working on with @someone?"},
            {"role": "assistant", "content": "About what is @ada working on with @someone?"},
            {"role": "user", "content": "and in #general @here?"},
            {"role": "assistant", "content": "About and in #general @here?"},
        ],
        [
            {"role": "user", "content": "in a thread"},
            {"role": "assistant", "content": "About in a thread"},
        ],
    ]
    assert "secret" not in out.read_text() and "!train" not in out.read_text()
    assert not read_dataset(out).problems  # ready for `confab data prepare`


async def test_nothing_is_written_without_an_opted_in_channel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"
    async with ChatHarness([AskSkill, TrainSkill], tmp_path, router_config=ADMINS) as chat:
        await chat.ask("hello", channel="team")
        await chat.ask("!train optin", author="boss", channel="team")
        assert (await chat.ask("!train optout", author="boss", channel="team")).startswith("Done")
    code, out = await export(tmp_path, url, monkeypatch)
    assert code == 2
    assert "Nothing to export: no channel has opted in" in capsys.readouterr().err
    assert not out.exists()


def test_every_kind_of_mention_becomes_a_name_or_a_placeholder() -> None:
    names = {"123": "Ada", "U42": "Bob"}
    text = (
        "<@123> <@!123> <@U42> <@U9|zed> <@999> <@&5> <#1> <#C1|ops> <!channel> <!subteam^S1|devs>"
    )
    assert (
        readable(text, names) == "@Ada @Ada @Bob @zed @someone @role #channel #ops @channel @devs"
    )
