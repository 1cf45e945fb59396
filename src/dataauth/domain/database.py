"""Read access to the department's own database. The gateway never copies its data.

Every statement runs under a deadline (``DATAAUTH_DOMAIN_TIMEOUT_MS``): a slow or failing
department database gives a timely 504 or 503, never a hung request. PostgreSQL enforces
it itself (``statement_timeout``, ``connect_timeout``); SQLite through a progress handler
that interrupts a statement past its deadline.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, Executable, create_engine, event
from sqlalchemy.sql import ClauseElement

from dataauth.errors import Problem
from dataauth.store.statements import Prepared, prepare

STEPS = 10_000
"""SQLite virtual-machine steps between deadline checks: a few microseconds of work."""


def open_domain(url: str, timeout_ms: float = 5000.0) -> Engine:
    """An engine on the department's database; SQLite files are opened read-only.

    Every statement is one SELECT, so connections run in autocommit: no transaction is
    left open between statements, and the pool need not roll back on each return.
    """
    options: dict[str, Any] = {"isolation_level": "AUTOCOMMIT", "pool_reset_on_return": None}
    if url.startswith("sqlite:///"):
        path = url.removeprefix("sqlite:///")
        engine = create_engine(
            f"sqlite:///file:{path}?mode=ro&uri=true",
            connect_args={"check_same_thread": False},
            **options,
        )

        @event.listens_for(engine, "connect")
        def _deadline(dbapi_connection: Any, record: Any) -> None:
            deadline = record.info["deadline"] = [math.inf]
            dbapi_connection.set_progress_handler(lambda: time.monotonic() > deadline[0], STEPS)

        @event.listens_for(engine, "before_cursor_execute")
        def _start(connection: Any, *_: Any) -> None:
            connection.info["deadline"][0] = time.monotonic() + timeout_ms / 1000

        return engine
    seconds = max(1, math.ceil(timeout_ms / 1000))
    connect_args = {"connect_timeout": seconds, "options": f"-c statement_timeout={timeout_ms:.0f}"}
    return create_engine(url, pool_pre_ping=True, connect_args=connect_args, **options)


def plain_number(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def domain_problem(exc: BaseException) -> Problem:
    """What the operator is told when the department's database fails a statement."""
    message = str(exc).lower()
    if "interrupted" in message or "statement timeout" in message or "canceling" in message:
        return Problem(504, "domain_timeout", "the department's database did not answer in time")
    return Problem(503, "domain_unavailable", "the department's database could not answer")


class Domain:
    """Runs parameterised statements in the domain database."""

    def __init__(self, engine: Engine, timeout_ms: float = 5000.0) -> None:
        self.engine = engine
        self._sqlite = engine.dialect.name == "sqlite"
        self._timeout = timeout_ms / 1000

    def prepare(self, statement: ClauseElement) -> Prepared:
        """A statement (built by ``domain.query``, every value a named bound parameter)
        compiled once for this database's dialect, to run many times with ``fetch``."""
        return prepare(self.engine, statement)

    def execute(self, statement: Executable) -> list[tuple[Any, ...]]:
        """Run one SQLAlchemy statement and return its rows (a 504 or 503 Problem on
        failure). PostgreSQL's numeric results (SUM, AVG) come back as numbers, not
        Decimals, as SQLite's do: what a kind discloses is JSON."""
        try:
            with self.engine.connect() as connection:
                rows = connection.execute(statement).all()
        except Exception as exc:
            raise domain_problem(exc) from None
        return [tuple(plain_number(value) for value in row) for row in rows]

    def fetch(self, statement: Prepared, params: Mapping[str, Any]) -> Sequence[Any]:
        """Run one bound statement and return its rows (a 504 or 503 Problem on failure)."""
        return self.fetch_bound(statement, statement.bind(params))

    def fetch_bound(
        self, statement: Prepared, bound: Sequence[Any] | Mapping[str, Any]
    ) -> Sequence[Any]:
        """``fetch`` with the values already in the driver's form (``Prepared.bind``'s)."""
        try:
            connection = self.engine.raw_connection()
        except Exception as exc:
            raise domain_problem(exc) from None
        try:
            if self._sqlite:
                connection.info["deadline"][0] = time.monotonic() + self._timeout
            cursor = connection.cursor()
            cursor.execute(statement.sql, bound)
            rows = cursor.fetchall()
            cursor.close()
            return rows
        except Exception as exc:
            raise domain_problem(exc) from None
        finally:
            connection.close()  # back to the pool
