"""Read access to the department's own database. The gateway never copies its data."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Engine, create_engine, text

from dataauth.statements import Prepared, prepare


def open_domain(url: str) -> Engine:
    """An engine on the department's database; SQLite files are opened read-only.

    Every statement is one SELECT, so connections run in autocommit: no transaction is
    left open between statements, and the pool need not roll back on each return.
    """
    options: dict[str, Any] = {"isolation_level": "AUTOCOMMIT", "pool_reset_on_return": None}
    if url.startswith("sqlite:///"):
        path = url.removeprefix("sqlite:///")
        return create_engine(
            f"sqlite:///file:{path}?mode=ro&uri=true",
            connect_args={"check_same_thread": False},
            **options,
        )
    return create_engine(url, pool_pre_ping=True, **options)


class Domain:
    """Runs parameterised statements in the domain database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._preparer = engine.dialect.identifier_preparer

    def quote(self, identifier: str) -> str:
        """An identifier from the catalog, quoted for this database's dialect."""
        return self._preparer.quote(identifier)

    def statement(self, sql: str) -> Prepared:
        """A statement (SQL with ``:name`` binds) compiled once, to run many times."""
        return prepare(self.engine, text(sql))

    def fetch(self, statement: Prepared, params: Mapping[str, Any]) -> Sequence[Any]:
        """Run one bound statement and return its rows."""
        connection = self.engine.raw_connection()
        try:
            cursor = connection.cursor()
            cursor.execute(statement.sql, statement.bind(params))
            rows = cursor.fetchall()
            cursor.close()
            return rows
        finally:
            connection.close()  # back to the pool
