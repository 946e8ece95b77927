"""ReplyStream and message splitting: never over the limit, fences balanced, nothing lost."""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from confab.bot.adapter import Capabilities, Limits
from confab.bot.errors import RateLimited
from confab.bot.messages import SentMessage
from confab.bot.pacing import Rate, WriteWindow
from confab.bot.streaming import EMPTY_REPLY, ReplyStream
from confab.bot.testing import RecordingAdapter
from confab.bot.textsplit import open_fence, split_message

FENCE_LINE = re.compile(r"^ {0,3}(`{3,}|~{3,})[^`]*$")


def sample_text(rng: random.Random) -> str:
    parts = []
    for _ in range(rng.randint(1, 12)):
        kind = rng.random()
        if kind < 0.3:
            language = rng.choice(["python", "", "js"])
            body = "\n".join(
                "    " * rng.randint(0, 2) + "x = " + "y" * rng.randint(0, 60)
                for _ in range(rng.randint(1, 25))
            )
            parts.append(f"```{language}\n{body}\n```")
        elif kind < 0.5:
            parts.append("z" * rng.randint(50, 400))  # one long word
        else:
            words = [rng.choice(["alpha", "beta", "gamma", "delta", "é", "😀"])]
            words += ["w" * rng.randint(1, 9) for _ in range(rng.randint(5, 80))]
            parts.append(" ".join(words))
    return rng.choice(["\n\n", "\n", " "]).join(parts)


def split_all(text: str, limit: int) -> list[str]:
    """Cut the whole text; check at every cut that only the fence lines were added."""
    parts = []
    while text:
        split = split_message(text, limit)
        assert split.head.removesuffix(split.closer) + split.rest.removeprefix(split.opener) == text
        parts.append(split.head)
        text = split.rest
    return parts


def words_outside_fence_lines(text: str) -> str:
    """The text without fence lines and whitespace: what a reader must not lose."""
    kept = [line for line in text.split("\n") if not FENCE_LINE.match(line)]
    return re.sub(r"\s+", "", "".join(kept))


@pytest.mark.parametrize("seed", range(60))
@pytest.mark.parametrize("limit", [100, 180, 2000])
def test_split_parts_fit_balance_fences_and_lose_nothing(seed: int, limit: int) -> None:
    text = sample_text(random.Random(seed))
    parts = split_all(text, limit)
    assert all(0 < len(part) <= limit for part in parts)
    for part in parts[:-1]:
        assert open_fence(part) is None, "every part but the last closes its code fences"


def test_split_prefers_paragraphs_then_lines() -> None:
    text = "a" * 60 + "\n\n" + "b" * 30 + "\n" + "c" * 60
    split = split_message(text, 100)
    assert (split.head, split.rest) == ("a" * 60 + "\n\n", "b" * 30 + "\n" + "c" * 60)
    lines = "a" * 60 + "\n" + "b" * 30 + " " + "c" * 60
    split = split_message(lines, 100)
    assert (split.head, split.rest) == ("a" * 60 + "\n", "b" * 30 + " " + "c" * 60)


def test_a_cut_code_block_is_closed_and_reopened_with_its_language() -> None:
    code = "\n".join(f"print({i})" for i in range(40))
    split = split_message(f"Here:\n```python\n{code}\n```", 120)
    assert split.head.endswith("\n```") and split.head.count("```") == 2
    assert split.rest.startswith("```python\n")


async def chunks_of(text: str, size: int = 7) -> AsyncIterator[str]:
    for start in range(0, len(text), size):
        yield text[start : start + size]


async def test_stream_without_a_cap_is_one_message_edited_to_the_full_text() -> None:
    adapter = RecordingAdapter()
    text = "word " * 300
    received = await ReplyStream(adapter, "c").consume(chunks_of(text))
    assert received == text
    assert len(adapter.posted) == 1
    assert adapter.posted[0].text == text
    assert len(adapter.posted[0].versions) > 2  # it streamed


async def test_stream_over_the_limit_continues_in_new_messages() -> None:
    adapter = RecordingAdapter(limits=Limits(max_message_chars=200))
    text = sample_text(random.Random(7)) * 3
    await ReplyStream(adapter, "c").consume(chunks_of(text, 13))
    parts = [p.text for p in adapter.posted]
    assert len(parts) > 1
    assert all(len(version) <= 200 for p in adapter.posted for version in p.versions)
    assert all(open_fence(part) is None for part in parts[:-1])
    assert words_outside_fence_lines("".join(parts)) == words_outside_fence_lines(text)


async def test_edits_are_paced_by_the_platform_interval() -> None:
    now = [0.0]
    adapter = RecordingAdapter(limits=Limits(min_edit_interval_s=1.0))
    stream = ReplyStream(adapter, "c", clock=lambda: now[0])

    async def slow_chunks() -> AsyncIterator[str]:
        for index in range(50):
            now[0] += 0.1  # ten chunks a second
            yield f"{index} "

    await stream.consume(slow_chunks())
    versions = adapter.posted[0].versions
    assert 5 <= len(versions) <= 7  # the first send, about one edit a second, the final edit
    assert versions[-1] == "".join(f"{i} " for i in range(50))


async def test_an_empty_stream_still_answers() -> None:
    adapter = RecordingAdapter()
    await ReplyStream(adapter, "c").consume(chunks_of(""))
    assert [p.text for p in adapter.posted] == [EMPTY_REPLY]


async def test_a_platform_without_edits_gets_whole_messages_only() -> None:
    adapter = RecordingAdapter(
        limits=Limits(max_message_chars=150), capabilities=Capabilities(edit=False)
    )
    text = "sentence number one. " * 20
    await ReplyStream(adapter, "c").consume(chunks_of(text))
    assert all(len(p.versions) == 1 for p in adapter.posted)
    assert "".join(p.text for p in adapter.posted) == text


class RefusingEdits(RecordingAdapter):
    """A platform that answers the first ``refusals`` edits with a rate limit, and
    shares one write window among every answer (as a channel or workspace does)."""

    def __init__(self, refusals: int, window: WriteWindow | None = None, **options: Any) -> None:
        super().__init__(**options)
        self.refusals = refusals
        self.window = window
        self.writes: list[float] = []  # when each send or edit reached the platform

    def write_window(self, channel: str, *, thread: str | None, edit: bool) -> WriteWindow | None:
        return self.window

    async def send(self, channel: str, text: str, **where: Any) -> SentMessage:
        self.writes.append(time.monotonic())
        return await super().send(channel, text, **where)

    async def edit(self, sent: SentMessage, text: str) -> None:
        self.writes.append(time.monotonic())
        if self.refusals > 0:
            self.refusals -= 1
            raise RateLimited(0.05, "429 on chat.update")
        await super().edit(sent, text)


async def test_refused_edits_mid_answer_are_skipped_and_the_answer_arrives_whole() -> None:
    adapter = RefusingEdits(refusals=5, limits=Limits(min_edit_interval_s=0.01))
    text = "word " * 200
    await ReplyStream(adapter, "c").consume(slowly(chunks_of(text), 0.002))
    assert [p.text for p in adapter.posted] == [text]  # one message, edited to the end


async def test_edits_that_keep_failing_go_on_in_a_new_message_and_lose_nothing() -> None:
    adapter = RefusingEdits(refusals=10**6, limits=Limits(min_edit_interval_s=0.01))
    opening = "Here is the loop:\n```python\nx = 0\n"
    rest = "x = 1\n" * 40 + "```\nThat is all."

    async def pieces() -> AsyncIterator[str]:
        yield opening  # shown at once, in a code block still open
        async for chunk in chunks_of(rest):
            yield chunk

    received = await ReplyStream(adapter, "c").consume(pieces())
    assert received == opening + rest
    # The first message keeps what it showed; the rest follows, its code block reopened.
    assert [p.text for p in adapter.posted] == [opening, "```python\n" + rest]


async def test_answers_sharing_a_place_keep_its_rate_together() -> None:
    """Six answers streaming at once into one place make at most its rate of writes,
    and each is shown whole."""
    window = WriteWindow(Rate(writes=5, per_s=0.5))
    adapter = RefusingEdits(refusals=0, window=window, limits=Limits(min_edit_interval_s=0.05))
    texts = [f"answer {n}: " + "word " * 60 for n in range(6)]
    await asyncio.gather(
        *(ReplyStream(adapter, "c").consume(slowly(chunks_of(t), 0.01)) for t in texts)
    )
    assert sorted(p.text for p in adapter.posted) == sorted(texts)
    times = sorted(adapter.writes)
    busiest = max(sum(1 for t in times if start <= t < start + 0.5 - 0.02) for start in times)
    assert busiest <= 5
    assert len(times) >= 12  # every answer was sent and finished by an edit at least


async def slowly(chunks: AsyncIterator[str], pause_s: float) -> AsyncIterator[str]:
    async for chunk in chunks:
        await asyncio.sleep(pause_s)
        yield chunk


def test_a_write_window_allows_its_rate_in_any_span_and_queues_the_rest() -> None:
    now = [100.0]
    window = WriteWindow(Rate(writes=2, per_s=1.0), clock=lambda: now[0])
    assert window.take_now() and window.take_now()
    assert not window.take_now()  # a third within the second
    assert window.wait_s() == pytest.approx(1.0)
    now[0] += 0.5
    assert not window.take_now() and window.wait_s() == pytest.approx(0.5)
    now[0] += 0.5
    assert window.take_now()  # the first write left the window
