"""RFC 3161 time-stamps over signed tree heads (audit_timestamp), append-only.

Revision ID: 0007_tsa_timestamps
Revises: 0006
Create Date: 2026-12-02 03:30:00.000000
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0007_tsa_timestamps"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_timestamp",
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("token", sa.LargeBinary(), nullable=False),
        sa.Column("gen_time", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
    )
    with op.batch_alter_table("audit_timestamp", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_timestamp_size"), ["size"], unique=False)
    bind = op.get_bind()
    # as the log's own tables (0001): the code has no update or delete path for tokens
    if bind.dialect.name == "sqlite":
        for action in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER IF NOT EXISTS audit_timestamp_no_{action.lower()} "
                f"BEFORE {action} ON audit_timestamp BEGIN "
                "SELECT RAISE(ABORT, 'audit_timestamp is append-only'); END"
            )
    elif bind.dialect.name == "postgresql":
        op.execute(
            "CREATE OR REPLACE TRIGGER audit_timestamp_append_only "
            "BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_timestamp "
            "FOR EACH STATEMENT EXECUTE FUNCTION dataauth_append_only()"
        )


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS audit_timestamp_no_update")
        op.execute("DROP TRIGGER IF EXISTS audit_timestamp_no_delete")
    else:
        op.execute("DROP TRIGGER IF EXISTS audit_timestamp_append_only ON audit_timestamp")
    with op.batch_alter_table("audit_timestamp", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_timestamp_size"))
    op.drop_table("audit_timestamp")
