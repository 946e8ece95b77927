"""A knowledge base over a real database (SQLite file or PostgreSQL) with the real
sentence model, and a way to plant messages in it."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from confab.bot.config import KnowledgeConfig
from confab.bot.knowledge.base import KnowledgeBase
from confab.bot.knowledge.embedding import Embedder
from confab.storage.conversations import ConversationKey, ConversationStore, StoredTurn
from confab.storage.database import Database

START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
TOPICS = [
    "the lunch place",
    "the coffee machine",
    "weekend plans",
    "the football match",
    "a podcast episode",
    "the new keyboard",
    "the office plants",
    "a film last night",
    "the train strike",
    "a birthday cake",
    "the heating",
    "holiday photos",
]
SAYINGS = [
    "did anyone see {t}?",
    "I think {t} was great",
    "not sure about {t} tbh",
    "lol {t} again",
    "who is up for {t} later",
    "{t} is a mystery to me",
    "can we talk about {t} tomorrow",
    "haha yes {t}",
    "ok ok {t} it is",
]
PEOPLE = ["Ana", "Bob", "Gus", "Maya", "Farah", "Lee"]


class Planter:
    """Stores people's chatter the way the router does (unaddressed person turns)."""

    def __init__(self, store: ConversationStore) -> None:
        self.store = store
        self.minute = 0

    async def say(
        self,
        channel: str,
        author: str,
        text: str,
        *,
        thread: str | None = None,
        direct: bool = False,
        platform: str = "console",
        gap_minutes: int = 1,
    ) -> StoredTurn:
        self.minute += gap_minutes
        return await self.store.append(
            ConversationKey(platform, channel, thread, direct=direct),
            role="user",
            author_id=author.lower(),
            author_name=author,
            text=text,
            addressed=False,
            platform_message_id=f"{channel}-{self.minute}",
            created_at=START + timedelta(minutes=self.minute),
        )

    async def chatter(self, channel: str, count: int, seed: int = 0) -> None:
        """``count`` messages of small talk, a minute apart, in bursts (with pauses)."""
        rng = random.Random(seed)
        for n in range(count):
            saying = rng.choice(SAYINGS).format(t=rng.choice(TOPICS))
            await self.say(channel, rng.choice(PEOPLE), saying, gap_minutes=1 if n % 8 else 60)


@pytest.fixture
async def database(any_db_url: str) -> AsyncIterator[Database]:
    database = Database(any_db_url)
    await database.upgrade()
    yield database
    await database.close()


@pytest.fixture
def planter(database: Database) -> Planter:
    return Planter(ConversationStore(database))


def knowledge(database: Database, embedder: Embedder, **settings: object) -> KnowledgeBase:
    return KnowledgeBase(database, KnowledgeConfig(**settings), embedder)  # type: ignore[arg-type]
