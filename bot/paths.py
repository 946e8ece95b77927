"""Where Confab keeps its files by default: data and cache folders, after XDG.

``$XDG_DATA_HOME/confab`` (the database, LoRAs, console history) and
``$XDG_CACHE_HOME/confab`` (converted models) when those variables are set;
``~/.local/share/confab`` and ``~/.cache/confab`` otherwise. The defaults stay
unexpanded (``~``) so ``confab config check`` shows them as the docs do; code
that opens them calls ``expanduser()`` as it does for any configured path.
"""

from __future__ import annotations

import os
from pathlib import Path

APP = "confab"


def _base(variable: str, fallback: str) -> Path:
    # The XDG spec says a relative value is invalid and to be ignored.
    value = os.environ.get(variable, "")
    return Path(value) if os.path.isabs(value) else Path(fallback)


def data_dir() -> Path:
    """The folder of Confab's own data: the SQLite file, LoRAs, console history."""
    return _base("XDG_DATA_HOME", "~/.local/share") / APP


def cache_dir() -> Path:
    """The folder of files Confab can rebuild: converted and assembled models."""
    return _base("XDG_CACHE_HOME", "~/.cache") / APP


def default_database_url() -> str:
    """The SQLite file under :func:`data_dir`."""
    return f"sqlite+aiosqlite:///{data_dir() / 'confab.db'}"
