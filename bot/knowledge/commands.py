"""``confab kb``: add, list, remove and search the knowledge base's documents from a shell."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from confab.bot.audit import changed_from_cli
from confab.bot.config import Config
from confab.bot.errors import ConfabError
from confab.bot.logs import status

KB_COMMANDS = ("kb",)


def add_kb_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    kb = commands.add_parser("kb", help="the knowledge base's documents")
    actions = kb.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = actions.add_parser(
        "add", parents=[common], help="add files or folders (Markdown, text, HTML, PDF)"
    )
    add.add_argument("paths", nargs="+", metavar="PATH", help="files, or folders to walk")
    add.add_argument(
        "--channel",
        action="append",
        metavar="PLATFORM:CHANNEL",
        help="answer only in this channel (repeatable; default: everywhere)",
    )
    actions.add_parser("list", parents=[common], help="the documents added")
    remove = actions.add_parser("remove", parents=[common], help="remove a document")
    remove.add_argument("name", metavar="NAME|PATH", help="its file name or path")
    search = actions.add_parser(
        "search", parents=[common], help="the best matches for a query (no model)"
    )
    search.add_argument("query", help="words to search for")
    search.add_argument(
        "--channel",
        metavar="PLATFORM:CHANNEL",
        help="search as if asked there: its history and the documents in its scope "
        "(default: every document, no history)",
    )
    search.add_argument("--limit", type=int, default=5, metavar="N", help="(default: 5)")


def run_kb_command(config: Config, args: argparse.Namespace, terminal: Any) -> int:
    return asyncio.run(_run(config, args, terminal))


async def _run(config: Config, args: argparse.Namespace, terminal: Any) -> int:
    from confab.bot.knowledge.base import KnowledgeBase
    from confab.storage.database import Database

    for name in [*(getattr(args, "channel", None) or [])] if args.action == "add" else []:
        _check_channel(name)
    if args.action == "search" and args.channel:
        _check_channel(args.channel)
    database = Database(config.bot.database_url)
    base = KnowledgeBase(database, config.knowledge)
    try:
        await database.upgrade()
        if args.action == "add":
            return await _add(base, config, [Path(p) for p in args.paths], args.channel, terminal)
        if args.action == "list":
            return await _list(base)
        if args.action == "remove":
            return await _remove(base, args.name)
        return await _search(base, args.query, args.channel, args.limit, terminal)
    finally:
        await base.close()
        await database.close()


def _check_channel(name: str) -> None:
    platform, _, channel = name.partition(":")
    if not platform or not channel:
        raise ConfabError(f"--channel {name!r}: give it as platform:channel, e.g. slack:C0123ABCD")


async def _add(
    base: Any, config: Config, paths: list[Path], channels: list[str] | None, terminal: Any
) -> int:
    """Each file in its own transaction: an interrupted run leaves whole documents only,
    and running it again skips those already added unchanged."""
    from confab.bot.knowledge.documents import DocumentRefused, documents_under, read_document

    limit = int(config.knowledge.max_file_mb * 1024 * 1024)
    files = list(documents_under(paths))
    counts = {"added": 0, "replaced": 0, "unchanged": 0, "refused": 0}
    progress = _progress(terminal, len(files))
    done = 0
    try:
        for path in files:
            try:
                document = await asyncio.to_thread(read_document, path, max_bytes=limit)
                added = await base.add(
                    document,
                    source=str(path.resolve()),
                    channels=channels,
                    added_by="confab kb add",
                )
            except DocumentRefused as error:
                counts["refused"] += 1
                _say(progress, f"refused {error.user_message}")
            else:
                counts[added.outcome] += 1
                if added.outcome != "unchanged":
                    _say(progress, f"{added.outcome} {path} ({added.document.chunks} passages)")
                    changed_from_cli(f"{added.outcome} document {path}")
                elif len(files) < 20:
                    _say(progress, f"unchanged {path}")
            done += 1
            if progress is not None:
                progress.advance(progress.task_ids[0])
    except (KeyboardInterrupt, asyncio.CancelledError):
        _say(
            progress,
            f"interrupted after {done} of {len(files)} files; every file added so far is "
            "complete: run the same command again to go on",
        )
        raise
    finally:
        if progress is not None:
            progress.stop()
    summary = ", ".join(f"{n} {what}" for what, n in counts.items() if n)
    print(f"{len(files)} files: {summary or 'nothing to do'}", file=sys.stderr)
    return 1 if counts["refused"] else 0


def _progress(terminal: Any, total: int) -> Any:
    """A progress bar on a terminal for more than a handful of files."""
    if terminal is None or total < 20:
        return None
    from rich.progress import Progress

    progress = Progress(console=terminal, transient=True)
    progress.add_task("adding documents", total=total)
    progress.start()
    return progress


def _say(progress: Any, line: str) -> None:
    if progress is not None:
        progress.console.print(line, markup=False, highlight=False)
    else:
        print(line, file=sys.stderr)


async def _list(base: Any) -> int:
    documents = await base.documents()
    if not documents:
        print("no documents: add some with `confab kb add PATH…`")
        return 0
    rows = [("NAME", "KIND", "PASSAGES", "SCOPE", "ADDED", "SOURCE")]
    for doc in documents:
        scope = "everywhere" if doc.channels is None else ",".join(doc.channels)
        added = f"{doc.added_at:%Y-%m-%d %H:%M}"
        rows.append((doc.name, doc.kind, str(doc.chunks), scope, added, doc.source))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print(
            "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + "  " + row[-1]
        )
    return 0


def _as_path(name: str) -> str | None:
    """The absolute path a name stands for, when it names a file here."""
    candidate = Path(name).expanduser()
    return str(candidate.resolve()) if candidate.exists() else None


async def _remove(base: Any, name: str) -> int:
    path = await asyncio.to_thread(_as_path, name)
    removed = await base.remove(path) if path else []
    removed = removed or await base.remove(name)
    if not removed:
        print(f"confab: no document named {name!r}; `confab kb list` shows them", file=sys.stderr)
        return 1
    for doc in removed:
        print(f"removed {doc.name} ({doc.source})")
        changed_from_cli(f"removed document {doc.source}")
    return 0


async def _search(base: Any, query: str, channel: str | None, limit: int, terminal: Any) -> int:
    from confab.bot.knowledge.passage import Where
    from confab.bot.knowledge.sources import source_of

    await base.load()
    with status("Loading the sentence model...", terminal):
        await base.embedder.encode(["warm up"])
    if channel:
        platform, _, name = channel.partition(":")
        found = await base.search(query, Where(platform, name), limit=limit)
    else:
        found = await base.search_documents(query, limit=limit)
    if not found:
        print("no matches")
        return 0
    for number, passage in enumerate(found, start=1):
        print(f"{number}. [{passage.similarity:.2f}] {await source_of(passage, None)}")
        print("   " + _one_line(passage.text))
    return 0


def _one_line(text: str, width: int = 300) -> str:
    flat = " / ".join(line.strip() for line in text.splitlines() if line.strip())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


__all__: Sequence[str] = ("KB_COMMANDS", "add_kb_commands", "run_kb_command")
