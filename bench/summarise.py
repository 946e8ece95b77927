"""Map-reduce summary figures: a long channel summarised by the bundled model,
chunk summaries one at a time versus concurrently (batched by the engine).

Both variants run in one process on the same loaded model, alternating, with
greedy decoding so they do the same work; the ratio is the figure to quote.

    .venv/bin/python bench/summarise.py [--messages 400] [--parallel 6] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from confab.bot.llm.config import ModelConfig
from confab.bot.llm.transformers_backend import TransformersBackend
from confab.bot.testing import ChatHarness
from confab.skills.summarise import SummariseConfig, SummariseSkill

PEOPLE = ("ada", "bob", "cy", "dee")
TOPICS = ("the release", "the flaky test", "the database migration", "lunch", "the demo")


def chat_line(n: int) -> tuple[str, str]:
    author = PEOPLE[n % len(PEOPLE)]
    topic = TOPICS[(n // 7) % len(TOPICS)]
    return author, (
        f"About {topic}: I think we should decide by Thursday, and I can take item {n} "
        f"myself unless {PEOPLE[(n + 1) % len(PEOPLE)]} wants it."
    )


async def summarise_once(
    model: TransformersBackend, parallel: int, args: argparse.Namespace
) -> tuple[float, str]:
    config = SummariseConfig(
        max_new_tokens=args.max_new_tokens,
        temperature=0.0,
        chunk_tokens=args.chunk_tokens,
        max_parallel=parallel,
        max_messages=args.messages,
    )
    with tempfile.TemporaryDirectory() as workdir:
        async with ChatHarness([SummariseSkill(config)], Path(workdir), model=model) as chat:
            for n in range(args.messages):
                author, text = chat_line(n)
                await chat.send(text, author=author, channel="team", addressed=False)
            started = time.perf_counter()
            answer = await chat.ask(f"!summarise {args.messages}", channel="team")
            return time.perf_counter() - started, answer.split("\n", 1)[0]


async def main(args: argparse.Namespace) -> None:
    model = TransformersBackend(ModelConfig())
    await model.start()
    timings: dict[int, list[float]] = {1: [], args.parallel: []}
    header = ""
    try:
        for run in range(args.runs):
            for parallel in (1, args.parallel) if run % 2 == 0 else (args.parallel, 1):
                seconds, header = await summarise_once(model, parallel, args)
                timings[parallel].append(seconds)
                print(f"run {run + 1}: max_parallel={parallel:<2} {seconds:6.1f} s", flush=True)
    finally:
        await model.close()
    one, many = (statistics.median(timings[p]) for p in (1, args.parallel))
    print(header)
    print(f"median one at a time:          {one:6.1f} s")
    print(f"median {args.parallel} at a time:            {many:6.1f} s")
    print(f"speed-up from batching chunks: {one / many:6.2f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=400)
    parser.add_argument("--parallel", type=int, default=6)
    parser.add_argument("--chunk-tokens", type=int, default=1000)
    parser.add_argument("--max-new-tokens", type=int, default=96)
    parser.add_argument("--runs", type=int, default=3)
    asyncio.run(main(parser.parse_args()))
