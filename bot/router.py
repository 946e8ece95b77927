"""The router: guards, skill choice, memory and one error policy for every message.

Order of work for one message: parse a prefixed command; run the guards (each
may drop the message silently, keep it as channel chatter, or reject it with a
short reply); pick the skill; store the person's turn; run the skill with its
context; store each reply. A skill that raises gives one short reply and one
logged traceback, and the bot carries on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from confab.bot.adapter import Adapter
from confab.bot.arguments import ArgumentError, parse_arguments
from confab.bot.audit import Audit
from confab.bot.channel import AdapterHistory, StoredChannelControls
from confab.bot.config import RouterConfig
from confab.bot.errors import CannotPost, ConfabError, ModelBusy, ModelTimeout, ModelUnavailable
from confab.bot.knowledge.access import ChannelKnowledge
from confab.bot.knowledge.base import KnowledgeBase
from confab.bot.limits import ChannelSlots, UserRateLimit
from confab.bot.llm.backend import ChatMessage, ModelBackend
from confab.bot.log_context import enter_log_context, leave_log_context
from confab.bot.messages import Message, args_after_command, parse_command
from confab.bot.metrics import NO_SKILL, Metrics
from confab.bot.privacy import StoredPrivacy, is_admin
from confab.bot.scheduling.channel_schedule import ChannelSchedule
from confab.bot.scheduling.runner import JobScheduler
from confab.bot.skill import (
    ConversationMemory,
    NoKnowledge,
    Skill,
    SkillContext,
    SkillInfo,
    switched_off_of,
)
from confab.bot.skill_state import SkillState
from confab.bot.skillset import SkillSet
from confab.bot.streaming import ReplyStream
from confab.storage.channels import ChannelSettingsStore
from confab.storage.conversations import ConversationKey, ConversationStore, StoredTurn
from confab.storage.errors import AlreadyProcessed, StorageUnavailable
from confab.storage.skill_state import SkillStateStore

log = logging.getLogger(__name__)

NO_ANSWER = "(The command finished without an answer.)"
DB_DOWN = "I can't reach my database right now, so I can't answer. Please try again in a minute."
# An answer is kept trying to be stored for this long; it is shown whole once
# stored, or after STORE_WAIT_S without the database.
ANSWER_RETRY_S = 300.0
STORE_WAIT_S = 10.0
# Characters that show nothing: a message of only these is empty.
INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff"), None)
BUSY = "I'm busy with other questions in this channel; please ask again in a moment."


@dataclass(frozen=True, slots=True)
class Verdict:
    """Why a guard stopped a message; ``reply`` is sent to the author when set."""

    reason: str
    reply: str | None = None
    keep_as_chatter: bool = False
    code: str = "dropped"  # the reason in metrics: one word, the same every time


@dataclass(slots=True)
class _Tally:
    """How one message fared, filled in while it is handled, for :class:`Metrics`."""

    arrived: float  # time.monotonic(), as ReplyStream's clock
    skill: str = NO_SKILL
    refused: str | None = None
    replay: bool = False
    first_sent: float | None = None
    last_sent: float | None = None

    def refuse(self, reason: str) -> None:
        if self.refused is None:  # the first reason is the cause; later ones follow from it
            self.refused = reason


Guard = Callable[[Message], Awaitable[Verdict | None]]


class Router:
    """Routes each incoming message of every adapter to one skill."""

    def __init__(
        self,
        *,
        skills: SkillSet,
        model: ModelBackend,
        store: ConversationStore,
        models: Callable[[str, str], Awaitable[ModelBackend]] | None = None,
        named_models: Callable[[str], Awaitable[ModelBackend]] | None = None,
        settings: ChannelSettingsStore,
        config: RouterConfig,
        bot_name: str,
        scheduler: JobScheduler | None = None,
        timezone: str = "UTC",
        knowledge: KnowledgeBase | None = None,
        state: SkillStateStore | None = None,
        metrics: Metrics | None = None,
        audit: Audit | None = None,
    ) -> None:
        self.skills = skills
        self.metrics = metrics if metrics is not None else Metrics()
        self.audit = audit if audit is not None else Audit()  # changes made from chat
        self.model = model
        self.models = models  # the model chosen per channel; without it, ``model`` everywhere
        # A skill's own model (``[skills.NAME] model``) by name; without it, as above.
        self.named_models = named_models
        self.store = store
        self.state = state if state is not None else SkillStateStore(store.database)
        self.settings = settings
        self.scheduler = scheduler
        self.knowledge = knowledge
        self.timezone = timezone
        self.config = config
        self.bot_name = bot_name
        self.rate = UserRateLimit(config.user_rate_per_minute, config.user_burst)
        self.slots = ChannelSlots(config.channel_concurrency, config.channel_queue)
        self.guards: list[Guard] = [
            self._not_from_bots,
            self._addressed,
            self._within_rate,
            self._not_too_long,
            self._not_empty,
        ]

    # -- guards, in order ------------------------------------------------------

    async def _not_from_bots(self, message: Message) -> Verdict | None:
        if message.from_self:
            return Verdict("own message", code="own")
        if message.author.is_bot and self.config.ignore_bots:
            return Verdict("message from another bot", code="bot")
        return None

    async def _addressed(self, message: Message) -> Verdict | None:
        if message.addressed:
            return None
        if message.command is not None and self.skills.find(message.command) is not None:
            return None
        return Verdict("not addressed to the bot", keep_as_chatter=True, code="unaddressed")

    async def _within_rate(self, message: Message) -> Verdict | None:
        if is_admin(self.config.admins, message):
            return None
        allowance = self.rate.take(message.platform, message.author.id)
        if allowance.allowed:
            return None
        wait = max(1, round(allowance.retry_after_s))
        return Verdict(
            "over the per-person rate limit",
            reply=(
                f"You're sending messages faster than I can answer; "
                f"please wait {wait} s. Messages sent before then are ignored."
            )
            if allowance.notify
            else None,
            code="rate_limit",
        )

    async def _not_empty(self, message: Message) -> Verdict | None:
        if message.command is None and not message.text.translate(INVISIBLE).strip():
            return Verdict(
                "empty message", reply="Your message was empty: ask me something.", code="empty"
            )
        return None

    async def _not_too_long(self, message: Message) -> Verdict | None:
        limit = self.config.max_input_chars
        if len(message.text) > limit:
            return Verdict(
                f"{len(message.text)} characters",
                reply=f"Your message is too long ({len(message.text):,} characters; "
                f"the limit is {limit:,}). Please shorten it.",
                code="too_long",
            )
        return None

    def expects_answer(self, message: Message) -> bool:
        """Whether ``message`` is one the router answers at all: from a person (or an
        allowed bot), and addressed to the bot or a known command. Used to answer
        messages that arrive while the bot is stopping."""
        if message.from_self or (message.author.is_bot and self.config.ignore_bots):
            return False
        if message.addressed:
            return True
        parsed = None if message.command else parse_command(message.text, self.config.prefixes)
        command = message.command or (parsed[0] if parsed else None)
        return command is not None and self._is_command(command)

    # -- the flow --------------------------------------------------------------

    async def handle(self, message: Message, adapter: Adapter) -> None:
        """Route one message; every addressed message gets exactly one answer.

        Nothing raises out of here: a failure outside any skill (storage, say)
        is logged with its context and answered with one short error. A message
        that expects an answer is reported to ``metrics`` once it is handled.
        """
        tally = _Tally(time.monotonic())
        counted = self.expects_answer(message)
        if counted:
            self.metrics.arrived(message.platform)
        # What every record logged while handling it is about (the JSON log's fields).
        entered = enter_log_context(
            platform=message.platform, channel=message.channel, message_id=message.id
        )
        try:
            await self._handle(message, adapter, tally)
        finally:
            leave_log_context(entered)
            if counted:
                self.metrics.handled(message.platform)
                if not tally.replay:
                    self._report(message.platform, tally)

    def _report(self, platform: str, tally: _Tally) -> None:
        if tally.first_sent is not None:
            self.metrics.first_reply(platform, tally.skill, tally.first_sent - tally.arrived)
        if tally.refused is None and tally.last_sent is not None:
            self.metrics.answered(platform, tally.skill, tally.last_sent - tally.arrived)
        else:
            self.metrics.refused(platform, tally.skill, tally.refused or "unanswered")

    async def _handle(self, message: Message, adapter: Adapter, tally: _Tally) -> None:
        try:
            await self._route(message, adapter, tally)
        except CannotPost as error:
            tally.refuse("cannot_post")
            _log_cannot_post(message, error)
        except AlreadyProcessed:
            # A replay after a reconnect, or a platform's retry: answered already,
            # by this process or another one.
            tally.replay = True
            log.info("message %s in %s was handled before; dropped", message.id, message.platform)
        except StorageUnavailable as error:
            log.error(
                "message %s from %s in %s/%s not handled, the database is unreachable: %s",
                message.id,
                message.author.id,
                message.platform,
                message.channel,
                error,
            )
            if self.expects_answer(message):
                await self._reply_text(message, adapter, DB_DOWN, tally, "database")
        except Exception:
            log.exception(
                "handling message %s from %s in %s/%s failed",
                message.id,
                message.author.id,
                message.platform,
                message.channel,
            )
            if self.expects_answer(message):
                await self._reply_text(
                    message,
                    adapter,
                    "Sorry, something went wrong. The error has been logged.",
                    tally,
                    "error",
                )

    async def _route(self, message: Message, adapter: Adapter, tally: _Tally) -> None:
        parsed = None if message.command else parse_command(message.text, self.config.prefixes)
        if parsed:
            message = message.with_command(*parsed)
        for guard in self.guards:
            verdict = await guard(message)
            if verdict is not None:
                await self._stop(message, adapter, verdict, tally)
                return
        if message.command is not None:
            skill = self.skills.find(message.command)
            if skill is None:
                await self._store_question(message)  # kept, and a replay is answered once
                await self._reply_text(
                    message,
                    adapter,
                    f"I don't know the command `{message.command}`. "
                    f"Try `{self._prefix(message)}help` for the list.",
                    tally,
                    "unknown_command",
                )
                return
            args = message.args
        else:
            skill = self.skills.find(self.config.default_skill)
            if skill is None:
                log.error("default skill %r is not installed", self.config.default_skill)
                await self._reply_text(
                    message, adapter, "No skill is set up to answer that.", tally, "no_skill"
                )
                return
            args = message.text.strip()
        tally.skill = skill.name
        denied = skill.admin_command(args)
        if denied is not None and not is_admin(self.config.admins, message):
            log.info(
                "denied %s:%s the admin command %s %s in %s",
                message.platform,
                message.author.id,
                skill.name,
                denied,
                message.channel,
            )
            command = f"{self._prefix(message)}{skill.name} {denied}".strip()
            await self._store_question(message)  # kept, and a replay is not answered twice
            await self._reply_text(
                message, adapter, f"Only an admin can run `{command}`.", tally, "not_allowed"
            )
            return
        try:
            options = parse_arguments(skill.arguments, args) if skill.arguments is not None else {}
        except ArgumentError as error:
            log.info("bad arguments for %s in message %s: %s", skill.name, message.id, error)
            await self._store_question(message)  # kept, and a replay is not answered twice
            usage = SkillInfo.of(type(skill)).usage
            command = f"{self._prefix(message)}{skill.name} {usage}".strip()
            await self._reply_text(
                message, adapter, f"Usage: `{command}` — {error}.", tally, "bad_arguments"
            )
            return
        place = self.slots.admit(message.platform, message.channel)
        if place is None:
            log.info(
                "channel %s/%s is full; message %s refused",
                message.platform,
                message.channel,
                message.id,
            )
            await self._store_question(message)
            await self._reply_text(message, adapter, BUSY, tally, "channel_busy")
            return
        try:
            # Stored on arrival, before waiting for a turn: a person's messages stay
            # in the order they were sent, answered, queued or refused alike.
            question = await self._store_question(message, skill=skill.name)
            switched_off = await self._switched_off(message)
            if skill.name in switched_off:
                log.info("%s is off in %s/%s", skill.name, message.platform, message.channel)
                prefix = self._prefix(message)
                await self._reply_text(
                    message,
                    adapter,
                    f"`{prefix}{skill.name}` is switched off in this channel; an admin can "
                    f"switch it on with `{prefix}skills enable {skill.name}`.",
                    tally,
                    "switched_off",
                )
                return
            await place.turn()
            await self._run_skill(
                skill, message, args, options, switched_off, adapter, question, tally
            )
        finally:
            place.leave()

    async def _stop(
        self, message: Message, adapter: Adapter, verdict: Verdict, tally: _Tally
    ) -> None:
        tally.refuse(verdict.code)
        log.debug("dropped message %s in %s: %s", message.id, message.channel, verdict.reason)
        if verdict.keep_as_chatter and message.text.strip():
            if len(message.text) > self.config.max_input_chars:
                log.info("chatter %s in %s not kept: too long", message.id, message.channel)
            else:
                await self._store_question(message, addressed=False)
        if verdict.reply:
            log.info("rejected message from %s: %s", message.author.id, verdict.reason)
            await self._reply_text(message, adapter, verdict.reply, tally, verdict.code)

    async def _store_question(
        self, message: Message, *, skill: str | None = None, addressed: bool = True
    ) -> StoredTurn:
        """Store the person's turn, marking the platform event handled in the same write."""
        return await self.store.append(
            _key(message),
            role="user",
            author_id=message.author.id,
            author_name=message.author.name,
            text=message.text,
            addressed=addressed,
            skill=skill,
            command=message.command,
            token_count=self._tokens(message.text),
            platform_message_id=message.id,
            created_at=message.created_at,
            event_id=message.id,
        )

    async def _run_skill(
        self,
        skill: Skill,
        message: Message,
        args: str,
        options: dict[str, Any],
        switched_off: frozenset[str],
        adapter: Adapter,
        question: StoredTurn,
        tally: _Tally,
    ) -> None:
        key = _key(message)
        replies = 0

        async def reply_stream(chunks: AsyncIterable[str]) -> str:
            nonlocal replies
            replies += 1
            stream = _reply_stream(adapter, message)
            stored = False

            async def stored_before_shown_whole() -> AsyncIterator[str]:
                # The whole answer is committed before its last piece is shown: a
                # reply someone saw complete survives the process dying next.
                nonlocal stored
                async for chunk in chunks:
                    yield chunk
                if stream.received.strip():
                    written = self._remember_answer(key, skill.name, stream, question)
                    stored = True  # queued: whatever happens next, it is not queued again
                    # Without the database it stays queued (and failures are logged):
                    # the person still gets the answer after a bounded wait.
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(asyncio.shield(written), STORE_WAIT_S)
                stored = True

            try:
                await stream.consume(stored_before_shown_whole())
                tally.last_sent = time.monotonic()
            finally:
                if tally.first_sent is None:
                    tally.first_sent = stream.first_sent_at
                # A stream that broke off, or was cancelled at shutdown: what the
                # person saw is queued for storage at once, in its place (nothing,
                # when not even its first message could be posted).
                if not stored and stream.sent and stream.received.strip():
                    self._remember_answer(key, skill.name, stream, question)
            return stream.received

        async def reset_memory() -> None:
            await self.store.reset_memory(key, after=question)

        admin = is_admin(self.config.admins, message)
        context = SkillContext(
            message=message,
            args=args,
            options=options,
            state=SkillState(self.state, skill.name, message),
            switched_off=switched_off,
            config=skill.config,
            model=await self._model_for(message, skill) if skill.uses_model else self.model,
            memory=ConversationMemory(self._memory_loader(key, skill.name, question), reset_memory),
            skills=self.skills.infos,
            prefix=self._prefix(message),
            bot_name=self.bot_name,
            privacy=StoredPrivacy(self.store, self.state, message, admin=admin),
            history=AdapterHistory(adapter, message, self.config.prefixes, self._is_command),
            channel=StoredChannelControls(self.settings, message, admin=admin, audit=self.audit),
            schedule=ChannelSchedule(
                self.scheduler,
                message,
                self.settings,
                admin=admin,
                audit=self.audit,
                default_timezone=self.timezone,
                is_skill=self._is_command,
            ),
            _reply_stream=reply_stream,
            admin=admin,
            knowledge=(
                ChannelKnowledge(self.knowledge, message, adapter, admin=admin)
                if self.knowledge is not None
                else NoKnowledge()
            ),
        )
        entered = enter_log_context(skill=skill.name)
        try:
            await skill.run(context)
        except CannotPost as error:
            tally.refuse("cannot_post")
            _log_cannot_post(message, error)  # and no error reply: it could not go there either
            return
        except ConfabError as error:
            log.warning("skill %s could not answer message %s: %s", skill.name, message.id, error)
            await self._reply_text(message, adapter, error.user_message, tally, _refusal(error))
            return
        except StorageUnavailable as error:
            log.error("skill %s lost the database on message %s: %s", skill.name, message.id, error)
            await self._reply_text(message, adapter, DB_DOWN, tally, "database")
            return
        except Exception:
            log.exception(
                "skill %s failed on message %s from %s in %s/%s",
                skill.name,
                message.id,
                message.author.id,
                message.platform,
                message.channel,
            )
            await self._reply_text(
                message,
                adapter,
                f"Sorry, `{skill.name}` failed while answering. The error has been logged.",
                tally,
                "skill_failed",
            )
            return
        finally:
            leave_log_context(entered)
        if replies == 0:
            log.warning("skill %s finished without replying to %s", skill.name, message.id)
            await self._reply_text(message, adapter, NO_ANSWER, tally, "no_answer")

    def _remember_answer(
        self, key: ConversationKey, skill: str, stream: ReplyStream, question: StoredTurn
    ) -> asyncio.Future[StoredTurn]:
        """Queue the answer for storage (reads queued later see it); await to know it
        is committed. A failure is logged here, whether anyone waits or not."""
        stored = self.store.append_nowait(
            key,
            role="assistant",
            author_id=self.bot_name,
            author_name=self.bot_name,
            text=stream.received,
            skill=skill,
            token_count=self._tokens(stream.received),
            platform_message_id=stream.sent[0].id if stream.sent else None,
            reply_to=question,
            retry_s=ANSWER_RETRY_S,
        )
        stored.add_done_callback(_log_unstored)
        return stored

    async def _switched_off(self, message: Message) -> frozenset[str]:
        """The skills an admin switched off in the message's channel (``!skills``)."""
        enabled = (await self.settings.get(message.platform, message.channel)).enabled_skills
        return switched_off_of(enabled, (info.name for info in self.skills.infos))

    def _prefix(self, message: Message) -> str:
        """How the asker types a command: as they just did (a slash command), or ``!``."""
        return message.command_prefix or self.config.prefixes[0]

    def _is_command(self, name: str) -> bool:
        return self.skills.find(name) is not None

    def _memory_loader(
        self, key: ConversationKey, skill: str, question: StoredTurn
    ) -> Callable[[int, int | None], Awaitable[list[ChatMessage]]]:
        async def load(max_turns: int, max_tokens: int | None) -> list[ChatMessage]:
            turns = await self.store.recent(
                key,
                limit=max_turns,
                max_tokens=max_tokens,
                before_id=question.id,
                skill=skill,
                since_reset=True,
            )
            return _as_chat(turns)

        return load

    async def _reply_text(
        self, message: Message, adapter: Adapter, text: str, tally: _Tally, reason: str
    ) -> None:
        """A short answer outside any skill (errors, rejections; ``reason`` says which, in
        metrics); failures are only logged."""
        tally.refuse(reason)
        try:
            await _reply_stream(adapter, message).send_text(text)
        except CannotPost as error:
            _log_cannot_post(message, error)
        except Exception:
            log.exception("could not send a reply in %s/%s", message.platform, message.channel)

    async def _model_for(self, message: Message, skill: Skill) -> ModelBackend:
        own = getattr(skill.config, "model", None)
        if own and self.named_models is not None:  # the skill's own model wins
            return await self.named_models(own)
        if self.models is None:
            return self.model
        return await self.models(message.platform, message.channel)

    def _tokens(self, text: str) -> int:
        try:
            return self.model.count_text(text)
        except Exception:  # a model that is not loaded must not stop a turn being stored
            log.debug("token count unavailable", exc_info=True)
            return 0


def _refusal(error: ConfabError) -> str:
    """A skill's own error as a reason in metrics."""
    if isinstance(error, ModelBusy):
        return "model_busy"
    if isinstance(error, ModelTimeout):
        return "model_timeout"
    if isinstance(error, ModelUnavailable):
        return "model_unavailable"
    return "declined"  # the skill's own refusal: a file too large, a job not found ...


def _log_cannot_post(message: Message, error: CannotPost) -> None:
    log.warning(
        "message %s from %s in %s/%s left unanswered: %s",
        message.id,
        message.author.id,
        message.platform,
        message.channel,
        error,
    )


def _log_unstored(stored: asyncio.Future[StoredTurn]) -> None:
    if not stored.cancelled() and stored.exception() is not None:
        log.error("an answer that was shown could not be stored: %s", stored.exception())


def _as_chat(turns: list[StoredTurn]) -> list[ChatMessage]:
    """Stored turns as the model sees them: the skill's input, not the command typed.

    An exchange whose question was empty (``!ask`` alone, answered with usage
    help) says nothing about the conversation and is left out.
    """
    chat: list[ChatMessage] = []
    skipping = False
    for turn in turns:
        if turn.role == "assistant":
            if not skipping:
                chat.append(ChatMessage("assistant", turn.text))
            continue
        content = args_after_command(turn.text) if turn.command else turn.text.strip()
        skipping = not content
        if not skipping:
            chat.append(ChatMessage("user", content, name=turn.author_name))
    return chat


def _reply_stream(adapter: Adapter, message: Message) -> ReplyStream:
    return ReplyStream(adapter, message.channel, thread=message.thread, reply_to=message.id)


def _key(message: Message) -> ConversationKey:
    return ConversationKey(message.platform, message.channel, message.thread, message.direct)
