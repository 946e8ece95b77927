"""The effective settings as ``confab config check`` prints them and the admin page
shows them: TOML, secrets masked, each ``*_env`` variable marked set or not."""

from __future__ import annotations

import json
import os
from typing import Any

from confab.bot.config import Config
from confab.bot.redaction import SecretRedactor, configured_secrets, masked_url


def render_config(config: Config) -> str:
    """The effective settings as TOML, secrets masked, env-named secrets marked set or unset."""
    data = config.model_dump(mode="json")
    data["bot"]["database_url"] = masked_url(config.bot.database_url)
    lines: list[str] = []
    _render_tables(data, [], lines)
    # Any other secret a setting holds (a password in another URL, say) is hidden too.
    return SecretRedactor(configured_secrets(config)).redact("\n".join(lines).strip() + "\n")


def _render_tables(table: dict[str, Any], path: list[str], lines: list[str]) -> None:
    scalars = {k: v for k, v in table.items() if not isinstance(v, dict)}
    if path and (scalars or not table):
        lines.append(f"\n[{'.'.join(path)}]")
    for key, value in scalars.items():
        line = f"{key} = {_toml_value(value)}"
        if key.endswith("_env") and isinstance(value, str) and value:
            line += f"  # {'set' if os.environ.get(value) else 'NOT SET'}"
        lines.append(line)
    for key, value in table.items():
        if isinstance(value, dict):
            _render_tables(value, [*path, key], lines)


def _toml_value(value: Any) -> str:
    if value is None:
        return '""  # unset'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, ensure_ascii=False)
