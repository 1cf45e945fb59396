"""The gateway's own database: catalog, audit entries, counters and budgets.

Its schema is Alembic's (``dataauth/store/migrations``): every engine is brought to the newest
revision before use, once per database at a time, so several workers starting together
do not race to create the same table.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.resources import files
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, Engine, event, inspect, text
from sqlmodel import SQLModel, create_engine


def gateway_engine(url: str, *, sqlite_synchronous: str = "FULL") -> Engine:
    """An engine for the gateway database, with its tables created."""
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _pragmas(connection, _record) -> None:  # type: ignore[no-untyped-def]
            # WAL lets readers go on while the audit log appends; synchronous=FULL makes
            # every commit durable before its response leaves (NORMAL survives a crash of
            # the process but not of the machine).
            cursor = connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA synchronous={sqlite_synchronous}")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()
    else:
        engine = create_engine(url, pool_pre_ping=True)
    migrate(engine)
    return engine


FIRST = "0001"
"""The revision that made the tables a database made before migrations already has."""


def alembic_config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(files("dataauth.store") / "migrations"))
    config.attributes["connection"] = connection
    # the tables each package defines, as far as they are imported: autogenerate compares
    # them; an upgrade runs the revisions alone
    config.attributes["metadata"] = SQLModel.metadata
    return config


def migrate(engine: Engine, revision: str = "head") -> None:
    """Bring the database's schema to ``revision`` (the newest by default)."""
    with one_migrator(engine), engine.begin() as connection:
        config = alembic_config(connection)
        current = MigrationContext.configure(connection).get_current_revision()
        if current is None and inspect(connection).has_table("audit_entry"):
            command.stamp(config, FIRST)  # made by create_all before there were migrations
        command.upgrade(config, revision)


def schema_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


@contextmanager
def one_migrator(engine: Engine) -> Iterator[None]:
    """Hold a lock that only one process migrating this database holds at a time."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            connection.execute(text("SELECT pg_advisory_lock(hashtext('dataauth-migrate'))"))
            try:
                yield
            finally:
                connection.execute(text("SELECT pg_advisory_unlock(hashtext('dataauth-migrate'))"))
                connection.commit()
        return
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        yield
        return
    handle = os.open(f"{database}.migrate-lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
    finally:
        os.close(handle)
