"""Persistence: SQLAlchemy engine, tables, repositories and Alembic migrations.

Nothing here imports the bot core; the core talks to storage through
:class:`storage.conversations.ConversationStore` and plain dataclasses.
"""

from storage.conversations import ConversationKey, ConversationStore, StoredTurn
from storage.database import Database

__all__ = ["ConversationKey", "ConversationStore", "Database", "StoredTurn"]
