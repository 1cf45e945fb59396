"""Statements compiled once for a database's dialect and run on raw DBAPI connections.

The hot path runs the same two statements for every request (the domain look-up and
the audit insert). SQLAlchemy picks the dialect, quotes identifiers and pools the
connections; compiling each statement once and handing its bound values straight to
the driver saves what SQLAlchemy would redo per call (a third of a request's time).
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, text
from sqlalchemy.exc import IntegrityError
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


class WriteLock:
    """One writer at a time on a table, across threads and processes, by dialect.

    PostgreSQL: ``LOCK TABLE ... IN EXCLUSIVE MODE`` inside the transaction. SQLite:
    ``BEGIN IMMEDIATE``, with writers first queued on an ``flock`` of a file beside
    the database. SQLite's own wait for a locked database sleeps and retries with
    growing pauses, which stalls processes sharing one file; the kernel's lock queue
    hands the database on as soon as the last writer commits.
    """

    def __init__(self, engine: Engine, table: str) -> None:
        if engine.dialect.name not in ("sqlite", "postgresql"):
            raise ValueError(f"{engine.dialect.name} databases are not supported for the audit log")
        self.engine = engine
        self.table = table
        # flock excludes other open files, not other threads sharing this one
        self._threads = threading.Lock()
        self._file: int | None = None
        database = engine.url.database
        if engine.dialect.name == "sqlite" and database and database != ":memory:":
            path = database.removeprefix("file:").split("?")[0]
            self._file = os.open(f"{path}.write-lock", os.O_RDWR | os.O_CREAT, 0o600)

    def connect(self) -> Any:
        """A raw connection whose transactions this lock begins."""
        connection = self.engine.raw_connection()
        if self.engine.dialect.name == "sqlite":
            # the driver would open its own deferred transaction; ours must take the lock
            connection.dbapi_connection.isolation_level = None
        return connection

    @property
    def begin(self) -> str:
        """The statement that opens a transaction holding the lock (its first statement)."""
        if self.engine.dialect.name == "sqlite":
            return "BEGIN IMMEDIATE"
        return f"LOCK TABLE {self.table} IN EXCLUSIVE MODE"

    @contextmanager
    def held(self) -> Iterator[None]:
        """This process's turn: other threads, then (SQLite) other processes, wait."""
        self._threads.acquire()
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            if self._file is not None:
                fcntl.flock(self._file, fcntl.LOCK_UN)
            self._threads.release()

    @contextmanager
    def transaction(self, connection: Any) -> Iterator[Any]:
        """A cursor in a transaction that holds the write lock; committed on leaving."""
        with self.held():
            cursor = connection.cursor()
            cursor.execute(self.begin)
            try:
                yield cursor
                connection.commit()
            except BaseException:
                connection.rollback()
                raise
            finally:
                cursor.close()


class Writer:
    """The one writer of a table in this process: a connection kept between writes,
    used by one thread at a time, whose transactions hold the table's ``WriteLock``.
    A transaction that fails drops its connection: the next one starts afresh."""

    def __init__(
        self, engine: Engine, table: str, on_connect: Callable[[Any], None] | None = None
    ) -> None:
        self.lock = WriteLock(engine, table)
        self._on_connect = on_connect
        self._guard = threading.Lock()
        self._connection: Any = None

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        """A cursor in a locked transaction; committed on leaving, rolled back on error."""
        with self._guard:
            if self._connection is None:
                self._connection = self.lock.connect()
                if self._on_connect is not None:
                    self._on_connect(self._connection)
            try:
                with self.lock.transaction(self._connection) as cursor:
                    yield cursor
            except BaseException:
                connection, self._connection = self._connection, None
                connection.close()
                raise


def insert_once(engine: Engine, sql: str, values: Mapping[str, Any]) -> None:
    """Insert a row keyed by its primary key; a row already there (perhaps written a
    moment ago by another gateway process) is the same row, and is left as it is."""
    try:
        with engine.begin() as connection:
            connection.execute(text(sql), dict(values))
    except IntegrityError:
        pass
