"""Many writers at once: nothing lost, order kept, no "database is locked"."""

from __future__ import annotations

import asyncio

from storage.conversations import ConversationKey, ConversationStore
from storage.database import Database
from storage.users import UserStore

WRITERS = 200
CONVERSATIONS = 20
TURNS_EACH = 2


async def test_200_writers_on_20_conversations_lose_nothing_and_keep_order(
    database: Database,
) -> None:
    store = ConversationStore(database)

    async def writer(number: int) -> None:
        # Like one person in a busy channel: each turn is sent once the last is stored.
        key = ConversationKey("test", f"channel-{number % CONVERSATIONS}")
        for index in range(TURNS_EACH):
            await store.append(
                key,
                role="user",
                author_id=f"user-{number}",
                author_name=f"User {number}",
                text=f"{number}:{index}",
            )

    await asyncio.gather(*(writer(number) for number in range(WRITERS)))

    for channel in range(CONVERSATIONS):
        key = ConversationKey("test", f"channel-{channel}")
        turns = await store.recent(key, limit=1000)
        said = [tuple(map(int, turn.text.split(":"))) for turn in turns]
        writers = range(channel, WRITERS, CONVERSATIONS)
        assert sorted(said) == [(w, i) for w in writers for i in range(TURNS_EACH)]
        for w in writers:
            assert [i for who, i in said if who == w] == list(range(TURNS_EACH))


async def test_concurrent_changes_to_one_persons_settings_all_survive(database: Database) -> None:
    users = UserStore(database)
    await asyncio.gather(
        *(users.set_setting("test", "ada", f"key{index}", index) for index in range(30))
    )
    assert await users.settings("test", "ada") == {f"key{index}": index for index in range(30)}
