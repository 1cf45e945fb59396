"""Privacy budgets (ε ledger) for aggregate queries, and declared bounds of numeric columns.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 16:30:00.138496
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "privacy_budget",
        sa.Column("key", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("spent", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    with op.batch_alter_table("dataset_column", schema=None) as batch_op:
        batch_op.add_column(sa.Column("bounds", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("dataset_column", schema=None) as batch_op:
        batch_op.drop_column("bounds")

    op.drop_table("privacy_budget")
