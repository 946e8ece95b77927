"""ReplyStream: model text chunks in, paced platform sends and edits out.

Written once for every adapter: the first message goes out as soon as there is
text, later text arrives by edits no faster than the adapter's
``min_edit_interval_s``, and text past ``max_message_chars`` continues in a new
message, cut at a paragraph or line end with code fences closed and reopened.
Text goes out (and into ``received``) as :func:`~confab.bot.messages.clean_text` makes
it: a model can write a NUL character, which no platform or database takes.
A piece of the text that is only whitespace is never sent on its own.

Every answer on a platform shares that platform's rate limits: a write counts
against the adapter's :meth:`~confab.bot.adapter.Adapter.write_window` for its place.
An edit in the middle of an answer is skipped while that window is full or the
platform asked to wait (``RateLimited``), since the next edit shows the same text;
a new message and the last edit of a message wait their turn. When the last edit
still fails after the platform's ``Retry-After``, the rest of the text goes on in
a new message: nothing the model wrote is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterable, Awaitable, Callable
from typing import TypeVar

from confab.bot.adapter import Adapter
from confab.bot.errors import CannotPost, MessageTooLong, RateLimited
from confab.bot.messages import SentMessage, clean_text
from confab.bot.textsplit import open_fence, split_message

log = logging.getLogger(__name__)

EMPTY_REPLY = "(The answer came back empty.)"
WRITE_TRIES = 3  # a write that must happen, tried again after each Retry-After
LONGEST_WAIT_S = 30.0  # a Retry-After longer than this is waited this long
_T = TypeVar("_T")


class ReplyStream:
    """Streams one reply into a channel or thread through an adapter's primitives."""

    def __init__(
        self,
        adapter: Adapter,
        channel: str,
        *,
        thread: str | None = None,
        reply_to: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._adapter = adapter
        self._channel = channel
        self._thread = thread
        self._reply_to = reply_to
        self._clock = clock
        limits = adapter.limits
        self._limit = limits.max_message_chars
        self._interval = limits.min_edit_interval_s if adapter.capabilities.edit else None
        self.sent: list[SentMessage] = []
        self.first_sent_at: float | None = None  # ``clock`` time the first message went out
        self.received = ""  # the text streamed in so far, as the model wrote it
        self._current: SentMessage | None = None
        self._pending = ""  # text of the current message, shown or not
        self._shown = ""  # what the platform displays for the current message
        self._last_update = float("-inf")
        self._held_until = float("-inf")  # the platform asked for no edits before this

    async def send_text(self, text: str) -> str:
        """Send a complete text (split as needed); return it."""

        async def single() -> AsyncIterable[str]:
            yield text

        return await self.consume(single())

    async def consume(self, chunks: AsyncIterable[str]) -> str:
        """Stream ``chunks`` to the platform; return the full text received.

        An empty stream still produces one message, so no question goes unanswered.
        """
        held = ""  # a high surrogate ending a piece (NULs aside) waits for its pair
        try:
            async for piece in chunks:
                text = held + piece
                end = len(text.rstrip("\x00"))
                held = text[end - 1 :] if end and "\ud800" <= text[end - 1] <= "\udbff" else ""
                await self._add(clean_text(text[: len(text) - len(held)]))
        except asyncio.CancelledError:
            # Cut short (a stop): show what was received, so what is stored is what
            # was seen, even where edits are paced and the last one was still due.
            with contextlib.suppress(Exception):
                await asyncio.shield(self._show_at_once())
            raise
        await self._add(clean_text(held))
        await self._finish()
        return self.received

    async def _add(self, chunk: str) -> None:
        if not chunk:
            return
        self.received += chunk
        self._pending += chunk
        await self._overflow()
        if self._interval is None:
            return  # no edits on this platform: send whole messages only
        if self._current is None or self._due():
            await self._show()

    def _due(self) -> bool:
        assert self._interval is not None
        now = self._clock()
        return now - self._last_update >= self._interval and now >= self._held_until

    async def _overflow(self) -> None:
        while self._limit is not None and len(self._pending) > self._limit:
            split = split_message(self._pending, self._limit)
            if not split.head.strip():
                # Only whitespace before the cut: no message of its own. The current
                # message, if there is one, goes on with the rest (its next edit).
                self._pending = split.rest
                continue
            self._pending = split.head
            await self._show(final=True)
            self._current, self._pending, self._shown = None, split.rest, ""

    async def _show(self, final: bool = False) -> None:
        """Bring the platform up to ``_pending``: a new message, or an edit of the
        current one; ``final`` for the last edit of a message, which must happen."""
        text = self._pending
        if not text.strip() or text == self._shown:
            return
        if self._current is None:
            await self._send(text)
        elif final:
            await self._last_edit(text)
        else:
            await self._edit_if_free(text)

    async def _send(self, text: str) -> None:
        window = self._adapter.write_window(self._channel, thread=self._thread, edit=False)

        async def send() -> SentMessage:
            if window is not None:
                await window.take()
            return await self._adapter.send(
                self._channel, text, thread=self._thread, reply_to=self._reply_to
            )

        self._current = await self._tries(send)
        if self.first_sent_at is None:
            self.first_sent_at = self._clock()
        self.sent.append(self._current)
        self._shown_now(text)

    async def _edit_if_free(self, text: str) -> None:
        """An edit in the middle of a message: skipped when the place's rate is used up
        or the edit is refused (the next one shows this text too)."""
        window = self._adapter.write_window(self._channel, thread=self._thread, edit=True)
        if window is None or window.take_now():
            await self._try_edit(text)

    async def _last_edit(self, text: str) -> None:
        """The edit that completes a message; if the platform keeps refusing it, the
        rest of the text goes on in a new message instead."""
        assert self._interval is not None
        wait = self._interval - (self._clock() - self._last_update)
        if wait > 0:
            await asyncio.sleep(wait)
        window = self._adapter.write_window(self._channel, thread=self._thread, edit=True)
        for _ in range(WRITE_TRIES):
            held = self._held_until - self._clock()
            if held > 0:
                await asyncio.sleep(held)
            if window is not None:
                await window.take()
            outcome = await self._try_edit(text)
            if outcome:
                return
            if outcome is None:
                break  # refused for another reason than the rate: trying again won't help
        await self._continue_in_new_message()

    async def _try_edit(self, text: str) -> bool | None:
        """Edit the current message to ``text``. True when it shows; False when the
        platform asked to wait (no edits until then); None when it failed otherwise."""
        assert self._current is not None
        try:
            await self._adapter.edit(self._current, text)
        except RateLimited as error:
            self._held_until = self._clock() + min(error.retry_after_s, LONGEST_WAIT_S)
            log.info("edits of %s wait %.1f s: %s", self._current.id, error.retry_after_s, error)
            return False
        except (CannotPost, MessageTooLong):
            raise
        except Exception as error:
            log.warning("could not edit %s in %s: %r", self._current.id, self._channel, error)
            return None
        self._shown_now(text)
        return True

    async def _continue_in_new_message(self) -> None:
        assert self._current is not None
        shown, pending = self._shown, self._pending
        rest = pending[len(shown) :] if pending.startswith(shown) else pending
        fence = open_fence(shown)
        if fence is not None and rest.strip():
            rest = fence.opener() + rest.lstrip("\n")
        log.warning(
            "edits of %s in %s kept failing; the rest of the answer follows in a new message",
            self._current.id,
            self._channel,
        )
        self._current, self._pending, self._shown = None, rest, ""
        await self._overflow()
        await self._show(final=True)

    async def _show_at_once(self) -> None:
        """One write of ``_pending``, unpaced and untried again: for an answer cut short."""
        text = self._pending
        if not text.strip() or text == self._shown:
            return
        if self._current is None:
            self._current = await self._adapter.send(
                self._channel, text, thread=self._thread, reply_to=self._reply_to
            )
            self.sent.append(self._current)
        else:
            await self._adapter.edit(self._current, text)
        self._shown_now(text)

    async def _tries(self, write: Callable[[], Awaitable[_T]]) -> _T:
        """``write``, tried again after the platform's Retry-After while it is rate limited."""
        for _ in range(WRITE_TRIES - 1):
            try:
                return await write()
            except RateLimited as error:
                log.info(
                    "writing to %s waits %.1f s: %s", self._channel, error.retry_after_s, error
                )
                await asyncio.sleep(min(error.retry_after_s, LONGEST_WAIT_S))
        return await write()

    def _shown_now(self, text: str) -> None:
        self._shown = text
        self._last_update = self._clock()

    async def _finish(self) -> None:
        await self._show(final=True)
        if not self.sent:
            self._pending = EMPTY_REPLY
            await self._show(final=True)
