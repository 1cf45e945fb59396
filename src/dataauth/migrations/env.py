"""Alembic's environment: the gateway's tables, on the connection ``storage.migrate`` hands in."""

from alembic import context
from sqlmodel import SQLModel

from dataauth import storage  # noqa: F401  (registers every table on SQLModel.metadata)

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=SQLModel.metadata,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters by copying tables
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
