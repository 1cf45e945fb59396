"""Per-subject disclosure budgets: the questions answered about each subject, in bits.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 22:00:00.000000
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "subject_disclosure",
        sa.Column("subject", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("question", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("operator", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("at", sa.Integer(), nullable=False),
        sa.Column("millibits", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("subject", "question", "operator"),
        sqlite_with_rowid=False,
    )


def downgrade() -> None:
    op.drop_table("subject_disclosure")
