"""The query language: an operator's SQL, parsed by sqlglot, checked, turned into a shape.

Only one form is accepted: a SELECT of COUNT, SUM, AVG, MIN or MAX (over one column, or
COUNT(*)) and of the group columns, FROM one dataset or two joined as the catalog
declares (``FROM a [INNER] JOIN b ON a.x = b.y``, one equality, a declared join), with a
WHERE of simple comparisons of a column against literals (=, <>, <, <=, >, >=, IN,
BETWEEN, joined by AND, OR, NOT) and a GROUP BY of columns. Everything else is refused
with a stable code and the construct named. A column is known as (dataset, column), so
a join's two datasets may share column names. The text is never run: the gateway
rebuilds the statement from the shape (``domain.aggregates``), so what reaches the
department's database is what was checked.

The datasets and joins are given as the query layer's own ``Table`` and ``Join``,
made by the kind from the catalog: what a query may name, and nothing of policy.

Refusals name SQL constructs and identifiers, never a literal the operator wrote.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from dataauth.domain.query import Condition, Op
from dataauth.domain.shape import Col, Column, Join, Junction, Output, Shape, Table, Where
from dataauth.errors import Problem, unprocessable

AGGREGATES: dict[type[exp.Expression], str] = {
    exp.Count: "count",
    exp.Sum: "sum",
    exp.Avg: "avg",
    exp.Min: "min",
    exp.Max: "max",
}
ALLOWED_FUNCTIONS = {*AGGREGATES, exp.And, exp.Or}
COMPARISONS: dict[type[exp.Expression], Op] = {
    exp.EQ: Op.EQ,
    exp.NEQ: Op.NE,
    exp.LT: Op.LT,
    exp.LTE: Op.LE,
    exp.GT: Op.GT,
    exp.GTE: Op.GE,
}
FLIPPED = {Op.EQ: Op.EQ, Op.NE: Op.NE, Op.LT: Op.GT, Op.LE: Op.GE, Op.GT: Op.LT, Op.GE: Op.LE}
"""A comparison with its column on the right, read with the column on the left."""
SELECT_PARTS = {"expressions", "from_", "joins", "where", "group"}
"""The parts of a SELECT we accept; any other part present (HAVING, ORDER BY, LIMIT,
DISTINCT, WITH, windows, ...) is refused by name. A join is checked on its own."""
MAX_OUTPUTS = 16
MAX_GROUP_COLUMNS = 4
MAX_IN_ITEMS = 64
MAX_CONDITIONS = 32
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


def refused(code: str, detail: str) -> Problem:
    return unprocessable(code, detail)


def shown(name: str) -> str:
    """An identifier as a refusal may show it: only if it looks like one."""
    return name if NAME.match(name) else "(an identifier)"


def parse(
    sql: str, datasets: Mapping[str, Table], joins: Mapping[str, Join] | None = None
) -> Shape:
    """Parse and check one query against the registered datasets and declared joins;
    refuse anything else."""
    try:
        statements = sqlglot.parse(sql)
    except (SqlglotError, RecursionError, ValueError):
        raise refused("sql_syntax", "the SQL could not be parsed") from None
    statements = [s for s in statements if s is not None]
    if len(statements) != 1:
        raise refused("multiple_statements", "send exactly one SELECT statement")
    tree = statements[0]
    if not isinstance(tree, exp.Select):
        raise refused("not_a_select", "only a SELECT with aggregates is accepted")
    return Checker(tree, datasets, joins or {}).shape()


JOIN_WORDS = ("method", "side", "kind")
"""The parts of a sqlglot Join that spell its kind (NATURAL, LEFT, CROSS, OUTER ...)."""


class Checker:
    def __init__(
        self, tree: exp.Select, datasets: Mapping[str, Table], joins: Mapping[str, Join]
    ) -> None:
        self.tree = tree
        self.datasets = datasets
        self.joins = joins
        self.sources: dict[str, Table] = {}
        """Each dataset read, by the name the query gives it (its alias, else its id)."""
        self.compared: list[tuple[Col, str]] = []
        self.conditions = 0

    def shape(self) -> Shape:
        self._scan()
        name, dataset = self._source(self.tree.args["from_"].this, "FROM")
        self.sources[name] = dataset
        join = self._join()
        group_by = self._group_by()
        outputs = [self._output(node) for node in self.tree.expressions]
        if len(outputs) > MAX_OUTPUTS:
            raise refused("too_many_outputs", f"a query selects at most {MAX_OUTPUTS} things")
        if not any(o.function for o in outputs):
            raise refused("no_aggregate", "a query must select at least one aggregate")
        for o in outputs:
            if o.function is None and o.column not in group_by:
                raise refused(
                    "ungrouped_column",
                    f"column {o.column[1] if o.column else '*'} is selected but not in GROUP BY; "
                    "select it in an aggregate or group by it",
                )
        labels = [o.label for o in outputs]
        if len(set(labels)) != len(labels):
            raise refused("duplicate_output", "two outputs have the same name; alias one")
        where = self.tree.args.get("where")
        condition = self._condition(where.this) if where is not None else None
        datasets = list(self.sources.values())
        return Shape(datasets, outputs, group_by, condition, self.compared, join)

    def _scan(self) -> None:
        """Whole-tree refusals first, so the reason names the real construct."""
        for node in self.tree.walk():
            if node.comments:
                raise refused("sql_comment", "comments are not accepted in a query")
            if node is not self.tree and isinstance(node, exp.Select | exp.Subquery):
                raise refused("subquery_not_allowed", "subqueries are not accepted")
            if isinstance(node, exp.SetOperation):
                raise refused("construct_not_allowed", "set operations are not accepted")
            # AND and OR are functions to sqlglot (connectors); WHERE checks them itself
            if isinstance(node, exp.Func) and type(node) not in ALLOWED_FUNCTIONS:
                name = node.name if isinstance(node, exp.Anonymous) else node.sql_name()
                raise refused(
                    "function_not_allowed",
                    f"function {shown(name)} is not allowed; only COUNT, SUM, AVG, MIN and MAX are",
                )
        if self.tree.args.get("laterals"):
            raise refused("join_not_allowed", "LATERAL is not accepted")
        for part, value in self.tree.args.items():
            if part not in SELECT_PARTS and value:
                name = part.rstrip("_").replace("_", " ")
                raise refused("construct_not_allowed", f"{name.upper()} is not accepted")
        if self.tree.args.get("from_") is None:
            raise refused("no_dataset", "a query must read FROM one dataset")

    def _source(self, table: exp.Expression, where: str) -> tuple[str, Table]:
        """A dataset named in FROM or JOIN, and the name the query gives it."""
        if not isinstance(table, exp.Table) or not isinstance(table.this, exp.Identifier):
            raise refused("construct_not_allowed", f"{where} must name one dataset")
        if table.args.get("db") or table.args.get("catalog"):
            raise refused("unknown_dataset", "name the dataset without a schema")
        for part in ("joins", "laterals", "pivots", "sample", "hints", "version"):
            if table.args.get(part):
                raise refused("construct_not_allowed", f"{part} on a dataset is not accepted")
        name = self._identifier(table.this)
        dataset = self.datasets.get(name)
        if dataset is None:
            raise refused("unknown_dataset", f"there is no dataset {shown(name)} to query")
        alias = table.args.get("alias")
        if alias is not None and alias.args.get("columns"):
            raise refused("construct_not_allowed", "column aliases on a dataset are not accepted")
        return (self._identifier(alias.this) if alias is not None else name), dataset

    def _join(self) -> Join | None:
        """The one JOIN, if any: inner, ON one equality that a declared join is made of."""
        joins = self.tree.args.get("joins") or []
        if not joins:
            return None
        if len(joins) > 1:
            raise refused("join_not_allowed", "a query joins at most two datasets: one JOIN")
        join = joins[0]
        words = [str(join.args[w]).upper() for w in JOIN_WORDS if join.args.get(w)]
        if words and words != ["INNER"]:
            raise refused(
                "join_not_allowed",
                f"{' '.join(shown(w) for w in words)} JOIN is not accepted: "
                "only [INNER] JOIN ... ON a declared join",
            )
        if join.args.get("using"):
            raise refused("join_not_allowed", "JOIN ... USING is not accepted: write ON a.x = b.y")
        for part, value in join.args.items():
            if part not in ("this", "on", *JOIN_WORDS) and value:
                raise refused("join_not_allowed", f"{shown(part)} on a JOIN is not accepted")
        if join.args.get("on") is None:
            raise refused(
                "join_not_allowed",
                "a JOIN needs ON a.x = b.y of a declared join (FROM a, b is not accepted)",
            )
        name, dataset = self._source(join.this, "JOIN")
        if name in self.sources:
            raise refused("ambiguous_dataset", "the two datasets need different names: alias one")
        self.sources[name] = dataset
        on = _bare(join.args["on"])
        if not isinstance(on, exp.EQ) or not all(
            isinstance(_bare(side), exp.Column) for side in (on.this, on.expression)
        ):
            raise refused(
                "join_condition_not_allowed",
                "ON takes one equality of a column of each dataset, as the catalog declares "
                "it, and no other condition: filter in WHERE",
            )
        pair = {self._column(on.this), self._column(on.expression)}
        for declared in self.joins.values():
            if set(declared.on) == pair:
                return declared
        first, second = list(self.sources.values())
        raise refused(
            "join_not_declared",
            f"the catalog declares no join of {first.id} and {second.id} on these columns; "
            "GET /v1/query/datasets lists the joins declared",
        )

    @staticmethod
    def _identifier(node: exp.Expression) -> str:
        if not isinstance(node, exp.Identifier):
            raise refused("construct_not_allowed", "expected a name")
        return node.this if node.quoted else node.this.lower()

    def _column(self, node: exp.Expression) -> Col:
        while isinstance(node, exp.Paren):
            node = node.this
        if not isinstance(node, exp.Column) or not isinstance(node.this, exp.Identifier):
            what = type(node).__name__.lower()
            raise refused("construct_not_allowed", f"expected a column, found {what}")
        if node.args.get("db") or node.args.get("catalog"):
            raise refused("unknown_column", "name columns as column or dataset.column")
        name = self._identifier(node.this)
        qualifier = node.args.get("table")
        if qualifier is not None:
            dataset = self._owner(self._identifier(qualifier))
        else:
            having = [d for d in self.sources.values() if name in d.columns]
            if len(having) > 1:
                raise refused(
                    "ambiguous_column",
                    f"column {shown(name)} is in both {having[0].id} and {having[1].id}: "
                    "qualify it (alias.column)",
                )
            dataset = having[0] if having else next(iter(self.sources.values()))
        if name not in dataset.columns:
            raise refused("unknown_column", f"dataset {dataset.id} has no column {shown(name)}")
        return dataset.id, name

    def _owner(self, qualifier: str) -> Table:
        """The dataset a column's qualifier names: by the query's name for it, or its id."""
        if qualifier in self.sources:
            return self.sources[qualifier]
        named = [d for d in self.sources.values() if d.id == qualifier]
        if len(named) == 1:
            return named[0]
        if len(self.sources) == 1:
            # the code a one-dataset query has always had for another dataset's column
            raise refused(
                "join_not_allowed",
                f"{shown(qualifier)} is not the dataset this query reads; "
                "join another only as the catalog declares",
            )
        raise refused("unknown_dataset", f"no dataset or alias {shown(qualifier)} in this query")

    def _group_by(self) -> list[Col]:
        group = self.tree.args.get("group")
        if group is None:
            return []
        for part, value in group.args.items():
            if part != "expressions" and value:
                raise refused("construct_not_allowed", "only GROUP BY of columns is accepted")
        names = list(dict.fromkeys(self._column(node) for node in group.expressions))
        if len(names) > MAX_GROUP_COLUMNS:
            raise refused("too_many_groups", f"group by at most {MAX_GROUP_COLUMNS} columns")
        return names

    def _output(self, node: exp.Expression) -> Output:
        alias = None
        if isinstance(node, exp.Alias):
            alias = self._identifier(node.args["alias"])
            if not NAME.match(alias):
                raise refused("bad_alias", "an alias is a plain name (letters, digits, _)")
            node = node.this
        if isinstance(node, exp.Star):
            raise refused("select_star", "SELECT * is not accepted: select aggregates")
        function = AGGREGATES.get(type(node))
        if function is None:
            column = self._column(node)
            return Output(alias or column[1], None, column)
        argument = node.this
        if isinstance(argument, exp.Distinct):
            raise refused("construct_not_allowed", "DISTINCT inside an aggregate is not accepted")
        extra = [k for k, v in node.args.items() if k not in ("this", "big_int") and v]
        if extra or (function != "count" and isinstance(argument, exp.Star)):
            raise refused("construct_not_allowed", f"{function.upper()} takes one column")
        column = None if isinstance(argument, exp.Star) else self._column(argument)
        if function in ("sum", "avg") and (
            column is None or self._info(column).type not in ("integer", "number")
        ):
            raise refused("not_numeric", f"{function.upper()} needs a numeric column")
        return Output(alias or f"{function}({column[1] if column else '*'})", function, column)

    def _info(self, col: Col) -> Column:
        return self.datasets[col[0]].columns[col[1]]

    def _condition(self, node: exp.Expression) -> Where:
        self.conditions += 1
        if self.conditions > MAX_CONDITIONS:
            raise refused("too_many_conditions", f"a WHERE holds at most {MAX_CONDITIONS} tests")
        if isinstance(node, exp.Paren):
            return self._condition(node.this)
        if isinstance(node, exp.And | exp.Or):
            op = "and" if isinstance(node, exp.And) else "or"
            return Junction(op, (self._condition(node.this), self._condition(node.expression)))
        if isinstance(node, exp.Not):
            return Junction("not", (self._condition(node.this),))
        op = COMPARISONS.get(type(node))
        if op is not None:
            left, right = node.this, node.expression
            if not isinstance(_bare(left), exp.Column):
                left, right, op = right, left, FLIPPED[op]
            column = self._column(left)
            return self._compare(op, column, [right])
        if isinstance(node, exp.In):
            if node.args.get("query") or node.args.get("unnest") or node.args.get("field"):
                raise refused("subquery_not_allowed", "IN takes a list of literals")
            items = node.expressions
            if not 1 <= len(items) <= MAX_IN_ITEMS:
                raise refused("construct_not_allowed", f"IN takes 1 to {MAX_IN_ITEMS} literals")
            return self._compare(Op.IN, self._column(node.this), items)
        if isinstance(node, exp.Between):
            column = self._column(node.this)
            return self._compare(Op.BETWEEN, column, [node.args["low"], node.args["high"]])
        what = type(node).__name__.lower()
        raise refused(
            "construct_not_allowed",
            f"a WHERE condition may not be {what}: compare a column with literals "
            "(=, <>, <, <=, >, >=, IN, BETWEEN, AND, OR, NOT)",
        )

    def _compare(self, op: Op, column: Col, operands: list[exp.Expression]) -> Condition:
        kind = self._info(column).type
        values = tuple(_literal(node, kind, column[1]) for node in operands)
        self.compared.append((column, op.value))
        return Condition(column, op, values if op in (Op.IN, Op.BETWEEN) else values[0])


def _bare(node: exp.Expression) -> exp.Expression:
    while isinstance(node, exp.Paren):
        node = node.this
    return node


def _literal(node: exp.Expression, kind: str, column: str) -> Any:
    """A literal as the column's type takes it; the value itself is never echoed."""
    node = _bare(node)
    negative = False
    if isinstance(node, exp.Neg):
        negative, node = True, _bare(node.this)
    if not isinstance(node, exp.Literal):
        what = type(node).__name__.lower()
        raise refused(
            "construct_not_allowed",
            f"column {column} may only be compared with literals, not {what}",
        )
    text = node.this
    if node.is_string and not negative:
        if kind == "string":
            if len(text) > 256:
                raise refused("literal_too_long", f"a literal for {column} is over 256 characters")
            return text
        if kind == "date":
            try:
                return dt.date.fromisoformat(text)  # bound as a date: PostgreSQL types it
            except ValueError:
                raise refused(
                    "literal_type_mismatch", f"column {column} is compared with YYYY-MM-DD dates"
                ) from None
    if not node.is_string and kind in ("integer", "number"):
        try:
            value = int(text) if re.fullmatch(r"\d{1,18}", text) else float(text)
        except ValueError:
            value = None
        if value is not None and value == value and abs(value) < 1e18:
            return -value if negative else value
    raise refused(
        "literal_type_mismatch",
        f"column {column} ({kind}) is compared with a literal of another type",
    )
