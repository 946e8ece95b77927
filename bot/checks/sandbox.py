"""Run an untrusted candidate program against checks, in a child process with limits.

For the ``!code write|fix`` skill, which has a small model write several candidates and shows
one only after it has run against tests. ``run_checks`` starts ``sandbox_child.py`` under
``python -I -S -B`` in a fresh, empty temporary folder (its cwd, HOME and TMPDIR, removed
afterwards), with stdin on /dev/null and an environment of PATH, HOME, TMPDIR and LANG only.

What it protects against, and how:

- Running forever: RLIMIT_CPU, and a wall-clock timeout after which every process goes.
- Memory: RLIMIT_AS. Output: stdout and stderr are read as they come; past the limit, stop.
- Fork bombs: as root, the program runs as nobody (65534), where RLIMIT_NPROC holds; the child
  side is a subreaper, so every process the program starts, detached or not, is killed and
  reaped at the end. ``no_new_privs`` keeps setuid binaries from giving privileges back.
- Other programs: refused by an audit hook (os.exec*, subprocess, os.system, posix_spawn)
  and by a seccomp filter on execve/execveat and mknod that ctypes cannot get around.
- Writes outside the folder: the audit hook stops any open for writing, remove, rename,
  mkdir, chmod, link or shutil operation on a path outside it; RLIMIT_FSIZE caps file sizes.
  Reads outside it are refused too, except the Python installation and a few system files,
  so the bot's own files cannot be printed back into the chat.
- Network: connect, bind, sendto and name look-ups stop the program (the hook); as root the
  child also enters a new network namespace first, where nothing outside can be reached.
- Secrets: nothing of the bot's environment is inherited; the result pipe is moved to a high
  fd, and lines on it count only with the run's random nonce.

What it does NOT protect against:

- The audit hook is Python code in the same process as the candidate; ctypes is refused
  through it, but a program that finds another way to write raw memory can remove it. What
  remains then is the kernel's part: nobody's file permissions, the rlimits, seccomp and the
  network namespace. Path checks also race with a program that swaps symlinks meanwhile.
- Without root (a developer's machine) there is no user switch, no network namespace, and
  the program may signal and ptrace other processes of the bot's user.
- Concurrent runs share the user nobody and its process limit, and may signal each other;
  run candidates one after another.
- The verdict is only as honest as the candidate: a program that digs the nonce out of the
  child side's frames can forge its own report, and one that defines ``__eq__`` to say yes
  passes any ``==`` check. This keeps the machine safe; it does not prove the code right.
- No limit on disk space beyond one file's size, nor on the time a check takes on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import os
import secrets
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from confab.bot.errors import ConfabError

log = logging.getLogger(__name__)

Outcome = Literal[
    "passed", "failed", "error", "timeout", "cpu", "memory", "output", "processes", "write",
    "network",
]  # fmt: skip

SANDBOX_UID = 65534  # nobody
SANDBOX_GID = 65534  # nogroup
_CHILD = Path(__file__).with_name("sandbox_child.py")
_GRACE_S = 2.0  # for the child side to kill and reap after being told to stop
_LINE_CAP = 8192  # real report lines are far shorter; longer ones are junk
# Why the child stopped a run: the outcome and the sentence a chat user reads.
_STOPS: dict[str, tuple[Outcome, str]] = {
    "outside": ("write", "It tried to write outside its working folder."),
    "file-size": ("write", "It wrote a file bigger than {file} and was stopped."),
    "program": ("processes", "It tried to start another program, which is not allowed."),
    "processes": ("processes", "It tried to start more processes than allowed."),
    "memory": ("memory", "It needed more than {memory} of memory and was stopped."),
    "network": ("network", "It tried to use the network, which is not allowed."),
    # Limits the parent side sees for itself.
    "output": ("output", "It printed more than {output} and was stopped."),
    "timeout": ("timeout", "It ran past its {wall}-second time limit and was stopped."),
    "cpu": ("cpu", "It used more than {cpu} of CPU time and was stopped."),
}


class SandboxError(ConfabError):
    """The sandbox itself could not start; the candidate was not run."""


@dataclass(frozen=True, slots=True)
class SandboxLimits:
    """What one run may use. ``processes`` counts processes and threads of the sandbox user;
    ``cpu_s`` is rounded up to whole seconds (the kernel's granularity)."""

    cpu_s: float = 2.0
    wall_s: float = 5.0
    memory_mb: int = 512
    output_bytes: int = 65536
    processes: int = 16
    file_bytes: int = 1_000_000

    def __post_init__(self) -> None:
        if min(self.cpu_s, self.wall_s, self.memory_mb, self.output_bytes, self.processes) <= 0:
            raise ValueError(f"sandbox limits must be positive: {self}")


@dataclass(frozen=True, slots=True)
class CheckReport:
    """How a candidate did: ``summary`` is one sentence for the chat user, ``failure`` the
    first failing check or the error's last line ('' if none), ``stdout`` its output, cut at
    the output limit. ``network_isolated`` says whether a network namespace held it."""

    passed: int
    total: int
    outcome: Outcome
    summary: str
    failure: str
    stdout: str
    network_isolated: bool = False


DEFAULT_LIMITS = SandboxLimits()


async def run_checks(
    code: str, checks: Sequence[str], limits: SandboxLimits = DEFAULT_LIMITS
) -> CheckReport:
    """Run ``code`` (a module's source), then each of ``checks`` in its namespace, sandboxed.

    Without checks the code runs as ``__main__`` and passes if it ends without an error; with
    checks it runs as a module named ``candidate``, so a ``__main__`` block stays out.
    """
    folder = await asyncio.to_thread(tempfile.mkdtemp, prefix="confab-sandbox-")
    try:
        report = await _run(folder, code, list(checks), limits)
    finally:
        await asyncio.to_thread(shutil.rmtree, folder, True)
    log.debug("sandbox: %s %d/%d %s", report.outcome, report.passed, report.total, report.failure)
    return report


async def _run(folder: str, code: str, checks: list[str], limits: SandboxLimits) -> CheckReport:
    nonce = secrets.token_hex(16)
    report_r, report_w = os.pipe()
    try:
        job: dict[str, object] = {"code": code, "checks": checks, "limits": asdict(limits)}
        job["nonce"] = nonce
        job_path = await asyncio.to_thread(_write_job, folder, job, report_w)
        process = await asyncio.create_subprocess_exec(
            # -I: isolated (no PYTHON* variables, user site or script folder on sys.path).
            # -S: no site-packages, so candidates see the standard library only, never the
            # bot's virtualenv or its .pth files. -B: no .pyc writes outside the folder.
            *(sys.executable, "-I", "-S", "-B", str(_CHILD), job_path),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            cwd=folder,
            env={"PATH": "/usr/bin:/bin", "HOME": folder, "TMPDIR": folder, "LANG": "C.UTF-8"},
            pass_fds=(report_w,),
            start_new_session=True,
        )
    except OSError as error:
        os.close(report_r)
        raise SandboxError("I couldn't start a sandbox to test the code.", str(error)) from error
    finally:
        os.close(report_w)
    output, exceeded, timed_out, lines = await _watch(process, report_r, nonce, limits)
    return _judge(lines, output, exceeded, timed_out, limits, len(checks))


def _write_job(folder: str, job: dict[str, object], report_fd: int) -> str:
    """Write the job file for the child side, which deletes it before the program runs."""
    as_root = os.geteuid() == 0
    job |= {"report_fd": report_fd, "uid": SANDBOX_UID if as_root else None, "gid": SANDBOX_GID}
    path = os.path.join(folder, ".job.json")
    # Readable by the bot's user alone, so the nonce stays out of the program's reach.
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as file:
        json.dump(job, file)
    if as_root:
        os.chown(folder, SANDBOX_UID, SANDBOX_GID)
    return path


async def _watch(
    process: asyncio.subprocess.Process, report_r: int, nonce: str, limits: SandboxLimits
) -> tuple[bytes, bool, bool, list[dict[str, object]]]:
    """Read output and report lines until the child side is gone; stop it at the limits."""
    assert process.stdout is not None

    def stop() -> None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)  # the child side kills and reaps all the rest

    drain = asyncio.create_task(_drain(process.stdout, limits.output_bytes, stop))
    report = asyncio.create_task(_read_report(report_r, nonce))
    timed_out = False
    try:
        done, _ = await asyncio.wait({drain}, timeout=limits.wall_s)
        if not done:
            timed_out = True
            stop()
        done, _ = await asyncio.wait({drain}, timeout=_GRACE_S)
        if not done:  # the child side itself is stuck: the whole session goes
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
        await asyncio.wait({drain, report}, timeout=_GRACE_S)
        await process.wait()
    finally:
        if process.returncode is None:
            stop()
        for task in (drain, report):
            task.cancel()
    output, exceeded = drain.result() if not drain.cancelled() else (b"", False)
    lines = report.result() if not report.cancelled() else []
    return output, exceeded, timed_out, lines


async def _drain(
    stream: asyncio.StreamReader, cap: int, over: Callable[[], None]
) -> tuple[bytes, bool]:
    """Keep the first ``cap`` bytes; past them call ``over`` once and discard the rest."""
    kept, exceeded = bytearray(), False
    while chunk := await stream.read(65536):
        if not exceeded:
            kept += chunk
            if len(kept) > cap:
                exceeded = True
                over()
    return bytes(kept[:cap]), exceeded


async def _read_report(fd: int, nonce: str) -> list[dict[str, object]]:
    """The JSON lines on the report pipe that carry this run's nonce, until end of file."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    pipe = os.fdopen(fd, "rb", buffering=0)
    try:
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), pipe
        )
    except BaseException:
        pipe.close()
        raise
    lines, partial = [], b""
    try:
        while chunk := await reader.read(65536):
            *complete, partial = (partial + chunk).split(b"\n")
            partial = partial if len(partial) <= _LINE_CAP else b""
            lines += [item for line in complete if (item := _parse(line, nonce)) is not None]
    finally:
        transport.close()
    return lines


def _parse(line: bytes, nonce: str) -> dict[str, object] | None:
    if not line or len(line) > _LINE_CAP:
        return None
    try:
        item = json.loads(line)
    except ValueError:
        return None
    if not isinstance(item, dict):
        return None
    if not hmac.compare_digest(str(item.get("nonce")).encode(), nonce.encode()):
        return None
    return item


def _judge(
    lines: list[dict[str, object]],
    output: bytes,
    exceeded: bool,
    timed_out: bool,
    limits: SandboxLimits,
    total: int,
) -> CheckReport:
    """Turn what came back into one report; a broken rule outranks a limit, a limit a result."""

    def first(kind: str) -> dict[str, object]:
        return next((line for line in lines if line.get("kind") == kind), {})

    stopped, result, end = first("stopped"), first("result"), first("end")
    isolated = first("start").get("network_isolated") is True
    stdout = output.decode("utf-8", "replace")

    def report(outcome: Outcome, summary: str, passed: int = 0, failure: str = "") -> CheckReport:
        return CheckReport(passed, total, outcome, summary, failure, stdout, isolated)

    why = str(stopped.get("why"))
    if why not in _STOPS:
        why = "output" if exceeded else "timeout" if timed_out else "cpu" if end.get("cpu") else ""
    if why:
        return report(_STOPS[why][0], _say(why, limits), failure=_text(stopped, "failure"))
    failure = _text(result, "failure")
    if result.get("outcome") == "error":
        sentence = failure[:120].rstrip(".")
        return report("error", f"It stopped with an error: {sentence}.", failure=failure)
    if result.get("outcome") != "ran":
        why = f"signal {end['signal']}" if end.get("signal") else "no report"
        return report("error", "It stopped before it could report a result.", failure=why)
    count = result.get("passed")
    passed = min(max(count, 0), total) if isinstance(count, int) else 0
    if passed == total:
        if total == 0:
            return report("passed", "I ran it and it finished without errors.")
        checks = {1: "its one check", 2: "both checks"}.get(total, f"all {total} checks")
        return report("passed", f"I ran it and it passed {checks}.", passed)
    named = f"`{_text(result, 'check')}` ({_text(result, 'error')})"
    summary = f"It failed {total - passed} of {total} {_plural(total, 'check')}: {named}."
    return report("failed", summary, passed, failure)


def _say(why: str, limits: SandboxLimits) -> str:
    return _STOPS[why][1].format(
        file=_size(limits.file_bytes),
        memory=f"{limits.memory_mb} MB",
        output=_size(limits.output_bytes),
        wall=f"{limits.wall_s:g}",
        cpu=f"{limits.cpu_s:g} {_plural(limits.cpu_s, 'second')}",
    )


def _text(item: dict[str, object], key: str) -> str:
    value = item.get(key)
    return value[:300] if isinstance(value, str) else ""


def _plural(count: float, word: str) -> str:
    return word if count == 1 else word + "s"


def _size(count: int) -> str:
    if count >= 1024 * 1024:
        return f"{count / (1024 * 1024):g} MB"
    return f"{count // 1024} KB" if count >= 1024 else f"{count} bytes"
