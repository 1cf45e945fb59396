"""HE model filings carry the digest of their ciphertexts and the declared weight bounds.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 21:50:00.000000
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("he_model", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("weights_digest", sqlmodel.sql.sqltypes.AutoString(), nullable=True)
        )
        batch_op.add_column(sa.Column("bounds", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("he_model", schema=None) as batch_op:
        batch_op.drop_column("bounds")
        batch_op.drop_column("weights_digest")
