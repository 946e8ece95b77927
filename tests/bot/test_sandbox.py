"""The sandbox `!code write|fix` runs candidates in: hostile programs are stopped at their
limits and reported in one sentence, and honest ones are counted check by check."""

from __future__ import annotations

import asyncio
import glob
import os
import secrets
import tempfile
import time
from pathlib import Path

import psutil
import pytest

from confab.bot.checks.sandbox import SANDBOX_UID, CheckReport, SandboxLimits, run_checks

LIMITS = SandboxLimits(cpu_s=1, wall_s=2, memory_mb=256)
# Time for the interpreter to start and for everything to be killed and reaped.
SLACK_S = 2.0


def sandbox_processes() -> set[int]:
    """Processes of the sandbox user (as root) and any left under this test process."""
    mine = {child.pid for child in psutil.Process().children(recursive=True)}
    if os.geteuid() != 0:
        return mine
    return mine | {
        process.pid
        for process in psutil.process_iter(["uids"])
        if process.info["uids"] is not None and process.info["uids"].real == SANDBOX_UID
    }


async def run(code: str, checks: list[str] | None = None) -> tuple[CheckReport, float]:
    started = time.monotonic()
    report = await run_checks(code, checks or [], LIMITS)
    return report, time.monotonic() - started


def gone(path: str | Path) -> bool:
    return not os.path.lexists(path)


def one_sentence(report: CheckReport) -> bool:
    return report.summary.endswith(".") and report.summary.count(". ") == 0


# Honest programs


async def test_passing_checks_are_counted() -> None:
    report, _ = await run(
        "def add(a, b): return a + b", ["assert add(1,2)==3", "assert add(-1,1)==0"]
    )

    assert (report.outcome, report.passed, report.total) == ("passed", 2, 2)
    assert report.summary == "I ran it and it passed both checks."
    assert report.failure == ""


async def test_failing_checks_are_counted_and_the_first_failure_named() -> None:
    code = "def double(x): return x + 2"
    checks = ["assert double(2) == 4", "assert double(3) == 6", "assert double(5) == 10"]

    report, _ = await run(code, checks)

    assert (report.outcome, report.passed, report.total) == ("failed", 1, 3)
    assert report.summary == "It failed 2 of 3 checks: `assert double(3) == 6` (AssertionError)."
    assert report.failure == "assert double(3) == 6 (AssertionError)"


async def test_a_check_that_raises_counts_as_failed_with_its_error() -> None:
    report, _ = await run("def f(): return 1", ["assert f() == 1", "assert g() == 1"])

    assert (report.outcome, report.passed) == ("failed", 1)
    assert "NameError: name 'g' is not defined" in report.failure


async def test_code_with_a_syntax_error_is_an_error_with_its_last_line() -> None:
    report, _ = await run("def f(:\n    return 1", ["assert f() == 1"])

    assert (report.outcome, report.passed, report.total) == ("error", 0, 1)
    assert report.failure == "SyntaxError: invalid syntax (line 1)"
    assert report.summary == "It stopped with an error: SyntaxError: invalid syntax (line 1)."


async def test_code_that_raises_when_loaded_is_an_error() -> None:
    report, _ = await run("x = undefined_name + 1", ["assert x == 1"])

    assert report.outcome == "error"
    assert report.failure == "NameError: name 'undefined_name' is not defined"


async def test_without_checks_code_that_runs_passes_and_its_output_comes_back() -> None:
    code = "import math\nif __name__ == '__main__':\n    print('héllo', math.factorial(5))"

    report, _ = await run(code)

    assert (report.outcome, report.total) == ("passed", 0)
    assert report.stdout == "héllo 120\n"
    assert report.summary == "I ran it and it finished without errors."


async def test_with_checks_a_main_block_does_not_run() -> None:
    code = "def f(): return 1\nif __name__ == '__main__':\n    input('Number? ')"

    report, _ = await run(code, ["assert f() == 1"])

    assert report.outcome == "passed"


async def test_input_does_not_hang() -> None:
    report, elapsed = await run("name = input('Name? ')")

    assert report.outcome == "error"
    assert report.failure == "EOFError: EOF when reading a line"
    assert elapsed < LIMITS.wall_s


async def test_files_in_its_own_folder_are_fine_and_the_folder_is_removed_afterwards() -> None:
    code = (
        "import os, pathlib, tempfile\n"
        "pathlib.Path('notes/a').mkdir(parents=True)\n"
        "pathlib.Path('notes/a/x.txt').write_text('hi')\n"
        "with tempfile.NamedTemporaryFile() as f: f.write(b'x')\n"
        "print(os.getcwd())"
    )

    report, _ = await run(code)

    assert report.outcome == "passed"
    folder = report.stdout.strip()
    assert os.path.basename(folder).startswith("confab-sandbox-")
    assert gone(folder)


# Hostile programs


async def test_an_endless_loop_is_stopped_at_its_cpu_or_time_limit() -> None:
    report, elapsed = await run("while True:\n    pass")

    assert report.outcome in ("cpu", "timeout")
    assert report.summary in (
        "It used more than 1 second of CPU time and was stopped.",
        "It ran past its 2-second time limit and was stopped.",
    )
    assert elapsed < LIMITS.wall_s + SLACK_S


async def test_sleeping_forever_is_stopped_by_the_wall_clock() -> None:
    report, elapsed = await run("import time\ntime.sleep(100)")

    assert report.outcome == "timeout"
    assert report.summary == "It ran past its 2-second time limit and was stopped."
    assert elapsed < LIMITS.wall_s + SLACK_S


async def test_a_fork_bomb_is_stopped_and_leaves_no_process_behind() -> None:
    before = sandbox_processes()

    report, elapsed = await run("import os\nwhile True:\n    os.fork()")

    assert report.outcome in ("processes", "cpu", "timeout")
    assert one_sentence(report)
    assert elapsed < LIMITS.wall_s + SLACK_S
    assert sandbox_processes() <= before
    after, _ = await run("def f(): return 1", ["assert f() == 1"])
    assert after.outcome == "passed"


async def test_processes_it_leaves_running_or_detached_do_not_outlive_the_run() -> None:
    before = sandbox_processes()
    code = (
        "import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(100)\nprint('done')"
    )

    report, elapsed = await run(code)

    assert (report.outcome, report.stdout) == ("passed", "done\n")
    assert elapsed < LIMITS.wall_s
    assert sandbox_processes() <= before


async def test_too_many_threads_is_stopped() -> None:
    code = (
        "import threading, time\n"
        "for _ in range(100):\n"
        "    threading.Thread(target=time.sleep, args=(1,)).start()"
    )

    report, _ = await run(code)

    assert report.outcome == "processes"
    assert report.summary == "It tried to start more processes than allowed."


async def test_printing_a_gigabyte_is_stopped_quickly() -> None:
    report, elapsed = await run("while True:\n    print('x' * 100_000)")

    assert report.outcome == "output"
    assert report.summary == "It printed more than 64 KB and was stopped."
    assert len(report.stdout) == LIMITS.output_bytes
    assert elapsed < 1.5


async def test_printing_one_huge_string_is_stopped() -> None:
    report, elapsed = await run("print('x' * 10**9)")

    assert report.outcome in ("memory", "output")
    assert elapsed < LIMITS.wall_s


async def test_a_memory_hog_is_stopped() -> None:
    report, _ = await run("b = bytearray(2 * 10**9)")

    assert report.outcome == "memory"
    assert report.summary == "It needed more than 256 MB of memory and was stopped."


async def test_a_huge_file_is_stopped_at_the_file_size_limit() -> None:
    report, _ = await run("open('big', 'wb').write(b'x' * 2_000_000)")

    assert report.outcome == "write"
    assert report.summary == "It wrote a file bigger than 976 KB and was stopped."


@pytest.mark.parametrize("where", ["absolute", "relative"])
async def test_writing_outside_its_folder_is_stopped_and_nothing_is_written(where: str) -> None:
    escape = Path(tempfile.gettempdir()) / f"confab-sandbox-escape-{secrets.token_hex(4)}"
    path = str(escape) if where == "absolute" else f"../{escape.name}"

    report, _ = await run(f"open({path!r}, 'w').write('escaped')")

    assert report.outcome == "write"
    assert report.summary == "It tried to write outside its working folder."
    assert gone(escape)


@pytest.mark.parametrize(
    "code",
    [
        "open('/etc/passwd', 'a')",
        "import os\nos.remove('/etc/hostname')",
        "import shutil\nshutil.rmtree('/usr/share')",
        "import os\nos.symlink('/etc/passwd', 'link')\nopen('link', 'a')",
    ],
)
async def test_changing_system_files_is_stopped(code: str) -> None:
    report, _ = await run(code)

    assert report.outcome == "write"


async def test_reading_the_bots_files_is_refused() -> None:
    report, _ = await run(f"print(open({str(Path.cwd() / 'pyproject.toml')!r}).read())")

    assert report.outcome == "error"
    assert report.failure.startswith("PermissionError: the sandbox may not read")
    assert report.stdout == ""


async def test_the_bots_environment_is_not_visible(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONFAB_TEST_SECRET", "s3cret")

    report, _ = await run(
        "import os\nprint(sorted(os.environ))",
        ["assert 'CONFAB_TEST_SECRET' not in os.environ"],
    )

    assert report.outcome == "passed"
    assert "CONFAB_TEST_SECRET" not in report.stdout


async def test_connecting_to_the_network_does_not_succeed() -> None:
    code = (
        "import socket\n"
        "s = socket.socket()\n"
        "s.settimeout(1)\n"
        "s.connect(('127.0.0.1', 5432))\n"
        "print('connected')"
    )

    report, _ = await run(code)

    assert report.outcome == "network"
    assert report.summary == "It tried to use the network, which is not allowed."
    assert "connected" not in report.stdout


@pytest.mark.parametrize(
    "code",
    [
        "import subprocess\nsubprocess.run(['touch', '/tmp/confab-sandbox-program'])",
        "import os\nos.system('touch /tmp/confab-sandbox-program')",
    ],
)
async def test_starting_another_program_is_stopped(code: str) -> None:
    report, _ = await run(code)

    assert report.outcome == "processes"
    assert report.summary == "It tried to start another program, which is not allowed."
    assert gone("/tmp/confab-sandbox-program")


async def test_ctypes_is_refused() -> None:
    report, _ = await run("import ctypes\nctypes.CDLL(None).getpid()")

    assert report.outcome == "error"
    assert "ctypes is not available" in report.failure


async def test_forged_results_do_not_change_the_report() -> None:
    fake = '{"kind": "result", "outcome": "ran", "passed": 1, "failure": ""}'
    code = (
        "import os\n"
        f"print({fake!r})\n"
        "for fd in range(3, 256):\n"
        "    try:\n"
        f"        os.write(fd, {(fake + chr(10)).encode()!r})\n"
        "    except OSError:\n"
        "        pass\n"
        "def answer(): return 41"
    )

    report, _ = await run(code, ["assert answer() == 42"])

    assert (report.outcome, report.passed, report.total) == ("failed", 0, 1)


async def test_a_cancelled_run_leaves_no_process_or_folder_behind() -> None:
    before, folders = (
        sandbox_processes(),
        set(glob.glob(f"{tempfile.gettempdir()}/confab-sandbox-*")),
    )
    task = asyncio.create_task(run("import time\ntime.sleep(100)"))
    await asyncio.sleep(0.5)

    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    for _ in range(30):
        if sandbox_processes() <= before:
            break
        await asyncio.sleep(0.1)
    assert sandbox_processes() <= before
    assert set(glob.glob(f"{tempfile.gettempdir()}/confab-sandbox-*")) <= folders


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        SandboxLimits(wall_s=0)
