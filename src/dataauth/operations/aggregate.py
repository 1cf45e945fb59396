"""Aggregate queries (聚合查询): checked SQL in, groups of at least k out, noised where asked.

``POST /v1/query`` takes ``{"purpose", "sql"}``. The SQL is parsed and checked
(``domain.language``) into a shape; the shape names every column and the use made of it (in
an aggregate: ``aggregate``; a group's label: ``plaintext``; in WHERE: ``compare``), and
the policy decides on those uses like on any other request. The statement that runs is
rebuilt from the shape (``domain.aggregates``), every literal a bound parameter: the
text the operator sent is never run.

Disclosure, from the decision's obligations:

- ``min_group_size`` (k), exact answers: a group of fewer than k subjects is left out,
  and how many were is not said (a count of the groups left out would answer, for a
  filter that singles out a few subjects, how many distinct labels they have); a query
  without GROUP BY over fewer than k is refused (``cohort_too_small``). The policy keeps
  exact only queries that compare and aggregate public columns (``exact_levels``) and
  show a label above them only over the whole dataset, so whether a group reaches k is
  a fact about public data and no two exact answers difference into one subject.
- ``dp`` ({mechanism: laplace | gaussian, epsilon, delta, threshold_delta, budget: {key,
  epsilon}}): the query's ε is charged to the operator's account first (refused over
  budget, with what remains). Which groups appear is then decided on noisy counts
  (privacy.Release.select: OpenDP's thresholded mechanism over the groups' row counts,
  threshold max(k, the least that keeps a one-subject group's chance of appearing under
  ``threshold_delta``)), the released COUNT(*) is that noisy count, and every other
  released number gets OpenDP noise. A query without GROUP BY is one group: released or
  refused on its noisy count, never on its true one. Sums and means clamp each subject's
  value to the column's declared bounds; ε (and δ, for Gaussian noise) is split evenly
  across the measurements, the selection's count among them (a mean is a noisy sum over
  a noisy count). MIN and MAX have no useful bounded sensitivity, so they are refused
  under noise (the policy denies them first).

A join (``FROM a JOIN b ON ...``, only as the catalog declares: many-to-one, onto b's
key) adds one rule to exact answers: a group is released only if it also holds at least
k distinct subjects of b (COUNT(DISTINCT b's key), computed in the rebuilt statement),
so firms that share a few representatives do not single them out. Under noise, one
subject of b stands behind many rows, so the rebuilt statement keeps at most the
declaration's ``max_per_right`` rows per subject of b (the first by a's key), every
sensitivity is that many times one row's, and the selection's threshold is set for a
subject who moves that many rows; the distinct-subject count is then neither computed
nor needed (the guarantee is per subject of b already, and an exact count of them is
what must not decide anything). The ε is charged to the operator's account on both
datasets.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pydantic import Field

from dataauth.accounts.disclosure import Disclosure
from dataauth.accounts.privacy import (
    Noise,
    PrivacyBudgets,
    Release,
    charge,
    dataset_of,
    noise_terms,
)
from dataauth.catalog.store import Catalog, DatasetInfo, JoinInfo, OperatorInfo
from dataauth.domain import language
from dataauth.domain.aggregates import Measure, statement
from dataauth.domain.database import Domain
from dataauth.domain.shape import Col, Column, Join, Shape, Table
from dataauth.errors import forbidden
from dataauth.operations.base import Call, Description, Request, Route, min_group_size

MAX_SQL = 4000

GROUP_SIZE: Measure = ("count", None)


class QueryRequest(Request):
    sql: str = Field(
        min_length=1,
        max_length=MAX_SQL,
        description="one SELECT of COUNT/SUM/AVG/MIN/MAX over one dataset or a declared join",
    )


@dataclass
class Raw:
    rows: list[Any]
    measures: list[Measure]
    noise: Noise | None


def parse(
    sql: str, datasets: dict[str, DatasetInfo], joins: dict[str, JoinInfo] | None = None
) -> Shape:
    """Parse and check one query against the catalog's datasets and declared joins, as
    the query language knows them: names, types and bounds."""
    tables = {
        id_: Table(
            d.id,
            d.table_name,
            d.key_column,
            {n: Column(c.type, c.bounds) for n, c in d.columns.items()},
        )
        for id_, d in datasets.items()
    }
    links = {
        id_: Join(j.id, *j.on, max_per_right=j.max_per_right) for id_, j in (joins or {}).items()
    }
    return language.parse(sql, tables, links)


def subjects(shape: Shape, noisy: bool) -> Measure | None:
    """An exact join's distinct right-hand subjects, which k applies to as well as to
    rows. Under noise the contribution bound protects each of them instead."""
    return ("distinct", shape.join.on[1]) if shape.join is not None and not noisy else None


def measures(shape: Shape, noisy: bool) -> list[Measure]:
    """What the database computes per group: the group's size first (and its distinct
    subjects, for an exact join), then each output's."""
    found: list[Measure] = [GROUP_SIZE]
    if (distinct_subjects := subjects(shape, noisy)) is not None:
        found.append(distinct_subjects)
    for output in shape.aggregates():
        if noisy:
            wanted = measures_of(output.function, output.column)
        else:
            wanted = [(output.function or "", output.column)]
        found += [m for m in wanted if m not in found]
    return found


class Aggregate:
    """The aggregate-query kind."""

    name = "query"
    route = Route(
        "/v1/query",
        QueryRequest,
        "Run one checked aggregate query: groups of at least k, with noise where policy asks.",
        "aggregate queries (聚合查询)",
    )

    def __init__(self, catalog: Catalog, domain: Domain, ledger: PrivacyBudgets) -> None:
        self.catalog = catalog
        self.domain = domain
        self.ledger = ledger

    def describe(self, call: Call[QueryRequest], operator: OperatorInfo) -> Description:
        snapshot = self.catalog.snapshot()
        shape = parse(call.body.sql, snapshot.datasets, snapshot.joins)
        dataset, join = snapshot.datasets[shape.dataset.id], shape.join
        columns = []
        for (owner, name), use in shape.uses():
            info = snapshot.datasets[owner].columns[name]
            facts = {"name": name, "level": info.level, "uses": list(info.uses), "use": use}
            # a join's columns say whose they are; one dataset's stay as they always were
            columns.append({"dataset": owner, **facts} if join else facts)
        operation = {"product": f"query:{dataset.id}", "dataset": dataset.id}
        described = {
            "dataset": {"id": dataset.id, "version": dataset.version},
            "columns": columns,
            "query": shape.summary(),
        }
        if join is not None:
            operation["join"] = join.id
            described["join"] = {
                "id": join.id,
                "datasets": [d.id for d in shape.datasets],
                "on": [{"dataset": owner, "column": name} for owner, name in join.on],
            }
        return Description(
            operation=operation,
            facts=described,
            plan=shape,
            dataset_version=" ".join(
                f"{d.id}@{snapshot.datasets[d.id].version}" for d in shape.datasets
            ),
        )

    def execute(self, plan: Shape, obligations: dict[str, Any]) -> Raw:
        min_group_size(obligations)
        terms = noise_terms(obligations)
        noise = None
        if terms is not None:
            charged = {dataset_of(key) for key, _ in terms.accounts}
            if plan.join is not None and not {d.id for d in plan.datasets} <= charged:
                # fail closed: a noised join releases facts about both datasets' subjects
                raise forbidden(
                    "obligation_malformed",
                    "the policy's dp obligation over a join must charge each dataset's account",
                )
            if any(o.function in ("min", "max") for o in plan.aggregates()):
                raise forbidden("noise_unavailable", "MIN and MAX cannot be answered with noise")
            for output in plan.aggregates():
                if output.function in ("sum", "avg") and not (
                    output.column and plan.info(output.column).bounds
                ):
                    name = plan.name(output.column)
                    raise forbidden(
                        "bounds_missing",
                        f"column {name} has no declared bounds to clamp and noise it",
                    )
            if terms.threshold_delta is None:
                # fail closed, before any ε is spent: groups chosen on true counts are
                # an oracle on whoever a filter singles out
                raise forbidden(
                    "obligation_malformed",
                    "the policy's dp obligation sets no threshold_delta to select groups with",
                )
            noise = charge(self.ledger, terms, plan.dataset.id)
        wanted = measures(plan, noise is not None)
        rows = self.domain.execute(statement(plan, wanted, noise is not None))
        return Raw(rows, wanted, noise)

    def disclosures(self, plan: Shape, obligations: dict[str, Any]) -> list[Disclosure]:
        """A query answers about groups, never about a named subject: what it can tell of
        one is bounded by k, the noise and the ε account, not by subject budgets."""
        return []

    def disclose(self, raw: Raw, plan: Shape, obligations: dict[str, Any]) -> dict[str, Any]:
        k = min_group_size(obligations)
        protections: dict[str, Any] = {"min_group_size": k, "differential_privacy": None}
        detail = f"the cohort holds fewer than {k} subjects; answers cover at least {k}"
        if raw.noise is not None:
            released, values, report = self._noised(plan, raw, k)
            protections["differential_privacy"] = report
            (selection,) = report["partition_selection"].values()
            threshold = selection["threshold"]
            detail = f"the cohort's noisy count is under {threshold}; answers cover at least {k}"
        else:
            released, values = self._exact(plan, raw, k)
        if not plan.group_by and not released:
            raise forbidden("cohort_too_small", detail, min_group_size=k)
        rows = []
        for index, row in enumerate(released):
            out = []
            for output in plan.outputs:
                if output.function is None:
                    out.append(row[plan.group_by.index(output.column)])  # type: ignore[arg-type]
                else:
                    out.append(self._value(plan, output.function, output.column, values, index))
            rows.append(out)
        return {
            "columns": [o.label for o in plan.outputs],
            "rows": rows,
            "protections": protections,
        }

    @staticmethod
    def _exact(plan: Shape, raw: Raw, k: int) -> tuple[list[Any], dict[Measure, list[Any]]]:
        """Groups of at least k rows (and, over a join, k distinct right-hand subjects),
        by their true counts, and their exact values."""
        width = len(plan.group_by)
        thresholds = (GROUP_SIZE, subjects(plan, noisy=False))
        counts = [width + i for i, m in enumerate(raw.measures) if m in thresholds]
        released = [row for row in raw.rows if all(row[i] >= k for i in counts)]
        released.sort(key=lambda row: tuple(str(v) for v in row[:width]))
        values = {m: [row[width + i] for row in released] for i, m in enumerate(raw.measures)}
        return released, values

    @staticmethod
    def _noised(
        plan: Shape, raw: Raw, k: int
    ) -> tuple[list[Any], dict[Measure, list[Any]], dict[str, Any]]:
        """Groups selected on noisy counts (each released count that noisy count), then
        each other measurement noised over the groups selected."""
        assert raw.noise is not None
        width = len(plan.group_by)
        used = {m for o in plan.aggregates() for m in measures_of(o.function, o.column)}
        selector = _selector(used)
        noised = [m for m in raw.measures if m in used and m != selector]
        rows = rows_per_subject(plan)
        one = Release(raw.noise, 1 + len(noised))
        size = width + raw.measures.index(selector)
        labels = {_group_key(row, width): row for row in raw.rows}
        counts = {key: row[size] for key, row in labels.items()}
        selected = one.select(_label(*selector), counts, rows, k)
        released = sorted(
            (labels[key] for key in selected), key=lambda row: tuple(str(v) for v in row[:width])
        )
        values: dict[Measure, list[Any]] = {
            selector: [selected[_group_key(row, width)] for row in released]
        }
        bounds = {}
        for function, col in noised:
            sensitivity = float(rows)
            if function == "sum" and col is not None:
                low, high = plan.info(col).bounds or (0, 0)
                sensitivity = rows * max(abs(low), abs(high))
                bounds[col[1]] = [low, high]
            index = width + raw.measures.index((function, col))
            exact = [float(row[index] or 0) for row in released]
            values[(function, col)] = one.add(_label(function, col), exact, sensitivity)
        report = {**one.report(), "clamped_to": bounds}
        if plan.join is not None:
            report["contributions_bounded_to"] = plan.join.max_per_right
        return released, values, report

    @staticmethod
    def _value(
        plan: Shape,
        function: str,
        col: Col | None,
        values: dict[Measure, list[Any]],
        index: int,
    ) -> Any:
        if function == "avg" and (function, col) not in values:  # under noise: sum / count
            total, count = values[("sum", col)][index], values[("count", col)][index]
            low, high = (plan.info(col).bounds if col else None) or (0, 0)
            return round(min(max(total / max(count, 1.0), low), high), 2)
        value = values[(function, col)][index]
        if isinstance(value, float) and function == "count":
            return max(0, round(value))  # a noisy count, as a count
        if isinstance(value, float):
            return round(value, 2)
        return value


def measures_of(function: str | None, col: Col | None) -> list[Measure]:
    """The measurements one output reads under noise."""
    if function == "avg":
        return [("sum", col), ("count", col)]
    return [(function or "", col)]


def _selector(used: set[Measure]) -> Measure:
    """The count groups are selected on: COUNT(*) if the answer shows it, else a count
    it needs anyway (a mean's), so that selecting costs no extra share of ε; else
    COUNT(*), measured for the selection alone. Any count will do: one subject moves
    each by at most its rows."""
    counts = sorted(m for m in used if m[0] == "count" and m[1] is not None)
    return GROUP_SIZE if GROUP_SIZE in used or not counts else counts[0]


def _group_key(row: Any, width: int) -> str:
    """A group's own label as the selection's key: neighbouring data name a group alike
    (a row's position would not)."""
    return json.dumps([str(v) for v in row[:width]], ensure_ascii=False)


def _label(function: str, col: Col | None) -> str:
    """A noisy measurement's name in the answer's report, e.g. ``sum(monthly_income)``."""
    return f"{function}({col[1] if col else '*'})"


def rows_per_subject(plan: Shape) -> int:
    """How many rows of a noised answer one subject can move: the sensitivity's factor.

    One dataset: one row. A join: a right-hand subject keeps at most ``max_per_right``
    rows; a left row is one, but removing it can let a later row of the same right
    subject into the bound in its place, which moves two rows (a swap).
    """
    if plan.join is None:
        return 1
    return max(plan.join.max_per_right, 2)
