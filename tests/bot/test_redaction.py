"""Secrets never reach the log or the terminal: whatever a record carries (message,
arguments, a URL, an exception and its traceback, a stack), the configured
secret values come out as ``[redacted]``; and a chat user's error reply never
carries an exception's text."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console
from rich.logging import RichHandler

from confab.adapters.discord import DiscordConfig
from confab.adapters.slack import SlackConfig
from confab.bot.cli import main
from confab.bot.config import build_config_model, load_config
from confab.bot.errors import ModelUnavailable
from confab.bot.redaction import REDACTED, SecretRedactor, configured_secrets, redact_logging
from confab.bot.skill import Skill, SkillContext
from confab.bot.testing import ChatHarness

DISCORD_TOKEN = "MTE4NDk0NjQ2.GdX3bA.discord-token-value"
SLACK_BOT_TOKEN = "xoxb-1111-2222-slack-bot-token"
SLACK_APP_TOKEN = "xapp-1-A111-3333-slack-app-token"
SIGNING_SECRET = "8f14e45fceea167a5a36dedd4bea2543"
OPENAI_KEY = "sk-proj/open+ai=key-value"  # '/', '+', '=' change when URL-encoded
DB_PASSWORD = "pg-Passw0rd-value"
SECRETS_ENV = {
    "CONFAB_DISCORD_TOKEN": DISCORD_TOKEN,
    "CONFAB_SLACK_BOT_TOKEN": SLACK_BOT_TOKEN,
    "CONFAB_SLACK_APP_TOKEN": SLACK_APP_TOKEN,
    "CONFAB_SLACK_SIGNING_SECRET": SIGNING_SECRET,
    "CONFAB_OPENAI_API_KEY": OPENAI_KEY,
    "CONFAB_BOT__DATABASE_URL": f"postgresql+asyncpg://confab:{DB_PASSWORD}@db.example/confab",
}
EVERY_SECRET = (
    DISCORD_TOKEN,
    SLACK_BOT_TOKEN,
    SLACK_APP_TOKEN,
    SIGNING_SECRET,
    OPENAI_KEY,
    DB_PASSWORD,
)
SCHEMA = build_config_model({"discord": DiscordConfig, "slack": SlackConfig})


@pytest.fixture
def secret_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no config.toml: the defaults and the environment
    monkeypatch.delenv("PGPASSWORD", raising=False)
    for name, value in SECRETS_ENV.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def logged() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger tree of its own with a plain handler on its top logger (as the root
    logger has in production), and what that handler writes."""
    top = logging.getLogger("redaction_test")
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    top.addHandler(handler)
    top.setLevel(logging.DEBUG)
    top.propagate = False
    yield top, out
    top.removeHandler(handler)


def written(out: io.StringIO) -> str:
    return out.getvalue()


def test_the_secrets_the_config_names_are_found(secret_env: None) -> None:
    config = load_config(schema=SCHEMA)
    found = configured_secrets(config)
    assert set(EVERY_SECRET) <= found
    assert "sk-proj%2Fopen%2Bai%3Dkey-value" in found  # as it looks inside a URL


def test_unset_and_short_values_are_not_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in SECRETS_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CONFAB_DISCORD_TOKEN", "abc")  # too short to replace everywhere
    monkeypatch.setenv("PGPASSWORD", "from-the-driver-env")
    config = load_config(
        schema=SCHEMA, overrides={"bot": {"database_url": "postgresql+asyncpg://u:pw@h/d"}}
    )
    assert configured_secrets(config) == {"from-the-driver-env"}


def test_a_token_in_a_message_its_arguments_and_a_url_is_redacted(
    secret_env: None, logged: tuple[logging.Logger, io.StringIO]
) -> None:
    top, out = logged
    made_before = logging.getLogger("redaction_test.adapter")
    redact_logging(configured_secrets(load_config(schema=SCHEMA)), logger=top)
    made_after = logging.getLogger("redaction_test.made.later")

    made_before.info(f"connecting with {DISCORD_TOKEN}")
    made_before.warning("Slack refused %s and %r", SLACK_BOT_TOKEN, {"app": SLACK_APP_TOKEN})
    made_after.error("%(secret)s was wrong", {"secret": SIGNING_SECRET})
    made_after.info("GET https://api.example/v1?key=%s", "sk-proj%2Fopen%2Bai%3Dkey-value")
    made_after.info("database %s", SECRETS_ENV["CONFAB_BOT__DATABASE_URL"])
    made_after.info("a record without a secret: %d", 42)

    lines = written(out).splitlines()
    assert lines == [
        f"redaction_test.adapter INFO connecting with {REDACTED}",
        f"redaction_test.adapter WARNING Slack refused {REDACTED} and {{'app': '{REDACTED}'}}",
        f"redaction_test.made.later ERROR {REDACTED} was wrong",
        f"redaction_test.made.later INFO GET https://api.example/v1?key={REDACTED}",
        f"redaction_test.made.later INFO database postgresql+asyncpg://confab:{REDACTED}"
        "@db.example/confab",
        "redaction_test.made.later INFO a record without a secret: 42",
    ]


def fail_with_token() -> None:
    try:
        raise OSError(f"connection reset while sending {SLACK_BOT_TOKEN}")
    except OSError as cause:
        raise RuntimeError(f"Slack refused the token {SLACK_BOT_TOKEN}") from cause


@pytest.mark.parametrize("rich", [False, True], ids=["plain", "rich"])
def test_an_exception_and_its_traceback_are_redacted(
    secret_env: None, logged: tuple[logging.Logger, io.StringIO], rich: bool
) -> None:
    top, out = logged
    if rich:  # what configure_logging uses on a terminal, with rich's own tracebacks
        console = Console(file=out, width=200, color_system=None)
        top.handlers[0] = RichHandler(console=console, rich_tracebacks=True, show_path=False)
    redact_logging(configured_secrets(load_config(schema=SCHEMA)), logger=top)
    log = logging.getLogger("redaction_test.skill")
    try:
        fail_with_token()
    except RuntimeError:
        log.exception("answering failed")
    text = written(out)
    assert "answering failed" in text
    assert f"RuntimeError: Slack refused the token {REDACTED}" in text
    assert f"OSError: connection reset while sending {REDACTED}" in text
    assert "in fail_with_token" in text  # the traceback is still there to read
    assert SLACK_BOT_TOKEN not in text


def test_a_stack_is_redacted(logged: tuple[logging.Logger, io.StringIO]) -> None:
    top, out = logged
    redact_logging(["a-secret-in-a-stack"], logger=top)
    record = top.makeRecord(
        "redaction_test", logging.INFO, __file__, 1, "look", (), None,
        sinfo='Stack (most recent call last):\n  call("a-secret-in-a-stack")',
    )  # fmt: skip
    top.handle(record)
    assert written(out).endswith(f'call("{REDACTED}")\n')


def test_a_secret_inside_another_is_redacted_whole(
    logged: tuple[logging.Logger, io.StringIO],
) -> None:
    top, out = logged
    redact_logging(["abcdef12", "abcdef1234567", "AAAABBBB", "BBBBCCCC"], logger=top)
    top.info("long=abcdef1234567 short=abcdef12x overlapping=AAAABBBBCCCC")
    assert written(out).endswith(f"long={REDACTED} short={REDACTED}x overlapping={REDACTED}\n")


def test_records_without_a_secret_are_left_as_they_are() -> None:
    redactor = SecretRedactor(["a-long-secret"])
    args = ("value",)
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "plain %s", args, None)
    assert redactor.filter(record)
    assert record.msg == "plain %s" and record.args is args
    assert SecretRedactor([]).redact("nothing to hide") == "nothing to hide"


def test_setting_up_again_replaces_the_filter(logged: tuple[logging.Logger, io.StringIO]) -> None:
    top, out = logged
    redact_logging(["first-secret"], logger=top)
    redact_logging(["second-secret"], logger=top)
    top.info("first-secret second-secret")
    assert written(out).endswith(f"first-secret {REDACTED}\n")
    assert sum(isinstance(f, SecretRedactor) for f in top.handlers[0].filters) == 1


@pytest.fixture
def root_logging() -> Iterator[None]:
    """Put back the root logger and the library levels that `confab` sets up."""
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


def test_config_check_prints_no_secret(
    secret_env: None,
    root_logging: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    proxy = "https://llm-user:Pr0xy-Passw0rd@llm.example/v1"
    monkeypatch.setenv("CONFAB_MODEL__OPENAI__BASE_URL", proxy)
    assert main(["config", "check"]) == 0
    shown = capsys.readouterr()
    assert 'token_env = "CONFAB_DISCORD_TOKEN"  # set' in shown.out
    assert f'base_url = "https://llm-user:{REDACTED}@llm.example/v1"' in shown.out
    for secret in (*EVERY_SECRET, "Pr0xy-Passw0rd"):
        assert secret not in shown.out + shown.err


def test_the_cli_redacts_every_log_record_once_configured(
    secret_env: None, root_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["config", "check"]) == 0  # loads the config and sets up the log
    capsys.readouterr()
    logging.getLogger("confab.adapters.discord.adapter").warning("token %s refused", DISCORD_TOKEN)
    logging.getLogger("storage.new").error(f"cannot log in with {DB_PASSWORD}")
    err = capsys.readouterr().err
    assert f"confab.adapters.discord.adapter: token {REDACTED} refused" in err
    assert f"storage.new: cannot log in with {REDACTED}" in err
    assert DISCORD_TOKEN not in err and DB_PASSWORD not in err


class LeakySkill(Skill):
    """Fails with a secret in its exception, as a library error quoting a URL would."""

    name = "leak"
    help = "Fail."

    async def run(self, ctx: SkillContext) -> None:
        if ctx.args == "model":
            raise ModelUnavailable(f"https://u:{OPENAI_KEY}@llm.example refused")
        raise RuntimeError(f"request to https://api.example/?token={DISCORD_TOKEN} failed")


@pytest.mark.parametrize(
    ("args", "reply"),
    [
        ("crash", "Sorry, `leak` failed while answering. The error has been logged."),
        ("model", "The model is unavailable right now; please try again shortly."),
    ],
)
async def test_an_error_reply_never_carries_the_exception_text(
    tmp_path: Path, args: str, reply: str
) -> None:
    router_log = logging.getLogger("confab.bot.router")
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    router_log.addHandler(handler)
    try:
        redact_logging([OPENAI_KEY, DISCORD_TOKEN], logger=router_log)
        async with ChatHarness([LeakySkill], tmp_path) as chat:
            answer = await chat.ask(f"!leak {args}")
    finally:
        router_log.removeHandler(handler)
    assert answer == reply
    logs = written(out)
    assert "leak" in logs and REDACTED in logs  # the operator still learns what failed
    assert OPENAI_KEY not in logs and DISCORD_TOKEN not in logs
