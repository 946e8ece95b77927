"""End to end with the real bundled SmolLM2-135M-Instruct (loaded once per run)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from confab.bot.errors import PromptTooLong
from confab.bot.llm.backend import ChatMessage, GenerationParams, ModelBackend
from confab.bot.llm.context import fit_messages
from confab.bot.llm.transformers_backend import TransformersBackend
from confab.storage.conversations import ConversationKey, ConversationStore
from confab.storage.database import Database
from tests.helpers import run_console

pytestmark = pytest.mark.model

QUESTION = [
    ChatMessage("system", "You are a helpful assistant."),
    ChatMessage("user", "What is the capital of France?"),
]


class PromptSpy(ModelBackend):
    """The real backend, with a record of the prompts it was given; closing leaves it loaded."""

    def __init__(self, inner: ModelBackend) -> None:
        self.inner = inner
        self.default_params = inner.default_params
        self.prompts: list[list[ChatMessage]] = []

    @property
    def context_window(self) -> int:
        return self.inner.context_window

    def count_tokens(self, messages: Sequence[ChatMessage]) -> int:
        return self.inner.count_tokens(messages)

    def count_text(self, text: str) -> int:
        return self.inner.count_text(text)

    def stream(
        self, messages: Sequence[ChatMessage], params: GenerationParams | None = None
    ) -> AsyncIterator[str]:
        self.prompts.append(list(messages))
        return self.inner.stream(messages, params)


async def test_the_answer_streams_in_several_chunks(bundled_model: TransformersBackend) -> None:
    chunks = [chunk async for chunk in bundled_model.stream(QUESTION)]
    assert len(chunks) >= 3
    assert "Paris" in "".join(chunks)
    assert bundled_model.context_window == 8192


async def test_a_question_through_the_console_is_answered_and_stored(
    bundled_model: TransformersBackend, db_url: str
) -> None:
    out, _ = await run_console(db_url, "What is the capital of France?\n", PromptSpy(bundled_model))
    assert "Paris" in out

    database = Database(db_url)
    turns = await ConversationStore(database).recent(ConversationKey("console", "dm"))
    await database.close()
    assert [t.role for t in turns] == ["user", "assistant"]
    assert turns[0].text == "What is the capital of France?"
    assert turns[1].text.strip() == out.strip()
    assert turns[0].token_count == bundled_model.count_text("What is the capital of France?") > 0


async def test_a_follow_up_after_a_restart_is_given_the_earlier_turns(
    bundled_model: TransformersBackend, db_url: str
) -> None:
    first, _ = await run_console(db_url, "My name is Ada.\n", PromptSpy(bundled_model))
    spy = PromptSpy(bundled_model)
    second, _ = await run_console(db_url, "What is my name?\n", spy)
    assert second.strip()
    assert spy.prompts[0][1:] == [
        ChatMessage("user", "My name is Ada."),
        ChatMessage("assistant", first.strip()),
        ChatMessage("user", "What is my name?"),
    ]


async def test_a_cancelled_answer_frees_the_worker(bundled_model: TransformersBackend) -> None:
    story = [ChatMessage("user", "Write a very long story about a lighthouse keeper.")]
    stream = bundled_model.stream(story, GenerationParams(max_new_tokens=2000, temperature=0))
    await anext(stream)
    await stream.aclose()  # the person went away after the first words
    started = time.monotonic()
    # Greedy: how many tokens the cut story drew from the sampler varies with timing.
    greedy = GenerationParams(max_new_tokens=48, temperature=0)
    answer = "".join([chunk async for chunk in bundled_model.stream(QUESTION, greedy)])
    # 2000 tokens take about 100 s here; a freed worker answers in about a second.
    assert time.monotonic() - started < 30
    assert "Paris" in answer and "lighthouse" not in answer.lower()


async def test_long_conversations_are_trimmed_to_the_real_token_count(
    bundled_model: TransformersBackend,
) -> None:
    history = [ChatMessage("system", "Be brief.")]
    for index in range(60):
        history.append(ChatMessage("user", f"Tell me fact number {index} about rivers."))
        history.append(ChatMessage("assistant", f"Fact {index}: rivers flow downhill to the sea."))
    history.append(ChatMessage("user", "And the last one?"))
    fitted = fit_messages(history, bundled_model.count_tokens, 300)
    assert bundled_model.count_tokens(fitted) <= 300 < bundled_model.count_tokens(history)
    assert fitted[0] == history[0] and fitted[-1] == history[-1]

    with pytest.raises(PromptTooLong):
        huge = [ChatMessage("user", "river " * 9000)]
        await anext(bundled_model.stream(huge))


def test_the_confab_command_answers_piped_input(tmp_path: Path) -> None:
    confab = Path(sys.executable).with_name("confab")
    environment = {
        **os.environ,
        "CONFAB_BOT__DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}",
        "CONFAB_MODEL__TEMPERATURE": "0",
    }
    result = subprocess.run(
        [str(confab), "console"],
        input="!ping\nWhat is the capital of France?\n",
        capture_output=True,
        text=True,
        env=environment,
        cwd=tmp_path,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "pong"
    assert "Paris" in " ".join(lines[1:])
    assert "Traceback" not in result.stderr


async def test_sigterm_stops_the_bot_cleanly(tmp_path: Path) -> None:
    confab = Path(sys.executable).with_name("confab")
    process = await asyncio.create_subprocess_exec(
        str(confab),
        "run",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={
            **os.environ,
            "CONFAB_BOT__DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'run.db'}",
        },
        cwd=tmp_path,
    )
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write(b"!ping\n")
    await process.stdin.drain()
    assert await asyncio.wait_for(process.stdout.readline(), 120) == b"pong\n"
    process.terminate()  # stdin stays open: only the signal can end it
    _, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0
    assert b"Traceback" not in stderr
