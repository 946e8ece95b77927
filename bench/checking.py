"""What checking answers costs a lone asker: the same request with and without its check,
interleaved, through the real router and skills with the real model.

For a factual question (self-consistency: three samples beside the answer) and
``!code write`` (three candidates and the model's tests, then sandbox runs),
prints the median time to the first words and to the whole answer, each way,
and their ratio; the issue's bound is 1.5x for the whole answer.

    .venv/bin/python bench/checking.py [--model NAME] [--runs 3] [--config PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from confab.bot.app import model_resolver
from confab.bot.config import load_config
from confab.bot.llm.backend import ModelBackend
from confab.bot.messages import SentMessage
from confab.bot.testing import ChatHarness, RecordingAdapter
from confab.skills.code import CodeConfig, CodeSkill
from confab.skills.qa import AskConfig, AskSkill

REQUESTS = {
    "fact": ("Who wrote the novel Pride and Prejudice?", "check_facts"),
    "code write": (
        "!code write a Python function is_palindrome(s) that returns True when s reads "
        "the same backwards",
        "run_checks",
    ),
}


class TimedAdapter(RecordingAdapter):
    """Notes when the first message of an answer goes out."""

    first_sent: float | None = None

    async def send(self, channel: str, text: str, **options: Any) -> SentMessage:
        if self.first_sent is None:
            self.first_sent = time.perf_counter()
        return await super().send(channel, text, **options)


async def _once(model: ModelBackend, request: str, key: str, checked: bool) -> tuple[float, float]:
    skill: Any
    if key == "check_facts":
        skill = AskSkill(AskConfig(check_facts=checked))
    else:
        skill = CodeSkill(CodeConfig(run_checks=checked))
    adapter = TimedAdapter()
    with tempfile.TemporaryDirectory() as folder:
        async with ChatHarness([skill], Path(folder), model=model, adapter=adapter) as chat:
            started = time.perf_counter()
            await chat.ask(request, channel=f"bench-{time.monotonic_ns()}")
            done = time.perf_counter()
    first = (adapter.first_sent or done) - started
    return first, done - started


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--config", default=None)
    args = parser.parse_args()
    _, build = model_resolver(load_config(args.config))(args.model)
    model = build()
    await model.start()
    print(f"model {model.name}; {args.runs} runs each, interleaved; load {_load()}")
    try:
        await _once(model, "hello", "check_facts", False)  # warm up
        for label, (request, key) in REQUESTS.items():
            times: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
            for _ in range(args.runs):
                for checked in (False, True):
                    times[checked].append(await _once(model, request, key, checked))
            plain = [statistics.median(t[i] for t in times[False]) for i in (0, 1)]
            check = [statistics.median(t[i] for t in times[True]) for i in (0, 1)]
            print(
                f"{label:<11} first words {plain[0]:5.2f} s -> {check[0]:5.2f} s, "
                f"whole answer {plain[1]:5.2f} s -> {check[1]:5.2f} s "
                f"(x{check[1] / plain[1]:.2f})"
            )
    finally:
        await model.close()


def _load() -> str:
    return Path("/proc/loadavg").read_text().split(" ")[0]


if __name__ == "__main__":
    asyncio.run(main())
