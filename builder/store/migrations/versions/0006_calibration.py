"""Judge calibrations: a judge's agreement with human labels, under its config hash.

Revision ID: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"


def upgrade() -> None:
    op.create_table(
        "judge_calibrations",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("judge", sa.String(256), nullable=False),
        sa.Column("judge_version", sa.String(256), nullable=False),
        sa.Column("config_hash", sa.String(64), nullable=False),
        sa.Column("task", sa.String(16), nullable=False),
        sa.Column("label_set", sa.String(256), nullable=False),
        sa.Column("label_set_hash", sa.String(64), nullable=False),
        sa.Column("n", sa.Integer, nullable=False),
        sa.Column("kappa", sa.Float, nullable=True),
        sa.Column("f1", sa.Float, nullable=False),
        sa.Column("report", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_judge_calibrations_config_hash", "judge_calibrations", ["config_hash", "task"])
