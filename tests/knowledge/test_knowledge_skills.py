"""What people see: `ask` answering from the channel's history with its sources,
`!search`, `!kb` with files attached, and forgetting, through the real router."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from confab.bot.config import KnowledgeConfig, RouterConfig
from confab.bot.knowledge.embedding import Embedder
from confab.bot.llm.backend import ChatMessage
from confab.bot.messages import Attachment
from confab.bot.testing import ChatHarness, RecordingAdapter, ScriptedBackend
from confab.skills.forget import ForgetSkill
from confab.skills.kb import KnowledgeSkill
from confab.skills.qa import AskSkill
from confab.skills.search import SearchSkill

SKILLS = [AskSkill, SearchSkill, KnowledgeSkill, ForgetSkill]
START = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
STAGING = "what did we decide about the staging database?"


def answering(text: str) -> ScriptedBackend:
    return ScriptedBackend(lambda _prompt: text)


@pytest.fixture
async def chat(
    tmp_path: Path, sentence_model: Embedder, request: pytest.FixtureRequest
) -> AsyncIterator[ChatHarness]:
    model = getattr(request, "param", None) or answering(
        "Staging moves to PostgreSQL 16 on Friday."
    )
    harness = ChatHarness(
        SKILLS,
        tmp_path,
        model=model,
        router_config=RouterConfig(user_burst=10_000, admins=["test:boss"]),
        knowledge=KnowledgeConfig(),
        embedder=sentence_model,
    )
    async with harness:
        for minute, author, text in [
            (0, "ana", "morning all"),
            (60, "ana", "should the staging db move off MySQL?"),
            (61, "bob", "yes, staging goes to PostgreSQL 16 on Friday"),
            (180, "gus", "the lunch place on Linden St is closed this week"),
        ]:
            at = START + timedelta(minutes=minute)
            await harness.send(text, channel="backend", author=author, addressed=False, at=at)
        await harness.index()
        yield harness


def question_prompt(model: ScriptedBackend) -> str:
    """The question as the model was shown it (the notes go next to it)."""
    prompt: Sequence[ChatMessage] = model.prompts[-1]
    return prompt[-1].content


async def test_ask_answers_from_the_channels_history_and_names_its_sources(
    chat: ChatHarness,
) -> None:
    answer = await chat.ask(STAGING, channel="backend", author="maya")
    assert answer.startswith("Staging moves to PostgreSQL 16 on Friday.\n\nSources:\n1. #backend, ")
    assert "ana, bob" in answer  # who said it; the recording platform has no links
    assert "PostgreSQL 16 on Friday" in question_prompt(chat.model)  # type: ignore[arg-type]


@pytest.mark.parametrize("chat", [answering("Staging moves to MySQL 8 on Monday.")], indirect=True)
async def test_an_answer_that_contradicts_the_notes_gives_way_to_what_was_said(
    chat: ChatHarness,
) -> None:
    answer = await chat.ask(STAGING, channel="backend", author="maya")
    assert answer.startswith(
        "bob said in #backend (30 Nov): “yes, staging goes to PostgreSQL 16 on Friday”\n\n"
        "Sources:\n1. #backend, ana, bob, 30 Nov 2026 10:00 UTC"
    )


async def test_another_channel_is_answered_without_that_history(chat: ChatHarness) -> None:
    answer = await chat.ask(STAGING, channel="frontend", author="maya")
    assert "Sources" not in answer
    assert "PostgreSQL" not in question_prompt(chat.model)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "chat", [answering("The lunch place on Linden St is closed.")], indirect=True
)
async def test_only_the_passages_shown_and_used_are_cited(chat: ChatHarness) -> None:
    answer = await chat.ask(
        "which lunch place is closed, and what happens to staging?", channel="backend"
    )
    prompt = question_prompt(chat.router.model)  # type: ignore[arg-type]
    sources = answer.split("Sources:\n", 1)[1].splitlines()
    # Both passages were shown; the answer draws on one, and only that one is cited.
    assert "lunch place on Linden St" in prompt and "PostgreSQL 16" in prompt
    assert sources == ["1. #backend, gus, 30 Nov 2026 12:00 UTC"]


async def test_search_lists_matches_with_their_sources_without_the_model(
    chat: ChatHarness,
) -> None:
    listed = await chat.ask("!search staging database", channel="backend")
    assert listed.startswith(
        "Best matches for “staging database”:\n1. #backend, ana, bob, 30 Nov 2026 10:00 UTC\n"
    )
    assert "> ana: should the staging db move off MySQL? / bob: yes, staging goes" in listed
    assert chat.model.prompts == []  # type: ignore[attr-defined]
    nothing = await chat.ask("!search staging database", channel="ops")
    assert nothing == "Nothing found for “staging database” in this channel or its documents."
    assert (
        await chat.ask("!search", channel="ops")
        == "Usage: `!search <words…>` — `words` is missing."
    )


async def test_forget_me_takes_their_words_out_of_search_at_once(chat: ChatHarness) -> None:
    await chat.ask("!forget me", channel="backend", author="bob")
    listed = await chat.ask("!search staging PostgreSQL", channel="backend")
    assert "PostgreSQL 16" not in listed


MARKDOWN = (
    b"# Runbook\n\n## Restarts\n\nThe billing service restarts with `systemctl restart billing`.\n"
)


async def test_admins_add_an_attached_document_and_everyone_can_find_and_list_it(
    chat: ChatHarness,
) -> None:
    chat.adapter.files["u1"] = MARKDOWN
    runbook = Attachment("runbook.md", len(MARKDOWN), "u1")
    refused = await chat.ask("!kb add", channel="ops", author="maya", attachments=[runbook])
    assert refused == "Only an admin can run `!kb add`."
    added = await chat.ask("!kb add", channel="ops", author="boss", attachments=[runbook])
    assert added == "runbook.md: added, 1 passages, in this channel."
    again = await chat.ask("!kb add", channel="ops", author="boss", attachments=[runbook])
    assert again == "runbook.md: unchanged."
    found = await chat.ask("!search how do I restart billing", channel="ops")
    assert "1. runbook.md › Runbook > Restarts" in found
    assert "runbook" not in await chat.ask("!search how do I restart billing", channel="backend")
    listed = await chat.ask("!kb", channel="ops")
    assert (
        listed
        == "Documents I answer from here (1):\n- runbook.md: Runbook, 1 passages (this channel)"
    )
    removed = await chat.ask("!kb remove runbook.md", channel="ops", author="boss")
    assert removed == "Removed runbook.md: I no longer answer from it."
    assert "runbook" not in await chat.ask("!search how do I restart billing", channel="ops")


async def test_a_bad_or_huge_attachment_is_refused_in_one_sentence_and_nothing_is_added(
    chat: ChatHarness,
) -> None:
    chat.adapter.files["bin"] = b"\x00\x01binary"
    binary = Attachment("notes.txt", 8, "bin")
    huge = Attachment("big.pdf", 50 * 1024 * 1024, "never-fetched")
    zipped = Attachment("slides.zip", 10, "zip")
    answer = await chat.ask(
        "!kb add everywhere", channel="ops", author="boss", attachments=[binary, huge, zipped]
    )
    lines = answer.splitlines()
    assert lines[0] == "notes.txt: the file is not text (binary data, or not UTF-8)."
    assert lines[1].startswith("The file big.pdf is too large for me to read")
    assert lines[2].startswith("slides.zip: .zip files are not supported")
    assert await chat.ask("!kb", channel="ops") == (
        "No documents answer here yet. Admins: `!kb add` with a file attached (Markdown, text, "
        "HTML or PDF) adds it for this channel, `!kb add everywhere` for every channel, "
        "`!kb remove <name>` removes one."
    )
    assert chat.knowledge is not None and await chat.knowledge.documents() == []
    assert await chat.knowledge.store.count() == 3  # the channel's three chunks, no more


class LinkingAdapter(RecordingAdapter):
    """A platform whose messages have links, as Discord's and Slack's do."""

    async def link(self, channel: str, message_id: str, *, thread: str | None = None) -> str:
        return f"https://chat.example/{channel}/{message_id}"


async def test_a_source_on_a_platform_with_links_links_to_the_first_message(
    tmp_path: Path, sentence_model: Embedder
) -> None:
    adapter = LinkingAdapter()
    harness = ChatHarness(
        SKILLS,
        tmp_path,
        model=answering("Staging moves to PostgreSQL 16 on Friday."),
        adapter=adapter,
        knowledge=KnowledgeConfig(),
        embedder=sentence_model,
    )
    async with harness as chat:
        await chat.send("staging goes to PostgreSQL 16 on Friday", channel="backend",
                        author="bob", addressed=False, at=START)  # fmt: skip
        first_id = adapter.timeline[-1].id
        await chat.index()
        answer = await chat.ask(STAGING, channel="backend")
    assert answer.endswith(
        f"Sources:\n1. #backend, bob, 30 Nov 2026 09:00 UTC: https://chat.example/backend/{first_id}"
    )


async def test_a_failing_search_leaves_the_question_answered_without_notes(
    chat: ChatHarness, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(*_args: object, **_kwargs: object) -> list[object]:
        raise RuntimeError("the sentence model went away")

    assert chat.knowledge is not None
    monkeypatch.setattr(chat.knowledge, "search", broken)
    answer = await chat.ask(STAGING, channel="backend")
    assert answer == "Staging moves to PostgreSQL 16 on Friday."  # no notes, no sources
    (warning,) = [r for r in caplog.records if "knowledge search" in r.getMessage()]
    assert "answering without it" in warning.getMessage() and warning.exc_info is None
