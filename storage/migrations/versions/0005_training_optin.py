"""Whether a channel lets its conversations be exported for fine-tuning (``!train optin``).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "channel_settings",
        sa.Column("training_optin", sa.Boolean(), nullable=False, server_default=sa.false()),
    )


def downgrade() -> None:
    # Not batch mode (see 0003): SQLite 3.35+ drops a column in place.
    op.drop_column("channel_settings", "training_optin")
