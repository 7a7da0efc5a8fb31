"""Evaluation runs (`mirbench evaluate`): runs, their items, each target's responses (text in
the answers table only) and each protocol's verdicts.

Revision ID: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0011"


def upgrade() -> None:
    op.create_table(
        "evaluation_runs",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("plan_hash", sa.String(64), nullable=False),
        sa.Column("dataset", sa.Text, nullable=False),
        sa.Column("plan", sa.Text, nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("summary", sa.Text, nullable=True),
    )
    op.create_index("ix_evaluation_runs_plan_hash", "evaluation_runs", ["plan_hash"])
    op.create_table(
        "evaluation_items",
        sa.Column("run_id", sa.String(64), primary_key=True),
        sa.Column("item_id", sa.String(128), primary_key=True),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("category", sa.String(64), nullable=False),
        sa.Column("relation", sa.String(64), nullable=False),
        sa.Column("num_images", sa.Integer, nullable=False),
        sa.Column("data", sa.Text, nullable=False),
    )
    op.create_table(
        "evaluation_responses",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("target", sa.String(256), nullable=False),
        sa.Column("item_id", sa.String(128), nullable=False),
        sa.Column("condition", sa.String(32), nullable=False),
        sa.Column("answer_key", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("failure_reason", sa.String(64), nullable=True),
        sa.Column("failure_detail", sa.Text, nullable=True),
        sa.Column("trace", sa.String(16), nullable=True),
        sa.Column("trace_markers", sa.String(64), nullable=True),
        sa.Column("measurements", sa.Text, nullable=True),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index(
        "evaluation_response_key",
        "evaluation_responses",
        ["run_id", "target", "item_id", "condition"],
        unique=True,
    )
    op.create_index("evaluation_response_state", "evaluation_responses", ["run_id", "state"])
    op.create_table(
        "evaluation_verdicts",
        sa.Column("response_id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("protocol", sa.String(32), primary_key=True),
        sa.Column("part", sa.String(16), primary_key=True),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("label", sa.String(32), nullable=True),
        sa.Column("score", sa.Float, nullable=True),
        sa.Column("unsafe", sa.Boolean, nullable=True),
        sa.Column("judge", sa.String(256), nullable=False),
        sa.Column("judge_version", sa.String(256), nullable=False),
        sa.Column("judge_model", sa.String(256), nullable=True),
        sa.Column("config_hash", sa.String(64), nullable=True),
        sa.Column("rationale", sa.Text, nullable=False),
        sa.Column("failure_detail", sa.Text, nullable=True),
        sa.Column("judged_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_evaluation_verdicts_run_id", "evaluation_verdicts", ["run_id"])
