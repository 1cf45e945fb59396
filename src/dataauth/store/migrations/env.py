"""Alembic's environment, on the connection ``store.engine.migrate`` hands in."""

from alembic import context

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=context.config.attributes.get("metadata"),
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters by copying tables
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
