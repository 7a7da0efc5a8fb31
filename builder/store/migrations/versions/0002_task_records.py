"""Stats recorded by every task as it finishes; runs superseded by a resuming run.

Revision ID: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    op.create_table(
        "task_records",
        sa.Column("run_id", sa.String(64), primary_key=True),
        sa.Column("task", sa.String(128), primary_key=True),
        sa.Column("stage", sa.String(64), nullable=False),
        sa.Column("stats", sa.Text, nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    )
    with op.batch_alter_table("runs") as runs:
        runs.add_column(sa.Column("superseded_by", sa.String(64), nullable=True))
