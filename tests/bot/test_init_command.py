"""`confab init` writes a commented config.toml that `confab config check` accepts,
with the chosen adapters, database and model set, names the environment
variables to set next, and never replaces a file unless told to."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from confab.bot.init_command import choices_from, config_text, example_config, run_init_command
from confab.bot.plugins import discover_adapters


def confab(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "confab", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,  # not a terminal: flags only
        env={**os.environ, **env},
    )


def test_init_writes_a_config_that_config_check_accepts(tmp_path: Path) -> None:
    target = tmp_path / "conf" / "bot.toml"
    made = confab(
        "init", "--adapters", "console", "--database", "sqlite", "--path", str(target),
        cwd=tmp_path,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert f"wrote {target}" in made.stdout
    assert f"confab config check --config {target}" in made.stdout
    assert f"confab run --config {target}" in made.stdout
    text = target.read_text()
    assert text.count("\n# ") > 100  # the example's comments came along
    assert tomllib.loads(text)["bot"]["adapters"] == ["console"]
    checked = confab("config", "check", "--config", str(target), cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    assert 'adapters = ["console"]' in checked.stdout


def test_the_default_path_is_config_toml_here_and_it_is_not_overwritten(tmp_path: Path) -> None:
    first = confab("init", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "confab config check\n" in first.stdout + "\n"  # no --config needed here
    (tmp_path / "config.toml").write_text("# mine\n")
    again = confab("init", "--adapters", "discord", cwd=tmp_path)
    assert again.returncode == 2
    assert again.stderr.strip().count("\n") == 0  # one line
    assert "config.toml exists already; pass --force" in again.stderr
    assert (tmp_path / "config.toml").read_text() == "# mine\n"
    forced = confab("init", "--force", "--adapters", "discord", cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
    assert tomllib.loads((tmp_path / "config.toml").read_text())["bot"]["adapters"] == ["discord"]


def test_with_discord_the_next_steps_name_its_token_variable(tmp_path: Path) -> None:
    made = confab("init", "--adapters", "console,discord", "--path", "c.toml", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    assert "CONFAB_DISCORD_TOKEN" in made.stdout
    assert "CONFAB_SLACK" not in made.stdout
    env = {"CONFAB_DISCORD_TOKEN": "a-token-for-the-check"}
    checked = confab("config", "check", "--config", "c.toml", cwd=tmp_path, **env)
    assert checked.returncode == 0, checked.stderr
    assert 'token_env = "CONFAB_DISCORD_TOKEN"  # set' in checked.stdout


def test_postgresql_and_an_openai_server(tmp_path: Path) -> None:
    made = confab(
        "init", "--adapters", "slack", "--database", "postgresql://bot:hunter22@db.example/confab",
        "--model", "openai", "--openai-url", "https://llm.example/v1/", "--path", "c.toml",
        cwd=tmp_path,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    text = (tmp_path / "c.toml").read_text()
    data = tomllib.loads(text)
    assert data["bot"]["database_url"] == "postgresql+asyncpg://bot@db.example/confab"
    assert "hunter22" not in text + made.stdout  # the password belongs in the environment
    assert data["model"]["backend"] == "openai"
    assert data["model"]["openai"]["base_url"] == "https://llm.example/v1"
    for variable in ("CONFAB_SLACK_BOT_TOKEN", "CONFAB_OPENAI_API_KEY", "PGPASSWORD"):
        assert variable in made.stdout


@pytest.mark.parametrize(
    ("flags", "problem"),
    [
        (["--adapters", "irc"], "no such adapter: irc; installed: console, discord, slack"),
        (["--database", "mysql://db/confab"], "is not sqlite or a postgresql://"),
        (["--openai-url", "http://h/v1"], "--openai-url goes with --model openai"),
        (["--model", "openai", "--openai-url", "h:1"], "does not start with http://"),
    ],
)
def test_bad_choices_are_one_line_and_write_nothing(
    tmp_path: Path, flags: list[str], problem: str
) -> None:
    refused = confab("init", *flags, cwd=tmp_path)
    assert refused.returncode == 2
    assert problem in refused.stderr and refused.stderr.count("\n") == 1
    assert not (tmp_path / "config.toml").exists()


def test_sqlite_leaves_the_path_defaults_to_follow_xdg(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    adapters = discover_adapters().adapters
    text = config_text(example_config(), choices_from("console", "sqlite", None, None, adapters))
    data = tomllib.loads(text)
    assert "database_url" not in data["bot"] and "cache_dir" not in data["model"]
    assert "loras_dir" not in data["model"] and "history_file" not in data["console"]
    assert '# database_url = "sqlite+aiosqlite:///~/.local/share/confab/confab.db"' in text


def test_on_a_terminal_it_asks_what_the_flags_leave_open(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    answers = iter(["console,slack", "oracle://db", "", "openai", ""])
    asked: list[str] = []

    def ask(prompt: str) -> str:
        asked.append(prompt)
        return next(answers)

    args = argparse.Namespace(
        path=str(tmp_path / "c.toml"), force=False, adapters=None, database=None,
        model=None, openai_url=None,
    )  # fmt: skip
    assert run_init_command(args, discover_adapters().adapters, ask) == 0
    assert [prompt.split(" ")[0] for prompt in asked] == [
        "Adapters", "Database:", "Database:", "Model:", "",
    ]  # fmt: skip
    assert "is not sqlite or a postgresql://" in capsys.readouterr().err  # and asked again
    data = tomllib.loads((tmp_path / "c.toml").read_text())
    assert data["bot"]["adapters"] == ["console", "slack"]
    assert "database_url" not in data["bot"]  # the default: sqlite
    assert data["model"]["backend"] == "openai"
    assert data["model"]["openai"]["base_url"] == "http://127.0.0.1:8000/v1"


def test_given_flags_are_not_asked_again(tmp_path: Path) -> None:
    def never_asked(prompt: str) -> str:
        raise AssertionError(f"asked {prompt!r}")

    args = argparse.Namespace(
        path=str(tmp_path / "c.toml"), force=False, adapters="discord", database="sqlite",
        model="bundled", openai_url=None,
    )  # fmt: skip
    assert run_init_command(args, discover_adapters().adapters, never_asked) == 0
