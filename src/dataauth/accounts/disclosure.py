"""Per-subject disclosure budgets: how much any operator may learn about one person.

Every answer about a subject is a release of information about it: a boolean at most
one bit, a band log2 of its bands, a score log2 of the values its rounding allows. A
kind states what each answer can reveal (``Disclosure``: subject, question, bits); the
spine charges it here, where the decision obliges a ``subject_budget``:

    {"window_days": 30, "bits_per_operator": 16, "bits_total": 32}

- per operator: the bits of the distinct questions this operator had answered about
  the subject within the last ``window_days`` (a sliding window, not a calendar one: a
  window's end is no moment to spend twice);
- across all operators: the bits of the distinct questions anyone had answered about
  the subject in the window, so several operators pooling their answers learn no more.

The very same question again (the same product and claims, the same model and form)
tells nothing new and costs nothing; a new threshold or claim costs anew. A request is
charged all or nothing, under the gateway database's write lock, so concurrent
requests and several gateway processes never spend a budget twice.

Rows hold keyed hashes only (of the subject and of the question): the ledger names no
person and no claimed value.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from itertools import repeat
from typing import Any, NamedTuple

from sqlalchemy import Engine, text
from sqlmodel import Field, SQLModel

from dataauth.errors import forbidden
from dataauth.store.statements import Prepared, Rows, Writer, prepare, relaxed

MILLI = 1000
"""Bits are kept in thousandths, as integers: sums of floats would drift."""
CHUNK = 500
"""Subjects read per statement (far under any database's bind limit)."""
KNOWN = 50_000
"""Questions this process remembers as answered: past that it forgets the least recently
remembered and reads the database for them again (a bound on memory, some 10 MiB, not
on correctness)."""


Row = tuple[str, str, str, int, int]
"""A ledger row: subject, question, operator, at, millibits (the table's column order)."""


def _known_key(subject: str, question: str, operator: str) -> str:
    # keyed hashes and operator ids hold no NUL: the joined string is unambiguous
    return f"{subject}\x00{question}\x00{operator}"


def _known_keys(disclosures: Sequence[Disclosure], operator: str) -> list[str]:
    """``_known_key`` of each disclosure, in one comprehension: no call a subject."""
    return [f"{subject}\x00{question}\x00{operator}" for subject, question, _ in disclosures]


class Disclosure(NamedTuple):
    """What one answer can tell about one subject (a tuple: a batch makes thousands).

    ``question`` identifies what was asked, so the very same question again costs
    nothing; a new claim or threshold is a new question. ``bits`` bounds what the answer
    can reveal: at most log2 of the number of answers it can take (a boolean 1, a band
    log2(bands)); a product whose claims all come from declared cut points is one
    question about the subject, whatever the claim, costing log2 of all its outcomes.
    """

    subject: str
    """The subject's keyed hash (``SubjectHasher.person``): one person across datasets."""
    question: str
    """A keyed digest of the question (product, claims, release form): never its text."""
    bits: float


class SubjectDisclosure(SQLModel, table=True):
    __tablename__ = "subject_disclosure"
    # SQLite: one B-tree keyed by (subject, question, operator), not a rowid table and
    # an index beside it; a batch of new subjects inserts into half as many trees
    __table_args__ = {"sqlite_with_rowid": False}

    subject: str = Field(primary_key=True)
    """The subject's keyed hash."""
    question: str = Field(primary_key=True)
    """The question's keyed digest."""
    operator: str = Field(primary_key=True)
    at: int
    """When it was first answered in the current window, in Unix seconds."""
    millibits: int


@dataclass(frozen=True)
class SubjectBudget:
    """A ``subject_budget`` obligation."""

    window: timedelta
    per_operator: float
    total: float


def subject_budget(obligations: dict[str, Any]) -> SubjectBudget | None:
    """The decision's ``subject_budget``, or None; a malformed one refuses (fail closed)."""
    terms = obligations.get("subject_budget")
    if terms is None:
        return None
    numbers = [terms.get(name) for name in ("window_days", "bits_per_operator", "bits_total")]
    if not isinstance(terms, dict) or not all(_positive(n) for n in numbers):
        raise forbidden("obligation_malformed", "the policy's subject_budget is not usable")
    days, per_operator, total = (float(n) for n in numbers)  # type: ignore[arg-type]
    return SubjectBudget(timedelta(days=days), per_operator, total)


def _positive(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


@dataclass(frozen=True)
class Spent:
    """What a request was charged, per subject (in the order first named)."""

    subjects: list[str]
    bits: list[float]

    def as_entry(self) -> list[dict[str, Any]]:
        """The audit entry's record of the charge: keyed hashes and bits, nothing else.
        A whole number of bits is written as an integer: the same canonical bytes (RFC 8785
        prints 1.0 as 1), on the fast path of ``canonical``."""
        return [
            {"subject": s, "bits": int(b) if float(b).is_integer() else b}
            for s, b in zip(self.subjects, self.bits, strict=True)
            if b
        ]


@dataclass(frozen=True)
class Exhausted:
    """The first subject (its index in the request) whose budget the request overdraws."""

    index: int
    scope: str
    """"operator" or "total"."""
    asked: float
    remaining: float
    budget: float
    renews: datetime


class DisclosureLedger:
    """The subjects' disclosure budgets, in the gateway's database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._writer = Writer(engine, "subject_disclosure", on_connect=relaxed)
        # (subject, question, operator) -> when answered: rows are only ever added in a
        # window, so a question known answered since ``since`` is free without a read.
        # Keyed by one joined string, not a tuple of three: a third of the memory an entry
        # takes, and this is the one structure that grows with the subjects asked about
        self._known: OrderedDict[str, int] = OrderedDict()
        self._upsert = Rows(
            engine,
            "INSERT INTO subject_disclosure (subject, question, operator, at, millibits)",
            5,
            "ON CONFLICT (subject, question, operator) "
            "DO UPDATE SET at = excluded.at, millibits = excluded.millibits",
        )

    @lru_cache(maxsize=64)  # noqa: B019  (one ledger per gateway: the cache lives as long)
    def _reader(self, size: int) -> Prepared:
        names = ", ".join(f":s{i}" for i in range(size))
        return prepare(
            self.engine,
            text(
                "SELECT subject, question, operator, at, millibits FROM subject_disclosure "
                f"WHERE subject IN ({names}) AND at > :since"
            ),
        )

    def charge(
        self,
        operator: str,
        disclosures: Sequence[Disclosure],
        budget: SubjectBudget,
        now: datetime,
    ) -> Spent | Exhausted:
        """Charge every new question, or none and name the first subject it overdraws."""
        since = int(now.timestamp() - budget.window.total_seconds())
        # a question unknown reads as answered at ``since``, which is not in the window;
        # the look-ups run in C (map, min): every batch asked again takes this path
        keys = _known_keys(disclosures, operator)
        if not keys or min(map(self._known.get, keys, repeat(since))) > since:
            return Spent([], [])  # all asked before, in the window: nothing new to tell
        asked, first = _questions(disclosures)
        with self._writer.transaction() as cursor:
            held = self._held(cursor, sorted(asked), since)
            verdict = self._price(held, asked, first, operator, budget, now)
            if isinstance(verdict, Exhausted):
                return verdict
            spent, rows = verdict
            if rows:
                # in key order: each leaf of the B-tree is visited once, in turn, instead
                # of once per random hash (a batch of new subjects: a third less CPU)
                rows.sort()
                self._upsert.insert(cursor, rows)
        self._remember_held(held, operator)
        self._remember(rows)
        return spent

    def _remember(self, rows: list[Row]) -> None:
        known = self._known
        for subject, question, operator, at, _ in rows:
            key = _known_key(subject, question, operator)
            known[key] = at
            known.move_to_end(key)
        while len(known) > KNOWN:
            known.popitem(last=False)

    def _remember_held(
        self, held: dict[str, list[tuple[str, str, int, int]]], operator: str
    ) -> None:
        self._remember(
            [
                (s, q, o, at, m)
                for s, answered in held.items()
                for q, o, at, m in answered
                if o == operator
            ]
        )

    @staticmethod
    def _price(
        held: dict[str, list[tuple[str, str, int, int]]],
        asked: dict[str, dict[str, int]],
        first: dict[str, int],
        operator: str,
        budget: SubjectBudget,
        now: datetime,
    ) -> tuple[Spent, list[Row]] | Exhausted:
        """What the request costs each subject, against what was answered before: the
        charge and its rows, or the first subject it overdraws."""
        stamp = int(now.timestamp())
        rows, subjects, bits = [], [], []
        per_operator, total = _milli(budget.per_operator), _milli(budget.total)
        for subject, questions in asked.items():
            before = held.get(subject)
            if not before:  # a subject no one asked about in the window: all of it is new
                cost = sum(questions.values())
                if cost > per_operator or cost > total:
                    scope, allowed = ("operator", budget.per_operator) if cost > per_operator \
                        else ("total", budget.total)  # fmt: skip
                    return Exhausted(first[subject], scope, asked=cost / MILLI,
                                     remaining=allowed, budget=allowed,
                                     renews=now + budget.window)  # fmt: skip
                rows += [(subject, q, operator, stamp, m) for q, m in questions.items()]
                subjects.append(subject)
                bits.append(cost / MILLI)
                continue
            mine = {q: m for q, o, _, m in before if o == operator}
            anyone: dict[str, int] = {}
            for q, _, _, m in before:
                anyone[q] = max(anyone.get(q, 0), m)
            fresh = {q: m for q, m in questions.items() if m > mine.get(q, 0)}
            cost_mine = sum(m - mine.get(q, 0) for q, m in fresh.items())
            cost_all = sum(max(m - anyone.get(q, 0), 0) for q, m in questions.items())
            for scope, used, cost, allowed in (
                ("operator", sum(mine.values()), cost_mine, budget.per_operator),
                ("total", sum(anyone.values()), cost_all, budget.total),
            ):
                if used + cost > _milli(allowed):
                    counted = [at for _, o, at, _ in before if scope == "total" or o == operator]
                    return Exhausted(
                        first[subject],
                        scope,
                        asked=cost / MILLI,
                        remaining=max(_milli(allowed) - used, 0) / MILLI,
                        budget=allowed,
                        renews=_renews(counted, budget, now),
                    )
            rows += [(subject, q, operator, stamp, m) for q, m in fresh.items()]
            subjects.append(subject)
            bits.append(cost_mine / MILLI)
        return Spent(subjects, bits), rows

    def _held(
        self, cursor: Any, subjects: list[str], since: int
    ) -> dict[str, list[tuple[str, str, int, int]]]:
        """Every question answered about these subjects within the window, by anyone."""
        held: dict[str, list[tuple[str, str, int, int]]] = {}
        for start in range(0, len(subjects), CHUNK):
            part = subjects[start : start + CHUNK]
            reader = self._reader(len(part))
            values: dict[str, Any] = {f"s{i}": s for i, s in enumerate(part)}
            values["since"] = since
            cursor.execute(reader.sql, reader.bind(values))
            for subject, question, who, at, millibits in cursor.fetchall():
                held.setdefault(subject, []).append((question, who, at, millibits))
        return held


def _questions(
    disclosures: Sequence[Disclosure],
) -> tuple[dict[str, dict[str, int]], dict[str, int]]:
    """Per subject, its questions and their bits, and where the request first names it.
    A question asked twice in one batch is one question: the same answer twice tells
    nothing more."""
    asked: dict[str, dict[str, int]] = {}
    first: dict[str, int] = {}
    for index, d in enumerate(disclosures):
        first.setdefault(d.subject, index)
        questions = asked.setdefault(d.subject, {})
        questions[d.question] = max(questions.get(d.question, 0), _milli(d.bits))
    return asked, first


def _milli(bits: float) -> int:
    return math.ceil(bits * MILLI - 1e-6)


def _renews(times: list[int], budget: SubjectBudget, now: datetime) -> datetime:
    """When the oldest answer that counts leaves the window: the earliest the budget grows."""
    if not times:
        return now + budget.window
    return datetime.fromtimestamp(min(times), tz=now.tzinfo) + budget.window


@dataclass(frozen=True)
class Standing:
    """How many subjects have had answers told in a window, and how many of them stand
    near (at least ``NEAR`` of it) or at their budget: counts, never which subjects."""

    subjects: int
    near: int
    at: int


NEAR = 0.8


def standing(engine: Engine, operator: str | None, since: int, budget: float) -> Standing:
    """Subjects' disclosure in the window from ``since`` (Unix seconds): against one
    operator's budget (its own questions), or with ``operator`` None against the budget
    across all operators (each question counted once, at the most any operator told)."""
    where = "at > :since" + ("" if operator is None else " AND operator = :operator")
    per_question = (
        f"SELECT subject, question, MAX(millibits) AS m FROM subject_disclosure WHERE {where} "
        "GROUP BY subject, question"
    )
    per_subject = f"SELECT subject, SUM(m) AS total FROM ({per_question}) q GROUP BY subject"
    values: dict[str, Any] = {"since": since, "near": _milli(budget * NEAR), "at": _milli(budget)}
    if operator is not None:
        values["operator"] = operator
    with engine.connect() as connection:
        count, near, at = connection.execute(
            text(
                "SELECT COUNT(*), COALESCE(SUM(CASE WHEN total >= :near THEN 1 ELSE 0 END), 0), "
                "COALESCE(SUM(CASE WHEN total >= :at THEN 1 ELSE 0 END), 0) "
                f"FROM ({per_subject}) s"
            ),
            values,
        ).one()
    return Standing(int(count), int(near), int(at))
