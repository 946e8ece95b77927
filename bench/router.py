"""Router speed: messages through the full path (guards, skill, ReplyStream, both turns
stored in SQLite) with the scripted model, sequential round trips and concurrent.

Sequential: `!ping`, each sent once the previous one was answered (Errbot's `!echo`
test is the comparison). Concurrent: `!ping` and, separately, questions to `ask`
(which also reads the conversation's memory), ``--concurrency`` in flight in as many
channels. Rate limits are set out of the way: every message is answered.

    .venv/bin/python bench/router.py [--messages 2000] [--concurrency 50] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from confab.bot.config import RouterConfig
from confab.bot.testing import ChatHarness, ScriptedBackend
from confab.skills.ping import PingSkill
from confab.skills.qa import AskSkill


async def sequential(chat: ChatHarness, count: int) -> float:
    """Messages per second, each sent after the previous one was answered."""
    started = time.perf_counter()
    for n in range(count):
        await chat.send(f"!ping {n}", channel=f"c{n % 10}")
    return count / (time.perf_counter() - started)


async def concurrent(chat: ChatHarness, count: int, concurrency: int, text: str) -> float:
    """Messages per second with ``concurrency`` in flight, in as many channels."""
    slots = asyncio.Semaphore(concurrency)

    async def one(n: int) -> None:
        async with slots:
            await chat.send(f"{text} {n}", channel=f"c{n % concurrency}")

    started = time.perf_counter()
    await asyncio.gather(*(one(n) for n in range(count)))
    return count / (time.perf_counter() - started)


async def main(args: argparse.Namespace) -> None:
    rounds, pings, questions = [], [], []
    unlimited = RouterConfig(user_burst=1_000_000, user_rate_per_minute=1_000_000)
    unlimited = unlimited.model_copy(update={"channel_queue": args.messages})
    for run in range(args.runs):
        with tempfile.TemporaryDirectory() as folder:
            model = ScriptedBackend(["Pong."])
            skills = [AskSkill, PingSkill]
            async with ChatHarness(
                skills, Path(folder), model=model, router_config=unlimited
            ) as chat:
                rounds.append(await sequential(chat, args.messages))
                pings.append(await concurrent(chat, args.messages, args.concurrency, "!ping"))
                questions.append(
                    await concurrent(chat, args.messages, args.concurrency, "question")
                )
                answered = len(chat.adapter.posted)
        assert answered == 3 * args.messages, f"{answered} answers to {3 * args.messages} messages"
        print(
            f"run {run + 1}: {rounds[-1]:6.0f} round trips/s, {pings[-1]:6.0f} !ping/s and "
            f"{questions[-1]:6.0f} questions/s concurrent"
        )
    print(f"median sequential round trips/s (!ping): {statistics.median(rounds):6.0f}")
    print(f"median concurrent messages/s (!ping):    {statistics.median(pings):6.0f}")
    print(f"median concurrent messages/s (ask):      {statistics.median(questions):6.0f}")
    print(
        f"(each run: {args.messages} round trips, then {args.messages} of each kind "
        f"with {args.concurrency} in flight; every message answered)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--runs", type=int, default=3)
    asyncio.run(main(parser.parse_args()))
