"""ReplyStream: model text chunks in, paced platform sends and edits out.

Written once for every adapter: the first message goes out as soon as there is
text, later text arrives by edits no faster than the adapter's
``min_edit_interval_s``, and text past ``max_message_chars`` continues in a new
message, cut at a paragraph or line end with code fences closed and reopened.
Text goes out (and into ``received``) as :func:`~bot.messages.clean_text` makes
it: a model can write a NUL character, which no platform or database takes.
A piece of the text that is only whitespace is never sent on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterable, Callable

from bot.adapter import Adapter
from bot.messages import SentMessage, clean_text
from bot.textsplit import split_message

EMPTY_REPLY = "(The answer came back empty.)"


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
        self.received = ""  # the text streamed in so far, as the model wrote it
        self._current: SentMessage | None = None
        self._pending = ""  # text of the current message, shown or not
        self._shown = ""  # what the platform displays for the current message
        self._last_update = float("-inf")

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
                await asyncio.shield(self._show())
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
        return self._clock() - self._last_update >= self._interval

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
        text = self._pending
        if not text.strip() or text == self._shown:
            return
        if self._current is None:
            self._current = await self._adapter.send(
                self._channel, text, thread=self._thread, reply_to=self._reply_to
            )
            self.sent.append(self._current)
        else:
            assert self._interval is not None
            wait = self._interval - (self._clock() - self._last_update)
            if final and wait > 0:
                await asyncio.sleep(wait)
            await self._adapter.edit(self._current, text)
        self._shown = text
        self._last_update = self._clock()

    async def _finish(self) -> None:
        await self._show(final=True)
        if not self.sent:
            self._pending = EMPTY_REPLY
            await self._show(final=True)
