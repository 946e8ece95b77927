"""Running the suite's cases as people would meet them: typed into a chat, through the
real router and the installed skills with their default settings, answered by a
real model, on a real SQLite file.

Each case runs in a channel of its own (a conversation, a channel history), one
after another, with torch seeded from its id, so a run repeats.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from confab.bot.config import Config, KnowledgeConfig
from confab.bot.knowledge.documents import read_document_bytes
from confab.bot.knowledge.embedding import Embedder
from confab.bot.llm.backend import ChatMessage, GenerationParams, ModelBackend
from confab.bot.plugins import discover_skills
from confab.bot.quality.cases import Case
from confab.bot.quality.scoring import Score, score
from confab.bot.testing import ChatHarness

HISTORY_START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)  # a knowledge case's history


@dataclass(frozen=True, slots=True)
class CaseResult:
    """One case's answer, its score and what it cost."""

    case: Case
    answer: str
    score: Score
    seconds: float
    tokens: int


class MeteredBackend(ModelBackend):
    """A model that counts the tokens it generates, for the suite's tokens/s."""

    def __init__(self, inner: ModelBackend) -> None:
        self._inner = inner
        self.name = inner.name
        self.default_params = inner.default_params
        self.tokens = 0

    @property
    def context_window(self) -> int:
        return self._inner.context_window

    def count_tokens(self, messages: Sequence[ChatMessage]) -> int:
        return self._inner.count_tokens(messages)

    def count_text(self, text: str) -> int:
        return self._inner.count_text(text)

    async def stream(
        self, messages: Sequence[ChatMessage], params: GenerationParams | None = None
    ) -> AsyncIterator[str]:
        pieces: list[str] = []
        try:
            async for piece in self._inner.stream(messages, params):
                pieces.append(piece)
                yield piece
        finally:
            if pieces:
                self.tokens += self._inner.count_text("".join(pieces))


async def run_cases(
    cases: Sequence[Case],
    model: ModelBackend,
    workdir: Path,
    *,
    seed: Callable[[int], None] | None = None,
    on_result: Callable[[CaseResult], None] | None = None,
    config: Config | None = None,
    embedder: Embedder | None = None,
) -> list[CaseResult]:
    """Every case's result, in order. ``seed`` seeds the model's sampling before each case
    (``torch.manual_seed``); ``on_result`` hears each result as it is scored. The skills
    have their ``[skills.NAME]`` settings from ``config``, else their defaults."""
    metered = MeteredBackend(model)
    found = discover_skills().skills
    skills = [
        cls(config.skill_config(name)) if config is not None else cls for name, cls in found.items()
    ]
    results = []
    knowledge = config.knowledge if config is not None else KnowledgeConfig()
    async with ChatHarness(
        skills, workdir, model=metered, knowledge=knowledge, embedder=embedder
    ) as chat:
        for case in cases:
            if seed is not None:
                seed(zlib.crc32(case.id.encode()))
            before, started = metered.tokens, time.perf_counter()
            answer, asked = await _drive(chat, case)
            seconds = time.perf_counter() - started
            result = CaseResult(
                case, answer, await score(case.group, case.spec, answer, asked), seconds,
                metered.tokens - before,
            )  # fmt: skip
            results.append(result)
            if on_result is not None:
                on_result(result)
    return results


async def _drive(chat: ChatHarness, case: Case) -> tuple[str, str]:
    """Send the case's messages; return the bot's last answer and the question asked."""
    spec, channel = case.spec, f"quality-{case.id}"
    if case.group == "memory":
        turns = spec["turns"]
        answer = ""
        for turn in turns:
            answer = await chat.ask(turn["text"], channel=channel, author=turn["author"])
        return answer, turns[-1]["text"]
    if case.group == "knowledge":
        for said in spec.get("history", []):
            at = HISTORY_START + timedelta(minutes=float(said.get("minute", 0)))
            await chat.send(
                said["text"], channel=channel, author=said["author"], addressed=False, at=at
            )
        assert chat.knowledge is not None
        for document in spec.get("documents", []):
            data = str(document["text"]).encode()
            read = read_document_bytes(document["name"], data, max_bytes=len(data) + 1)
            await chat.knowledge.add(
                read,
                source=f"quality:{case.id}:{document['name']}",
                channels=[f"{chat.adapter.platform}:{channel}"],
                added_by="quality",
            )
        await chat.index()
        return await chat.ask(str(spec["ask"]), channel=channel), str(spec["ask"])
    if case.group == "summary":
        for said in spec["messages"]:
            await chat.send(said["text"], channel=channel, author=said["author"], addressed=False)
        return await chat.ask("!summarise", channel=channel), ""
    text = request_text(case)
    return await chat.ask(text, channel=channel), text


def request_text(case: Case) -> str:
    """What the person types for a single-message case."""
    spec = case.spec
    if case.group in ("qa", "arithmetic", "unknown"):
        return str(spec["ask"])
    if case.group == "code_write":
        return f"!code write {spec['request']}"
    if case.group == "creative":
        return f"!write {spec['request']}"
    mode = "fix" if case.group == "code_fix" else "explain"
    code = str(spec["code"]).strip()
    if "\n" not in code:
        return f"!code {mode} {code}"
    return f"!code {mode}\n```{spec.get('language', '')}\n{code}\n```"
