"""The thread that loads the model and runs its forward passes.

A :class:`concurrent.futures.ThreadPoolExecutor` would do, but its threads are
joined when the interpreter exits: one forward pass that never returns (a
stuck kernel, a deadlocked library) would then keep the bot from ever shutting
down. This executor's one thread is a daemon, so the engine can abandon a hung
one for a fresh thread (see :class:`confab.bot.llm.engine.BatchEngine`) and the
process can still exit.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any, ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

_Call = tuple["Future[Any]", Callable[..., Any], tuple[Any, ...], dict[str, Any]]


class ModelThread(Executor):
    """Runs submitted calls one after another on a single daemon thread."""

    def __init__(self, name: str = "confab-model") -> None:
        self._name = name
        self._calls: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._shut_down = False

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        with self._lock:
            if self._shut_down:
                raise RuntimeError(f"{self._name}: cannot take calls after shutdown")
            future: Future[T] = Future()
            self._calls.put((future, fn, args, kwargs))
            if self._thread is None:  # started on first use, as a pool's threads are
                self._thread = threading.Thread(target=self._serve, name=self._name, daemon=True)
                self._thread.start()
            return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Take no more calls; the thread ends after the calls already queued
        (``cancel_futures`` drops those not started). A call that never returns
        keeps only this daemon thread, never the process."""
        with self._lock:
            if not self._shut_down:
                self._shut_down = True
                if cancel_futures:
                    self._cancel_queued()
                self._calls.put(None)
            thread = self._thread
        if wait and thread is not None and thread is not threading.current_thread():
            thread.join()

    def _cancel_queued(self) -> None:
        while True:
            try:
                call = self._calls.get_nowait()
            except queue.Empty:
                return
            if call is not None:
                call[0].cancel()

    def _serve(self) -> None:
        while (call := self._calls.get()) is not None:
            future, fn, args, kwargs = call
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = fn(*args, **kwargs)
            except BaseException as error:  # handed to whoever waits, as a pool does
                future.set_exception(error)
            else:
                future.set_result(result)
            del call, future, fn, args, kwargs  # hold nothing while waiting for the next


def worker_thread() -> ModelThread:
    """The one thread that loads the model and runs every forward pass."""
    return ModelThread()
