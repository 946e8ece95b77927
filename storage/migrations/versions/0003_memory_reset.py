"""Where a conversation's memory starts again after ``!reset``.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("conversations", sa.Column("memory_after_id", sa.Integer(), nullable=True))


def downgrade() -> None:
    # Not batch mode: on SQLite that copies and drops the table, and the drop
    # would cascade to every turn. SQLite 3.35+ drops a column in place.
    op.drop_column("conversations", "memory_after_id")
