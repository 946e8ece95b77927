"""The web chat adapter against the contract every adapter passes (the page: tests/web)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from confab.adapters.web import WebAdapter
from confab.bot.adapter import AdapterContext
from confab.bot.channel_log import StoredChannelLog
from confab.bot.config import WebConfig
from confab.bot.messages import SentMessage
from confab.contract import AdapterContract
from confab.storage.conversations import ConversationStore
from confab.storage.database import Database
from tests.helpers import seed_stored_history


@dataclass
class WebUnderTest:
    adapter: WebAdapter
    store: ConversationStore
    channel: str = "general"

    def shown(self, sent: SentMessage) -> str:
        return self.adapter.shown(sent)

    async def seed_history(self, channel: str, entries: list[tuple[str, str]]) -> None:
        await seed_stored_history(self.store, "web", channel, entries)


class TestWebContract(AdapterContract):
    @pytest.fixture
    async def under_test(self, db_url: str) -> AsyncIterator[WebUnderTest]:
        database = Database(db_url)
        await database.upgrade()
        store = ConversationStore(database)
        context = AdapterContext(WebConfig(), "confab", StoredChannelLog(store))
        yield WebUnderTest(WebAdapter(context), store)
        await database.close()
