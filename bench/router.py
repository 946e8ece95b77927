"""Router speed: messages through the full path (guards, skill, ReplyStream, both turns
stored in SQLite) with the scripted model, sequential round trips and concurrent.

    .venv/bin/python bench/router.py [--messages 2000] [--concurrency 50] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from bot.testing import ChatHarness, ScriptedBackend
from skills.ping import PingSkill
from skills.qa import AskSkill


async def sequential(chat: ChatHarness, count: int) -> float:
    """Messages per second, each sent after the previous one was answered."""
    started = time.perf_counter()
    for n in range(count):
        await chat.send(f"!ping {n}", channel=f"c{n % 10}")
    return count / (time.perf_counter() - started)


async def concurrent(chat: ChatHarness, count: int, concurrency: int) -> float:
    """Messages per second with ``concurrency`` in flight, in as many channels."""
    slots = asyncio.Semaphore(concurrency)

    async def one(n: int) -> None:
        async with slots:
            await chat.send(f"question {n}", channel=f"c{n % concurrency}")

    started = time.perf_counter()
    await asyncio.gather(*(one(n) for n in range(count)))
    return count / (time.perf_counter() - started)


async def main(args: argparse.Namespace) -> None:
    rounds, bursts = [], []
    for run in range(args.runs):
        with tempfile.TemporaryDirectory() as folder:
            model = ScriptedBackend(["Pong."])
            async with ChatHarness([AskSkill, PingSkill], Path(folder), model=model) as chat:
                rounds.append(await sequential(chat, args.messages))
                bursts.append(await concurrent(chat, args.messages, args.concurrency))
        print(f"run {run + 1}: {rounds[-1]:7.0f} round trips/s, {bursts[-1]:7.0f} messages/s")
    print(f"median sequential round trips/s: {statistics.median(rounds):7.0f}")
    print(f"median concurrent messages/s:    {statistics.median(bursts):7.0f}")
    answered = args.messages
    print(f"(each run: {answered} round trips of !ping, then {answered} questions to ask)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--runs", type=int, default=3)
    asyncio.run(main(parser.parse_args()))
