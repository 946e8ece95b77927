"""A load scenario for the router, and the checks of what people saw and what was stored.

Shared by ``bench/load.py`` (200 users, figures) and ``tests/bot/test_load.py``
(a smaller run, asserted). Simulated people in shared channels write to the bot
through the real router, skill, ``ReplyStream`` and storage; the model is a
:class:`~confab.bot.testing.ScriptedBackend` that streams each answer in a few chunks
with a little delay, so many answers are in flight at once.

How people write: each user belongs to one channel and sends their messages in
order, each after a random think time since they sent the previous one, without
waiting for its answer (people keep typing while the bot streams). Every message
is handled as its own task, as discord.py and slack-bolt dispatch events.

What is checked, per sent message:

- the platform shows exactly one reply to it (``reply_to`` is its id): the
  scripted answer, or a busy notice. None is *lost*, two or more *duplicated*,
  any other text (an error) *failed*;
- an answered message is stored once as the person's turn and its answer once
  as the bot's turn, naming the question and after it (a busy-noticed message
  may be stored once or not at all, never twice);
- in each conversation, each person's turns are in the order they sent them.
"""

from __future__ import annotations

import asyncio
import random
import re
import secrets
import statistics
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from confab.bot.config import RouterConfig
from confab.bot.llm.backend import ChatMessage
from confab.bot.messages import Author, Message, SentMessage
from confab.bot.testing import ChatHarness, Posted, RecordingAdapter, ScriptedBackend
from confab.skills.qa import AskSkill
from confab.storage.conversations import ConversationKey, StoredTurn

TAG = re.compile(r"\[(u\d+\.m\d+)\]")
# What a busy or slow-down notice says (the model queue's ModelBusy, the router's
# rate and concurrency limits); any other reply that is not the answer is a failure.
BUSY_NOTICE = re.compile(r"\b(busy|slow down|too many|too fast|rate limit)\b", re.IGNORECASE)
MAX_EXAMPLES = 10  # problems described in the report, of each kind


@dataclass(frozen=True, slots=True)
class LoadPlan:
    """Who sends what, and how fast the scripted model answers."""

    users: int = 200
    channels: int = 50
    messages: int = 5  # per user
    think_s: float = 0.02  # upper bound of the random pause between one user's messages
    model_chunk_delay_s: float = 0.002  # before each streamed chunk
    answer_chunks: int = 4
    time_limit_s: float = 60.0  # no message is sent after this
    grace_s: float = 10.0  # then in-flight messages get this long to be answered
    seed: int = 0

    def channel_of(self, user: int) -> str:
        return f"load-{user % self.channels}"


def question_text(tag: str) -> str:
    return f"What do you make of item [{tag}]?"


def answer_text(tag: str, chunks: int) -> str:
    """The scripted answer to the question tagged ``tag``: ``chunks`` words."""
    return " ".join([f"[{tag}]", *(f"part{n}" for n in range(2, chunks + 1))])


def scripted_model(plan: LoadPlan) -> ScriptedBackend:
    """Answers the newest question of the prompt, in ``answer_chunks`` delayed chunks."""

    def script(prompt: Sequence[ChatMessage]) -> str:
        asked = next(m for m in reversed(prompt) if m.role == "user")
        found = TAG.search(asked.content)
        return answer_text(found.group(1) if found else "untagged", plan.answer_chunks)

    return ScriptedBackend(script, delay_s=plan.model_chunk_delay_s)


class TimedAdapter(RecordingAdapter):
    """The recording platform, noting when each incoming message's reply last changed."""

    def __init__(self) -> None:
        super().__init__()
        self.updated_at: dict[str, float] = {}  # incoming message id -> last send or edit
        self._answers: dict[str, str] = {}  # sent message id -> the incoming id it answers

    async def send(
        self, channel: str, text: str, *, thread: str | None = None, reply_to: str | None = None
    ) -> SentMessage:
        sent = await super().send(channel, text, thread=thread, reply_to=reply_to)
        if reply_to is not None:
            self._answers[sent.id] = reply_to
            self.updated_at[reply_to] = time.perf_counter()
        return sent

    async def edit(self, sent: SentMessage, text: str) -> None:
        await super().edit(sent, text)
        if sent.id in self._answers:
            self.updated_at[self._answers[sent.id]] = time.perf_counter()


@dataclass
class Delivery:
    """One message a simulated user sent, and when."""

    message: Message
    id: str  # the message's id
    user: int
    index: int  # 0-based, in the order this user sent their messages
    tag: str
    started: float
    finished: float | None = None  # when the router returned; None if it never did

    @classmethod
    def of(cls, plan: LoadPlan, platform: str, run: str, user: int, index: int) -> Delivery:
        """User ``user``'s message number ``index`` of the run ``run``, sent now."""
        tag = f"u{user:03d}.m{index}"
        message = Message(
            platform=platform,
            channel=plan.channel_of(user),
            author=Author(f"user{user:03d}", f"User {user}"),
            text=question_text(tag),
            addressed=True,
            id=f"load-{run}-{tag}",
        )
        return cls(message, f"load-{run}-{tag}", user, index, tag, time.perf_counter())


@dataclass
class LoadReport:
    """What one run sent, what came back, what was stored, and how fast.

    The problem counts are of sent messages (a message lost twice over counts once).
    """

    plan: LoadPlan
    database: str
    router_config: RouterConfig
    sent: int = 0
    not_sent: int = 0  # after the time limit
    finished: int = 0  # messages the router was done with
    sending_s: float = 0.0  # from the first message sent to the last
    replies: int = 0
    answers: int = 0
    busy_notices: int = 0
    other_replies: int = 0  # neither the answer nor a busy notice (an error, say)
    turns_stored: int = 0
    elapsed_s: float = 0.0
    latencies_s: list[float] = field(default_factory=list)
    unanswered: set[str] = field(default_factory=set)
    unstored: set[str] = field(default_factory=set)  # answered, but a turn is missing
    duplicated_ids: set[str] = field(default_factory=set)
    out_of_order_ids: set[str] = field(default_factory=set)
    failed_ids: set[str] = field(default_factory=set)  # other reply, or wrong stored text
    unfinished_ids: set[str] = field(default_factory=set)  # the router never returned
    stray_turns: int = 0  # stored turns that belong to no sent message
    problems: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))

    @property
    def lost(self) -> int:
        return len(self.unanswered | self.unstored)

    @property
    def duplicated(self) -> int:
        return len(self.duplicated_ids)

    @property
    def out_of_order(self) -> int:
        return len(self.out_of_order_ids)

    @property
    def failed(self) -> int:
        return len(self.failed_ids)

    @property
    def unfinished(self) -> int:
        return len(self.unfinished_ids)

    @property
    def ok(self) -> bool:
        """Every message answered or told busy exactly once, and stored once, in order."""
        return not (
            self.lost
            or self.duplicated
            or self.out_of_order
            or self.failed
            or self.unfinished
            or self.stray_turns
        )

    def verdict(self) -> str:
        """``ok``, or what went wrong."""
        counts = {
            "lost": self.lost,
            "duplicated": self.duplicated,
            "out of order": self.out_of_order,
            "failed": self.failed,
            "unfinished": self.unfinished,
            "stray turns": self.stray_turns,
            "not sent (time limit)": self.not_sent,
        }
        wrong = [f"{name} {count}" for name, count in counts.items() if count]
        return "FAILED: " + ", ".join(wrong) if wrong else "ok"

    @property
    def messages_per_s(self) -> float:
        return self.finished / self.elapsed_s if self.elapsed_s else 0.0

    def percentile_ms(self, percent: int) -> float:
        if len(self.latencies_s) < 2:
            return 1000 * (self.latencies_s[0] if self.latencies_s else float("nan"))
        cuts = statistics.quantiles(self.latencies_s, n=100, method="inclusive")
        return 1000 * cuts[percent - 1]

    def problem(self, found: set[str], message_id: str, kind: str, detail: str = "") -> None:
        """Count ``message_id`` in ``found``; keep the first few descriptions of ``kind``."""
        found.add(message_id)
        self.note(kind, f"{message_id} {detail}".strip())

    def note(self, kind: str, text: str) -> None:
        if len(self.problems[kind]) < MAX_EXAMPLES:
            self.problems[kind].append(text)

    def lines(self) -> list[str]:
        """The report as the bench prints it."""
        plan = self.plan
        slowest = 1000 * max(self.latencies_s, default=0.0)
        out = [
            f"[{self.database}] {plan.users} users in {plan.channels} channels, "
            f"{plan.messages} messages each",
            f"  messages sent:    {self.sent} in {self.sending_s:.2f} s"
            + (f" ({self.not_sent} not sent: time limit reached)" if self.not_sent else ""),
            f"  replies received: {self.replies} (answers {self.answers}, "
            f"busy notices {self.busy_notices}, other {self.other_replies})",
            f"  turns stored:     {self.turns_stored}",
            f"  lost: {self.lost} (no reply {len(self.unanswered)}, "
            f"answered but not stored {len(self.unstored)})",
            f"  duplicated: {self.duplicated}",
            f"  out of order: {self.out_of_order}",
            f"  failed: {self.failed}, unfinished: {self.unfinished}, "
            f"stray turns: {self.stray_turns}",
            f"  messages/s: {self.messages_per_s:.0f} "
            f"({self.finished} handled in {self.elapsed_s:.2f} s)",
            f"  latency, sent -> final reply: p50 {self.percentile_ms(50):.0f} ms, "
            f"p95 {self.percentile_ms(95):.0f} ms, max {slowest:.0f} ms",
        ]
        out.append(f"  result: {self.verdict()}")
        for kind, examples in self.problems.items():
            out.append(f"  {kind} (first {len(examples)}):")
            out.extend(f"    {example}" for example in examples)
        return out


def load_router_config(plan: LoadPlan, **overrides: object) -> RouterConfig:
    """The router settings of a load run, every one stated, then ``overrides``.

    The shipped limits, except that a person's burst is raised to their whole
    batch of messages when it is smaller: past the rate limit messages are
    dropped after one notice, and a load run must lose none. The channel limits
    stay as shipped: past them a message gets a busy notice, which is an answer.
    """
    return RouterConfig.model_validate(
        {
            "prefixes": ["!"],
            "default_skill": "ask",
            "max_input_chars": 4000,
            "ignore_bots": True,
            "admins": [],
            "user_rate_per_minute": 20.0,
            "user_burst": max(8, plan.messages),
            "channel_concurrency": 4,
            "channel_queue": 16,
            **overrides,
        }
    )


async def run_load(
    plan: LoadPlan,
    database_url: str,
    folder: Path,
    *,
    router_config: RouterConfig | None = None,
    database: str | None = None,
) -> LoadReport:
    """Run ``plan`` against a fresh schema at ``database_url``; check and report it."""
    config = router_config or load_router_config(plan)
    report = LoadReport(plan, database or database_url.split(":", 1)[0], config)
    adapter = TimedAdapter()
    async with ChatHarness(
        [AskSkill],
        folder,
        model=scripted_model(plan),
        router_config=config,
        adapter=adapter,
        database_url=database_url,
    ) as chat:
        deliveries = await _drive(plan, chat, adapter, report)
        answered = check_replies(deliveries, adapter.posted, plan, report)
        await _check_turns(deliveries, chat, answered, plan, report)
    report.latencies_s = sorted(
        adapter.updated_at[d.id] - d.started for d in deliveries if d.id in adapter.updated_at
    )
    return report


async def _drive(
    plan: LoadPlan, chat: ChatHarness, adapter: TimedAdapter, report: LoadReport
) -> list[Delivery]:
    run = secrets.token_hex(3)  # message ids stay unique across runs on one database
    rng = random.Random(plan.seed)
    # Drawn up front, so a seed gives the same schedule whatever the timing.
    pauses = [
        [rng.uniform(0, plan.think_s) for _ in range(plan.messages)] for _ in range(plan.users)
    ]
    started = time.perf_counter()
    deadline = started + plan.time_limit_s
    deliveries: list[Delivery] = []
    in_flight: set[asyncio.Task[None]] = set()

    async def deliver(delivery: Delivery) -> None:
        await chat.router.handle(delivery.message, adapter)
        delivery.finished = time.perf_counter()

    async def user(number: int) -> None:
        for index, pause in enumerate(pauses[number]):
            await asyncio.sleep(pause)
            if time.perf_counter() >= deadline:
                report.not_sent += plan.messages - index
                return
            delivery = Delivery.of(plan, adapter.platform, run, number, index)
            adapter.timeline.append(delivery.message)
            deliveries.append(delivery)
            task = asyncio.create_task(deliver(delivery))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)

    await asyncio.gather(*(user(number) for number in range(plan.users)))
    if in_flight:
        remaining = max(deadline - time.perf_counter(), 0.0) + plan.grace_s
        _, stuck = await asyncio.wait(set(in_flight), timeout=remaining)
        for task in stuck:
            task.cancel()
        await asyncio.gather(*stuck, return_exceptions=True)
        if stuck:
            # What the router still does for a cancelled message (storing the part
            # of an answer already shown) ends before the database closes.
            others = asyncio.all_tasks() - {asyncio.current_task()}
            if others:
                await asyncio.wait(others, timeout=plan.grace_s)
    finished = [d.finished for d in deliveries if d.finished is not None]
    report.sent = len(deliveries)
    report.sending_s = max((d.started for d in deliveries), default=started) - started
    report.finished = len(finished)
    report.elapsed_s = max(finished, default=started) - started
    for delivery in deliveries:
        if delivery.finished is None:
            report.problem(
                report.unfinished_ids, delivery.id, "unfinished", "(router never returned)"
            )
    return deliveries


def check_replies(
    deliveries: list[Delivery], posted: list[Posted], plan: LoadPlan, report: LoadReport
) -> set[str]:
    """Check what the platform shows; return the ids of the messages answered."""
    replies: dict[str | None, list[Posted]] = defaultdict(list)
    for post in posted:
        replies[post.reply_to].append(post)
    report.replies = len(posted)
    sent_ids = {d.id for d in deliveries}
    for reply_to, posts in replies.items():
        if reply_to not in sent_ids:
            report.other_replies += len(posts)
            report.problem(
                report.failed_ids, str(reply_to), "reply to no sent message", repr(posts[0].text)
            )
    answered = set()
    for delivery in deliveries:
        texts = [post.text for post in replies.get(delivery.id, [])]
        for text in texts:
            if text == answer_text(delivery.tag, plan.answer_chunks):
                report.answers += 1
                answered.add(delivery.id)
            elif BUSY_NOTICE.search(text):
                report.busy_notices += 1
            else:
                report.other_replies += 1
                report.problem(report.failed_ids, delivery.id, "other reply", repr(text))
        if not texts:
            report.problem(report.unanswered, delivery.id, "no reply")
        elif len(texts) > 1:
            report.problem(report.duplicated_ids, delivery.id, "several replies", repr(texts))
    return answered


async def _check_turns(
    deliveries: list[Delivery],
    chat: ChatHarness,
    answered: set[str],
    plan: LoadPlan,
    report: LoadReport,
) -> None:
    by_channel: dict[str, list[Delivery]] = defaultdict(list)
    for delivery in deliveries:
        by_channel[delivery.message.channel].append(delivery)
    for channel, sent in sorted(by_channel.items()):
        key = ConversationKey(chat.adapter.platform, channel)
        turns = await chat.store.channel_messages(key, limit=10 * len(sent) + 10)
        report.turns_stored += len(turns)
        check_conversation(channel, sent, turns, answered, plan, report)


def check_conversation(
    channel: str,
    sent: list[Delivery],
    turns: list[StoredTurn],
    answered: set[str],
    plan: LoadPlan,
    report: LoadReport,
) -> None:
    """One conversation's turns (oldest first) against the messages sent into it."""
    position = {turn.id: n for n, turn in enumerate(turns)}
    questions: dict[str | None, list[StoredTurn]] = defaultdict(list)
    answers: dict[int | None, list[StoredTurn]] = defaultdict(list)
    for turn in turns:
        if turn.role == "user":
            questions[turn.platform_message_id].append(turn)
        else:
            answers[turn.reply_to_id].append(turn)
    sent_ids = {d.id for d in sent}
    for message_id, stored in questions.items():
        if message_id not in sent_ids:
            report.stray_turns += len(stored)
            report.note("stray turns", f"{channel}: a person's turn for {message_id}")
    question_ids = {turn.id for stored in questions.values() for turn in stored}
    for reply_to_id, stored in answers.items():
        if reply_to_id not in question_ids:
            report.stray_turns += len(stored)
            report.note("stray turns", f"{channel}: a bot turn naming {reply_to_id}")
    latest: dict[int, int] = {}  # user -> position of their previous stored message
    for delivery in sorted(sent, key=lambda d: (d.user, d.index)):
        stored = questions.get(delivery.id, [])
        if len(stored) > 1:
            report.problem(report.duplicated_ids, delivery.id, "question stored twice")
        if not stored:
            if delivery.id in answered:
                report.problem(report.unstored, delivery.id, "question not stored")
            continue
        at = position[stored[0].id]
        if at < latest.get(delivery.user, -1):
            report.problem(
                report.out_of_order_ids,
                delivery.id,
                "stored before the same person's previous message",
                f"in {channel}",
            )
        latest[delivery.user] = at
        replies = [reply for question in stored for reply in answers.get(question.id, [])]
        if len(replies) > 1:
            report.problem(report.duplicated_ids, delivery.id, "answer stored twice")
        if delivery.id in answered and not replies:
            report.problem(report.unstored, delivery.id, "answer not stored")
        for reply in replies:
            if position[reply.id] < at:
                report.problem(
                    report.out_of_order_ids, delivery.id, "answer stored before question"
                )
            if delivery.id in answered and reply.text != answer_text(
                delivery.tag, plan.answer_chunks
            ):
                report.problem(
                    report.failed_ids, delivery.id, "stored answer differs", repr(reply.text)
                )
