"""The schema. Every change to it goes with an Alembic migration in ``migrations/``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    Unicode,
    UnicodeText,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class ConversationRow(Base):
    """One conversation: a thread, or a channel outside threads, on one platform.

    ``thread`` is '' (not NULL) outside threads so the unique key holds.
    ``memory_after_id`` is the turn after which the bot's memory of it starts
    (``!reset``); earlier turns stay stored, for summaries and exports.
    """

    __tablename__ = "conversations"
    __table_args__ = (UniqueConstraint("platform", "channel", "thread"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    platform: Mapped[str] = mapped_column(String(32))
    channel: Mapped[str] = mapped_column(String(255))
    thread: Mapped[str] = mapped_column(String(255), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    memory_after_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # A direct message: its history never answers anywhere else (knowledge scope).
    direct: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class TurnRow(Base):
    """One message in a conversation: from a person (role 'user') or the bot ('assistant').

    ``addressed`` is false for channel chatter that was stored but not answered;
    ``skill`` names the skill that handled an addressed turn, so each skill sees
    its own thread of the conversation; ``command`` is set when the person typed
    one (``text`` is always what they wrote, command included). A bot turn's
    ``reply_to_id`` is the person's turn it answers and ``reply_to_author_id``
    that person, so forgetting a person forgets the answers they were given too,
    even an answer stored after its question was already deleted. Neither is a
    foreign key, so deleting a question never has to touch its answers first.
    """

    __tablename__ = "turns"
    __table_args__ = (
        # The last N turns of a conversation.
        Index("ix_turns_conversation_id_id", "conversation_id", "id"),
        # A channel's messages since T.
        Index("ix_turns_conversation_id_created_at", "conversation_id", "created_at"),
        # Retention, forgetting a person, and their answers.
        Index("ix_turns_created_at", "created_at"),
        Index("ix_turns_author_id", "author_id"),
        Index("ix_turns_reply_to_id", "reply_to_id"),
        Index("ix_turns_reply_to_author_id", "reply_to_author_id"),
        # What the knowledge indexer has not read yet, and the turns of a chunk.
        Index(
            "ix_turns_pending",
            "id",
            sqlite_where=text("indexed = 0"),
            postgresql_where=text("NOT indexed"),
        ),
        Index("ix_turns_knowledge_chunk_id", "knowledge_chunk_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(16))
    author_id: Mapped[str] = mapped_column(String(255))
    author_name: Mapped[str] = mapped_column(String(255))
    text: Mapped[str] = mapped_column(Text)
    addressed: Mapped[bool] = mapped_column(Boolean, default=True)
    skill: Mapped[str | None] = mapped_column(String(64), nullable=True)
    command: Mapped[str | None] = mapped_column(String(64), nullable=True)
    platform_message_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    token_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    reply_to_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    reply_to_author_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    # Read by the knowledge indexer; the chunk that holds it, if it was worth one.
    # Not a foreign key: a chunk and its turns are deleted together, in code.
    indexed: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    knowledge_chunk_id: Mapped[int | None] = mapped_column(Integer, nullable=True)


class UserRow(Base):
    """A person as one platform knows them, with the settings they chose."""

    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("platform", "platform_user_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    platform: Mapped[str] = mapped_column(String(32))
    platform_user_id: Mapped[str] = mapped_column(String(255))
    display_name: Mapped[str] = mapped_column(String(255))
    settings: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ChannelSettingsRow(Base):
    """A channel's overrides; NULL means "use the default" for each column."""

    __tablename__ = "channel_settings"
    __table_args__ = (UniqueConstraint("platform", "channel"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    platform: Mapped[str] = mapped_column(String(32))
    channel: Mapped[str] = mapped_column(String(255))
    system_prompt: Mapped[str | None] = mapped_column(Text, nullable=True)
    enabled_skills: Mapped[list[str] | None] = mapped_column(JSON(none_as_null=True), nullable=True)
    timezone: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # Opted in with `!train optin`: its conversations may be exported for fine-tuning.
    training_optin: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # The registry name or path of the model that answers here (`confab model use --channel`).
    model: Mapped[str | None] = mapped_column(UnicodeText, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class BotSettingRow(Base):
    """One process-wide setting changed at run time (``default_model``)."""

    __tablename__ = "bot_settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(UnicodeText)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class SkillStateRow(Base):
    """One key-value entry a skill keeps, within a scope it names (a channel, a user...)."""

    __tablename__ = "skill_state"
    __table_args__ = (UniqueConstraint("skill", "scope", "key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    skill: Mapped[str] = mapped_column(String(64))
    scope: Mapped[str] = mapped_column(String(255))
    key: Mapped[str] = mapped_column(String(255))
    value: Mapped[Any] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ProcessedEventRow(Base):
    """A platform event already handled: a Slack retry or Discord replay of it is dropped."""

    __tablename__ = "processed_events"
    __table_args__ = (
        UniqueConstraint("platform", "event_id"),
        Index("ix_processed_events_processed_at", "processed_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    platform: Mapped[str] = mapped_column(String(32))
    event_id: Mapped[str] = mapped_column(String(255))
    processed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ScheduledJobRow(Base):
    """A scheduled job as APScheduler's SQLAlchemy job store keeps it (its own schema:
    the pickled job state and the next run time as a POSIX timestamp)."""

    __tablename__ = "scheduled_jobs"

    id: Mapped[str] = mapped_column(Unicode(191), primary_key=True)
    next_run_time: Mapped[float | None] = mapped_column(Float(25), index=True, nullable=True)
    job_state: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)


class KnowledgeDocumentRow(Base):
    """A document added to the knowledge base (``confab kb add``, ``!kb add``).

    ``source`` is what identifies it when it is added again: the file's absolute
    path, or ``chat:PLATFORM:CHANNEL:NAME`` for a file attached in chat.
    ``channels`` lists the ``platform:channel`` names it answers in; NULL is everywhere.
    """

    __tablename__ = "knowledge_documents"
    __table_args__ = (UniqueConstraint("source"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(UnicodeText)
    name: Mapped[str] = mapped_column(Unicode(255))
    kind: Mapped[str] = mapped_column(String(16))
    title: Mapped[str] = mapped_column(UnicodeText)
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    channels: Mapped[list[str] | None] = mapped_column(JSON(none_as_null=True), nullable=True)
    added_by: Mapped[str] = mapped_column(Unicode(255))
    added_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class KnowledgeChunkRow(Base):
    """One retrieval unit: a run of nearby messages of a channel or thread, or a passage
    of a document, with its sentence vector (float16, little-endian).

    Ids are never reused (AUTOINCREMENT on SQLite), so an in-process index that
    still holds a deleted chunk's vector can never mistake a new chunk for it.
    Full-text search lives beside it: an FTS5 table kept by triggers on SQLite, a
    generated ``tsvector`` column on PostgreSQL (see migration 0007).
    """

    __tablename__ = "knowledge_chunks"
    __table_args__ = (
        Index("ix_knowledge_chunks_platform_channel", "platform", "channel"),
        Index("ix_knowledge_chunks_document_id", "document_id"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    document_id: Mapped[int | None] = mapped_column(
        ForeignKey("knowledge_documents.id", ondelete="CASCADE"), nullable=True
    )
    # Messages: where they were said ('' for documents).
    platform: Mapped[str] = mapped_column(String(32), default="")
    channel: Mapped[str] = mapped_column(String(255), default="")
    thread: Mapped[str] = mapped_column(String(255), default="")
    direct: Mapped[bool] = mapped_column(Boolean, default=False)
    heading: Mapped[str] = mapped_column(UnicodeText, default="")
    text: Mapped[str] = mapped_column(UnicodeText)
    # Messages: the platform id of the first one (for a link), who spoke, and when.
    message_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    authors: Mapped[str] = mapped_column(UnicodeText, default="")
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    embedding: Mapped[bytes] = mapped_column(LargeBinary)
