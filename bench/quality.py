"""Answer quality: the suite's everyday requests, per skill and per model.

Each case is typed into a chat through the real router and installed skills
with their default settings and answered by a real model (see
``bot/quality/``); cases live in ``bench/quality_cases/*.toml``. Prints one
line per case, then a score per group and skill and overall, tokens/s and the
wall time, side by side for every model given.

    .venv/bin/python bench/quality.py [--model NAME]... [--group qa,code_fix]
        [--case ID]... [--json FILE]

``--model`` takes a name from ``confab model list`` (or a path); without one
the config's model (the bundled one by default) runs. Models run one after
another, each loaded alone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import resource
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch

from confab.bot.app import model_resolver
from confab.bot.config import build_config_model, load_config
from confab.bot.plugins import discover_skills
from confab.bot.quality.cases import GROUPS, SKILL_OF, load_cases
from confab.bot.quality.runner import CaseResult, run_cases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", action="append", default=[], help="repeatable")
    parser.add_argument("--group", default=",".join(GROUPS))
    parser.add_argument("--case", action="append", default=[], help="only these ids")
    parser.add_argument("--config", default=None)
    parser.add_argument("--json", type=Path, default=None, help="write every result here")
    parser.add_argument("--quiet", action="store_true", help="no line per case")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    found = discover_skills().skills
    schema = build_config_model(skills={name: cls.config_model for name, cls in found.items()})
    config = load_config(args.config, schema=schema)
    cases = load_cases(groups=[g.strip() for g in args.group.split(",") if g.strip()])
    if args.case:
        cases = [case for case in cases if case.id in args.case]
    models: list[str | None] = list(args.model) or [None]
    print(f"{len(cases)} cases, {len(models)} model(s); uptime: {_load_average()}")
    runs = {}
    for name in models:
        runs[name or "default"] = asyncio.run(_run_model(config, name, cases, args.quiet))
    _print_table(runs)
    if args.json:
        args.json.write_text(json.dumps(_as_json(runs), indent=1), encoding="utf-8")


async def _run_model(
    config: Any, name: str | None, cases: list[Any], quiet: bool
) -> dict[str, Any]:
    _, build = model_resolver(config)(name)
    backend = build()
    started = time.perf_counter()
    await backend.start()
    start_s = time.perf_counter() - started
    label = name or "default"
    print(f"\n== {label}: {backend.name}, ready in {start_s:.1f} s")

    def show(result: CaseResult) -> None:
        if quiet:
            return
        mark = "PASS" if result.score.passed else "fail"
        answer = " ".join(result.answer.split())[:90]
        note = f"  [{result.score.note}]" if result.score.note else ""
        print(f"{mark} {result.case.id:<34} {result.seconds:5.1f}s {answer!r}{note}", flush=True)

    try:
        with tempfile.TemporaryDirectory() as workdir:
            began = time.perf_counter()
            results = await run_cases(
                cases,
                backend,
                Path(workdir),
                seed=torch.manual_seed,
                on_result=show,
                config=config,
            )
            wall = time.perf_counter() - began
    finally:
        await backend.close()
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"results": results, "wall_s": wall, "start_s": start_s, "peak_rss_mb": rss_mb}


def _scores(results: list[CaseResult], key: str) -> dict[str, tuple[float, int]]:
    """Mean score and case count per group (``key="group"``) or per skill."""
    buckets: dict[str, list[float]] = defaultdict(list)
    for result in results:
        bucket = result.case.group if key == "group" else SKILL_OF[result.case.group]
        buckets[bucket].append(result.score.value)
    return {name: (sum(values) / len(values), len(values)) for name, values in buckets.items()}


def _print_table(runs: dict[str, dict[str, Any]]) -> None:
    names = list(runs)
    print("\n" + f"{'':<22}" + "".join(f"{name:>22}" for name in names))
    for key in ("group", "skill"):
        tables = {name: _scores(runs[name]["results"], key) for name in names}
        rows = list(dict.fromkeys(row for table in tables.values() for row in table))
        for row in rows:
            cells = []
            for name in names:
                value, count = tables[name].get(row, (0.0, 0))
                passed = sum(
                    r.score.passed
                    for r in runs[name]["results"]
                    if (r.case.group if key == "group" else SKILL_OF[r.case.group]) == row
                )
                cells.append(f"{value:6.0%} ({passed}/{count})")
            print(f"{key + ' ' + row:<22}" + "".join(f"{cell:>22}" for cell in cells))
        print()
    for label, fn in (
        ("overall", lambda r: f"{_overall(r):.0%}"),
        ("passed", lambda r: f"{sum(x.score.passed for x in r)}/{len(r)}"),
        ("tokens/s", lambda r: f"{_tokens_per_s(r):.1f}"),
    ):
        print(f"{label:<22}" + "".join(f"{fn(runs[n]['results']):>22}" for n in names))
    for label, field in (
        ("start s", "start_s"),
        ("wall s", "wall_s"),
        ("peak RSS MB", "peak_rss_mb"),
    ):
        print(f"{label:<22}" + "".join(f"{runs[n][field]:>22.1f}" for n in names))


def _overall(results: list[CaseResult]) -> float:
    return sum(r.score.value for r in results) / len(results) if results else 0.0


def _tokens_per_s(results: list[CaseResult]) -> float:
    seconds = sum(r.seconds for r in results if r.tokens)
    return sum(r.tokens for r in results) / seconds if seconds else 0.0


def _as_json(runs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {
        name: {
            "wall_s": run["wall_s"],
            "start_s": run["start_s"],
            "overall": _overall(run["results"]),
            "cases": [
                {
                    "id": r.case.id,
                    "group": r.case.group,
                    "passed": r.score.passed,
                    "score": r.score.value,
                    "note": r.score.note,
                    "seconds": r.seconds,
                    "tokens": r.tokens,
                    "answer": r.answer,
                }
                for r in run["results"]
            ],
        }
        for name, run in runs.items()
    }


def _load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


if __name__ == "__main__":
    main()
