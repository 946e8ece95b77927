"""Configuration: defaults, file, environment, and clear errors naming the key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict

from confab.bot.config import build_config_model, load_config
from confab.bot.config_view import render_config
from confab.bot.errors import ConfigError


class EchoConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    times: int = 1


class DeskConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    token_env: str = "DESK_TOKEN"


SCHEMA = build_config_model({"desk": DeskConfig}, {"echo": EchoConfig, "plain": None})


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_no_file_gives_working_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    config = load_config(schema=SCHEMA)
    assert config.bot.adapters == ["console"]
    assert config.router.prefixes == ["!"]
    assert config.router.default_skill == "ask"
    assert config.bot.database_url.startswith("sqlite+aiosqlite:///")


def test_config_toml_in_working_directory_is_used(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    write(tmp_path, "[router]\nmax_input_chars = 123\n")
    monkeypatch.chdir(tmp_path)
    assert load_config(schema=SCHEMA).router.max_input_chars == 123


def test_file_values_and_plugin_sections(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[router]\nprefixes = ["!", "?"]\n[skills.echo]\ntimes = 3\n[desk]\ntoken_env = "X"\n',
    )
    config = load_config(path, schema=SCHEMA)
    assert config.router.prefixes == ["!", "?"]
    assert config.skill_config("echo") == EchoConfig(times=3)
    assert config.section("desk") == DeskConfig(token_env="X")


def test_environment_wins_over_the_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = write(tmp_path, '[bot]\ndatabase_url = "sqlite+aiosqlite:///file.db"\n')
    monkeypatch.setenv("CONFAB_BOT__DATABASE_URL", "sqlite+aiosqlite:///env.db")
    monkeypatch.setenv("CONFAB_SKILLS__ECHO__TIMES", "7")
    config = load_config(path, schema=SCHEMA)
    assert config.bot.database_url == "sqlite+aiosqlite:///env.db"
    assert config.skill_config("echo") == EchoConfig(times=7)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[router]\nmax_input_chars = -5\n", "router.max_input_chars = -5: Input should be"),
        ('[router]\nmax_input_chars = "lots"\n', "router.max_input_chars = 'lots'"),
        (
            "[router]\nprefix = '!'\n",
            "router.prefix: unknown key; allowed here: admins, channel_concurrency, channel_queue",
        ),
        (
            "[routr]\nprefixes = ['!']\n",
            "routr: unknown key; allowed here: bot, desk, knowledge, model",
        ),
        ("[skills.echo]\ntimes = 'x'\n", "skills.echo.times = 'x'"),
        ("[skills.nope]\na = 1\n", "skills.nope: unknown key; allowed here: echo, plain"),
        ("[skills.plain]\na = 1\n", "skills.plain.a: unknown key; this section takes no keys"),
        ('[bot]\nadapters = ["desk", "desk"]\n', "each adapter may be listed once"),
        ("[model]\ncontext_window = 200\n", "must be larger than max_new_tokens (256)"),
        ('[bot]\ndatabase_url = "mysql://x"\n', "bot.database_url = 'mysql://x': Value error"),
        ('[bot]\nlog_level = "LOUD"\n', "bot.log_level = 'LOUD'"),
        ('[router]\nadmins = ["alice"]\n', "'alice' must be 'platform:user_id' or 'platform:*'"),
        ("[storage]\nretention_days = -1\n", "storage.retention_days = -1: Input should be"),
    ],
)
def test_bad_values_name_the_key_the_value_and_what_is_allowed(
    tmp_path: Path, text: str, expected: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text), schema=SCHEMA)
    assert expected in str(caught.value)


def test_bad_environment_values_name_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONFAB_ROUTER__MAX_INPUT_CHARS", "-1")
    with pytest.raises(
        ConfigError, match=r"router\.max_input_chars \(from CONFAB_ROUTER__MAX_INPUT_CHARS\) = '-1'"
    ):
        load_config(schema=SCHEMA)
    monkeypatch.delenv("CONFAB_ROUTER__MAX_INPUT_CHARS")
    monkeypatch.setenv("CONFAB_ROUTER__PREFIXES", "!")  # not JSON
    with pytest.raises(ConfigError, match="CONFAB_ROUTER__PREFIXES could not be read; lists"):
        load_config(schema=SCHEMA)


def test_invalid_toml_and_missing_file_are_clear(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write(tmp_path, "[router\n"), schema=SCHEMA)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.toml", schema=SCHEMA)


def test_check_masks_the_database_password_and_reports_secret_variables(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    url = "postgresql+asyncpg://confab:hunter2@db.example/confab"
    path = write(tmp_path, f'[bot]\ndatabase_url = "{url}"\n')
    monkeypatch.setenv("DESK_TOKEN", "very-secret-value")
    shown = render_config(load_config(path, schema=SCHEMA))
    assert "hunter2" not in shown
    assert "confab:***@db.example" in shown
    assert "very-secret-value" not in shown
    assert 'token_env = "DESK_TOKEN"  # set' in shown
    assert "[router]" in shown and 'prefixes = ["!"]' in shown


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "confab", *args], cwd=cwd, capture_output=True, text=True, timeout=60
    )


def test_config_check_command_prints_settings_or_one_clear_error(tmp_path: Path) -> None:
    good = run_cli("config", "check", cwd=tmp_path)
    assert good.returncode == 0, good.stderr
    assert "[model]" in good.stdout and "max_new_tokens = 256" in good.stdout
    assert "[skills.ask]" in good.stdout

    write(tmp_path, "[router]\nmax_input_chars = 0\n[console]\ncolour = true\n")
    bad = run_cli("config", "check", "--config", "config.toml", cwd=tmp_path)
    assert bad.returncode == 2
    assert "router.max_input_chars = 0" in bad.stderr
    assert "console.colour: unknown key" in bad.stderr
    assert "Traceback" not in bad.stderr

    write(tmp_path, '[router]\ndefault_skill = "nosuch"\n')
    unknown = run_cli("config", "check", cwd=tmp_path)
    assert unknown.returncode == 2
    assert "router.default_skill = 'nosuch': no such skill (installed skills: ask" in unknown.stderr


def test_a_rejected_database_url_is_shown_without_its_password(tmp_path: Path) -> None:
    text = '[bot]\ndatabase_url = "mysql://ada:hunter22@db.example/confab"\n'
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text), schema=SCHEMA)
    assert "bot.database_url = 'mysql://ada:***@db.example/confab'" in str(caught.value)
    assert "hunter22" not in str(caught.value)


def test_the_old_name_of_loras_dir_is_still_read_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = write(tmp_path, '[model]\nadapters_dir = "/srv/loras"\n')
    with pytest.warns(FutureWarning, match=r"model\.adapters_dir is deprecated.*model\.loras_dir"):
        assert load_config(path, schema=SCHEMA).model.loras_dir == Path("/srv/loras")
    monkeypatch.setenv("CONFAB_MODEL__ADAPTERS_DIR", "/srv/from-env")
    with pytest.warns(FutureWarning):
        assert load_config(write(tmp_path, ""), schema=SCHEMA).model.loras_dir == Path(
            "/srv/from-env"
        )
    both = write(tmp_path, '[model]\nloras_dir = "/a"\n')
    with pytest.raises(ConfigError, match="set only loras_dir"):
        load_config(both, schema=SCHEMA)
