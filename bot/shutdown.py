"""Graceful shutdown: a stop lets the answers under way finish, or cuts them short and says so.

:class:`InFlight` stands between the adapters (and the scheduler) and the
router. While the bot runs it only counts the messages being answered. Once a
stop is requested:

- a new message that expects an answer gets one short notice, :data:`RESTARTING`,
  and is neither answered nor stored (the person asks again after the restart);
  anything else (chatter) is dropped;
- the answers under way get ``grace_s`` to finish (counted from the request);
- those still running then are cancelled, once. The person's turn is stored
  already; the router stores a cut answer as far as it was streamed (its
  ``reply_stream`` writes that under a shield before the cancellation goes
  on), so nothing is left half-written. The notice is appended to the cut
  answer's last message by an edit, or sent as a new message where nothing was
  shown yet, the platform cannot edit, or the notice would not fit. Each answer
  under way thus ends, within ``grace_s + cut_s``, whole or with the notice.

Every answer runs in a task of its own, shielded from its caller: an adapter or
the scheduler cancelling its own task does not cut an answer half way; only the
drain does, once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from confab.bot.adapter import Adapter, MessageHandler
from confab.bot.messages import Attachment, Message, SentMessage
from confab.bot.pacing import WriteWindow
from confab.bot.streaming import ReplyStream
from confab.bot.textsplit import open_fence

log = logging.getLogger(__name__)

RESTARTING = "I'm restarting — please ask again in a minute."
SHUTDOWN_GRACE_S = 6.0  # with CUT_S and closing, the process is gone within 9 s of a stop
CUT_S = 1.5  # after the grace: a cut answer's last write and its notice
EDIT_ROOM_S = 0.5  # what an edit may take; a paced edit that would not leave it is a send


def _answers_everything(message: Message) -> bool:
    return True


class InFlight:
    """Counts the messages being answered; on a stop, drains them (see the module).

    ``handler`` is the router's ``handle``; :meth:`handle` is what adapters and
    the scheduler call instead. ``expects_answer`` tells which messages arriving
    during a stop get the notice (the others are dropped).
    """

    def __init__(
        self,
        handler: MessageHandler,
        *,
        grace_s: float = SHUTDOWN_GRACE_S,
        cut_s: float = CUT_S,
        expects_answer: Callable[[Message], bool] = _answers_everything,
        notice: str = RESTARTING,
    ) -> None:
        self._handler = handler
        self.grace_s = grace_s
        self.cut_s = cut_s
        self._expects_answer = expects_answer
        self.notice = notice
        self._answers: dict[asyncio.Task[None], _Answer] = {}
        self._notices: set[asyncio.Task[None]] = set()
        self._closed_at: float | None = None  # loop time of the stop request
        self._hurry = asyncio.Event()
        self._drained: asyncio.Future[None] | None = None

    @property
    def count(self) -> int:
        """Messages being answered now."""
        return len(self._answers)

    @property
    def closed(self) -> bool:
        """Whether a stop was requested: new messages get the notice."""
        return self._closed_at is not None

    def close(self) -> None:
        """Take no new messages from now on; the grace starts. Safe to repeat."""
        if self._closed_at is None:
            self._closed_at = asyncio.get_running_loop().time()
            log.info("stopping: %d answers under way, new messages are asked to wait", self.count)

    def hurry(self) -> None:
        """Close, and cut the answers under way without waiting out the grace
        (a second Ctrl-C)."""
        self.close()
        self._hurry.set()

    async def handle(self, message: Message, adapter: Adapter) -> None:
        """Answer ``message`` through the router, or, during a stop, send the notice."""
        if self.closed:
            if not self._expects_answer(message):
                log.debug("stopping: message %s in %s dropped", message.id, message.channel)
                return
            notice = asyncio.create_task(self._refuse(message, adapter))
            self._notices.add(notice)
            notice.add_done_callback(self._notices.discard)
            await asyncio.shield(notice)
            return
        answer = _Answer(message, _Shown(adapter))
        task = asyncio.create_task(self._answer(answer), name=f"answer {message.id}")
        self._answers[task] = answer
        task.add_done_callback(self._forget)
        # The caller waits for the whole answer (an adapter keeps its per-message
        # state until then), but its own cancellation does not reach the answer.
        await asyncio.shield(task)

    def _forget(self, task: asyncio.Task[None]) -> None:
        self._answers.pop(task, None)

    async def drain(self) -> None:
        """Close, then wait until every answer under way has finished or been cut
        short with the notice. Safe to call again: later calls wait for the first."""
        self.close()
        if self._drained is None:
            self._drained = asyncio.ensure_future(self._drain())
        await asyncio.shield(self._drained)

    async def _drain(self) -> None:
        assert self._closed_at is not None
        loop = asyncio.get_running_loop()
        running = set(self._answers)
        grace_ends = self._closed_at + self.grace_s
        hurry = asyncio.ensure_future(self._hurry.wait())
        try:
            while running and not hurry.done() and loop.time() < grace_ends:
                await asyncio.wait(
                    {*running, hurry},
                    timeout=grace_ends - loop.time(),
                    return_when=asyncio.FIRST_COMPLETED,
                )
                running = {task for task in running if not task.done()}
        finally:
            hurry.cancel()
        if running:
            log.warning(
                "cutting %d answers short after the %.0f s grace", len(running), self.grace_s
            )
            cut_by = loop.time() + self.cut_s
            for task in running:
                self._answers[task].cut_by = cut_by
                task.cancel()
        left = {*self._answers, *self._notices}
        if left:
            _, late = await asyncio.wait(left, timeout=self.cut_s)
            for task in late:
                log.error(
                    "%s still running %.0f s after the cut; stopping anyway", task, self.cut_s
                )

    # -- one message -------------------------------------------------------------

    async def _answer(self, answer: _Answer) -> None:
        try:
            await self._handler(answer.message, answer.shown)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if answer.cut_by is None or task is None:
                raise
            task.uncancel()  # the cut is handled here: the notice goes out
            await self._tell_cut(answer, answer.cut_by)

    async def _tell_cut(self, answer: _Answer, cut_by: float) -> None:
        message, shown = answer.message, answer.shown
        log.info("answer to %s in %s cut short by the stop", message.id, message.channel)
        try:
            async with asyncio.timeout_at(cut_by):
                last = shown.posted[-1] if shown.posted else None
                if last is not None and await self._append_notice(shown, last, cut_by):
                    return
                await self._send_notice(message, shown.adapter)
        except Exception:  # TimeoutError included: the stop goes on
            log.exception("could not tell %s in %s about the restart", message.id, message.channel)

    async def _append_notice(self, shown: _Shown, last: _Posted, cut_by: float) -> bool:
        """Edit the notice onto the cut answer's last message; False where it cannot be
        (no edits, too long, or the platform's edit pacing would make it too late)."""
        text = _with_notice(last.text, self.notice)
        limit = shown.limits.max_message_chars
        if not shown.capabilities.edit or (limit is not None and len(text) > limit):
            return False
        wait = shown.limits.min_edit_interval_s - (time.monotonic() - last.updated_at)
        if wait > 0:
            if asyncio.get_running_loop().time() + wait + EDIT_ROOM_S > cut_by:
                return False
            await asyncio.sleep(wait)
        try:
            await shown.adapter.edit(last.sent, text)
        except Exception:
            log.warning("could not append the restart notice; sending it instead", exc_info=True)
            return False
        return True

    async def _refuse(self, message: Message, adapter: Adapter) -> None:
        log.info("stopping: asked %s in %s to ask again", message.author.id, message.channel)
        try:
            async with asyncio.timeout(self.cut_s):
                await self._send_notice(message, adapter)
        except Exception:
            log.exception("could not tell %s in %s about the restart", message.id, message.channel)

    async def _send_notice(self, message: Message, adapter: Adapter) -> None:
        stream = ReplyStream(adapter, message.channel, thread=message.thread, reply_to=message.id)
        await stream.send_text(self.notice)


def _with_notice(text: str, notice: str) -> str:
    """A cut answer with the notice after it, outside any code block left open."""
    fence = open_fence(text)
    if fence is not None:
        text += ("" if text.endswith("\n") else "\n") + fence.marker
    return f"{text.rstrip()}\n\n{notice}"


@dataclass
class _Posted:
    sent: SentMessage
    text: str
    updated_at: float  # time.monotonic() of the last send or edit


@dataclass
class _Answer:
    message: Message
    shown: _Shown
    cut_by: float | None = None  # loop time by which a cut answer's notice must be out


class _Shown(Adapter):
    """The platform as one answer sees it: everything passes through to ``adapter``,
    and what the answer posted is remembered, so a cut answer can be marked as such."""

    def __init__(self, adapter: Adapter) -> None:
        super().__init__(adapter.context)
        self.adapter = adapter
        self.platform = adapter.platform  # type: ignore[misc]
        self.config_model = adapter.config_model  # type: ignore[misc]
        self.capabilities = adapter.capabilities  # type: ignore[misc]
        self.limits = adapter.limits  # type: ignore[misc]
        self.posted: list[_Posted] = []

    async def run(self, handler: MessageHandler) -> None:
        raise RuntimeError("an answer's view of a platform does not run")

    async def send(
        self, channel: str, text: str, *, thread: str | None = None, reply_to: str | None = None
    ) -> SentMessage:
        sent = await self.adapter.send(channel, text, thread=thread, reply_to=reply_to)
        self.posted.append(_Posted(sent, text, time.monotonic()))
        return sent

    async def edit(self, sent: SentMessage, text: str) -> None:
        # Noted first: an edit cut off on its way may still have been applied, and
        # the notice must not take back the words it showed.
        for posted in self.posted:
            if posted.sent.id == sent.id:
                posted.text, posted.updated_at = text, time.monotonic()
        await self.adapter.edit(sent, text)

    async def history(
        self,
        channel: str,
        *,
        thread: str | None = None,
        since: datetime | None = None,
        limit: int = 100,
    ) -> list[Message]:
        return await self.adapter.history(channel, thread=thread, since=since, limit=limit)

    def write_window(self, channel: str, *, thread: str | None, edit: bool) -> WriteWindow | None:
        return self.adapter.write_window(channel, thread=thread, edit=edit)

    async def download(self, attachment: Attachment, *, max_bytes: int) -> bytes:
        return await self.adapter.download(attachment, max_bytes=max_bytes)

    async def link(self, channel: str, message_id: str, *, thread: str | None = None) -> str | None:
        return await self.adapter.link(channel, message_id, thread=thread)
