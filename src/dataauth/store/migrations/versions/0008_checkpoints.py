"""Each tree head's C2SP checkpoint (a signed note), append-only; the note keys recorded.

Revision ID: 0008_checkpoints
Revises: 0007_tsa_timestamps
Create Date: 2026-12-02 03:40:00.000000
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0008_checkpoints"
down_revision = "0007_tsa_timestamps"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tree_head_checkpoint",
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("note", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("size"),
    )
    op.create_table(
        "checkpoint_key",
        sa.Column("vkey", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("origin", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.PrimaryKeyConstraint("vkey"),
    )
    # append-only, as the heads are (revision 0001 made the function on PostgreSQL)
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for action in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER IF NOT EXISTS tree_head_checkpoint_no_{action.lower()} "
                f"BEFORE {action} ON tree_head_checkpoint BEGIN "
                "SELECT RAISE(ABORT, 'tree_head_checkpoint is append-only'); END"
            )
    elif dialect == "postgresql":
        op.execute(
            "CREATE OR REPLACE TRIGGER tree_head_checkpoint_append_only "
            "BEFORE UPDATE OR DELETE OR TRUNCATE ON tree_head_checkpoint "
            "FOR EACH STATEMENT EXECUTE FUNCTION dataauth_append_only()"
        )


def downgrade() -> None:
    op.drop_table("checkpoint_key")
    op.drop_table("tree_head_checkpoint")
