"""A release being written, recorded (with its manifest hash) before its folder moves into
place, so that a release killed at any point is completed or verified by the rerun.

Revision ID: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    op.create_table(
        "release_intents",
        sa.Column("version", sa.String(64), primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("location", sa.Text, nullable=False),
        sa.Column("items", sa.Integer, nullable=False),
        sa.Column("manifest_sha256", sa.String(64), nullable=False),
    )
