"""The child side of ``confab.bot.checks.sandbox``, run as ``python -I -S -B sandbox_child.py JOB``.

Never imported by the bot. It starts as the bot's own user, reads and deletes the job file, and
forks the process that runs the candidate program; it then stays behind as that process's
subreaper, so it can kill and reap every process the program starts, however they detach.
Results go to the parent as JSON lines carrying the job's nonce, on a pipe of their own.
Standard library only: ``-S`` leaves site-packages off the path.
"""

from __future__ import annotations

import builtins
import contextlib
import ctypes
import errno
import fcntl
import json
import math
import os
import resource
import signal
import struct
import sys
from types import FrameType
from typing import Any, NoReturn

_CLONE_NEWNET = 0x40000000
_PR_SET_PDEATHSIG = 1
_PR_SET_SECCOMP = 22
_PR_SET_CHILD_SUBREAPER = 36
_PR_SET_NO_NEW_PRIVS = 38
_SECCOMP_MODE_FILTER = 2
# Refused by seccomp with EPERM however Python reaches them (ctypes included): starting another
# program, and mknod, which no audit event reports. Keyed by the kernel's AUDIT_ARCH value.
_ARCHES = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
_DENIED_SYSCALLS = {0xC000003E: (59, 322, 133, 259), 0xC00000B7: (221, 281, 33)}
# The report pipe moves up here, away from the low numbers a program pokes at first.
_REPORT_FD_FLOOR = 100
_OPEN_FILES = 256
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC
# Audit events that change the file system, with the positions of the paths they touch.
_WRITE_EVENTS: dict[str, tuple[int, ...]] = {
    "os.remove": (0,), "os.rename": (0, 1), "os.mkdir": (0,), "os.rmdir": (0,),
    "os.symlink": (1,), "os.link": (0, 1), "os.truncate": (0,), "os.chmod": (0,),
    "os.chown": (0,), "os.utime": (0,), "os.chflags": (0,), "os.lchflags": (0,),
    "os.setxattr": (0,), "os.removexattr": (0,), "shutil.rmtree": (0,),
    "shutil.copyfile": (1,), "shutil.copymode": (1,), "shutil.copystat": (1,),
    "shutil.copytree": (1,), "shutil.move": (0, 1), "shutil.chown": (0,),
    "shutil.unpack_archive": (1,),
}  # fmt: skip
_PROGRAM_EVENTS = {"os.exec", "os.posix_spawn", "os.spawn", "os.system", "subprocess.Popen"}
_NETWORK_EVENTS = {
    "socket.connect", "socket.bind", "socket.sendto", "socket.sendmsg", "socket.getaddrinfo",
    "socket.gethostbyname", "socket.gethostbyaddr",
}  # fmt: skip
# Outside the folder a program may read the Python installation and these, nothing else, so it
# cannot print the bot's configuration or anyone's files back into the chat.
_READABLE_FILES = {os.devnull, "/dev/zero", "/dev/urandom", "/dev/random", "/etc/localtime"}
_READABLE_TREES = ("/usr/lib/", "/usr/share/zoneinfo/", "/usr/share/mime/")


def _clip(text: str, size: int) -> str:
    return text if len(text) <= size else text[: size - 1] + "…"


def _describe(error: BaseException) -> str:
    if isinstance(error, SyntaxError):
        return f"SyntaxError: {error.msg} (line {error.lineno})"
    message = str(error)
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


def _exhausted(error: BaseException) -> str | None:
    """Which limit an exception means was hit, if any."""
    if isinstance(error, MemoryError):
        return "memory"
    if isinstance(error, OSError) and error.errno == errno.EFBIG:
        return "file-size"
    if isinstance(error, OSError) and error.errno == errno.EAGAIN:  # fork under RLIMIT_NPROC
        return "processes"
    if isinstance(error, RuntimeError) and "can't start new thread" in str(error):
        return "processes"
    return None


class _Report:
    """Writes result lines to the parent; each starts with a newline so junk can't glue on."""

    def __init__(self, fd: int, nonce: str) -> None:
        self._fd = fd
        self._nonce = nonce

    def send(self, **fields: object) -> None:
        line = json.dumps({"nonce": self._nonce, **fields})
        with contextlib.suppress(OSError):
            os.write(self._fd, b"\n" + line.encode() + b"\n")

    def hide(self) -> None:
        old, self._fd = self._fd, fcntl.fcntl(self._fd, fcntl.F_DUPFD_CLOEXEC, _REPORT_FD_FLOOR)
        os.close(old)

    def stop(self, why: str, failure: str) -> NoReturn:
        """End the run at once: a limit or a rule was broken, in this process or a fork."""
        with contextlib.suppress(Exception):
            sys.stdout.flush()
        self.send(kind="stopped", why=why, failure=_clip(failure, 300))
        os._exit(3)


class _Guard:
    """The audit hook: no writes outside the folder, no other programs, no network."""

    def __init__(
        self, folder: str, readable: tuple[str, ...], runner: int, report: _Report
    ) -> None:
        self._inside = folder + os.sep
        self._folder = folder
        self._readable = readable
        self._runner = runner
        self._report = report

    def __call__(self, event: str, args: tuple[Any, ...]) -> None:
        if event == "open":
            self._open(args[0], args[1], args[2])
        elif event in _WRITE_EVENTS:
            for at in _WRITE_EVENTS[event]:
                if not self._may_write(args[at]):
                    self._report.stop("outside", f"{event} {args[at]!r}")
        elif event in _PROGRAM_EVENTS:
            self._report.stop("program", f"{event} {args[0]!r}")
        elif event in _NETWORK_EVENTS:
            address = args[0] if event.startswith("socket.get") else args[1]
            self._report.stop("network", f"{event} {address!r}")
        elif event.startswith("ctypes."):
            raise PermissionError("ctypes is not available in the sandbox")
        elif event == "resource.setrlimit":
            raise PermissionError("the sandbox's limits cannot be changed")
        elif event == "os.killpg" or (event == "os.kill" and args[0] in (0, -1, self._runner)):
            raise PermissionError("the sandbox may only signal its own processes")

    def _open(self, path: object, mode: object, flags: object) -> None:
        if isinstance(path, int):
            return  # an fd the program already holds
        writing = (isinstance(flags, int) and flags & _WRITE_FLAGS) or (
            isinstance(mode, str) and any(c in mode for c in "wax+")
        )
        real = self._real(path)
        if writing:
            if not self._may_write(path):
                self._report.stop("outside", f"open {path!r} for writing")
        elif not self._is_inside(real) and (
            # A folder's fd outside would let dir_fd= calls write past every path check.
            os.path.isdir(real) or not (real in _READABLE_FILES or real.startswith(self._readable))
        ):
            raise PermissionError(f"the sandbox may not read {path!r}")

    def _may_write(self, path: object) -> bool:
        return (
            isinstance(path, int) or self._is_inside(real := self._real(path)) or real == os.devnull
        )

    def _is_inside(self, real: str) -> bool:
        return real == self._folder or real.startswith(self._inside)

    @staticmethod
    def _real(path: object) -> str:
        try:
            return os.path.realpath(os.fsdecode(path))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return "\0"  # not a path we understand: treated as outside


def _prctl(libc: ctypes.CDLL, option: int, value: int) -> bool:
    zero = ctypes.c_ulong(0)
    return bool(libc.prctl(option, ctypes.c_ulong(value), zero, zero, zero) == 0)


def _deny_syscalls(libc: ctypes.CDLL) -> None:
    """Install a seccomp filter refusing ``_DENIED_SYSCALLS`` and every foreign syscall ABI."""
    arch = _ARCHES.get(os.uname().machine)
    if arch is None:
        return  # the audit hook still refuses programs started through Python's own calls
    numbers = _DENIED_SYSCALLS[arch]
    load, equal, at_least, give = 0x20, 0x15, 0x35, 0x06
    allow, deny, count = 0x7FFF0000, 0x00050000 | errno.EPERM, len(numbers)
    program = [(load, 0, 0, 4), (equal, 1, 0, arch), (give, 0, 0, deny), (load, 0, 0, 0)]
    program.append((at_least, count + 1, 0, 0x40000000))  # x32 calls on x86_64
    program += [(equal, count - i, 0, number) for i, number in enumerate(numbers)]
    program += [(give, 0, 0, allow), (give, 0, 0, deny)]
    code = ctypes.create_string_buffer(b"".join(struct.pack("HBBI", *op) for op in program))

    class Filter(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    prog = Filter(len(program), ctypes.addressof(code))
    zero = ctypes.c_ulong(0)
    libc.prctl(
        _PR_SET_SECCOMP, ctypes.c_ulong(_SECCOMP_MODE_FILTER), ctypes.byref(prog), zero, zero
    )


def _tasks_of(uid: int) -> int:
    """Processes and threads the user runs now (what RLIMIT_NPROC counts)."""
    count = 0
    for name in os.listdir("/proc"):
        with contextlib.suppress(OSError, KeyError, ValueError, IndexError):
            with open(f"/proc/{name}/status") as file:
                status = dict(line.split(":", 1) for line in file if ":" in line)
            if int(status["Uid"].split()[0]) == uid:
                count += int(status["Threads"])
    return count


def _set_limits(limits: dict[str, Any], uid: int | None) -> None:
    cpu = max(1, math.ceil(limits["cpu_s"]))
    memory = limits["memory_mb"] * 1024 * 1024
    # Root ignores RLIMIT_NPROC, and it counts the user's processes machine-wide: as nobody the
    # count starts near zero; as an ordinary user it starts at what they already run.
    processes = limits["processes"] + (0 if uid is not None else _tasks_of(os.getuid()))
    for which, soft, hard in [
        (resource.RLIMIT_CORE, 0, 0),
        (resource.RLIMIT_CPU, cpu, cpu + 1),  # SIGXCPU at the limit, SIGKILL a second later
        (resource.RLIMIT_AS, memory, memory),
        (resource.RLIMIT_FSIZE, limits["file_bytes"], limits["file_bytes"]),
        (resource.RLIMIT_NOFILE, _OPEN_FILES, _OPEN_FILES),
        (resource.RLIMIT_NPROC, processes, processes),
    ]:
        resource.setrlimit(which, (soft, hard))


def _hold_import_path() -> dict[str, int]:
    """Open the import path's folders while still root (see ``_reach_import_path``)."""
    held = {}
    for entry in sys.path:
        with contextlib.suppress(OSError):
            held[entry] = os.open(entry, os.O_RDONLY | os.O_DIRECTORY)
    return held


def _reach_import_path(held: dict[str, int]) -> None:
    """Import through the held fds where nobody cannot reach the standard library itself.

    The bot's Python may live where nobody may not look (``/root/.pyenv``); a process's own
    ``/proc/self/fd/N`` reaches an open folder without passing through the folders above it.
    """
    moved = {}
    for at, entry in enumerate(sys.path):
        fd = held.pop(entry, None)
        if fd is not None and not os.access(entry, os.R_OK | os.X_OK):
            sys.path[at] = moved[entry + os.sep] = f"/proc/self/fd/{fd}/"
        elif fd is not None:
            os.close(fd)
    # Packages already imported (encodings, json, ...) find their submodules on __path__.
    for module in list(sys.modules.values()):
        path = getattr(module, "__path__", None)
        for old, new in moved.items():
            if isinstance(path, list):
                path[:] = [new + p[len(old) :] if p.startswith(old) else p for p in path]
    sys.path_importer_cache.clear()


def _run_program(code: str, checks: list[str], main: int) -> dict[str, object]:
    """Run the code, then each check in its namespace; what happened, for the parent."""
    # With checks, the functions are under test, so a ``__main__`` block (often input()) stays out.
    namespace: dict[str, Any] = {"__name__": "candidate" if checks else "__main__"}
    namespace["__builtins__"] = builtins
    try:
        exec(compile(code, "<candidate>", "exec"), namespace)
    except SystemExit as done:
        if done.code not in (None, 0):
            return {"outcome": "error", "failure": f"SystemExit: {done.code}"}
    except BaseException as error:
        if why := _exhausted(error):
            return {"outcome": "stopped", "why": why, "failure": _describe(error)}
        return {"outcome": "error", "failure": _clip(_describe(error), 300)}
    if os.getpid() != main:
        os._exit(0)  # a fork the program left running on: only the first process reports
    passed, failure, check_line, error_type = 0, "", "", ""
    for check in checks:
        try:
            exec(compile(check, "<check>", "exec"), namespace)
            passed += 1
        except BaseException as error:
            if why := _exhausted(error):
                return {"outcome": "stopped", "why": why, "failure": _describe(error)}
            if not failure:
                check_line = _clip(check.strip().splitlines()[0], 80)
                error_type = type(error).__name__
                failure = _clip(f"{check.strip()} ({_describe(error)})", 300)
        if os.getpid() != main:
            os._exit(0)
    return {
        "outcome": "ran",
        "passed": passed,
        "failure": failure,
        "check": check_line,
        "error": error_type,
    }


def _run_candidate(job: dict[str, Any], libc: ctypes.CDLL, report: _Report) -> NoReturn:
    for signum in (signal.SIGTERM, signal.SIGALRM):
        signal.signal(signum, signal.SIG_DFL)
    signal.alarm(0)
    uid, gid = job["uid"], job["gid"]
    _set_limits(job["limits"], uid)
    _prctl(libc, _PR_SET_NO_NEW_PRIVS, 1)  # no setuid binary can give privileges back
    readable = (os.path.realpath(sys.base_prefix) + os.sep, *_READABLE_TREES)
    if uid is not None:  # root: the program runs as nobody, where RLIMIT_NPROC holds
        held = _hold_import_path()
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)
        _reach_import_path(held)
    _deny_syscalls(libc)
    report.hide()
    main = os.getpid()
    sys.addaudithook(_Guard(os.path.realpath(os.getcwd()), readable, os.getppid(), report))
    result = _run_program(job["code"], job["checks"], main)
    if os.getpid() != main:
        os._exit(0)
    with contextlib.suppress(Exception):
        sys.stdout.flush()
    if result["outcome"] == "stopped":
        report.stop(str(result["why"]), str(result["failure"]))
    report.send(kind="result", **result)
    os._exit(0)


class _Stopper:
    """SIGTERM (from the parent), SIGALRM (a backstop) and parent death end the candidate."""

    def __init__(self) -> None:
        self.child: int | None = None
        self.requested = False

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True
        if self.child is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.child, signal.SIGKILL)


def _children(parent: int) -> list[int]:
    found = []
    for name in os.listdir("/proc"):
        with (
            contextlib.suppress(OSError, ValueError, IndexError),
            open(f"/proc/{name}/stat", "rb") as file,
        ):
            if int(file.read().rsplit(b")", 1)[1].split()[1]) == parent:
                found.append(int(name))
    return found


def _reap_all() -> None:
    """Kill and reap every process left; as subreaper, all of them end up our children."""
    me = os.getpid()
    while True:
        for pid in _children(me):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            return


def main() -> None:
    with open(sys.argv[1], "rb") as file:
        job = json.load(file)
    os.unlink(sys.argv[1])
    libc = ctypes.CDLL(None, use_errno=True)
    _prctl(libc, _PR_SET_CHILD_SUBREAPER, 1)
    _prctl(libc, _PR_SET_PDEATHSIG, signal.SIGTERM)
    report = _Report(job["report_fd"], job["nonce"])
    report.send(kind="start", network_isolated=libc.unshare(_CLONE_NEWNET) == 0)
    stopper = _Stopper()
    for signum in (signal.SIGTERM, signal.SIGALRM):
        signal.signal(signum, stopper)
    signal.alarm(math.ceil(job["limits"]["wall_s"]) + 5)
    child = os.fork()
    if child == 0:
        try:
            _run_candidate(job, libc, report)
        finally:
            os._exit(70)
    stopper.child = child
    if stopper.requested:
        stopper(signal.SIGTERM, None)
    while True:
        pid, status, usage = os.wait4(-1, 0)
        if pid == child:
            break
    _reap_all()
    killed = os.WTERMSIG(status) if os.WIFSIGNALED(status) else 0
    used = usage.ru_utime + usage.ru_stime
    cpu = killed == signal.SIGXCPU or (
        killed == signal.SIGKILL and not stopper.requested and used >= job["limits"]["cpu_s"] - 0.1
    )
    report.send(kind="end", signal=killed, cpu=cpu)


if __name__ == "__main__":
    main()
