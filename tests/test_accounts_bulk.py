"""The accounts written in bulk: a batch's usage counters and disclosure budgets go in as
a few multi-row statements, across statement boundaries, all or nothing, on each database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from conftest import cluster
from dataauth.accounts import disclosure
from dataauth.accounts.disclosure import Disclosure, DisclosureLedger, Spent, SubjectBudget
from dataauth.accounts.usage import UsageMeter
from dataauth.store.engine import gateway_engine

SUBJECTS = [f"h:{n:04d}" for n in range(700)]  # more rows than one statement holds


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request, tmp_path):
    url = f"sqlite:///{tmp_path}/gateway.sqlite"
    if request.param == "postgresql":
        url = cluster().new_database()
    made = gateway_engine(url)
    yield made
    made.dispose()


def counted(engine, table: str) -> int:
    with engine.connect() as connection:
        return connection.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one()


def test_a_batch_of_counters_is_spent_whole_or_not_at_all(engine):
    meter = UsageMeter(engine)
    now = datetime.now(UTC)
    limits = {"rate_per_minute": 10, "daily_quota": 2000, "subject_per_day": 2}
    charges = meter.charges(now, "op|product|credit", SUBJECTS + SUBJECTS[:5], limits)
    assert meter.charge(charges) is None
    assert counted(engine, "usage_counter") == 2 + len(SUBJECTS)
    with engine.connect() as connection:
        used = dict(connection.execute(text("SELECT key, used FROM usage_counter")).all())
    assert used["subject|op|h:0000"] == 2 and used["subject|op|h:0699"] == 1
    assert used["quota|op|product|credit"] == 705

    again = meter.charges(now, "op|product|credit", SUBJECTS, limits)
    refusal = meter.charge(again)  # the first five subjects are at their daily limit
    assert refusal is not None and refusal.limit == "subject_per_day"
    with engine.connect() as connection:
        after = dict(connection.execute(text("SELECT key, used FROM usage_counter")).all())
    assert after == used  # refused: not one counter moved


def test_a_batch_of_new_questions_is_charged_once(engine):
    ledger = DisclosureLedger(engine)
    now = datetime.now(UTC)
    budget = SubjectBudget(timedelta(days=30), 2, 3)
    asked = [Disclosure(s, "q:one", 1.0) for s in SUBJECTS]
    spent = ledger.charge("op", asked, budget, now)
    assert isinstance(spent, Spent) and spent.subjects == SUBJECTS and set(spent.bits) == {1.0}
    assert counted(engine, "subject_disclosure") == len(SUBJECTS)

    ledger._known.clear()  # read back from the database, not from memory
    again = ledger.charge("op", asked, budget, now)
    assert isinstance(again, Spent) and again.as_entry() == []  # the same question: free
    over = [Disclosure(s, "q:two", 1.0) for s in SUBJECTS[:-1]]
    over.append(Disclosure(SUBJECTS[-1], "q:two", 1.5))  # 2.5 bits: past 2 for the operator
    exhausted = ledger.charge("op", over, budget, now)
    assert not isinstance(exhausted, Spent) and exhausted.index == len(SUBJECTS) - 1
    assert counted(engine, "subject_disclosure") == len(SUBJECTS)  # none of the batch


def test_the_ledger_remembers_a_bounded_number_of_questions(engine, monkeypatch):
    monkeypatch.setattr(disclosure, "KNOWN", 300)
    ledger = DisclosureLedger(engine)
    now = datetime.now(UTC)
    budget = SubjectBudget(timedelta(days=30), 2, 3)
    ledger.charge("op", [Disclosure(s, "q:one", 1.0) for s in SUBJECTS], budget, now)
    assert len(ledger._known) == 300  # the newest: the oldest are read again when asked
    assert next(iter(ledger._known)).startswith(SUBJECTS[400])
    again = ledger.charge("op", [Disclosure(s, "q:one", 1.0) for s in SUBJECTS], budget, now)
    assert isinstance(again, Spent) and again.as_entry() == []


def test_rows_written_in_key_order_are_charged_in_request_order(engine):
    """The ledgers sort a batch's rows by key before writing them; what a request is told
    (what each subject was charged, which subject overdraws, which limit refuses) still
    follows the order the request named them in."""
    shuffled = SUBJECTS[::-1][:350] + SUBJECTS[:350]  # across statements, out of key order
    ledger = DisclosureLedger(engine)
    now = datetime.now(UTC)
    budget = SubjectBudget(timedelta(days=30), 2, 3)
    spent = ledger.charge("op", [Disclosure(s, "q:one", 1.0) for s in shuffled], budget, now)
    assert isinstance(spent, Spent) and spent.subjects == shuffled
    assert counted(engine, "subject_disclosure") == len(shuffled)
    ledger._known.clear()  # read the rows back: written whole, whatever their order
    late = shuffled[400]
    asked = [Disclosure(s, "q:two", 1.0) for s in shuffled] + [Disclosure(late, "q:three", 1.0)]
    over = ledger.charge("op", asked, budget, now)
    assert isinstance(over, disclosure.Exhausted) and over.index == 400
    assert counted(engine, "subject_disclosure") == len(shuffled)  # refused: nothing written

    meter = UsageMeter(engine)
    limits = {"subject_per_day": 1}
    assert meter.charge(meter.charges(now, "op|p|credit", shuffled[:10], limits)) is None
    refusal = meter.charge(meter.charges(now, "op|p|credit", shuffled[5:20], limits))
    assert refusal is not None and refusal.limit == "subject_per_day"
    assert counted(engine, "usage_counter") == 10
