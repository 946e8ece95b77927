"""The job store of scheduled jobs (APScheduler's SQLAlchemy schema).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "scheduled_jobs",
        sa.Column("id", sa.Unicode(191), nullable=False),
        sa.Column("next_run_time", sa.Float(25), nullable=True),
        sa.Column("job_state", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scheduled_jobs")),
    )
    op.create_index(op.f("ix_scheduled_jobs_next_run_time"), "scheduled_jobs", ["next_run_time"])


def downgrade() -> None:
    op.drop_index(op.f("ix_scheduled_jobs_next_run_time"), table_name="scheduled_jobs")
    op.drop_table("scheduled_jobs")
