"""The console: a local REPL that is also the way to try everything without a platform.

Interactive (a terminal on both ends): prompt_toolkit input with history, replies
streamed and rendered as Markdown by rich. Scripted (stdin or stdout is not a
terminal): one message per input line, replies printed as plain text, notices
on stderr, so ``printf '!ping\\n' | confab console`` prints ``pong``.

As on Discord and Slack, the default channel ``dm`` addresses every line to the
bot; in any other channel a line is chatter (stored, not answered) unless it
mentions ``@<bot name>`` or is a command. Console-only commands: ``/as NAME``,
``/channel NAME``, ``/quit``; any other ``/word`` runs the skill ``word``.
"""

from __future__ import annotations

import asyncio
import io
import sys
import threading
from collections import OrderedDict
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from pydantic import BaseModel, ConfigDict, Field

from confab.bot.adapter import Adapter, AdapterContext, Capabilities, Limits, MessageHandler
from confab.bot.errors import Unsupported
from confab.bot.messages import Author, Message, SentMessage, typed_mention
from confab.bot.paths import data_dir
from confab.bot.textsplit import FENCE_LINE

DM_CHANNEL = "dm"
SHOWN_KEPT = 100  # messages whose text is kept for later edits
_EOF = None


def hard_line_breaks(text: str) -> str:
    """Markdown in which every line break shows, as it does on Discord and Slack.

    CommonMark joins the lines of a paragraph into one (a haiku would render
    on one line); two trailing spaces make a line break. Code blocks are left as
    they are.
    """
    lines = text.split("\n")
    fence = ""
    for index, line in enumerate(lines[:-1]):
        found = FENCE_LINE.match(line)
        if fence:
            marker = found["marker"] if found and not found["info"].strip() else ""
            if marker[:1] == fence[0] and len(marker) >= len(fence):
                fence = ""
            continue
        if found:
            fence = found["marker"]
        elif line.strip() and lines[index + 1].strip():
            lines[index] = line.rstrip() + "  "
    return "\n".join(lines)


class ConsoleConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user: str = Field("you", min_length=1, max_length=64)
    channel: str = Field(DM_CHANNEL, min_length=1, max_length=64)
    history_file: Path = Field(default_factory=lambda: data_dir() / "console_history")
    markdown: bool = True


class ConsoleAdapter(Adapter):
    """A terminal as a chat platform: one person (switchable), many channels."""

    platform = "console"
    config_model = ConsoleConfig
    capabilities = Capabilities(edit=True, threads=False, history=True, typing=False)
    limits = Limits(max_message_chars=None, min_edit_interval_s=0.0)

    def __init__(
        self,
        context: AdapterContext,
        *,
        stdin: TextIO | None = None,
        stdout: TextIO | None = None,
        stderr: TextIO | None = None,
        interactive: bool | None = None,
    ) -> None:
        super().__init__(context)
        config = context.config
        assert isinstance(config, ConsoleConfig)
        self.config = config
        self.user = config.user
        self.channel = config.channel
        if stdin is None and isinstance(sys.stdin, io.TextIOWrapper):
            # Bytes that are not UTF-8 become U+FFFD, not surrogates the database refuses.
            sys.stdin.reconfigure(errors="replace")
        self._in = stdin or sys.stdin
        self._out = stdout or sys.stdout
        self._err = stderr or sys.stderr
        self.interactive = (
            interactive if interactive is not None else self._in.isatty() and self._out.isatty()
        )
        self._mention = typed_mention(context.bot_name)
        self._shown: OrderedDict[str, str] = OrderedDict()  # the latest few, for edits
        self._sent_count = 0
        self._last_id: str | None = None
        self._at_line_start = True
        self._told_chatter: set[str] = set()
        self._live: Any = None
        self._rich: Any = None
        if self.interactive:
            from rich.console import Console

            self._rich = Console(file=self._out)

    # -- input -------------------------------------------------------------------

    async def run(self, handler: MessageHandler) -> None:
        lines = self._prompted_lines() if self.interactive else self._piped_lines()
        async for line in lines:
            if not await self.handle_line(line, handler):
                return

    async def _piped_lines(self) -> Any:
        # A daemon thread reads, so a blocked read never holds up shutdown.
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[str | None] = asyncio.Queue()

        def read() -> None:
            for line in self._in:
                loop.call_soon_threadsafe(queue.put_nowait, line)
            loop.call_soon_threadsafe(queue.put_nowait, _EOF)

        threading.Thread(target=read, name="console-stdin", daemon=True).start()
        while (line := await queue.get()) is not _EOF:
            yield line

    async def _prompted_lines(self) -> Any:
        from prompt_toolkit import PromptSession
        from prompt_toolkit.history import FileHistory, InMemoryHistory

        history_path = self.config.history_file.expanduser()
        try:
            history_path.parent.mkdir(parents=True, exist_ok=True)
            history: Any = FileHistory(str(history_path))
        except OSError:
            history = InMemoryHistory()
        session: Any = PromptSession(history=history)
        self._notice(
            f"Talking to {self.context.bot_name}. /help lists commands; "
            "/as NAME, /channel NAME switch who and where you are; /quit leaves."
        )
        while True:
            try:
                # Ctrl-C at the prompt is a key; leaving SIGINT alone keeps the app's
                # handler in place for Ctrl-C while an answer streams.
                yield await session.prompt_async(
                    f"[{self.channel}] {self.user}> ", handle_sigint=False
                )
            except (EOFError, KeyboardInterrupt):
                return

    async def handle_line(self, line: str, handler: MessageHandler) -> bool:
        """Act on one typed line; False when the person asked to quit."""
        line = line.rstrip("\r\n")
        if not line.strip():
            return True
        command: str | None = None
        args = ""
        if line.startswith("/"):
            parts = line[1:].split(maxsplit=1)
            if not parts or line[1].isspace():
                self._notice("Type /COMMAND, e.g. /help; /quit leaves.")
                return True
            word, rest = parts[0].lower(), parts[1].strip() if len(parts) > 1 else ""
            if word in ("quit", "exit"):
                return False
            if word == "as":
                self._switch_user(rest)
                return True
            if word == "channel":
                self._switch_channel(rest)
                return True
            command, args = word, rest
        message = self._message(line, command, args)
        if not message.addressed and command is None and self.channel not in self._told_chatter:
            self._told_chatter.add(self.channel)
            self._notice(
                f"(#{self.channel} is a shared channel: lines are kept as chatter. "
                f"Mention @{self.context.bot_name} or use a command to ask me.)"
            )
        try:
            await handler(message, self)
        finally:
            self._end_reply()
        return True

    def _message(self, line: str, command: str | None, args: str) -> Message:
        text = line
        addressed = self.channel == DM_CHANNEL
        if self._mention.search(line):
            addressed = True
            text = self._mention.sub("", line).strip()
        return Message(
            platform=self.platform,
            channel=self.channel,
            author=Author(self.user, self.user),
            text=text,
            addressed=addressed,
            direct=self.channel == DM_CHANNEL,
            id=f"console-{datetime.now().timestamp():.6f}",
            command=command,
            args=args,
            command_prefix="/" if command else "",
        )

    def _switch_user(self, name: str) -> None:
        if not name:
            self._notice(f"You are {self.user}. Usage: /as NAME")
            return
        self.user = name
        self._notice(f"Now speaking as {name}.")

    def _switch_channel(self, name: str) -> None:
        name = name.lstrip("#")
        if not name:
            self._notice(f"You are in #{self.channel}. Usage: /channel NAME")
            return
        self.channel = name
        self._notice(f"Now in #{name}.")

    # -- output primitives ----------------------------------------------------

    async def send(
        self, channel: str, text: str, *, thread: str | None = None, reply_to: str | None = None
    ) -> SentMessage:
        if thread is not None:
            raise Unsupported("The console has no threads.", f"send to thread {thread!r}")
        self._sent_count += 1
        sent = SentMessage(id=f"out-{self._sent_count}", channel=channel, thread=thread)
        if self.interactive:
            self._start_live(channel, text)
        else:
            if not self._at_line_start:
                self._write("\n")
            self._write(text)
        self._shown[sent.id] = text
        if len(self._shown) > SHOWN_KEPT:
            self._shown.popitem(last=False)
        self._last_id = sent.id
        return sent

    async def edit(self, sent: SentMessage, text: str) -> None:
        previous = self._shown.get(sent.id)
        if previous is None:
            raise KeyError(f"unknown message {sent.id}")
        self._shown[sent.id] = text
        if self.interactive and self._live is not None and sent.id == self._last_id:
            self._live.update(self._renderable(text))
        elif self.interactive:
            self._start_live(sent.channel, text)
        elif sent.id == self._last_id and text.startswith(previous):
            self._write(text[len(previous) :])
        else:
            self._write(("" if self._at_line_start else "\n") + text)

    def shown(self, sent: SentMessage) -> str:
        """The text the terminal currently shows for ``sent``."""
        return self._shown[sent.id]

    async def history(
        self,
        channel: str,
        *,
        thread: str | None = None,
        since: datetime | None = None,
        limit: int = 100,
    ) -> list[Message]:
        found = await self.context.channel_log.messages(
            self.platform, channel, thread=thread, since=since, limit=limit
        )
        if channel != DM_CHANNEL:
            return found
        return [replace(message, direct=True) for message in found]

    # -- rendering --------------------------------------------------------------

    def _write(self, text: str) -> None:
        if not text:
            return
        self._out.write(text)
        self._out.flush()
        self._at_line_start = text.endswith("\n")

    def _renderable(self, text: str) -> Any:
        from rich.markdown import Markdown
        from rich.text import Text

        return Markdown(hard_line_breaks(text)) if self.config.markdown else Text(text)

    def _start_live(self, channel: str, text: str) -> None:
        from rich.live import Live

        self._stop_live()
        where = "" if channel == DM_CHANNEL else f" in #{channel}"
        self._rich.print(f"[bold cyan]{self.context.bot_name}[/]{where}:")
        self._live = Live(
            self._renderable(text),
            console=self._rich,
            refresh_per_second=12,
            # Rich cannot redraw above the top of the screen: while streaming, an
            # answer taller than the terminal is cut; the final render shows it all.
            vertical_overflow="ellipsis",
        )
        self._live.start()

    def _stop_live(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    def _end_reply(self) -> None:
        if self.interactive:
            self._stop_live()
        elif not self._at_line_start:
            self._write("\n")

    def _notice(self, text: str) -> None:
        if self.interactive:
            self._rich.print(text, style="dim", markup=False, highlight=False)
        else:
            self._err.write(text + "\n")
            self._err.flush()

    async def stop(self) -> None:
        self._end_reply()
