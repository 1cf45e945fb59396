"""``dataauth db``: the gateway database's schema (Alembic migrations)."""

from __future__ import annotations

from typing import Annotated

import typer

from dataauth.cli.common import DataDir, fail, gateway_database, load_settings

app = typer.Typer(help="The gateway database's schema (Alembic migrations).", no_args_is_help=True)


@app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Argument(help="the revision to reach")] = "head",
    data_dir: DataDir = None,
) -> None:
    """Migrate the gateway database (DATAAUTH_DATABASE_URL) to a revision; serve does
    this itself, so a deployment runs it only to migrate ahead of a rollout."""
    from sqlalchemy import create_engine

    from dataauth.store.engine import migrate, schema_revision

    # like serve, this may make the database (and the data directory that holds it)
    engine = create_engine(load_settings(data_dir).gateway_url)
    try:
        migrate(engine, revision)
    except Exception as exc:
        fail(f"the migration failed: {exc}")
    typer.echo(f"gateway database at revision {schema_revision(engine)}")


@app.command("current")
def db_current(data_dir: DataDir = None) -> None:
    """Print the gateway database's schema revision (none for an empty database)."""
    from sqlalchemy import create_engine

    from dataauth.store.engine import schema_revision

    database = gateway_database(load_settings(data_dir))
    typer.echo(schema_revision(create_engine(database)) or "none")
