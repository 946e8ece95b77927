"""The base install, for real: ``pip install .`` (no extras) from the package index into
a fresh venv, then ``confab console`` against a scripted OpenAI-compatible server.

Prints how long the install took, the venv's size, whether torch is importable
(it must not be), the console's start to first answer, and its peak RSS. The
test suite checks the same behaviour on a venv made from this one without the
extras' distributions (tests/test_base_install.py); this script is the one that
asks the index, so it needs the network.

    .venv/bin/python bench/base_install.py [--keep DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.adapters.processes import streaming_model

ROOT = Path(__file__).resolve().parent.parent


def folder_mib(folder: Path) -> float:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 2**20


async def first_answer(python: Path, url: str, workdir: Path) -> tuple[float, float, str]:
    """(seconds to the answer on stdout, peak RSS in MiB, the answer) of one console run."""
    config = workdir / "config.toml"
    config.write_text(
        "[bot]\n"
        f'database_url = "sqlite+aiosqlite:///{workdir / "bench.db"}"\n'
        'adapters = ["console"]\nlog_level = "WARNING"\n'
        '[model]\nbackend = "openai"\n'
        f'[model.openai]\nbase_url = "{url}"\nmodel = "remote"\n'
    )
    started = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        "/usr/bin/time", "-f", "%M", python, "-m", "confab", "console", "--config", str(config),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=workdir,
    )  # fmt: skip
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write(b"What is the capital of France?\n")
    await process.stdin.drain()
    answer = b""
    while b"France." not in answer:
        piece = await asyncio.wait_for(process.stdout.read(256), 60)
        if not piece:
            break
        answer += piece
    took = time.monotonic() - started
    process.stdin.close()
    _, err = await asyncio.wait_for(process.communicate(), 60)
    peak_kib = float(err.decode().strip().splitlines()[-1])
    return took, peak_kib / 1024, answer.decode(errors="replace").strip()


def run(work: Path) -> int:
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    started = time.monotonic()
    subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(ROOT)],
        check=True,
    )
    install_s = time.monotonic() - started
    torch = subprocess.run([python, "-c", "import torch"], capture_output=True)
    print(f"pip install . (no extras): {install_s:.1f} s, venv {folder_mib(venv):.0f} MiB")
    print(f"import torch in it: {'fails (good)' if torch.returncode else 'WORKS (bad)'}")
    took, peak, answer = asyncio.run(answered(python, work))
    print(f"confab console, start to first answer: {took:.2f} s, peak RSS {peak:.0f} MiB")
    print(f"answer: {answer.splitlines()[-1] if answer else '(none)'}")
    return 0 if torch.returncode and "Paris" in answer else 1


async def answered(python: Path, work: Path) -> tuple[float, float, str]:
    async with streaming_model(["Paris", "is", "the", "capital", "of", "France."], 0.0) as url:
        return await first_answer(python, url, work)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="build the venv here and keep it")
    args = parser.parse_args()
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        return run(args.keep)
    with tempfile.TemporaryDirectory(prefix="confab-base-") as work:
        return run(Path(work))


if __name__ == "__main__":
    sys.exit(main())
