"""The gateway's own database: catalog, audit entries and, later, counters and budgets."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, event, text
from sqlmodel import SQLModel, create_engine

from dataauth.audit import tables as _audit_tables  # noqa: F401  (registers the audit tables)
from dataauth.catalog import tables as _catalog_tables  # noqa: F401
from dataauth.identity.consent import ConsentRevocation as _consent_table  # noqa: F401
from dataauth.operations import he_registry as _he_tables  # noqa: F401
from dataauth.usage import UsageCounter as _usage_table  # noqa: F401


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
    SQLModel.metadata.create_all(engine)
    refuse_changes(engine)
    return engine


APPEND_ONLY = ("audit_entry", "signed_tree_head")


def refuse_changes(engine: Engine) -> None:
    """Triggers that make the log's tables append-only in the database itself.

    The code has no update or delete path; these stop anyone else's too (short of
    dropping the trigger, which an offline verify then catches by the roots).
    """
    with engine.begin() as connection:
        for table in APPEND_ONLY:
            if engine.dialect.name == "sqlite":
                for action in ("UPDATE", "DELETE"):
                    connection.execute(
                        text(
                            f"CREATE TRIGGER IF NOT EXISTS {table}_no_{action.lower()} "
                            f"BEFORE {action} ON {table} BEGIN "
                            f"SELECT RAISE(ABORT, '{table} is append-only'); END"
                        )
                    )
            elif engine.dialect.name == "postgresql":
                connection.execute(
                    text(
                        "CREATE OR REPLACE FUNCTION dataauth_append_only() RETURNS trigger "
                        "LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION "
                        "'% is append-only', TG_TABLE_NAME; END $$"
                    )
                )
                connection.execute(
                    text(
                        f"CREATE OR REPLACE TRIGGER {table}_append_only "
                        f"BEFORE UPDATE OR DELETE OR TRUNCATE ON {table} "
                        "FOR EACH STATEMENT EXECUTE FUNCTION dataauth_append_only()"
                    )
                )
