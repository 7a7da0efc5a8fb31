"""Judge calibrations record the classes they counted as the judge saying positive (the
acceptance policy: `unsafe`, or `unsafe,unknown`), so a card quotes the calibration of the
decision the build applied. Calibrations before this counted exactly their task's class.

Revision ID: 0013
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0009"


def upgrade() -> None:
    with op.batch_alter_table("judge_calibrations") as batch:
        batch.add_column(sa.Column("positive_classes", sa.String(64), nullable=True))
    op.execute("UPDATE judge_calibrations SET positive_classes = task")
    with op.batch_alter_table("judge_calibrations") as batch:
        batch.alter_column("positive_classes", existing_type=sa.String(64), nullable=False)
