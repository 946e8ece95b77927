"""Users, channel settings, skill state, processed events; turn indexes and reply links.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TURN_INDEXES = {
    "ix_turns_conversation_id_created_at": ["conversation_id", "created_at"],
    "ix_turns_created_at": ["created_at"],
    "ix_turns_author_id": ["author_id"],
    "ix_turns_reply_to_id": ["reply_to_id"],
    "ix_turns_reply_to_author_id": ["reply_to_author_id"],
}
# Answers stored before this revision are linked to the person who asked: the
# latest addressed turn before them in the same conversation.
BACKFILL_ANSWERS = """
UPDATE turns SET
    reply_to_id = (SELECT q.id FROM turns q
        WHERE q.conversation_id = turns.conversation_id AND q.role = 'user'
          AND q.addressed AND q.id < turns.id ORDER BY q.id DESC LIMIT 1),
    reply_to_author_id = (SELECT q.author_id FROM turns q
        WHERE q.conversation_id = turns.conversation_id AND q.role = 'user'
          AND q.addressed AND q.id < turns.id ORDER BY q.id DESC LIMIT 1)
WHERE role = 'assistant'
"""


def upgrade() -> None:
    op.add_column("turns", sa.Column("reply_to_id", sa.Integer(), nullable=True))
    op.add_column("turns", sa.Column("reply_to_author_id", sa.String(255), nullable=True))
    op.execute(BACKFILL_ANSWERS)
    for name, columns in TURN_INDEXES.items():
        op.create_index(name, "turns", columns)
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("platform", sa.String(length=32), nullable=False),
        sa.Column("platform_user_id", sa.String(length=255), nullable=False),
        sa.Column("display_name", sa.String(length=255), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("platform", "platform_user_id", name=op.f("uq_users_platform")),
    )
    op.create_table(
        "channel_settings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("platform", sa.String(length=32), nullable=False),
        sa.Column("channel", sa.String(length=255), nullable=False),
        sa.Column("system_prompt", sa.Text(), nullable=True),
        sa.Column("enabled_skills", sa.JSON(), nullable=True),
        sa.Column("timezone", sa.String(length=64), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_channel_settings")),
        sa.UniqueConstraint("platform", "channel", name=op.f("uq_channel_settings_platform")),
    )
    op.create_table(
        "skill_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("skill", sa.String(length=64), nullable=False),
        sa.Column("scope", sa.String(length=255), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("value", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_skill_state")),
        sa.UniqueConstraint("skill", "scope", "key", name=op.f("uq_skill_state_skill")),
    )
    op.create_table(
        "processed_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("platform", sa.String(length=32), nullable=False),
        sa.Column("event_id", sa.String(length=255), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_processed_events")),
        sa.UniqueConstraint("platform", "event_id", name=op.f("uq_processed_events_platform")),
    )
    op.create_index("ix_processed_events_processed_at", "processed_events", ["processed_at"])


def downgrade() -> None:
    op.drop_index("ix_processed_events_processed_at", table_name="processed_events")
    op.drop_table("processed_events")
    op.drop_table("skill_state")
    op.drop_table("channel_settings")
    op.drop_table("users")
    for name in TURN_INDEXES:
        op.drop_index(name, table_name="turns")
    # SQLite drops a column by rebuilding the table: batch mode does that there
    # and a plain ALTER TABLE on PostgreSQL.
    with op.batch_alter_table("turns") as batch:
        batch.drop_column("reply_to_id")
        batch.drop_column("reply_to_author_id")
