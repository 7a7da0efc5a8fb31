"""Seed curation: imported seeds with provenance, triage and curation state; reviewers' edits.

Revision ID: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"


def upgrade() -> None:
    op.create_table(
        "seed_candidates",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("source_id", sa.String(256), nullable=False),
        sa.Column("revision", sa.String(128), nullable=False),
        sa.Column("license", sa.String(128), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("labels", sa.Text, nullable=False),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("alias_of", sa.String(32), nullable=True),
        sa.Column("alias_similarity", sa.Float, nullable=True),
        sa.Column("mapped_category", sa.String(64), nullable=True),
        sa.Column("llm_category", sa.String(64), nullable=True),
        sa.Column("llm_confidence", sa.Float, nullable=True),
        sa.Column("llm_reason", sa.Text, nullable=True),
        sa.Column("llm_model", sa.String(256), nullable=True),
        sa.Column("category", sa.String(64), nullable=True),
        sa.Column("key_phrase", sa.Text, nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("decided_by", sa.Text, nullable=True),
    )
    op.create_index("seed_source_key", "seed_candidates", ["source", "source_id"], unique=True)
    op.create_index("seed_queue_order", "seed_candidates", ["state", "imported_at", "id"])
    op.create_index("ix_seed_candidates_alias_of", "seed_candidates", ["alias_of"])
    op.create_table(
        "seed_vote_edits",
        sa.Column("decision_id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("category", sa.String(64), nullable=True),
        sa.Column("key_phrase", sa.Text, nullable=True),
    )
