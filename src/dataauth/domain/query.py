"""The query layer on the department's database: typed conditions and the statements the
kinds read with, built by SQLAlchemy Core.

A kind names tables, columns, operators and values; it never writes SQL. Every value is
a bound parameter and every identifier is quoted by the database's dialect, so a value
or a catalog name that looks like SQL is only ever a value or a name.

Statements that run per request are compiled once per shape (``Prepared``) and run on
the driver directly (``Domain.fetch``); their parameters are untyped, as the driver
types them, so PostgreSQL infers each from the column it meets (a date column takes an
ISO date string).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Integer,
    and_,
    bindparam,
    case,
    column,
    func,
    literal_column,
    select,
    table,
)
from sqlalchemy.sql.selectable import NamedFromClause

from dataauth.domain.database import Domain
from dataauth.store.statements import Prepared


class Op(StrEnum):
    """Every test a condition may make of a column: one set for every kind."""

    EQ = "eq"
    NE = "ne"
    LT = "lt"
    LE = "le"
    GT = "gt"
    GE = "ge"
    BETWEEN = "between"
    IN = "in"
    EXISTS = "exists"


COMPARE: dict[Op, Callable[[Any, Any], ColumnElement[bool]]] = {
    Op.EQ: operator.eq,
    Op.NE: operator.ne,
    Op.LT: operator.lt,
    Op.LE: operator.le,
    Op.GT: operator.gt,
    Op.GE: operator.ge,
}
"""The comparisons of one operand: the one operator map."""


def predicate(target: Any, op: Op, operands: Sequence[Any]) -> ColumnElement[bool]:
    """``target op operands`` as a SQL condition. The operands are values, bound
    parameters or columns: none for ``exists``, two for ``between``, one or more for
    ``in``, one for the comparisons."""
    if op is Op.EXISTS:
        return target.is_not(None)  # type: ignore[no-any-return]
    if op is Op.BETWEEN:
        low, high = operands
        return target.between(low, high)  # type: ignore[no-any-return]
    if op is Op.IN:
        return target.in_(list(operands))  # type: ignore[no-any-return]
    (operand,) = operands
    return COMPARE[op](target, operand)


def arity(op: Op, listed: int) -> int:
    """How many operands ``op`` reads, where an ``in`` lists ``listed``."""
    return {Op.EXISTS: 0, Op.BETWEEN: 2, Op.IN: listed}.get(op, 1)


@dataclass(frozen=True)
class Condition:
    """``column op value``: ``value`` is one scalar, a (low, high) pair for ``between``,
    a tuple of scalars for ``in`` and None for ``exists``. ``column`` names a column of
    the table read (or, in the query language, a (dataset, column) pair)."""

    column: Hashable
    op: Op
    value: Any = None

    @classmethod
    def of(cls, column: Hashable, op: str, value: Any) -> Condition:
        """A condition as a request spells it: the op's name, a list for several values."""
        return cls(column, Op(op), tuple(value) if isinstance(value, list) else value)

    def operands(self) -> tuple[Any, ...]:
        if self.op is Op.EXISTS:
            return ()
        if self.op in (Op.BETWEEN, Op.IN):
            return tuple(self.value)
        return (self.value,)


class Binds:
    """Named parameters handed out while a statement is built, and their values."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.values: dict[str, Any] = {}

    def __call__(self, value: Any) -> BindParameter[Any]:
        name = f"{self.prefix}{len(self.values)}"
        self.values[name] = value
        return bindparam(name)


def source(name: str, columns: Sequence[str]) -> NamedFromClause:
    """A table of the department's database as ``t``, with the columns a statement reads."""
    return table(name, *(column(c) for c in dict.fromkeys(columns))).alias("t")


def constant(number: int) -> ColumnElement[int]:
    """A small integer the gateway itself writes into a statement (a CASE's outcome), as
    a literal: typed the same on every database, where a parameter would not be."""
    return literal_column(str(int(number)), Integer())


def where(t: NamedFromClause, conditions: Sequence[Condition], binds: Binds) -> list[Any]:
    """Each condition on ``t``'s columns, every operand a bound parameter."""
    return [predicate(t.c[c.column], c.op, [binds(v) for v in c.operands()]) for c in conditions]


# -- cohorts --------------------------------------------------------------------------


@dataclass(frozen=True)
class Cohort:
    """The rows of ``table`` whose ``where`` all hold (none: every row)."""

    table: str
    where: tuple[Condition, ...] = ()

    def shape(self) -> tuple[Any, ...]:
        """The statement's shape without its values: what a compiled statement is kept by."""
        return (self.table, tuple((c.column, c.op, len(c.operands())) for c in self.where))

    def values(self) -> dict[str, Any]:
        """The operands, named as ``where`` binds them."""
        operands = [v for c in self.where for v in c.operands()]
        return {f"w{n}": value for n, value in enumerate(operands)}

    def rows(
        self, domain: Domain, columns: Sequence[str], limit: int | None = None
    ) -> Sequence[Any]:
        """``columns`` of every row of the cohort (at most ``limit``, in no particular
        order) where none of them is NULL."""
        statement = _rows(domain, self.shape(), tuple(columns), limit is not None)
        values = self.values()
        if limit is not None:
            values.update(limit=limit, offset=0)
        return domain.fetch(statement, values)

    def totals(
        self, domain: Domain, clamped: Sequence[tuple[str, tuple[float, float]]]
    ) -> tuple[Any, ...]:
        """COUNT(*), then per (column, (low, high)) the SUM of the column's values clamped
        to [low, high]: what one row adds to a sum is bounded, its sensitivity."""
        statement, bounds = _totals(domain, self.shape(), tuple(clamped))
        return tuple(domain.fetch(statement, {**bounds, **self.values()})[0])


def _conditions(shape: tuple[Any, ...]) -> list[Condition]:
    """Conditions of a cohort's shape, with placeholder operands: ``where`` binds each
    operand by position, and the values come separately (``Cohort.values``)."""
    return [
        Condition(name, op, (None,) * count if op in (Op.BETWEEN, Op.IN) else None)
        for name, op, count in shape[1]
    ]


@lru_cache(maxsize=256)
def _rows(
    domain: Domain, shape: tuple[Any, ...], columns: tuple[str, ...], limited: bool
) -> Prepared:
    conditions = _conditions(shape)
    t = source(shape[0], [*columns, *(c.column for c in conditions)])  # type: ignore[list-item]
    present = [t.c[c].is_not(None) for c in columns]
    statement = select(*(t.c[c] for c in columns)).where(
        and_(*present, *where(t, conditions, Binds("w")))
    )
    if limited:
        # an explicit offset: SQLite's compiler would add one of its own, unnamed
        statement = statement.limit(bindparam("limit")).offset(bindparam("offset"))
    return domain.prepare(statement)


@lru_cache(maxsize=64)
def _totals(
    domain: Domain, shape: tuple[Any, ...], clamped: tuple[tuple[str, tuple[float, float]], ...]
) -> tuple[Prepared, dict[str, Any]]:
    conditions = _conditions(shape)
    t = source(shape[0], [*(c for c, _ in clamped), *(c.column for c in conditions)])  # type: ignore[list-item]
    bounds = Binds("b")
    sums = []
    for name, (low, high) in clamped:
        value, low_, high_ = t.c[name], float(low), float(high)
        clamp = case(
            (value < bounds(low_), bounds(low_)),
            (value > bounds(high_), bounds(high_)),
            else_=value,
        )
        sums.append(func.sum(clamp))
    statement = select(func.count(), *sums).select_from(t)
    tests = where(t, conditions, Binds("w"))
    if tests:
        statement = statement.where(and_(*tests))
    return domain.prepare(statement), bounds.values
