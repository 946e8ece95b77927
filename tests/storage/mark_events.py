"""A separate process that marks events processed, for the cross-process de-duplication test.

``python -m tests.storage.mark_events URL COUNT`` connects, prints ``ready``,
waits for a line on stdin, then tries to mark events ``e0`` .. ``e{COUNT-1}``
all at once and prints the ids it was first to mark, as JSON.
"""

from __future__ import annotations

import asyncio
import json
import sys

from confab.storage.database import Database
from confab.storage.events import EventLog


async def main(url: str, count: int) -> None:
    database = Database(url)
    events = EventLog(database)
    await events.mark_event_processed("warm-up", "connect")  # fills the pool before the race
    print("ready", flush=True)
    await asyncio.to_thread(sys.stdin.readline)
    ids = [f"e{index}" for index in range(count)]
    won = await asyncio.gather(*(events.mark_event_processed("slack", i) for i in ids))
    print(json.dumps([i for i, first in zip(ids, won, strict=True) if first]), flush=True)
    await database.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
