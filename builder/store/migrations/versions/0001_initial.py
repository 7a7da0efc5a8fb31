"""The store as mirbench 0.1.0 created it (before migrations existed).

Revision ID: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None


def _when(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "items",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("seed_id", sa.String(128), nullable=False),
        sa.Column("category", sa.String(64), nullable=False),
        sa.Column("relation", sa.String(64), nullable=False),
        sa.Column("iteration", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("data", sa.Text, nullable=False),
        _when("updated_at"),
    )
    for column in ("seed_id", "relation", "status"):
        op.create_index(f"ix_items_{column}", "items", [column])
    op.create_table(
        "reviews",
        sa.Column("item_id", sa.String(32), primary_key=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("reviewer", sa.String(128), nullable=True),
        sa.Column("reason", sa.Text, nullable=True),
        _when("queued_at"),
        _when("decided_at", nullable=True),
    )
    op.create_index("ix_reviews_state", "reviews", ["state"])
    op.create_table(
        "renders",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("renderer", sa.Text, nullable=False),
        sa.Column("file", sa.Text, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("phash", sa.String(16), nullable=False),
        sa.Column("source", sa.Text, nullable=True),
        sa.Column("license", sa.Text, nullable=True),
        sa.Column("prompt", sa.Text, nullable=True),
    )
    op.create_table(
        "text_embeddings",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("vector", sa.LargeBinary, nullable=False),
    )
    op.create_table(
        "llm_responses",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("model", sa.String(256), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        _when("created_at"),
    )
    op.create_table(
        "runs",
        sa.Column("id", sa.String(64), primary_key=True),
        _when("started_at"),
        _when("finished_at", nullable=True),
        sa.Column("settings", sa.Text, nullable=False),
        sa.Column("stats", sa.Text, nullable=True),
    )
    op.create_table(
        "releases",
        sa.Column("version", sa.String(64), primary_key=True),
        _when("created_at"),
        sa.Column("location", sa.Text, nullable=False),
        sa.Column("items", sa.Integer, nullable=False),
        sa.Column("manifest_sha256", sa.String(64), nullable=False),
    )
