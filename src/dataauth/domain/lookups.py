"""Look-ups by subject key: a batch of keys in, one statement per batch (or chunk).

The keys go in as a VALUES list of (index, key) joined to the table on its key column,
so each row comes back with the position of the subject it answers, and a subject
named twice is answered twice. Verification computes its answer inside the database
the same way: the stored values never reach the gateway.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from sqlalchemy import and_, bindparam, case, column, null, select, values

from dataauth.domain.database import Domain
from dataauth.domain.query import Binds, Op, arity, constant, predicate, source
from dataauth.store.statements import Prepared

BATCH = "dataauth_batch"
"""The name the batch of subjects goes by in a statement: none a department's table has."""


def _subjects(columns: Sequence[str], size: int) -> Any:
    """The batch: ``size`` rows of bound parameters, ``{column}{s}`` for the subject at ``s``
    (``i`` and ``k``), ``{column}_{s}`` for its operand slots."""
    names = [f"{c}{{}}" if c in ("i", "k") else f"{c}_{{}}" for c in columns]
    rows = [tuple(bindparam(name.format(s)) for name in names) for s in range(size)]
    return values(*(column(c) for c in columns), name=BATCH).data(rows).cte(BATCH)


@dataclass(frozen=True)
class Lookup:
    """``columns`` of ``table``'s rows by their ``key``."""

    table: str
    key: str
    columns: tuple[str, ...]

    def rows(self, domain: Domain, keys: Sequence[str], chunk: int) -> list[Any]:
        """(index in ``keys``, *columns) for each key found, ``chunk`` keys per statement."""
        found: list[Any] = []
        for start in range(0, len(keys), chunk):
            part = keys[start : start + chunk]
            params: dict[str, Any] = {}
            for s, key in enumerate(part):
                params[f"i{s}"] = start + s
                params[f"k{s}"] = key
            found.extend(domain.fetch(_lookup(domain, self, len(part)), params))
        return found


@lru_cache(maxsize=256)
def _lookup(domain: Domain, lookup: Lookup, size: int) -> Prepared:
    q = _subjects(("i", "k"), size)
    t = source(lookup.table, [lookup.key, *lookup.columns])
    statement = select(q.c.i, *(t.c[c] for c in lookup.columns)).select_from(
        q.join(t, t.c[lookup.key] == q.c.k)
    )
    return domain.prepare(statement)


# -- verification ---------------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    """One test of a subject's row: ``column op`` the product's ``fixed`` operands, or,
    where there are none, the subject's own (one per slot)."""

    column: str
    op: Op
    fixed: tuple[Any, ...] | None = None


@dataclass(frozen=True)
class Band:
    """Which of ``len(cuts) + 1`` bands ``column`` falls in: band n lies under cut n."""

    column: str
    cuts: tuple[float, ...]


@dataclass(frozen=True, eq=False)
class Verification:
    """Per subject of a batch: whether its row was found, whether every check passes,
    and (with a band) the band of its value. One statement per batch size, compiled
    once: the hot path."""

    table: str
    key: str
    checks: tuple[Check, ...]
    band: Band | None = None
    in_slots: int = 16
    """The operand slots of a subject's ``in`` check: its list, padded with NULLs."""
    _prepared: dict[tuple[Domain, int], tuple[Prepared, dict[str, Any]]] = field(
        default_factory=dict, repr=False
    )

    def slots(self) -> tuple[str, ...]:
        """The names of the operand slots each subject fills, in check order."""
        return tuple(
            f"c{j}_{n}"
            for j, check in enumerate(self.checks)
            if check.fixed is None
            for n in range(arity(check.op, self.in_slots))
        )

    def answers(
        self, domain: Domain, keys: Sequence[str], operands: Sequence[Sequence[Any]]
    ) -> Sequence[Any]:
        """Rows (index, found, passed[, band]) of the subjects found or not: 1 or 0 for
        found and passed, the band's index (None for a NULL value) with a band.
        ``operands`` holds each subject's values for ``slots()``, in order."""
        statement, params, tail = self._statement(domain, len(keys))
        width = len(self.slots())
        if tail is not None:
            # positional binds in row order (checked when the statement was built): the
            # values go straight into the list the driver takes, with no name per value
            flat: list[Any] = []
            append, extend = flat.append, flat.extend
            for s, (key, bound) in enumerate(zip(keys, operands, strict=True)):
                if len(bound) != width:
                    raise ValueError(f"subject {s} has {len(bound)} operands, not {width}")
                append(s)
                append(key)
                extend(bound)
            flat.extend(tail)
            return domain.fetch_bound(statement, flat)
        named = dict(params)
        slots = self.slots()
        for s, (key, bound) in enumerate(zip(keys, operands, strict=True)):
            named[f"i{s}"] = s
            named[f"k{s}"] = key
            for name, value in zip(slots, bound, strict=True):
                named[f"{name}_{s}"] = value
        return domain.fetch(statement, named)

    def _statement(
        self, domain: Domain, size: int
    ) -> tuple[Prepared, dict[str, Any], list[Any] | None]:
        made = self._prepared.get((domain, size))
        if made is None:
            if len(self._prepared) > 256:
                self._prepared.clear()
            made = self._prepared.setdefault((domain, size), self._made(domain, size))
        return made

    def _made(self, domain: Domain, size: int) -> tuple[Prepared, dict[str, Any], list[Any] | None]:
        """The statement, its fixed values by name, and, where the driver takes binds by
        position and they run subject by subject (index, key, slots) before the fixed
        ones, those fixed values in their order: a batch then binds as one flat list."""
        statement, fixed = self._build(domain, size)
        if statement.order is None:
            return statement, fixed, None
        per_subject = ("i{}", "k{}", *(f"{slot}_{{}}" for slot in self.slots()))
        rows = tuple(name.format(s) for s in range(size) for name in per_subject)
        head, rest = statement.order[: len(rows)], statement.order[len(rows) :]
        if head != rows or not set(rest) <= set(fixed):
            return statement, fixed, None
        return statement, fixed, [fixed[name] for name in rest]

    def _build(self, domain: Domain, size: int) -> tuple[Prepared, dict[str, Any]]:
        slots = self.slots()
        q = _subjects(("i", "k", *slots), size)
        band = [self.band.column] if self.band else []
        t = source(self.table, [self.key, *(c.column for c in self.checks), *band])
        fixed = Binds("f")
        tests = []
        for j, check in enumerate(self.checks):
            if check.fixed is not None:
                operands = [fixed(v) for v in check.fixed]
            else:
                operands = [q.c[f"c{j}_{n}"] for n in range(arity(check.op, self.in_slots))]
            tests.append(predicate(t.c[check.column], check.op, operands))
        found = case((t.c[self.key].is_(None), constant(0)), else_=constant(1))
        passed = case((and_(*tests), constant(1)), else_=constant(0)) if tests else constant(1)
        outputs = [found, passed]
        if self.band is not None:
            value, cuts = t.c[self.band.column], Binds("b")
            arms = [(value < cuts(cut), constant(n)) for n, cut in enumerate(self.band.cuts)]
            banded = case((value.is_(None), null()), *arms, else_=constant(len(arms)))
            outputs.append(banded)
            fixed.values.update(cuts.values)
        statement = select(q.c.i, *outputs).select_from(q.outerjoin(t, t.c[self.key] == q.c.k))
        return domain.prepare(statement), fixed.values
