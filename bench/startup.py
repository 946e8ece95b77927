"""Start-up figures: seconds from the command to the first answer byte, and peak RSS.

Runs ``confab console`` as a person would, piping in one question, and times
the first byte of the answer on stdout. A cold run starts with an empty model
cache (the GGUF is de-quantised and saved); warm runs reuse that cache.

    .venv/bin/python bench/startup.py [--cold-runs 1] [--warm-runs 5]
"""

# On a 2-core machine, loading the bundled model from its GGUF file took about 25 s
# (de-quantising it), from the converted safetensors about 2 s; reading only the
# tokenizer of an unconverted GGUF file about 10 s (bot/llm/weights.py). Converting
# a GGUF model the engine cannot serve cost about 50 s and 1 GB before
# bot/llm/gguf_header.py read its metadata first.
#
# 2026-12-03, same 2-core machine, load average about 1 (`--cold-runs 3 --warm-runs 5`,
# without the code model installed): before (9f527ee) cold 43.7 s (one run), warm
# median 7.99 s, peak RSS 1672 / 1229 MiB; after (packed store, GGUF parsed once,
# shorter probe) cold median 21.5 s, warm median 8.0 s, peak RSS 1290 / 1133 MiB; the
# packed store read without a file mapping (`--cold-runs 1`): cold 21.8 s, warm median
# 6.16 s (5.31 to 6.50), peak RSS 1301 / 886 MiB.
# A warm start was mostly imports: torch 1.6 s, the modules transformers loads
# lazily for the tokenizer and the model 3.0 s, the app's own 0.7 s.
#
# 2026-12-03, later (each start on a copy of a migrated database, `--cold-runs 3
# --warm-runs 5`, load average 0.8 to 1.3): before (044475f) cold median 21.04 s,
# warm median 5.25 s (5.10 to 5.41), peak RSS 1351 / 850 MiB; after (the kept model
# served by bot/llm/decoder.py and bot/llm/chat_tokenizer.py without importing
# transformers, no discord.py, slack-bolt, aiohttp or pypdf in a console start)
# cold median 20.57 s, warm medians 3.10, 2.82 and 2.79 s in three runs of five,
# peak RSS 1606 / 711 MiB. What is left of a warm start: the interpreter and
# Confab's imports 0.6 s, torch 1.0 s, the app's start 0.2 s, reading the model
# 0.5 s, then the answer itself (32 tokens, held back for the consistency check)
# 0.6 s.

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

QUESTION = b"What is the capital of France?\n"
CONFAB = Path(sys.executable).with_name("confab")


def settings(cache_dir: Path, database: Path) -> dict[str, str]:
    return {
        **os.environ,
        "CONFAB_MODEL__CACHE_DIR": str(cache_dir),
        "CONFAB_MODEL__TEMPERATURE": "0",
        "CONFAB_MODEL__MAX_NEW_TOKENS": "32",
        "CONFAB_BOT__DATABASE_URL": f"sqlite+aiosqlite:///{database}",
        "CONFAB_BOT__LOG_LEVEL": "WARNING",
    }


def migrated_database(workdir: Path) -> Path:
    """An empty database at the newest schema, made once."""
    template = workdir / "migrated.db"
    if not template.exists():
        subprocess.run(
            [str(CONFAB), "db", "upgrade"],
            env=settings(workdir / "unused-cache", template),
            cwd=workdir,
            check=True,
            capture_output=True,
        )
    return template


def one_run(cache_dir: Path, workdir: Path, run: int) -> tuple[float, float, float]:
    """(seconds to first answer byte, seconds to exit, peak RSS in MiB) of one start.

    Each start gets a database of its own, a copy of one migrated before (a
    restarted service's): with one shared, every run's question and answer joined
    the next run's prompt, and the runs slowed down one after another (3.1 s to
    4.2 s in five runs) for reasons unrelated to starting.
    """
    database = workdir / f"bench-{run}.db"
    shutil.copy(migrated_database(workdir), database)
    environment = settings(cache_dir, database)
    log = (workdir / "console.log").open("w+b")
    started = time.perf_counter()
    process = subprocess.Popen(
        [str(CONFAB), "console"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=log,
        env=environment,
        cwd=workdir,
    )
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write(QUESTION)
    process.stdin.close()
    first = process.stdout.read(1)
    first_byte = time.perf_counter() - started
    rest = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    finished = time.perf_counter() - started
    if status != 0 or not first:
        log.seek(0)
        tail = log.read().decode(errors="replace")[-3000:]
        raise SystemExit(
            f"confab console failed (status {status}); answer: {first + rest!r}\n{tail}"
        )
    return first_byte, finished, usage.ru_maxrss / 1024


def report(label: str, runs: list[tuple[float, float, float]]) -> None:
    firsts = [r[0] for r in runs]
    totals = [r[1] for r in runs]
    rss = [r[2] for r in runs]
    print(
        f"{label}: runs={len(runs)}"
        f" first_answer_s median={statistics.median(firsts):.2f}"
        f" min={min(firsts):.2f} max={max(firsts):.2f}"
        f" | exit_s median={statistics.median(totals):.2f}"
        f" | peak_rss_mib median={statistics.median(rss):.0f} max={max(rss):.0f}"
    )
    print(f"  raw first_answer_s: {', '.join(f'{v:.2f}' for v in firsts)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cold-runs", type=int, default=1)
    parser.add_argument("--warm-runs", type=int, default=5)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="confab-bench-") as scratch:
        root = Path(scratch)
        cold = []
        for index in range(options.cold_runs):
            cache = root / f"cache-{index}"  # empty: this start converts the GGUF
            cold.append(one_run(cache, root, index))
        if not cold:
            one_run(root / "cache-0", root, 0)  # untimed: fill the cache for the warm runs
        warm = [
            one_run(root / "cache-0", root, options.cold_runs + i + 1)
            for i in range(options.warm_runs)
        ]
    if cold:
        report("cold start (empty model cache)", cold)
    report("warm start (cached safetensors)", warm)


if __name__ == "__main__":
    main()
