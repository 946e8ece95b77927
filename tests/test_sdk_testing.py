"""The testing part of the plugin SDK: the ``chat`` fixture and its markers, as a plugin
author's project meets them (a pytest run with no pytest-asyncio configuration),
and ``confab.contract`` importable from the installed package."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from confab import Skill, SkillContext
from confab.testing import ChatHarness, ScriptedBackend

HEAVY = ("sqlalchemy", "torch", "transformers", "discord", "slack_bolt", "confab.bot.testing")

AUTHORS_TESTS = """
import pytest

from confab import Skill, SkillContext


class Echo(Skill):
    name = "echo"
    help = "Repeat what you said."
    usage = "<text>"

    async def run(self, ctx: SkillContext) -> None:
        await ctx.reply(ctx.args or "Nothing to echo.")


@pytest.mark.skills([Echo])
async def test_echo(chat):
    assert await chat.ask("!echo hi") == "hi"


@pytest.mark.skills([Echo])
async def test_a_wrong_answer_fails(chat):
    assert await chat.ask("!echo hi") == "ho"


@pytest.mark.skills("ask")
@pytest.mark.model_replies("Paris.", "Still Paris.")
async def test_the_model_answers_as_scripted(chat):
    assert await chat.ask("!ask What is the capital of France?") == "Paris."
    assert await chat.ask("!ask Are you sure?") == "Still Paris."
    assert chat.model.prompts[0][-1].content == "What is the capital of France?"


@pytest.mark.skills("ping")
async def test_an_installed_skill_by_its_entry_point_name(chat):
    assert await chat.ask("!ping") == "pong"


@pytest.mark.skills("no-such-skill")
async def test_a_skill_that_is_not_installed(chat):
    pass


async def test_someone_elses_coroutine_is_left_alone():
    pass


def test_a_plain_test():
    pass
"""

OVERRIDE = """
import pytest

from confab.testing import ScriptedBackend

pytestmark = pytest.mark.skills("ask")


@pytest.fixture
def chat_model():
    return ScriptedBackend(lambda messages: messages[-1].content.upper())


async def test_chat_uses_the_overridden_model(chat):
    assert await chat.ask("!ask shout this") == "SHOUT THIS"
"""


def run_pytest(folder: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], dict[str, str]]:
    """pytest in ``folder`` as a separate run; the outcome of each test by name."""
    report = folder / "report.xml"
    options = ["-p", "no:cacheprovider", "--strict-markers", "-rA", f"--junitxml={report}"]
    done = subprocess.run(
        [sys.executable, "-m", "pytest", *options, *args],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
    )
    outcomes: dict[str, str] = {}
    if report.exists():
        for case in ET.parse(report).iter("testcase"):
            kinds = [child.tag for child in case if child.tag in ("failure", "error", "skipped")]
            name = case.get("name", "")
            assert name not in outcomes, f"{name} ran twice"
            outcomes[name] = kinds[0] if kinds else "passed"
    return done, outcomes


def authors_project(tmp_path: Path) -> Path:
    """A plugin author's tests, with no pytest configuration of their own."""
    folder = tmp_path / "author"
    folder.mkdir()
    (folder / "test_echo.py").write_text(AUTHORS_TESTS)
    (folder / "test_override.py").write_text(OVERRIDE)
    return folder


EXPECTED = {
    "test_echo": "passed",
    "test_a_wrong_answer_fails": "failure",
    "test_the_model_answers_as_scripted": "passed",
    "test_an_installed_skill_by_its_entry_point_name": "passed",
    "test_a_skill_that_is_not_installed": "error",
    "test_a_plain_test": "passed",
    "test_chat_uses_the_overridden_model": "passed",
}


def test_async_chat_tests_run_in_pytest_asyncios_strict_mode(tmp_path: Path) -> None:
    folder = authors_project(tmp_path)
    done, outcomes = run_pytest(folder)
    assert "asyncio: mode=Mode.STRICT" in done.stdout, done.stdout  # no config of theirs
    assert done.returncode == 1, done.stdout + done.stderr
    # Only the coroutines that are Confab's are claimed; pytest refuses the other.
    assert outcomes == EXPECTED | {"test_someone_elses_coroutine_is_left_alone": "failure"}
    assert "assert 'hi' == 'ho'" in done.stdout
    assert "no skill 'no-such-skill' is installed" in done.stdout


def test_in_auto_mode_every_test_runs_once(tmp_path: Path) -> None:
    folder = authors_project(tmp_path)
    (folder / "pytest.ini").write_text("[pytest]\nasyncio_mode = auto\n")
    done, outcomes = run_pytest(folder)
    assert "asyncio: mode=Mode.AUTO" in done.stdout
    assert outcomes == EXPECTED | {"test_someone_elses_coroutine_is_left_alone": "passed"}


def test_a_test_marked_asyncio_by_its_author_keeps_its_marker(tmp_path: Path) -> None:
    """Its loop scope is the author's: both tests run on the module's one loop."""
    (tmp_path / "test_marked.py").write_text(
        textwrap.dedent(
            """
            import asyncio

            import pytest

            loops = []

            @pytest.mark.asyncio(loop_scope="module")
            @pytest.mark.skills("ping")
            async def test_one(chat):
                loops.append(asyncio.get_running_loop())
                assert await chat.ask("!ping") == "pong"

            @pytest.mark.asyncio(loop_scope="module")
            @pytest.mark.skills("ping")
            async def test_two(chat):
                assert asyncio.get_running_loop() is loops[0]
                assert await chat.ask("!ping") == "pong"
            """
        )
    )
    done, outcomes = run_pytest(tmp_path)
    assert outcomes == {"test_one": "passed", "test_two": "passed"}, done.stdout


def test_a_lone_skill_class_is_a_collection_error_not_a_lost_test(tmp_path: Path) -> None:
    """pytest takes ``mark.skills(Echo)`` for marking the class Echo, and the test would
    silently become an Echo; the plugin says so instead."""
    (tmp_path / "test_lone.py").write_text(
        AUTHORS_TESTS + "\n\n@pytest.mark.skills(Echo)\nasync def test_lone(chat):\n    pass\n"
    )
    done, _ = run_pytest(tmp_path)
    assert done.returncode == 2
    assert "write @pytest.mark.skills([Echo])" in done.stdout


def test_the_adapter_contract_runs_in_strict_mode_and_collects_nothing_by_itself(
    tmp_path: Path,
) -> None:
    (tmp_path / "test_import_only.py").write_text("from confab.contract import AdapterContract\n")
    done, outcomes = run_pytest(tmp_path, "test_import_only.py")
    assert done.returncode == 5 and outcomes == {}, done.stdout  # no tests collected

    (tmp_path / "test_recording.py").write_text(
        textwrap.dedent(
            """
            import pytest

            from confab import Author, Message
            from confab.contract import AdapterContract
            from confab.testing import RecordingAdapter


            class UnderTest:
                def __init__(self):
                    self.adapter = RecordingAdapter()
                    self.channel = "c1"

                def shown(self, sent):
                    return self.adapter.shown(sent)

                async def seed_history(self, channel, entries):
                    self.adapter.timeline += [
                        Message(platform="test", channel=channel, author=Author(a, a), text=t)
                        for a, t in entries
                    ]


            class TestRecordingAdapter(AdapterContract):
                @pytest.fixture
                def under_test(self):
                    return UnderTest()
            """
        )
    )
    done, outcomes = run_pytest(tmp_path, "test_recording.py")
    assert done.returncode == 0, done.stdout
    assert len(outcomes) >= 9 and set(outcomes.values()) == {"passed"}


def test_the_plugin_loads_nothing_heavy_until_a_test_asks() -> None:
    """pytest loads it in every run of every project where Confab is installed."""
    probe = (
        f"import sys, confab.pytest_plugin\nprint(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    )
    shown = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd="/"
    )
    assert shown.stdout.strip() == "[]"


class Echo(Skill):
    name = "echo"
    help = "Repeat what you said."
    usage = "<text>"

    async def run(self, ctx: SkillContext) -> None:
        await ctx.reply(ctx.args or "Nothing to echo.")


# The same fixture in this repository's own run (pytest-asyncio in auto mode).


@pytest.mark.skills([Echo])
async def test_echo(chat: ChatHarness) -> None:
    assert await chat.ask("!echo hi") == "hi"


@pytest.mark.skills([Echo, "ping"])
@pytest.mark.model_replies("unused")
async def test_classes_and_installed_names_together(chat: ChatHarness) -> None:
    assert await chat.ask("!ping") == "pong"
    assert await chat.ask("!echo") == "Nothing to echo."
    assert isinstance(chat.model, ScriptedBackend) and chat.model.prompts == []


async def test_the_harness_itself_from_confab_testing(tmp_path: Path) -> None:
    async with ChatHarness([Echo], tmp_path, model=ScriptedBackend()) as chat:
        assert await chat.ask("!echo hi") == "hi"
