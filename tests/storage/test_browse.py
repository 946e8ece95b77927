"""Conversations listed by platform and searched by what was said, on both databases."""

from __future__ import annotations

from confab.storage.browse import ConversationBrowser
from confab.storage.conversations import ConversationKey, ConversationStore
from confab.storage.database import Database


async def test_conversations_are_listed_and_searched(any_db_url: str) -> None:
    database = Database(any_db_url)
    await database.upgrade()
    try:
        store = ConversationStore(database)
        general = ConversationKey("web", "general")
        await store.append(
            general, role="user", author_id="ada", author_name="Ada", text="The 100% plan"
        )
        await store.append(
            general, role="assistant", author_id="bot", author_name="confab", text="Noted, Ada."
        )
        await store.append(
            ConversationKey("discord", "42", "t1"),
            role="user",
            author_id="7",
            author_name="Bo",
            text="100 percent",
        )
        browser = ConversationBrowser(database)
        listed = await browser.conversations()
        assert [(c.platform, c.channel, c.thread, c.turns) for c in listed] == [
            ("discord", "42", "t1", 1),
            ("web", "general", None, 2),
        ]
        assert [c.platform for c in await browser.conversations(platform="web")] == ["web"]
        assert await browser.platforms() == ["discord", "web"]
        # Every word, any case; % and _ are taken as they are.
        found = await browser.search("100% PLAN")
        assert [f.turn.text for f in found] == ["The 100% plan"]
        assert [f.turn.text for f in await browser.search("100")] == [
            "100 percent",
            "The 100% plan",
        ]
        assert await browser.search("100", platform="web") == [found[0]]
        assert await browser.search("   ") == []
        opened, turns = await browser.conversation(listed[1].id)
        assert opened is not None and opened.channel == "general"
        assert [t.text for t in turns] == ["The 100% plan", "Noted, Ada."]
        assert await browser.conversation(10_000) == (None, [])
        assert await browser.channels() == [("discord", "42"), ("web", "general")]
    finally:
        await database.close()
