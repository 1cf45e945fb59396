"""Statements compiled once for a database's dialect and run on raw DBAPI connections.

The hot path runs the same two statements for every request (the domain look-up and
the audit insert). SQLAlchemy picks the dialect, quotes identifiers and pools the
connections; compiling each statement once and handing its bound values straight to
the driver saves what SQLAlchemy would redo per call (a third of a request's time).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.sql import ClauseElement


@dataclass(frozen=True)
class Prepared:
    sql: str
    order: tuple[str, ...] | None
    """Bind names in order, for drivers with positional parameters; None for named ones."""

    def bind(self, values: Mapping[str, Any]) -> Sequence[Any] | Mapping[str, Any]:
        if self.order is None:
            return values
        return [values[name] for name in self.order]


def prepare(engine: Engine, statement: ClauseElement) -> Prepared:
    """Compile ``statement`` for ``engine``'s dialect."""
    compiled = statement.compile(dialect=engine.dialect)
    order = tuple(compiled.positiontup or ()) if engine.dialect.positional else None
    return Prepared(compiled.string, order)


# Taking a table's write lock at the start of a transaction, by dialect. SQLite locks
# the whole database (the table is named for the others' sake).
_EXCLUSIVE = {
    "sqlite": "BEGIN IMMEDIATE",
    "postgresql": "LOCK TABLE {table} IN EXCLUSIVE MODE",
}


def exclusive_connection(engine: Engine) -> Any:
    """A raw connection on which ``lock_table`` opens a write-locked transaction."""
    if engine.dialect.name not in _EXCLUSIVE:
        raise ValueError(f"{engine.dialect.name} databases are not supported for the audit log")
    connection = engine.raw_connection()
    if engine.dialect.name == "sqlite":
        # the driver would open its own deferred transaction; ours must take the lock
        connection.dbapi_connection.isolation_level = None
    return connection


def lock_table(engine: Engine, cursor: Any, table: str) -> None:
    """Begin a transaction holding ``table``'s write lock (call on an exclusive connection)."""
    cursor.execute(_EXCLUSIVE[engine.dialect.name].format(table=table))
