"""Declared joins (可关联数据集) between datasets, for aggregate queries.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 18:30:00.000000
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dataset_join",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("title", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("left_dataset", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("left_column", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("right_dataset", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("right_column", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("max_per_right", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["left_dataset"], ["dataset.id"]),
        sa.ForeignKeyConstraint(["right_dataset"], ["dataset.id"]),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("dataset_join")
