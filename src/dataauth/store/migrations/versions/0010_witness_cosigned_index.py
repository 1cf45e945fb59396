"""An index on each witness's cosigned sizes: the pusher reads the newest every round.

Revision ID: 0010_witness_cosigned_index
Revises: 0009_witness_cosignatures
Create Date: 2026-12-02 08:00:00.000000
"""

from alembic import op

revision = "0010_witness_cosigned_index"
down_revision = "0009_witness_cosignatures"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_witness_cosignature_witness_size", "witness_cosignature", ["witness", "size"]
    )


def downgrade() -> None:
    op.drop_index("ix_witness_cosignature_witness_size", table_name="witness_cosignature")
