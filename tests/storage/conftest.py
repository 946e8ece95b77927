"""Every storage test that takes ``db_url`` runs on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from confab.storage.database import Database


@pytest.fixture
def db_url(any_db_url: str) -> str:
    return any_db_url


@pytest.fixture
async def database(db_url: str) -> AsyncIterator[Database]:
    """The database at the newest schema, closed after the test."""
    opened = Database(db_url)
    await opened.upgrade()
    yield opened
    await opened.close()
