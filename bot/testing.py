"""Test helpers for skill and adapter authors (and Confab's own tests); authors
import them from :mod:`confab.testing`, or use the ``chat`` fixture.

A skill's test in five lines::

    from confab.testing import ChatHarness, ScriptedBackend

    async def test_echo(tmp_path):
        async with ChatHarness([Echo], tmp_path, model=ScriptedBackend()) as chat:
            assert await chat.ask("!echo hi") == "hi"

The harness runs the real router, skill set, ReplyStream and a real SQLite
file; only the platform (:class:`RecordingAdapter`) and, when you choose, the
model (:class:`ScriptedBackend`) are stand-ins.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from pydantic import BaseModel, ConfigDict

from confab.bot.adapter import (
    Adapter,
    AdapterContext,
    AttachmentTooLarge,
    AttachmentUnavailable,
    Capabilities,
    EmptyChannelLog,
    Limits,
    MessageHandler,
    check_declared_size,
)
from confab.bot.config import KnowledgeConfig, RouterConfig, SchedulerConfig
from confab.bot.errors import MessageTooLong, ModelError, Unsupported
from confab.bot.knowledge.base import KnowledgeBase
from confab.bot.knowledge.embedding import Embedder
from confab.bot.llm.backend import ChatMessage, GenerationParams, ModelBackend
from confab.bot.llm.context import fit_messages
from confab.bot.messages import Attachment, Author, Message, SentMessage
from confab.bot.router import Router
from confab.bot.scheduling.runner import JobScheduler
from confab.bot.skill import Skill
from confab.bot.skill_lifecycle import SkillLifecycle, skill_lifecycle
from confab.bot.skillset import SkillSet
from confab.storage.channels import ChannelSettingsStore
from confab.storage.conversations import ConversationStore
from confab.storage.database import Database
from confab.storage.events import EventLog

Script = Callable[[Sequence[ChatMessage]], str]


class ScriptedBackend(ModelBackend):
    """A model that answers from a script, streams word by word and records its prompts
    (``prompts``, as fitted to the context window) and their parameters (``params``).

    ``replies`` is a list of answers given in turn (the last one repeats), or a
    function of the prompt. Tokens are counted as whitespace-separated words
    plus four per message, enough to exercise context trimming.
    """

    name = "scripted"

    def __init__(
        self,
        replies: Sequence[str] | Script = ("This is a scripted answer.",),
        *,
        context_window: int = 2048,
        delay_s: float = 0.0,
        fail_with: Exception | None = None,
    ) -> None:
        self._script: Script
        if callable(replies):
            self._script = replies
        else:
            answers = list(replies)
            counter = itertools.count()
            self._script = lambda _messages: answers[min(next(counter), len(answers) - 1)]
        self._window = context_window
        self._delay = delay_s
        self.fail_with = fail_with
        self.prompts: list[list[ChatMessage]] = []
        self.params: list[GenerationParams] = []
        self.closed = False

    @property
    def context_window(self) -> int:
        return self._window

    def count_text(self, text: str) -> int:
        return len(text.split())

    def count_tokens(self, messages: Sequence[ChatMessage]) -> int:
        return sum(4 + self.count_text(message.content) for message in messages) + 2

    async def stream(
        self, messages: Sequence[ChatMessage], params: GenerationParams | None = None
    ) -> AsyncIterator[str]:
        params = params or self.default_params
        fitted = fit_messages(messages, self.count_tokens, self._window - params.max_new_tokens)
        self.prompts.append(fitted)
        self.params.append(params)
        if self.fail_with is not None:
            raise self.fail_with
        words = self._script(fitted).split(" ")
        for index, word in enumerate(words):
            if self._delay:
                await asyncio.sleep(self._delay)
            yield word if index == 0 else " " + word

    async def close(self) -> None:
        self.closed = True


class BrokenBackend(ScriptedBackend):
    """A model whose every answer fails, for testing error replies."""

    def __init__(self) -> None:
        super().__init__(fail_with=ModelError("The model failed while answering.", "scripted"))


class RecordingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")


@dataclass
class Posted:
    """A message as the recording platform shows it, with every version it had."""

    sent: SentMessage
    versions: list[str] = field(default_factory=list)
    reply_to: str | None = None  # the id of the message it answers

    @property
    def text(self) -> str:
        return self.versions[-1]


class RecordingAdapter(Adapter):
    """An in-memory platform: records what the bot sends and edits, holds history.

    ``timeline`` is every message of every channel, oldest first, as the
    platform's history shows them: what people said and, marked ``from_self``,
    what the bot posted (with its latest edit).
    """

    platform = "test"
    config_model = RecordingConfig
    capabilities = Capabilities(downloads=True)

    def __init__(
        self,
        context: AdapterContext | None = None,
        *,
        limits: Limits | None = None,
        capabilities: Capabilities | None = None,
    ) -> None:
        super().__init__(context or AdapterContext(RecordingConfig(), "confab", EmptyChannelLog()))
        if limits is not None:
            self.limits = limits  # type: ignore[misc]
        if capabilities is not None:
            self.capabilities = capabilities  # type: ignore[misc]
        self.posted: list[Posted] = []
        self.timeline: list[Message] = []
        # What an attachment's url serves, for download().
        self.files: dict[str, bytes] = {}
        self._ids = itertools.count(1)
        # Where each posted message is, by id: an edit finds it at once.
        self._posted_at: dict[str, tuple[Posted, int]] = {}

    async def run(self, handler: MessageHandler) -> None:
        await asyncio.Event().wait()

    async def download(self, attachment: Attachment, *, max_bytes: int) -> bytes:
        check_declared_size(attachment, max_bytes)
        data = self.files.get(attachment.url)
        if data is None:
            raise AttachmentUnavailable(f"I couldn't download {attachment.name}.")
        if len(data) > max_bytes:
            raise AttachmentTooLarge(attachment, max_bytes)
        return data

    async def send(
        self, channel: str, text: str, *, thread: str | None = None, reply_to: str | None = None
    ) -> SentMessage:
        limit = self.limits.max_message_chars
        if limit is not None and len(text) > limit:
            raise MessageTooLong("That answer is too long.", f"{len(text)} > {limit} characters")
        if thread is not None and not self.capabilities.threads:
            raise Unsupported("Threads are not supported here.", "send to a thread")
        sent = SentMessage(id=str(next(self._ids)), channel=channel, thread=thread)
        posted = Posted(sent, [text], reply_to)
        self.posted.append(posted)
        self._posted_at[sent.id] = (posted, len(self.timeline))
        bot = self.context.bot_name
        self.timeline.append(
            Message(
                platform=self.platform,
                channel=channel,
                thread=thread,
                author=Author(bot, bot, is_bot=True),
                text=text,
                from_self=True,
                id=sent.id,
            )
        )
        return sent

    async def edit(self, sent: SentMessage, text: str) -> None:
        if not self.capabilities.edit:
            raise Unsupported("Edits are not supported here.", "edit")
        limit = self.limits.max_message_chars
        if limit is not None and len(text) > limit:
            raise MessageTooLong("That answer is too long.", f"{len(text)} > {limit} characters")
        if sent.id not in self._posted_at:
            raise KeyError(sent.id)
        posted, index = self._posted_at[sent.id]
        posted.versions.append(text)
        self.timeline[index] = replace(self.timeline[index], text=text)

    def shown(self, sent: SentMessage) -> str:
        return next(p.text for p in self.posted if p.sent.id == sent.id)

    async def history(
        self,
        channel: str,
        *,
        thread: str | None = None,
        since: datetime | None = None,
        limit: int = 100,
    ) -> list[Message]:
        found = [
            m
            for m in self.timeline
            if m.channel == channel
            and m.thread == thread
            and (since is None or m.created_at >= since)
        ]
        return found[-limit:]


class ChatHarness:
    """A running bot core around the given skills, to talk to in tests."""

    def __init__(
        self,
        skills: Iterable[type[Skill] | Skill],
        tmp_path: Path,
        *,
        model: ModelBackend | None = None,
        router_config: RouterConfig | None = None,
        adapter: RecordingAdapter | None = None,
        database_url: str | None = None,
        scheduler: SchedulerConfig | None = None,
        timezone: str = "UTC",
        knowledge: KnowledgeConfig | None = None,
        embedder: Embedder | None = None,
    ) -> None:
        self._skills = [s if isinstance(s, Skill) else s(_default_config(s)) for s in skills]
        self.model = model or ScriptedBackend()
        # Without a config of the test's own, no one is rate limited: a skill's
        # test may ask as often as it likes. Pass a RouterConfig to test limits.
        self.config = router_config or RouterConfig(user_burst=10_000)
        self.adapter = adapter or RecordingAdapter()
        # Unique across harnesses on one database: ids are how replays are recognised.
        self._message_ids = itertools.count(1)
        self._run = secrets.token_hex(4)
        url = database_url or f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"
        self.database = Database(url)
        self.store = ConversationStore(self.database)
        self.settings = ChannelSettingsStore(self.database)
        self.scheduler = (
            JobScheduler(scheduler, url, EventLog(self.database)) if scheduler else None
        )
        # The real knowledge base, with the real sentence model; :meth:`index` runs
        # its indexer (in a bot it runs in the background).
        self.knowledge = (
            KnowledgeBase(self.database, knowledge, embedder) if knowledge is not None else None
        )
        self.lifecycle: SkillLifecycle | None = None
        self.router = Router(
            knowledge=self.knowledge,
            skills=SkillSet(self._skills),
            model=self.model,
            store=self.store,
            settings=self.settings,
            config=self.config,
            bot_name="confab",
            scheduler=self.scheduler,
            timezone=timezone,
        )

    async def __aenter__(self) -> ChatHarness:
        await self.database.upgrade()
        if self.knowledge is not None:
            await self.knowledge.load()
        if self.scheduler is not None:
            self.scheduler.attach(self.router.handle, {self.adapter.platform: self.adapter})
            self.scheduler.start()
            self.scheduler.resume()
        self.lifecycle = skill_lifecycle(
            self.router.skills.skills, "confab", self.router.state, [self.adapter]
        )
        await self.lifecycle.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self.lifecycle is not None:
            await self.lifecycle.stop()
        if self.scheduler is not None:
            await self.scheduler.stop()
        if self.knowledge is not None:
            await self.knowledge.close()
        await self.database.close()

    async def index(self) -> int:
        """Index every message stored so far; return how many were read."""
        assert self.knowledge is not None, "made without knowledge="
        return await self.knowledge.indexer.catch_up()

    async def send(
        self,
        text: str,
        *,
        channel: str = "dm",
        author: str = "tester",
        addressed: bool = True,
        thread: str | None = None,
        is_bot: bool = False,
        command: str | None = None,
        attachments: Sequence[Attachment] = (),
        at: datetime | None = None,
    ) -> list[Posted]:
        """Deliver one message (sent now, or ``at``); return the messages the bot posted
        for it."""
        before = len(self.adapter.posted)
        message = Message(
            platform=self.adapter.platform,
            channel=channel,
            thread=thread,
            author=Author(author, author, is_bot=is_bot),
            text=f"/{command} {text}".strip() if command else text,
            addressed=addressed,
            id=f"in-{self._run}-{next(self._message_ids)}",
            command=command,
            args=text if command else "",
            command_prefix="/" if command else "",
            attachments=tuple(attachments),
        )
        if at is not None:
            message = replace(message, created_at=at)
        self.adapter.timeline.append(message)
        await self.router.handle(message, self.adapter)
        return self.adapter.posted[before:]

    async def ask(self, text: str, **options: Any) -> str:
        """Deliver one message; return the bot's answer as one text ('' if none)."""
        return "\n".join(posted.text for posted in await self.send(text, **options))


def _default_config(skill: type[Skill]) -> BaseModel | None:
    return skill.config_model() if skill.config_model is not None else None
