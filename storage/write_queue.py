"""The write queue: the hot path's reads and writes, in batches, on a thread of their own.

Every message costs a few small statements (mark the event, store the turn,
read the conversation back). Issued one by one through the async driver each
is a hand-off between threads and a trip through the ORM; here they queue up,
and one worker thread runs everything queued so far on one connection, in one
transaction (one commit for many messages), in the order submitted: a read
sees every write submitted before it. Results are handed back only once the
transaction committed.

A write's future resolves once its transaction committed. Connection failures
(the server restarting, a dead network) are retried with backoff until each
operation's deadline; then it fails with :class:`StorageUnavailable`. Any other
failure is confined to the operation that caused it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import random
import sqlite3
import threading
import time
from collections import ChainMap
from collections.abc import Callable, Iterator, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import create_engine, exc
from sqlalchemy.engine import URL, Connection, Engine

from confab.storage.errors import StorageUnavailable

log = logging.getLogger(__name__)

T = TypeVar("T")
BATCH_MAX = 256  # operations per round; a commit covers the writes among them
BACKOFF_S = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0)
CONNECT_TIMEOUT_S = 5
PG_CONNECT = {"keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 5}
STOP_RETRY_S = 5.0  # while closing, how long the database may still be waited for
SYNC_DRIVERS = {"sqlite+aiosqlite": "sqlite+pysqlite", "postgresql+asyncpg": "postgresql+psycopg"}


Facts = MutableMapping[Any, Any]
"""What operations learn that stays true once committed (conversation ids, names
recorded): readable by every operation, kept only when their transaction commits."""


@dataclass(eq=False, slots=True)
class _Operation(Generic[T]):
    run: Callable[[Connection, Facts], T]
    writes: bool
    deadline: float
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[T]
    quiet: bool = False  # a probe: giving up on it is its caller's news, not the log's


_STOP = object()
RETRYING = "write_queue:retrying"
"""In :data:`Facts`: True when this run repeats one whose connection failed, maybe
after its commit reached the database; an operation then checks before writing again."""
_Settled = tuple["_Operation[Any]", Any, BaseException | None]


# SQLite reports a missing table and a locked file alike as OperationalError.
SQLITE_TRANSIENT = ("locked", "busy", "unable to open", "disk i/o")


# PostgreSQL's deadlock_detected and serialization_failure: it aborted one of two
# transactions that waited on each other's rows (processes batching writes to
# the same conversations in different orders).
CONFLICT_STATES = ("40P01", "40001")


def is_conflict(error: BaseException) -> bool:
    """The database aborted this transaction to break a lock cycle: nothing was written."""
    return getattr(getattr(error, "orig", None), "sqlstate", None) in CONFLICT_STATES


def is_transient(error: BaseException) -> bool:
    """A failure of the connection or a lock wait, worth trying again later."""
    if isinstance(error, exc.DBAPIError):
        if error.connection_invalidated:
            return True
        if not isinstance(error, (exc.OperationalError, exc.InterfaceError)):
            return False
        if isinstance(error.orig, sqlite3.Error):
            return any(marker in str(error.orig).lower() for marker in SQLITE_TRANSIENT)
        return True  # PostgreSQL drivers: the connection, or the server going away
    return isinstance(error, OSError)  # refused or reset before the driver wrapped it


class WriteQueue:
    """Runs storage operations in submission order, batched, on one worker thread."""

    def __init__(
        self,
        url: URL,
        *,
        retry_s: float,
        configure: Callable[[Engine], None] | None = None,
    ) -> None:
        driver = f"{url.get_backend_name()}+{url.get_driver_name()}"
        sqlite = url.get_backend_name() == "sqlite"
        # PostgreSQL: give up on a silent host in seconds, and notice a dead peer on
        # an idle connection (keepalives) instead of blocking the worker on TCP.
        connect = {} if sqlite else {**PG_CONNECT, "connect_timeout": CONNECT_TIMEOUT_S}
        self.engine = create_engine(
            url.set(drivername=SYNC_DRIVERS.get(driver, driver)),
            connect_args=connect,
            pool_pre_ping=not sqlite,
            pool_size=1,
            max_overflow=0,
        )
        if configure is not None:
            configure(self.engine)
        self.retry_s = retry_s
        self.known: dict[Any, Any] = {}  # committed facts; see Facts
        self._queue: queue.SimpleQueue[_Operation[Any] | object] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._outage_since: float | None = None
        self._outages = 0
        self._conflict_since = 0.0
        self._connection: Connection | None = None  # the worker's own
        self._stop_requested = False
        self._closed = False
        self._settled: list[_Settled] = []  # the worker's, resolved after each batch

    @property
    def outage_since(self) -> float | None:
        """``time.monotonic()`` when the database stopped answering, while it has not
        answered since; None while it answers (or nothing has tried it yet)."""
        return self._outage_since

    @property
    def outages(self) -> int:
        """How many times the database became unreachable since the queue was made."""
        return self._outages

    def submit(
        self,
        run: Callable[[Connection, Facts], T],
        *,
        writes: bool,
        retry_s: float | None = None,
        quiet: bool = False,
    ) -> asyncio.Future[T]:
        """Queue ``run(connection, facts)``; the future resolves with its result.

        ``run`` may return an exception instance to fail its future without
        disturbing the other operations of the batch. A ``quiet`` one (a health
        probe) that fails for want of the database is not logged.
        """
        loop = asyncio.get_running_loop()
        if self._closed:
            closed: asyncio.Future[T] = loop.create_future()
            closed.set_exception(StorageUnavailable("the database is closed"))
            return closed
        deadline = time.monotonic() + (self.retry_s if retry_s is None else retry_s)
        operation = _Operation(run, writes, deadline, loop, loop.create_future(), quiet)
        self._ensure_worker()
        self._queue.put(operation)
        return operation.future

    async def barrier(self) -> None:
        """Wait until everything submitted before has been done."""
        await self.submit(lambda _connection, _staged: None, writes=False)

    def close(self, timeout: float = 30.0) -> None:
        """Finish what is queued (within ``timeout``), then stop the worker and the engine.
        Anything submitted afterwards fails at once with :class:`StorageUnavailable`."""
        with self._lock:
            self._closed = True
            thread = self._thread
        if thread is not None:
            self._queue.put(_STOP)
            thread.join(timeout)
            if thread.is_alive():
                log.error("the storage write queue did not finish within %.0f s", timeout)
        self.engine.dispose()

    # -- the worker thread -----------------------------------------------------

    def _ensure_worker(self) -> None:
        if self._thread is not None:
            return
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._work, name="confab-storage", daemon=True
                )
                self._thread.start()

    def _work(self) -> None:
        try:
            while not self._stop_requested:
                first = self._queue.get()
                if first is _STOP:
                    self._stop_requested = True
                    break
                batch: list[_Operation[Any]] = [first]  # type: ignore[list-item]
                batch += self._take_queued(BATCH_MAX - 1)
                self._run(batch)
                self._settle_all()
        finally:
            self._drop_connection()
            self._fail_the_rest()

    def _fail_the_rest(self) -> None:
        """What was submitted behind the stop: told, not left waiting for ever."""
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not _STOP:
                closed = StorageUnavailable("the database is closed")
                self._settled.append((item, None, closed))  # type: ignore[arg-type]
        self._settle_all()

    def _take_queued(self, at_most: int) -> list[_Operation[Any]]:
        taken: list[_Operation[Any]] = []
        while len(taken) < at_most and not self._stop_requested:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is _STOP:
                self._stop_requested = True
            else:
                taken.append(item)  # type: ignore[arg-type]
        return taken

    def _run(self, group: list[_Operation[Any]]) -> None:
        attempt = 0
        while group:
            # A caller that stopped waiting (a cut at shutdown) wants nothing done.
            group = [operation for operation in group if not operation.future.cancelled()]
            staged: dict[Any, Any] = {}
            facts = ChainMap(staged, self.known, {RETRYING: attempt > 0})
            try:
                writes = any(operation.writes for operation in group)
                with self._transaction(writes) as connection:
                    results = [operation.run(connection, facts) for operation in group]
            except Exception as error:
                if is_conflict(error):
                    if len(group) > 1:
                        # One operation per transaction holds one contested row at
                        # a time, so it cannot close a cycle again.
                        log.info("a storage batch met a lock conflict; running it op by op")
                        for operation in group:
                            self._run([operation])
                        return
                    group = self._wait_out(group, error, attempt, conflict=True)
                    attempt += 1
                    continue
                if is_transient(error):
                    # What queued meanwhile waits its turn here, in order, so each
                    # operation fails at its own deadline, not at the others'.
                    group = self._wait_out(group + self._take_queued(BATCH_MAX), error, attempt)
                    attempt += 1
                    continue
                if len(group) > 1:  # find the one at fault; the others go through
                    for operation in group:
                        self._run([operation])
                    return
                log.exception("storage operation failed")
                self._settled.append((group[0], None, error))
                return
            if self._outage_since is not None:
                log.warning(
                    "the database is back after %.1f s", time.monotonic() - self._outage_since
                )
                self._outage_since = None
            self._conflict_since = 0.0
            self.known.update(staged)
            for operation, result in zip(group, results, strict=True):
                if isinstance(result, BaseException):
                    self._settled.append((operation, None, result))
                else:
                    self._settled.append((operation, result, None))
            return

    @contextmanager
    def _transaction(self, writes: bool) -> Iterator[Connection]:
        """A transaction on the worker's connection, kept open between batches;
        after any failure the connection is dropped and the next one is fresh."""
        if self._connection is None:
            self._connection = self.engine.connect()
        connection = self._connection.execution_options(confab_write=writes)
        try:
            with connection.begin():
                yield connection
        except BaseException:
            self._drop_connection()
            raise

    def _drop_connection(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(Exception):
                self._connection.close()
            self._connection = None

    def _settle_all(self) -> None:
        """Resolve the batch's futures: one wake-up of each waiting event loop."""
        by_loop: dict[asyncio.AbstractEventLoop, list[_Settled]] = {}
        for one in self._settled:
            by_loop.setdefault(one[0].loop, []).append(one)
        self._settled = []
        for loop, settled in by_loop.items():
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting
                loop.call_soon_threadsafe(_resolve, settled)

    def _wait_out(
        self,
        group: list[_Operation[Any]],
        error: BaseException,
        attempt: int,
        *,
        conflict: bool = False,
    ) -> list[_Operation[Any]]:
        """Fail the operations past their deadline; sleep before the others' next try.

        A lock conflict is no outage: the server answered, so nothing is announced,
        and the pause is jittered so that the two sides do not meet again in step."""
        now = time.monotonic()
        if conflict:
            if attempt == 0 or not self._conflict_since:  # this group's first conflict
                self._conflict_since = now
            since = self._conflict_since
        elif self._outage_since is None:
            self._outage_since = since = now
            self._outages += 1
            log.warning("the database is unreachable (%s); retrying", _first_line(error))
        else:
            since = self._outage_since
        waiting = []
        for operation in group:
            if self._stop_requested:  # closing: a short last chance
                operation.deadline = min(operation.deadline, since + STOP_RETRY_S)
            if now >= operation.deadline:
                if not operation.quiet:
                    log.error(
                        "gave up on a storage %s after %.1f s %s",
                        "write" if operation.writes else "read",
                        now - since,
                        "of lock conflicts" if conflict else "without the database",
                    )
                self._settled.append((operation, None, StorageUnavailable(_first_line(error))))
            else:
                waiting.append(operation)
        self._settle_all()
        if waiting:
            pause = BACKOFF_S[min(attempt, len(BACKOFF_S) - 1)]
            if conflict:
                pause *= random.uniform(0.5, 1.5)
            time.sleep(min(pause, _left(waiting, now)))
        return waiting


def _left(operations: list[_Operation[Any]], now: float) -> float:
    return max(0.0, max(operation.deadline for operation in operations) - now)


def _first_line(error: BaseException) -> str:
    text = str(getattr(error, "orig", None) or error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _resolve(settled: list[_Settled]) -> None:
    for operation, result, error in settled:
        if operation.future.done():  # the caller gave up waiting
            continue
        if error is not None:
            operation.future.set_exception(error)
        else:
            operation.future.set_result(result)
