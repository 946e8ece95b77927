"""Long answers cut into messages: never over the limit, never a broken code fence,
never a lost character, whatever the text and however it streams in."""

from __future__ import annotations

import functools
import re
from collections.abc import AsyncIterator

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from confab.bot.adapter import Capabilities, Limits
from confab.bot.messages import clean_text
from confab.bot.streaming import EMPTY_REPLY, ReplyStream
from confab.bot.testing import RecordingAdapter
from confab.bot.textsplit import MIN_LIMIT, split_message
from tests.property.markdown import ends_in_code, kinds
from tests.property.strategies import any_text, markdown_text

STARTS_LIKE_FENCE = re.compile(r" {0,3}(```|~~~)")
LONGEST_RUN = re.compile(r"`+|~+")

limits = st.integers(MIN_LIMIT, 260)
small_limits = st.integers(MIN_LIMIT, 160)  # so that most Markdown is cut, often
long_markdown = st.lists(markdown_text, min_size=2, max_size=8).map("\n".join)
# Long texts, so that most are cut: pieces of anything, and fence-heavy noise.
long_text = st.one_of(
    st.lists(any_text, max_size=8).map("".join),
    st.lists(st.sampled_from(["`", "~", " ", "\n", "a", "```", "~~~", "python", "\n\n"])).map(
        "".join
    ),
    long_markdown,
    # A fence marker (or a run of backticks) as long as a message, or longer.
    st.builds(
        lambda before, run, after: before + "\n" + run + after,
        any_text,
        st.sampled_from("`~").flatmap(lambda c: st.integers(3, 400).map(lambda n: c * n)),
        any_text,
    ),
)


def renders_cleanly(text: str, limit: int) -> bool:
    """The texts whose every message can render as its piece of the whole: each line
    that starts like a fence is shorter than a third of a message (so it is never
    cut), and no run of backticks or tildes spans a quarter of one."""
    fence_lines = (line for line in text.split("\n") if STARTS_LIKE_FENCE.match(line))
    return all(len(line) < limit // 3 for line in fence_lines) and all(
        len(run) <= limit // 4 for run in LONGEST_RUN.findall(text)
    )


def cut_all(text: str, limit: int) -> tuple[list[str], list[str]]:
    """``text`` cut into messages; also each message's letters (``kinds``) without the
    fence lines the cuts added."""
    parts: list[str] = []
    letters: list[str] = []
    opener = ""
    while text:
        split = split_message(text, limit)
        assert 0 < len(split.head) <= limit
        assert len(split.rest) < len(text), "every cut makes progress"
        assert split.head.endswith(split.closer) and split.rest.startswith(split.opener)
        assert bool(split.closer) == bool(split.opener)
        core = split.head[: len(split.head) - len(split.closer)]
        assert core + split.rest[len(split.opener) :] == text, "the cut added only fence lines"
        seen = kinds(split.head)
        letters.append(seen[len(opener) : len(seen) - len(split.closer)])
        parts.append(split.head)
        text, opener = split.rest, split.opener
    return parts, letters


@settings(max_examples=300)
@given(text=long_text, limit=limits)
def test_any_text_is_cut_into_messages_within_the_limit_adding_only_fence_lines(
    text: str, limit: int
) -> None:
    parts, _ = cut_all(text, limit)
    assert (parts == []) == (text == "")


@settings(max_examples=300)
@given(text=long_markdown, limit=small_limits)
def test_each_message_renders_as_its_piece_of_the_whole(text: str, limit: int) -> None:
    """Prose stays prose and code stays code in every message; each message but the
    last closes its code blocks, and the last is open only if the text ends open."""
    assume(renders_cleanly(text, limit))
    parts, letters = cut_all(text, limit)
    assert "".join(letters) == kinds(text)
    assert not any(ends_in_code(part) for part in parts[:-1])
    assert not parts or ends_in_code(parts[-1]) == ends_in_code(text)


def joins_back(parts: list[str], text: str) -> bool:
    """Whether ``parts`` are ``text`` cut in order, each cut adding at most a closing
    fence line to one message and the line reopening it to the next, and leaving out
    nothing but whitespace that would have been a message of its own."""
    closing = re.compile(r"(?:^|\n)(`{3,}|~{3,})\Z")

    @functools.cache
    def fits(index: int, position: int, reopened: str) -> bool:
        if index == len(parts):
            return not text[position:].strip()
        part = parts[index]
        if reopened:
            if not part.startswith(reopened) or "\n" not in part:
                return False
            part = part.split("\n", 1)[1]
        cores = [(part, "")]
        if found := closing.search(part):
            core = part[: -len(found[1])]
            cores += [(core, found[1]), (core.removesuffix("\n"), found[1])]
        for core, marker in cores:
            start = position
            while True:
                if text.startswith(core, start) and fits(index + 1, start + len(core), marker):
                    return True
                if start == len(text) or not text[start].isspace():
                    break
                start += 1
        return False

    return fits(0, 0, "")


async def pieces(text: str, cuts: list[int]) -> AsyncIterator[str]:
    start = 0
    for cut in [*sorted(cuts), len(text)]:
        yield text[start:cut]
        start = cut


async def streamed(text: str, cuts: list[int], limit: int, *, edit: bool) -> RecordingAdapter:
    adapter = RecordingAdapter(
        limits=Limits(max_message_chars=limit), capabilities=Capabilities(edit=edit)
    )
    received = await ReplyStream(adapter, "c").consume(pieces(text, cuts))
    assert received == clean_text(text)
    return adapter


@settings(max_examples=300, deadline=None)
@given(text=long_text, limit=limits, edit=st.booleans(), data=st.data())
async def test_a_streamed_answer_fits_the_limit_and_loses_no_character(
    text: str, limit: int, edit: bool, data: st.DataObject
) -> None:
    cuts = data.draw(st.lists(st.integers(0, len(text)), max_size=30), label="chunk ends")
    adapter = await streamed(text, cuts, limit, edit=edit)
    assert all(len(version) <= limit for posted in adapter.posted for version in posted.versions)
    shown = [posted.text for posted in adapter.posted]
    if not clean_text(text).strip():
        assert shown == [EMPTY_REPLY]
    else:
        assert all(part.strip() for part in shown)
        assert joins_back(shown, clean_text(text))


@settings(max_examples=300, deadline=None)
@given(text=long_markdown, limit=small_limits, edit=st.booleans(), data=st.data())
async def test_a_streamed_answer_never_breaks_a_code_fence(
    text: str, limit: int, edit: bool, data: st.DataObject
) -> None:
    assume(text.strip() and renders_cleanly(text, limit))
    cuts = data.draw(st.lists(st.integers(0, len(text)), max_size=30), label="chunk ends")
    adapter = await streamed(text, cuts, limit, edit=edit)
    shown = [posted.text for posted in adapter.posted]
    assert not any(ends_in_code(part) for part in shown[:-1])
    assert ends_in_code(shown[-1]) == ends_in_code(text)


def test_a_fence_marker_longer_than_a_message_still_ends() -> None:
    """Found by hypothesis: a line of 150 backticks made the splitter loop forever."""
    parts, _ = cut_all("`" * 150 + "\n" + "a" * 200, 100)
    assert "".join(parts) == "`" * 150 + "\n" + "a" * 200


def test_a_cut_inside_a_line_never_starts_a_code_block() -> None:
    """A cut just before "```python" in the middle of a line made the rest a code block."""
    text = "a " * 45 + "```python_code\n" + "plain text after it\n" * 3
    parts, letters = cut_all(text, 100)
    assert set("".join(letters)) == {"p"}
    assert not any(ends_in_code(part) for part in parts)


def test_a_tilde_fence_may_name_its_language_with_backticks() -> None:
    """Found by hypothesis: "~~~x`y" opens a block (CommonMark), but was not closed at a cut."""
    text = "~~~x`y\n" + "code line\n" * 30 + "~~~\n"
    parts, letters = cut_all(text, 100)
    assert "".join(letters) == kinds(text)
    assert not any(ends_in_code(part) for part in parts)


async def test_text_after_a_cut_in_leading_spaces_is_shown_once() -> None:
    """The first message showed "x" after 60 spaces; when the text grew, the cut fell in
    the spaces, and "x" went on in a second message while the first still showed it."""
    adapter = RecordingAdapter(limits=Limits(max_message_chars=100))
    text = " " * 60 + "x" + "y" * 89
    await ReplyStream(adapter, "c").consume(pieces(text, [61]))
    assert [posted.text for posted in adapter.posted] == ["x" + "y" * 89]
    assert joins_back([posted.text for posted in adapter.posted], text)


async def test_a_surrogate_pair_split_across_pieces_is_joined() -> None:
    """A server may split a UTF-16 pair across two streamed pieces (JSON "\\ud83d", "\\ude00")."""
    adapter = RecordingAdapter()
    received = await ReplyStream(adapter, "c").consume(pieces("ok \ud83d\ude00 \ud800", [4]))
    assert received == adapter.posted[0].text == "ok 😀 \ufffd"


async def test_a_surrogate_pair_split_by_nul_and_pieces_is_still_joined() -> None:
    adapter = RecordingAdapter()
    text = "a \ud83d\x00\x00\ude00 b"
    received = await ReplyStream(adapter, "c").consume(pieces(text, [3, 4, 5]))
    assert received == adapter.posted[0].text == clean_text(text) == "a 😀 b"
