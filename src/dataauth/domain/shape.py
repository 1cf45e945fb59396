"""The shape of a checked aggregate query: what it reads, groups, filters and computes,
with no literal of the operator's text but as a bound value. Made by the query
language (``domain.language``) and rebuilt into a statement (``domain.aggregates``).

The datasets and joins are the query layer's own ``Table`` and ``Join``, made by the
kind from the catalog: what a query may name, and nothing of policy.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from dataauth.domain.query import Condition

Col = tuple[str, str]
"""A column as (dataset id, column name)."""


@dataclass(frozen=True)
class Column:
    """A column as a query may use it: its type family, and the range declared for it."""

    type: str
    """integer, number, string or date."""
    bounds: tuple[float, float] | None = None


@dataclass(frozen=True)
class Table:
    """A dataset as a query names it (``id``), and where it lives in the database."""

    id: str
    name: str
    """The table's name in the department's database."""
    key: str
    columns: Mapping[str, Column]


@dataclass(frozen=True)
class Join:
    """A declared join: each left row meets at most one right row (on the right's key)."""

    id: str
    left: Col
    right: Col
    max_per_right: int
    """Left rows one right-hand subject may contribute to a noised answer."""

    @property
    def on(self) -> tuple[Col, Col]:
        """The two columns the join equates, left first."""
        return self.left, self.right


@dataclass(frozen=True)
class Output:
    label: str
    function: str | None
    """count, sum, avg, min, max; None for a group column."""
    column: Col | None
    """None for COUNT(*)."""


@dataclass(frozen=True)
class Junction:
    """A node of the WHERE tree over others: and, or, not (of one)."""

    op: Literal["and", "or", "not"]
    children: tuple[Where, ...]


Where = Junction | Condition
"""The WHERE tree: junctions over conditions, each a column tested against literals."""


@dataclass
class Shape:
    datasets: list[Table]
    """What the query reads: the FROM dataset, then the joined one if any."""
    outputs: list[Output]
    group_by: list[Col]
    where: Where | None
    compared: list[tuple[Col, str]] = field(default_factory=list)
    """(column, op) of every comparison, in order: the WHERE's shape without its values."""
    join: Join | None = None
    """The declared join the query takes, if it joins."""

    @property
    def dataset(self) -> Table:
        return self.datasets[0]

    def info(self, col: Col) -> Column:
        dataset = next(d for d in self.datasets if d.id == col[0])
        return dataset.columns[col[1]]

    def name(self, col: Col | None) -> str:
        """A column as the summary names it: bare in one dataset, dataset.column in a join."""
        if col is None:
            return "*"
        return f"{col[0]}.{col[1]}" if self.join else col[1]

    def aggregates(self) -> list[Output]:
        return [o for o in self.outputs if o.function is not None]

    def uses(self) -> list[tuple[Col, str]]:
        """Each (column, use) once: aggregate, plaintext (a group's label), compare, and
        key for a join's own two columns (matched inside the database, never shown)."""
        pairs = [(o.column, "aggregate") for o in self.aggregates() if o.column]
        pairs += [(c, "plaintext") for c in self.group_by]
        pairs += [(c, "compare") for c, _ in self.compared]
        if self.join is not None:
            pairs += [(c, "key") for c in self.join.on]
        return list(dict.fromkeys(pairs))

    def summary(self) -> dict[str, Any]:
        """The query's shape for the policy input and the audit log: no literal values."""
        return {
            "aggregates": [
                {"function": o.function, "column": self.name(o.column)} for o in self.aggregates()
            ],
            "group_by": [self.name(c) for c in self.group_by],
            "filters": [{"column": self.name(c), "op": op} for c, op in self.compared],
        }
