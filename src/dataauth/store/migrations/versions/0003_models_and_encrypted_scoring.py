"""Submitted models and their reviews; HE contexts and encrypted-model filings.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 16:33:31.195754
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "he_context",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("operator", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("parameters", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("registered", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("expires", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id", "operator"),
    )
    op.create_table(
        "he_model",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("operator", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("product", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("context", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("features", sa.JSON(), nullable=False),
        sa.Column("commitment", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("registered", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("expires", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("he_model", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_he_model_operator"), ["operator"], unique=False)

    op.create_table(
        "he_model_weight",
        sa.Column("model", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("model", "position"),
    )
    op.create_table(
        "model_blob",
        sa.Column("digest", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("digest"),
    )
    op.create_table(
        "model_submission",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("digest", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("operator_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("manifest", sa.JSON(), nullable=False),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("submitted_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("reviewer", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("reviewed_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("reason", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("conditions", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["digest"],
            ["model_blob.digest"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("model_submission", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_model_submission_digest"), ["digest"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_model_submission_operator_id"), ["operator_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_model_submission_status"), ["status"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("model_submission", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_model_submission_status"))
        batch_op.drop_index(batch_op.f("ix_model_submission_operator_id"))
        batch_op.drop_index(batch_op.f("ix_model_submission_digest"))

    op.drop_table("model_submission")
    op.drop_table("model_blob")
    op.drop_table("he_model_weight")
    with op.batch_alter_table("he_model", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_he_model_operator"))

    op.drop_table("he_model")
    op.drop_table("he_context")
