"""Witnesses' cosignatures of the heads' checkpoints.

Revision ID: 0009_witness_cosignatures
Revises: 0008_checkpoints
Create Date: 2026-12-02 04:00:00.000000
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0009_witness_cosignatures"
down_revision = "0008_checkpoints"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "witness_cosignature",
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("witness", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("line", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.PrimaryKeyConstraint("size", "witness"),
    )


def downgrade() -> None:
    op.drop_table("witness_cosignature")
