"""`[bot] log_format = "json"`: every line on stderr is one JSON object with the time
(UTC), level, logger, message, what was being handled (platform, channel,
message, skill) and the traceback, and no configured secret ever appears in it."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from confab.bot.config import ConfigError, load_config
from confab.bot.log_context import current_log_context, log_context
from confab.bot.logs import JsonFormatter, configure_logging
from confab.bot.redaction import REDACTED, redact_logging
from confab.bot.skill import Skill, SkillContext
from confab.bot.testing import ChatHarness

API_KEY = "sk-json-log-secret-4242"
DISCORD_TOKEN = "MTE4NDk0.json-log.discord-token"


def records(text: str) -> list[dict[str, Any]]:
    """Every line of ``text`` as JSON (a line that is not fails the test)."""
    return [json.loads(line) for line in text.splitlines()]


class KeyEchoingServer(BaseHTTPRequestHandler):
    """An OpenAI-compatible server that refuses the key and quotes it, as some do."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", "0")))
        key = self.headers.get("authorization", "").removeprefix("Bearer ")
        body = json.dumps({"error": {"message": f"Incorrect API key provided: {key}"}}).encode()
        self.send_response(401)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def model_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), KeyEchoingServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


def test_a_console_run_logs_json_lines_with_context_and_no_secret(
    tmp_path: Path, model_url: str
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        "[bot]\n"
        f'database_url = "sqlite+aiosqlite:///{tmp_path / "confab.db"}"\n'
        'log_format = "json"\n'
        "[knowledge]\nenabled = false\n"
        '[model]\nbackend = "openai"\n'
        f'[model.openai]\nbase_url = "{model_url}"\nmodel = "any"\nmax_retries = 0\n'
    )
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "CONFAB_OPENAI_API_KEY": API_KEY,
        "CONFAB_DISCORD_TOKEN": DISCORD_TOKEN,
    }
    started = datetime.now(UTC)
    done = subprocess.run(
        [sys.executable, "-m", "confab", "console", "--config", str(config)],
        input="what is new?\n",
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "The model is unavailable right now" in done.stdout
    logged = records(done.stderr)
    assert logged and {"time", "level", "logger", "message"} <= set(logged[0])
    for record in logged:
        when = datetime.fromisoformat(record["time"])
        assert when.utcoffset() == timedelta(0)
        assert started - timedelta(seconds=1) <= when <= datetime.now(UTC)
    assert logged[0]["logger"] == "confab"  # "Loading the model...": a record, not a bare line
    assert logged[0]["message"].endswith("...")
    refused = next(r for r in logged if r["logger"] == "confab.bot.router")
    assert refused["level"] == "WARNING"
    assert f"Incorrect API key provided: {REDACTED}" in refused["message"]
    assert refused["platform"] == "console" and refused["channel"] == "dm"
    assert refused["skill"] == "ask" and refused["message_id"].startswith("console-")
    start_up = next(r for r in logged if r["logger"] == "confab.bot.llm.openai_backend")
    assert "platform" not in start_up  # logged outside any message
    for secret in (API_KEY, DISCORD_TOKEN):
        assert secret not in done.stderr and secret not in done.stdout


def test_config_check_with_json_logs_writes_only_json_to_stderr(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text('[bot]\nlog_format = "json"\n')
    done = subprocess.run(
        [sys.executable, "-m", "confab", "config", "check"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert 'log_format = "json"' in done.stdout
    records(done.stderr)  # whatever it logged


def test_an_unknown_log_format_is_a_clear_config_error(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[bot]\nlog_format = "xml"\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert "bot.log_format = 'xml': Input should be 'text' or 'json'" in str(caught.value)


@pytest.fixture
def root_logging() -> Iterator[None]:
    """Put back the root logger and the library levels that configure_logging sets."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    levels = {
        name: found.level
        for name, found in logging.Logger.manager.loggerDict.items()
        if isinstance(found, logging.Logger)
    }
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, old in levels.items():
        logging.getLogger(name).setLevel(old)


def fail_with_token() -> None:
    raise RuntimeError(f"the gateway refused {DISCORD_TOKEN}")


def test_an_exception_is_one_redacted_field(
    root_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("INFO", None, "json")
    redact_logging([DISCORD_TOKEN])
    log = logging.getLogger("confab.adapters.discord")
    with log_context(platform="discord", channel="112233"):
        try:
            fail_with_token()
        except RuntimeError:
            log.exception("the connection failed with %s", DISCORD_TOKEN)
    log.info("plain", stack_info=True)
    failed, plain = records(capsys.readouterr().err)
    assert failed["level"] == "ERROR" and failed["logger"] == "confab.adapters.discord"
    assert failed["message"] == f"the connection failed with {REDACTED}"
    assert failed["platform"] == "discord" and failed["channel"] == "112233"
    assert "skill" not in failed and "message_id" not in failed
    trace = failed["exception"]
    assert trace.startswith("Traceback (most recent call last):")
    assert "in fail_with_token" in trace
    assert trace.endswith(f"RuntimeError: the gateway refused {REDACTED}")
    assert "platform" not in plain and "exception" not in plain
    assert plain["stack"].startswith("Stack (most recent call last):")
    assert current_log_context() == {}  # left as it was found


def test_json_logging_ignores_a_terminal(root_logging: None) -> None:
    configure_logging("INFO", object(), "json")  # a rich console would be unused
    (handler,) = logging.getLogger().handlers
    assert isinstance(handler.formatter, JsonFormatter)


class FailingSkill(Skill):
    """Logs, then fails with a secret in its exception."""

    name = "boom"
    help = "Fail."

    async def run(self, ctx: SkillContext) -> None:
        logging.getLogger("confab.skills.boom").info("about to fail")
        raise RuntimeError(f"upstream rejected {API_KEY}")


async def test_the_router_sets_the_context_of_each_message(tmp_path: Path) -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    confab_log = logging.getLogger("confab")
    old_level = confab_log.level
    confab_log.addHandler(handler)
    confab_log.setLevel(logging.INFO)
    try:
        redact_logging([API_KEY], logger=confab_log)
        async with ChatHarness([FailingSkill], tmp_path) as chat:
            await chat.ask("!boom")
    finally:
        confab_log.removeHandler(handler)
        confab_log.setLevel(old_level)
    logged = records(out.getvalue())
    in_skill = next(r for r in logged if r["message"] == "about to fail")
    failed = next(r for r in logged if "exception" in r)
    for record in (in_skill, failed):
        assert record["skill"] == "boom"
        assert {"platform", "channel", "message_id"} <= set(record)
    assert failed["logger"] == "confab.bot.router"
    assert f"RuntimeError: upstream rejected {REDACTED}" in failed["exception"]
    assert API_KEY not in out.getvalue()
    assert current_log_context() == {}


def test_a_progress_bar_off_a_terminal_does_not_break_the_json_lines() -> None:
    """The GGUF de-quantisation bar is plain tqdm, imported after logging is set up."""
    probe = (
        "import os; os.environ.pop('TQDM_DISABLE', None)\n"
        "from confab.bot.logs import configure_logging\n"
        "configure_logging('INFO', None, 'json')\n"
        "from tqdm.auto import tqdm\n"
        "for _ in tqdm(range(3), desc='Converting and de-quantizing GGUF tensors...'): pass\n"
        "import logging; logging.getLogger('confab.test').info('converted')\n"
    )
    ran = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert ran.returncode == 0, ran.stderr
    lines = ran.stderr.splitlines()
    assert [json.loads(line)["message"] for line in lines] == ["converted"]
