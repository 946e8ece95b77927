"""Default files follow $XDG_DATA_HOME and $XDG_CACHE_HOME when they are set, and stay
in ~/.local/share/confab and ~/.cache/confab when they are not."""

from __future__ import annotations

from pathlib import Path

import pytest

from confab.adapters.console import ConsoleConfig
from confab.bot.config import load_config
from confab.bot.llm.registry import ModelRegistry
from confab.bot.paths import cache_dir, data_dir

HOME = Path("~").expanduser()


@pytest.fixture
def no_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    monkeypatch.chdir(tmp_path)  # no config.toml
    for variable in ("XDG_DATA_HOME", "XDG_CACHE_HOME", "CONFAB_BOT__DATABASE_URL"):
        monkeypatch.delenv(variable, raising=False)
    return monkeypatch


def test_without_xdg_the_defaults_are_as_before(no_xdg: pytest.MonkeyPatch) -> None:
    config = load_config()
    assert config.bot.database_url == "sqlite+aiosqlite:///~/.local/share/confab/confab.db"
    assert config.model.cache_dir == HOME / ".cache/confab"
    assert config.model.loras_dir == HOME / ".local/share/confab/adapters"
    assert ConsoleConfig().history_file == Path("~/.local/share/confab/console_history")
    assert ModelRegistry({}, Path("/l")).cache_dir == HOME / ".cache/confab"


def test_with_xdg_the_defaults_follow_it(no_xdg: pytest.MonkeyPatch, tmp_path: Path) -> None:
    no_xdg.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    no_xdg.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    config = load_config()
    assert config.bot.database_url == f"sqlite+aiosqlite:///{tmp_path}/data/confab/confab.db"
    assert config.model.cache_dir == tmp_path / "cache/confab"
    assert config.model.loras_dir == tmp_path / "data/confab/adapters"
    assert ConsoleConfig().history_file == tmp_path / "data/confab/console_history"
    assert ModelRegistry({}, Path("/l")).cache_dir == tmp_path / "cache/confab"


def test_a_configured_path_wins_over_xdg(no_xdg: pytest.MonkeyPatch, tmp_path: Path) -> None:
    no_xdg.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    (tmp_path / "config.toml").write_text('[model]\ncache_dir = "/srv/cache"\n')
    assert load_config().model.cache_dir == Path("/srv/cache")


def test_a_relative_xdg_value_is_ignored(no_xdg: pytest.MonkeyPatch) -> None:
    no_xdg.setenv("XDG_DATA_HOME", "relative/data")  # invalid, says the XDG spec
    no_xdg.setenv("XDG_CACHE_HOME", "")
    assert data_dir() == Path("~/.local/share/confab")
    assert cache_dir() == Path("~/.cache/confab")


async def test_the_default_database_file_is_created_under_xdg(
    no_xdg: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from confab.storage.database import Database

    no_xdg.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    database = Database(load_config().bot.database_url)
    try:
        async with database.engine.connect():
            pass
    finally:
        await database.close()
    assert (tmp_path / "data/confab/confab.db").is_file()
