"""Shared fixtures: real SQLite files, a real PostgreSQL database of this run's own,
and the real bundled model loaded once per run."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
import torch

from confab.bot.knowledge.embedding import Embedder
from confab.bot.llm.config import ModelConfig
from confab.bot.llm.packaged import QWEN_CODER_05, QWEN_CODER_15, PackagedModel, installed
from confab.bot.llm.transformers_backend import TransformersBackend


@pytest.fixture(autouse=True)
def _no_confab_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings from the developer's shell must not leak into tests."""
    for name in list(os.environ):
        if name.startswith("CONFAB_"):
            monkeypatch.delenv(name)


@pytest.fixture(autouse=True)
def _as_on_a_bare_machine(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where `make run` installed the packaged Qwen model, a bot started by a test would
    begin converting it (minutes) in the background: in-process tests see it as not
    installed, as CI does. And scripted models answer a question once, so the
    self-consistency check, which asks four times, runs only in tests marked
    ``fact_checks`` (its own)."""
    monkeypatch.setattr("confab.bot.app.installed", lambda model: False)
    real = installed

    def test_parts_only(model: PackagedModel) -> bool:  # the registry lists no Qwen here
        return model not in (QWEN_CODER_05, QWEN_CODER_15) and real(model)

    monkeypatch.setattr("confab.bot.llm.registry.installed", test_parts_only)
    if request.node.get_closest_marker("fact_checks") is None:
        monkeypatch.setattr("confab.skills.qa.worth_checking", lambda question: False)


class SharedEmbedder(Embedder):
    """The real sentence model, loaded once per run: an app a test closes leaves it open."""

    async def close(self) -> None:
        pass


@pytest.fixture(scope="session")
def sentence_model() -> Iterator[Embedder]:
    shared = SharedEmbedder()
    yield shared
    shared._worker.shutdown(wait=True)


@pytest.fixture(autouse=True)
def _one_sentence_model(sentence_model: Embedder, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every in-process bot uses the run's one sentence model (it loads in seconds,
    but a suite starts many bots)."""
    monkeypatch.setattr("confab.bot.app.Embedder", lambda folder=None: sentence_model)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'confab.db'}"


@pytest.fixture
def db_url(sqlite_url: str) -> str:
    """The database most tests use: a fresh SQLite file (the storage suites use both)."""
    return sqlite_url


# The local server of the development and CI machines (trust auth); libpq's
# variables point elsewhere.
PG_HOST = os.environ.get("PGHOST", "127.0.0.1")
PG_PORT = int(os.environ.get("PGPORT", "5432"))
PG_USER = os.environ.get("PGUSER", "postgres")


async def _postgres(database: str, *statements: str) -> None:
    connection = await asyncpg.connect(
        host=PG_HOST, port=PG_PORT, user=PG_USER, database=database, timeout=10
    )
    try:
        for statement in statements:
            await connection.execute(statement)
    finally:
        await connection.close()


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A database of this test run's own on the local PostgreSQL, dropped at the end.

    Fails (never skips) when no server answers: the storage suites must run on both.
    """
    name = f"confab_test_{os.getpid()}_{secrets.token_hex(4)}"
    try:
        asyncio.run(_postgres("postgres", f'CREATE DATABASE "{name}"'))
    except (OSError, asyncpg.PostgresError, TimeoutError) as error:
        pytest.fail(
            f"PostgreSQL at {PG_USER}@{PG_HOST}:{PG_PORT} is needed by the storage tests and "
            f"did not answer ({error}). Start it, e.g. `.ci/run` does: pg_ctlcluster "
            "--skip-systemctl-redirect $(ls /etc/postgresql) main start",
            pytrace=False,
        )
    yield name
    asyncio.run(_postgres("postgres", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def postgresql_url(postgres_database: str) -> str:
    """The run's PostgreSQL database, emptied for this test (as a fresh SQLite file is)."""
    asyncio.run(
        _postgres(
            postgres_database,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()",
            "DROP SCHEMA public CASCADE",
            "CREATE SCHEMA public",
        )
    )
    return f"postgresql+asyncpg://{PG_USER}@{PG_HOST}:{PG_PORT}/{postgres_database}"


@pytest.fixture(params=["sqlite", "postgresql"])
def any_db_url(request: pytest.FixtureRequest) -> str:
    """Each test that takes this runs twice: on a SQLite file and on PostgreSQL."""
    return str(request.getfixturevalue(f"{request.param}_url"))


@pytest.fixture(scope="session")
def bundled_model() -> Iterator[TransformersBackend]:
    """The bundled SmolLM2 with the shipped sampling settings, from the user's cache
    (converted on first use); float32 and seeded, so answers repeat on every CPU."""
    torch.manual_seed(0)
    backend = TransformersBackend(ModelConfig(max_new_tokens=48, dtype="float32", attention="sdpa"))
    asyncio.run(backend.start())
    yield backend
    asyncio.run(backend.close())
