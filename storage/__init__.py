"""Persistence: SQLAlchemy engine, tables, repositories and Alembic migrations.

Nothing here imports the bot core; the core talks to storage through the
repositories (:class:`ConversationStore`, :class:`UserStore`,
:class:`ChannelSettingsStore`, :class:`SkillStateStore`, :class:`EventLog`)
and plain dataclasses, on SQLite or PostgreSQL alike.
"""
