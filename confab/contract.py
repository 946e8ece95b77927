"""The contract every adapter passes: send, edit, limits, history, capabilities,
downloads and links.

To check an adapter, subclass :class:`AdapterContract` in a test module and
provide an ``under_test`` fixture returning an object with:

- ``adapter``: the adapter, ready to send;
- ``channel``: a channel id it may post in;
- ``shown(sent) -> str``: the text the platform now displays for that message;
- ``async seed_history(channel, [(author, text), ...])``: make the platform hold
  these messages, oldest first.

For example (the class's name starts with ``Test``; this one does not, so
importing it collects nothing by itself)::

    from confab.contract import AdapterContract

    class TestMyAdapter(AdapterContract):
        @pytest.fixture
        def under_test(self):
            return MyUnderTest(MyAdapter(...), channel="c1")

The contract's async tests run without any pytest-asyncio configuration
(Confab's pytest plugin marks them); in pytest-asyncio's strict mode an async
``under_test`` fixture is written with ``@pytest_asyncio.fixture``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from confab.bot.errors import MessageTooLong, Unsupported
from confab.bot.messages import Attachment, Message
from confab.bot.streaming import ReplyStream
from confab.bot.textsplit import MIN_LIMIT, open_fence


class AdapterContract:
    async def test_send_returns_a_handle_and_shows_the_text(self, under_test: Any) -> None:
        sent = await under_test.adapter.send(under_test.channel, "Hello from the contract")
        assert sent.id and sent.channel == under_test.channel
        assert under_test.shown(sent) == "Hello from the contract"
        other = await under_test.adapter.send(under_test.channel, "second")
        assert other.id != sent.id

    async def test_edit_replaces_the_text_or_is_refused(self, under_test: Any) -> None:
        adapter = under_test.adapter
        sent = await adapter.send(under_test.channel, "Hello")
        if adapter.capabilities.edit:
            await adapter.edit(sent, "Hello, world")
            assert under_test.shown(sent) == "Hello, world"
        else:
            with pytest.raises(Unsupported):
                await adapter.edit(sent, "Hello, world")

    def test_limits_are_declared_sensibly(self, under_test: Any) -> None:
        limits = under_test.adapter.limits
        assert limits.max_message_chars is None or limits.max_message_chars >= MIN_LIMIT
        assert limits.min_edit_interval_s >= 0
        assert under_test.adapter.platform

    async def test_the_length_limit_is_enforced_not_silently_truncated(
        self, under_test: Any
    ) -> None:
        adapter = under_test.adapter
        limit = adapter.limits.max_message_chars
        if limit is None:
            text = "long " * 20_000
            sent = await adapter.send(under_test.channel, text)
            assert under_test.shown(sent) == text
            return
        sent = await adapter.send(under_test.channel, "x" * limit)
        assert under_test.shown(sent) == "x" * limit
        with pytest.raises(MessageTooLong):
            await adapter.send(under_test.channel, "x" * (limit + 1))

    async def test_threads_are_used_only_when_declared(self, under_test: Any) -> None:
        adapter = under_test.adapter
        if not adapter.capabilities.threads:
            with pytest.raises(Unsupported):
                await adapter.send(under_test.channel, "in a thread", thread="t-1")
            return
        thread = getattr(under_test, "thread", "t-1")
        sent = await adapter.send(under_test.channel, "in a thread", thread=thread)
        assert sent.thread == thread
        assert under_test.shown(sent) == "in a thread"

    async def test_a_streamed_reply_fits_the_platform(self, under_test: Any) -> None:
        adapter = under_test.adapter
        code = "\n".join(f"    line_{i} = {i}" for i in range(400))
        text = "Here is the code:\n\n```python\n" + code + "\n```\nDone."

        async def chunks() -> AsyncIterator[str]:
            for start in range(0, len(text), 50):
                yield text[start : start + 50]

        stream = ReplyStream(adapter, under_test.channel)
        assert await stream.consume(chunks()) == text
        shown = [under_test.shown(sent) for sent in stream.sent]
        limit = adapter.limits.max_message_chars
        if limit is None:
            assert shown == [text]
        else:
            assert all(len(part) <= limit for part in shown)
            assert all(open_fence(part) is None for part in shown)
            assert shown[0].startswith("Here is the code:") and shown[-1].endswith("Done.")

    async def test_history_is_oldest_first_with_limit_and_since(self, under_test: Any) -> None:
        adapter = under_test.adapter
        if not adapter.capabilities.history:
            return
        start = datetime.now(UTC) - timedelta(seconds=1)
        await under_test.seed_history(
            under_test.channel, [("ada", "one"), ("bob", "two"), ("ada", "three")]
        )
        found = await adapter.history(under_test.channel, limit=50)
        assert [(m.author.name, m.text) for m in found][-3:] == [
            ("ada", "one"),
            ("bob", "two"),
            ("ada", "three"),
        ]
        assert all(isinstance(m, Message) and m.platform == adapter.platform for m in found)
        assert [m.text for m in await adapter.history(under_test.channel, limit=2)] == [
            "two",
            "three",
        ]
        assert [m.text for m in await adapter.history(under_test.channel, since=start)][-3:] == [
            "one",
            "two",
            "three",
        ]
        later = datetime.now(UTC) + timedelta(minutes=1)
        assert await adapter.history(under_test.channel, since=later) == []

    async def test_downloads_are_refused_unless_declared(self, under_test: Any) -> None:
        adapter = under_test.adapter
        if adapter.capabilities.downloads:
            return
        with pytest.raises(Unsupported):
            await adapter.download(Attachment("a.txt", 1, "http://127.0.0.1:9/a.txt"), max_bytes=10)

    async def test_a_link_to_a_sent_message_is_a_web_address_or_none(self, under_test: Any) -> None:
        adapter = under_test.adapter
        sent = await adapter.send(under_test.channel, "cite me")
        link = await adapter.link(sent.channel, sent.id, thread=sent.thread)
        assert link is None or link.startswith("https://")
        assert await adapter.link(sent.channel, sent.id, thread=sent.thread) == link
