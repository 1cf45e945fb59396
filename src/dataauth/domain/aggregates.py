"""Aggregate statements, rebuilt from a checked shape (``domain.language``) with
SQLAlchemy Core: every literal is a bound parameter, every name quoted by the dialect.
The text the operator sent is never run."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    ColumnElement,
    Date,
    Float,
    Integer,
    String,
    and_,
    case,
    column,
    distinct,
    func,
    literal,
    not_,
    or_,
    select,
    table,
)

from dataauth.domain.query import predicate
from dataauth.domain.shape import Col, Junction, Shape, Where

Measure = tuple[str, Col | None]
"""(function, column) computed in the database; ("count", None) is COUNT(*), and
("distinct", key) counts the distinct subjects behind a join's rows."""

SQL_TYPES: dict[str, Any] = {
    "date": Date(),
    "integer": Integer(),
    "number": Float(),
    "string": String(),
}


def _where(condition: Where, columns: dict[Col, Any]) -> ColumnElement[bool]:
    if isinstance(condition, Junction):
        if condition.op == "not":
            return not_(_where(condition.children[0], columns))
        joined = and_ if condition.op == "and" else or_
        return joined(*(_where(child, columns) for child in condition.children))
    return predicate(columns[condition.column], condition.op, condition.operands())  # type: ignore[index]


def statement(shape: Shape, wanted: list[Measure], noisy: bool) -> Any:
    """The SELECT rebuilt from the checked shape: per group, each measure ``wanted``.
    Under noise each sum clamps its values to the column's bounds, and a join keeps at
    most ``max_per_right`` rows per right-hand subject."""
    used = set(shape.group_by) | {c for _, c in wanted if c}
    used |= {c for c, _ in shape.compared}
    used |= set(shape.join.on) if shape.join is not None else set()
    bounded = noisy and shape.join is not None
    if bounded:
        used.add(_left_key(shape))
    tables: dict[str, Any] = {}
    for index, dataset in enumerate(shape.datasets):
        names = sorted(n for d, n in used if d == dataset.id)
        # typed columns bind each literal as its column's type (a date as a date), which
        # PostgreSQL needs and SQLite accepts
        clause = table(
            dataset.name,
            *(column(n, SQL_TYPES.get(dataset.columns[n].type)) for n in names),
        )
        tables[dataset.id] = clause.alias(f"t{index}") if shape.join else clause
    columns = {(d, n): tables[d].c[n] for d, n in used}
    source = tables[shape.dataset.id]
    if shape.join is not None:
        (left, on_left), (right, on_right) = shape.join.on
        joined = tables[shape.datasets[1].id]
        source = source.join(joined, tables[left].c[on_left] == tables[right].c[on_right])
    where = _where(shape.where, columns) if shape.where is not None else None
    if bounded:
        columns, source, where = _bounded(shape, columns, source, where)
    groups = [columns[col] for col in shape.group_by]
    parts = []
    for function, col in wanted:
        target = columns[col] if col else None
        if function == "count":
            parts.append(func.count(target) if target is not None else func.count())
            continue
        if function == "distinct":
            parts.append(func.count(distinct(target)))
            continue
        if noisy and function == "sum":
            low, high = (shape.info(col).bounds if col else None) or (0, 0)
            # each subject contributes within the declared bounds: the sensitivity
            target = case((target < literal(low), literal(low)),
                          (target > literal(high), literal(high)), else_=target)  # fmt: skip
        parts.append(getattr(func, function)(target))
    query = select(*groups, *parts).select_from(source)
    if where is not None:
        query = query.where(where)
    if groups:
        query = query.group_by(*groups)
    return query


def _left_key(shape: Shape) -> Col:
    """The left dataset's own key: the order in which a right subject's rows are kept."""
    assert shape.join is not None
    left = next(d for d in shape.datasets if d.id == shape.join.left[0])
    return (left.id, left.key)


def _bounded(
    shape: Shape, columns: dict[Col, Any], source: Any, where: ColumnElement[bool] | None
) -> tuple[dict[Col, Any], Any, ColumnElement[bool]]:
    """The join's rows (filtered) numbered within each right-hand subject, and the
    condition that keeps at most ``max_per_right`` of each: the contribution bound the
    noise is scaled to. Returns the numbered rows' columns, the rows, the condition."""
    assert shape.join is not None
    right = columns[shape.join.on[1]]
    rank = func.row_number().over(partition_by=right, order_by=columns[_left_key(shape)])
    labels = {col: f"c{index}" for index, col in enumerate(sorted(columns))}
    rows = select(*(columns[col].label(label) for col, label in labels.items()))
    rows = rows.add_columns(rank.label("contribution")).select_from(source)
    if where is not None:
        rows = rows.where(where)
    numbered = rows.subquery("bounded")
    kept = numbered.c.contribution <= literal(shape.join.max_per_right)
    return {col: numbered.c[label] for col, label in labels.items()}, numbered, kept
