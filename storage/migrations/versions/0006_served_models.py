"""Which model serves: a per-channel override, and a process-wide default
(``confab model use NAME [--channel C]``).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("channel_settings", sa.Column("model", sa.UnicodeText(), nullable=True))
    op.create_table(
        "bot_settings",
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("value", sa.UnicodeText(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_bot_settings")),
    )


def downgrade() -> None:
    op.drop_table("bot_settings")
    # Not batch mode (see 0003): SQLite 3.35+ drops a column in place.
    op.drop_column("channel_settings", "model")
