"""Structured-output formats a server rejected, remembered per (base URL, model).

Revision ID: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"


def upgrade() -> None:
    op.create_table(
        "llm_formats",
        sa.Column("base_url", sa.String(512), primary_key=True),
        sa.Column("model", sa.String(256), primary_key=True),
        sa.Column("structured_output", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("learned_at", sa.DateTime(timezone=True), nullable=False),
    )
