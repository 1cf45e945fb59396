"""Statements compiled once for a database's dialect and run on raw DBAPI connections.

The hot path runs the same two statements for every request (the domain look-up and
the audit insert). SQLAlchemy picks the dialect, quotes identifiers and pools the
connections; compiling each statement once and handing its bound values straight to
the driver saves what SQLAlchemy would redo per call (a third of a request's time).
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
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


def fetch_all(
    engine: Engine, prepared: Prepared, values: Sequence[Any] | Mapping[str, Any]
) -> list[Any]:
    """The rows of ``prepared`` run with ``values`` (bound already, as ``Prepared.bind``
    binds them) on a pooled connection of the driver's own."""
    connection = engine.raw_connection()
    try:
        cursor = connection.cursor()
        cursor.execute(prepared.sql, values)
        return cursor.fetchall()
    finally:
        connection.close()


MAX_BINDS = 999
"""Bound values in one statement: SQLite's oldest limit, far under PostgreSQL's."""


class Rows:
    """One INSERT of many rows: ``head`` VALUES (a group per row) ``tail``, compiled once
    per number of rows. Each call into the driver costs a statement's setup and hands
    the interpreter to other threads; a batch of thousands of rows goes in as a few
    statements instead of a step per row. No two rows of one call may share a key that
    ``tail``'s ON CONFLICT updates (PostgreSQL refuses to update a row twice in one
    statement)."""

    def __init__(self, engine: Engine, head: str, width: int, tail: str = "") -> None:
        self.engine = engine
        self.head = head
        self.width = width
        self.tail = tail
        self.per_statement = max(1, MAX_BINDS // width)
        self._prepared: dict[int, Prepared] = {}

    def _statement(self, size: int) -> Prepared:
        made = self._prepared.get(size)
        if made is None:
            groups = ", ".join(
                "(" + ", ".join(f":v{r}_{c}" for c in range(self.width)) + ")" for r in range(size)
            )
            made = prepare(self.engine, text(f"{self.head} VALUES {groups} {self.tail}"))
            if made.order is not None:  # flattened row by row below: hold the text to it
                expected = tuple(f"v{r}_{c}" for r in range(size) for c in range(self.width))
                if made.order != expected:
                    raise ValueError("a multi-row statement's binds are not in row order")
            if len(self._prepared) >= 64:  # full chunks and a few remainders stay
                self._prepared.clear()
            self._prepared[size] = made
        return made

    def insert(self, cursor: Any, rows: Sequence[Sequence[Any]]) -> list[Any]:
        """Insert ``rows`` (each ``width`` values in the statement's column order); what a
        ``RETURNING`` in ``tail`` returns, all statements' rows together (else none)."""
        returned: list[Any] = []
        for start in range(0, len(rows), self.per_statement):
            part = rows[start : start + self.per_statement]
            statement = self._statement(len(part))
            if statement.order is not None:
                cursor.execute(statement.sql, [value for row in part for value in row])
            else:
                named = {f"v{r}_{c}": v for r, row in enumerate(part) for c, v in enumerate(row)}
                cursor.execute(statement.sql, named)
            if cursor.description is not None:
                returned += cursor.fetchall()
        return returned


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


def relaxed(connection: Any) -> None:
    """A ``Writer``'s ``on_connect`` for an account written before its request's audit
    entry (usage counters, disclosure budgets): on SQLite, no fsync of its own. The
    entry, committed with FULL on the same write-ahead log after the charge and before
    any answer leaves, syncs the log up to and past the charge, so a charge is durable
    whenever an answer it paid for is."""
    if isinstance(connection.dbapi_connection, sqlite3.Connection):
        cursor = connection.cursor()
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()


def insert_once(engine: Engine, sql: str, values: Mapping[str, Any]) -> None:
    """Insert a row keyed by its primary key; a row already there (perhaps written a
    moment ago by another gateway process) is the same row, and is left as it is."""
    try:
        with engine.begin() as connection:
            connection.execute(text(sql), dict(values))
    except IntegrityError:
        pass
