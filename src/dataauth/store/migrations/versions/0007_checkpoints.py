"""Tree heads carry their C2SP checkpoint (a signed note); the note keys are recorded.

Revision ID: 0007_checkpoints
Revises: 0006
Create Date: 2026-12-02 03:40:00.000000
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0007_checkpoints"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("signed_tree_head", schema=None) as batch_op:
        batch_op.add_column(sa.Column("checkpoint", sa.LargeBinary(), nullable=True))
    op.create_table(
        "checkpoint_key",
        sa.Column("vkey", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("origin", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.PrimaryKeyConstraint("vkey"),
    )


def downgrade() -> None:
    op.drop_table("checkpoint_key")
    with op.batch_alter_table("signed_tree_head", schema=None) as batch_op:
        batch_op.drop_column("checkpoint")
