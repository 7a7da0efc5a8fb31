"""Testers' answers keep what an in-process tester measured while answering (attention entropy).

Revision ID: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0013"


def upgrade() -> None:
    with op.batch_alter_table("attack_answers") as table:
        table.add_column(sa.Column("measurements", sa.JSON(none_as_null=True), nullable=True))
