"""config.example.toml documents every key with its default."""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

from confab.bot.config import build_config_model, load_config
from confab.bot.plugins import discover_adapters, discover_skills

EXAMPLE = Path(__file__).parent.parent / "config.example.toml"


def schema() -> Any:
    adapters, skills = discover_adapters(), discover_skills()
    return build_config_model(
        {name: cls.config_model for name, cls in adapters.adapters.items()},
        {name: cls.config_model for name, cls in skills.skills.items()},
    )


def keys(table: dict[str, Any], prefix: str = "") -> set[str]:
    found = set()
    for key, value in table.items():
        if isinstance(value, dict) and value:
            found |= keys(value, f"{prefix}{key}.")
        else:
            found.add(f"{prefix}{key}")
    return found


def test_the_example_is_valid_and_equals_the_defaults(monkeypatch: Any, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    for variable in ("XDG_DATA_HOME", "XDG_CACHE_HOME"):  # the example shows the fallbacks
        monkeypatch.delenv(variable, raising=False)
    model = schema()
    assert load_config(EXAMPLE, schema=model) == load_config(schema=model)


def test_the_example_shows_every_key() -> None:
    defaults = schema()().model_dump(mode="json", exclude_none=True)
    documented = keys(tomllib.loads(EXAMPLE.read_text()))
    assert keys(defaults) - documented == set()


def test_the_package_ships_this_very_file() -> None:
    """`confab init` reads the packaged copy (bot/config.example.toml links here)."""
    packaged = resources.files("confab.bot").joinpath("config.example.toml")
    assert packaged.read_text(encoding="utf-8") == EXAMPLE.read_text(encoding="utf-8")
