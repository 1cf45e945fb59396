"""Indexes for the newest size a witness cosigned (read by the pusher every round) and
the last head each signing key signed (listed with the keys a key change retired).

Revision ID: 0010_witness_and_key_indexes
Revises: 0009_witness_cosignatures
Create Date: 2026-12-02 08:00:00.000000
"""

from alembic import op

revision = "0010_witness_and_key_indexes"
down_revision = "0009_witness_cosignatures"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_witness_cosignature_witness_size", "witness_cosignature", ["witness", "size"]
    )
    op.create_index("ix_signed_tree_head_key_id_size", "signed_tree_head", ["key_id", "size"])


def downgrade() -> None:
    op.drop_index("ix_signed_tree_head_key_id_size", table_name="signed_tree_head")
    op.drop_index("ix_witness_cosignature_witness_size", table_name="witness_cosignature")
