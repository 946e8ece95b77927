"""Shared fixtures: real SQLite files, and the real bundled model loaded once per run."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from bot.config import ModelConfig
from bot.llm.transformers_backend import TransformersBackend


@pytest.fixture(autouse=True)
def _no_confab_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings from the developer's shell must not leak into tests."""
    for name in list(os.environ):
        if name.startswith("CONFAB_"):
            monkeypatch.delenv(name)


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'confab.db'}"


@pytest.fixture(scope="session")
def bundled_model() -> Iterator[TransformersBackend]:
    """The bundled SmolLM2 with the shipped sampling settings, from the user's cache
    (converted on first use); float32 and seeded, so answers repeat on every CPU."""
    torch.manual_seed(0)
    backend = TransformersBackend(ModelConfig(max_new_tokens=48, dtype="float32", attention="sdpa"))
    asyncio.run(backend.start())
    yield backend
    asyncio.run(backend.close())
