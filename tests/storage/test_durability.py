"""A reply that was shown is stored: killing the process right after loses nothing."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from asyncio.subprocess import PIPE
from pathlib import Path

from confab.storage.conversations import ConversationKey, ConversationStore
from confab.storage.database import Database

ROOT = Path(__file__).resolve().parents[2]


async def test_sigkill_right_after_a_reply_keeps_that_reply(db_url: str, tmp_path: Path) -> None:
    environment = {
        **os.environ,
        "CONFAB_BOT__DATABASE_URL": db_url,
        "PYTHONPATH": str(ROOT),
    }
    console = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.storage.console_child",
        cwd=tmp_path,  # no config.toml of the developer's
        env=environment,
        stdin=PIPE,
        stdout=PIPE,
        stderr=PIPE,
    )
    assert console.stdin is not None and console.stdout is not None
    try:
        for question, answer in (("first?", "First answer."), ("second?", "Second answer.")):
            console.stdin.write(f"{question}\n".encode())
            line = await asyncio.wait_for(console.stdout.readline(), 60)
            assert line.decode() == f"{answer}\n"
        # The reply's line is complete: kill at once, no chance to clean up.
        console.send_signal(signal.SIGKILL)
    finally:
        if console.returncode is None:
            console.kill()
        await console.wait()
    assert console.returncode == -signal.SIGKILL

    database = Database(db_url)
    turns = await ConversationStore(database).recent(ConversationKey("console", "dm"))
    await database.close()
    assert [(t.role, t.text) for t in turns] == [
        ("user", "first?"),
        ("assistant", "First answer."),
        ("user", "second?"),
        ("assistant", "Second answer."),
    ]
