"""Seed triage explained: the mapping rule that matched each seed (its index, label or text,
and what matched), and why triage left the seed in its state.

Revision ID: 0012
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0010"


def upgrade() -> None:
    op.add_column("seed_candidates", sa.Column("mapped_rule", sa.Integer, nullable=True))
    op.add_column("seed_candidates", sa.Column("mapped_by", sa.String(16), nullable=True))
    op.add_column("seed_candidates", sa.Column("mapped_match", sa.Text, nullable=True))
    op.add_column("seed_candidates", sa.Column("triage_reason", sa.String(32), nullable=True))
