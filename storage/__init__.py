"""Persistence: SQLAlchemy engine, tables, repositories and Alembic migrations.

Nothing here imports the bot core; the core talks to storage through the
repositories (:class:`ConversationStore`, :class:`UserStore`,
:class:`ChannelSettingsStore`, :class:`SkillStateStore`, :class:`EventLog`)
and plain dataclasses, on SQLite or PostgreSQL alike.
"""

from storage.channels import ChannelSettings, ChannelSettingsStore
from storage.conversations import ConversationKey, ConversationStore, Forgotten, StoredTurn
from storage.database import Database
from storage.events import EventLog
from storage.skill_state import SkillStateStore
from storage.users import StoredUser, UserStore

__all__ = [
    "ChannelSettings",
    "ChannelSettingsStore",
    "ConversationKey",
    "ConversationStore",
    "Database",
    "EventLog",
    "Forgotten",
    "SkillStateStore",
    "StoredTurn",
    "StoredUser",
    "UserStore",
]
