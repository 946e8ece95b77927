"""A labelled chat history: channels of messages, and questions whose answering messages
are known. ``bench/retrieval.py`` measures retrieval on it; tests plant it among others.

The file format is ``bench/retrieval_cases/team_history.toml``: ``[[channel]]``
tables with ``[[channel.message]]`` (author, minute, thread, text, an optional
``key``) and ``[[question]]`` tables (channel, text, ``answers``: keys of the
messages that answer it, ``expect``: phrases a right answer contains,
``forbidden``: keys of messages it must never be shown).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from confab.storage.conversations import ConversationKey, ConversationStore

TEAM_HISTORY = (
    Path(__file__).resolve().parents[2] / "bench" / "retrieval_cases" / "team_history.toml"
)
START = datetime(2026, 11, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class LabelledMessage:
    channel: str
    direct: bool
    author: str
    minute: int
    thread: str
    text: str
    key: str = ""

    @property
    def conversation(self) -> ConversationKey:
        return ConversationKey("console", self.channel, self.thread or None, direct=self.direct)


@dataclass(frozen=True, slots=True)
class LabelledQuestion:
    channel: str
    text: str
    answers: tuple[str, ...]
    expect: tuple[str, ...]
    forbidden: tuple[str, ...]

    @property
    def kind(self) -> str:
        """ "answered", "scope" (must not be shown another channel's answer) or "nowhere"."""
        return "answered" if self.answers else "scope" if self.forbidden else "nowhere"


@dataclass(frozen=True, slots=True)
class LabelledHistory:
    messages: tuple[LabelledMessage, ...]
    questions: tuple[LabelledQuestion, ...]


def load(path: Path = TEAM_HISTORY) -> LabelledHistory:
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    messages = tuple(
        LabelledMessage(
            channel=channel["name"],
            direct=bool(channel.get("direct", False)),
            author=m["author"],
            minute=int(m["minute"]),
            thread=m.get("thread", ""),
            text=m["text"],
            key=m.get("key", ""),
        )
        for channel in data["channel"]
        for m in channel["message"]
    )
    questions = tuple(
        LabelledQuestion(
            channel=q["channel"],
            text=q["text"],
            answers=tuple(q.get("answers", ())),
            expect=tuple(q.get("expect", ())),
            forbidden=tuple(q.get("forbidden", ())),
        )
        for q in data["question"]
    )
    return LabelledHistory(messages, questions)


async def plant(
    store: ConversationStore, messages: tuple[LabelledMessage, ...], *, start: datetime = START
) -> dict[str, int]:
    """Store the messages as channel chatter, in time order; return key -> turn id."""
    keys: dict[str, int] = {}
    for n, message in enumerate(sorted(messages, key=lambda m: (m.minute, m.channel))):
        turn = await store.append(
            message.conversation,
            role="user",
            author_id=message.author.lower(),
            author_name=message.author,
            text=message.text,
            addressed=False,
            platform_message_id=f"m{n}",
            created_at=start + timedelta(minutes=message.minute),
        )
        if message.key:
            keys[message.key] = turn.id
    return keys
