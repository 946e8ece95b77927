"""What ``confab model finetune`` shows while it trains: a progress bar on a terminal
(step, loss, time left), a line now and then otherwise."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

from confab.bot.lab.finetune import Progress

LINE_EVERY_S = 10.0  # without a terminal (a log file, CI), a line this often at most


def duration(seconds: float | None) -> str:
    """``1h02m``, ``3m05s``, ``42s``; ``?`` before there is an estimate."""
    if seconds is None:
        return "?"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def _loss(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


@contextlib.contextmanager
def progress_display(terminal: Any) -> Iterator[Callable[[Progress], None]]:
    """A callback for :func:`confab.bot.lab.finetune.finetune` that shows its progress."""
    if terminal is None:
        yield _plain_lines()
        return
    from rich.progress import BarColumn, TextColumn, TimeElapsedColumn
    from rich.progress import Progress as Bar

    columns = (
        TextColumn("step {task.completed}/{task.total}"),
        BarColumn(),
        TextColumn("loss {task.fields[loss]}"),
        TextColumn("ETA {task.fields[eta]}"),
        TimeElapsedColumn(),
    )
    with Bar(*columns, console=terminal, transient=False) as bar:
        task = bar.add_task("fine-tuning", total=None, loss="-", eta="?")

        def show(progress: Progress) -> None:
            if progress.note:
                bar.console.print(progress.note, highlight=False)
                return
            bar.update(
                task,
                completed=progress.step,
                total=progress.max_steps,
                loss=_loss(progress.loss),
                eta=duration(progress.eta_s),
            )

        yield show


def _plain_lines() -> Callable[[Progress], None]:
    last = 0.0

    def show(progress: Progress) -> None:
        nonlocal last
        if progress.note:
            print(progress.note, file=sys.stderr, flush=True)
            return
        now = time.monotonic()
        if now - last >= LINE_EVERY_S or progress.step == progress.max_steps:
            last = now
            print(
                f"step {progress.step}/{progress.max_steps} loss {_loss(progress.loss)} "
                f"ETA {duration(progress.eta_s)}",
                file=sys.stderr,
                flush=True,
            )

    return show
