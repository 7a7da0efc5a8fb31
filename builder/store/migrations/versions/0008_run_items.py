"""The items each build run touched (planned, retried, ran a stage on): run-scoped reports.

Revision ID: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"


def upgrade() -> None:
    op.create_table(
        "run_items",
        sa.Column("run_id", sa.String(64), primary_key=True),
        sa.Column("item_id", sa.String(32), primary_key=True),
    )
