"""Scores compose under the per-subject budget: several approved models asked about one
consenting subject tell no more than the subject's disclosure budget allows.

Before: each approved model answered every time, so an operator holding several models
(or re-submitting one under new names, each approved) read as many scores of one person
as it had models. Now a score costs log2 of the values its release can take (the demo
credit model at two digits: log2 101 = 6.66 bits), the same model asked again costs
nothing, and the third distinct model's score about one resident is over the 16 bits
an operator may learn about her in 30 days: refused, nothing released.
"""

from __future__ import annotations

import math

import pytest

from conftest import start_beside, stop_gateway
from test_models import approve, consent, entries, run, submit, variant

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def gateway(sqlite_gateway, tmp_path_factory):
    """A gateway of its own on the shipped policies: its subject budgets are the test."""
    running = start_beside(sqlite_gateway, tmp_path_factory.mktemp("scores"))
    yield running
    stop_gateway(running)


def resident(gateway, offset: int) -> str:
    with gateway.domain_db() as db:  # far from the residents other tests ask about
        return db.execute(
            "SELECT resident_id FROM residents ORDER BY resident_id LIMIT 1 OFFSET ?", (offset,)
        ).fetchone()[0]


def test_a_third_models_score_of_one_resident_is_over_her_budget(client, auth, gateway):
    models = []
    for n in range(3):
        submitted = submit(client, auth, manifest=variant(title=f"the same model, name {n}"))
        assert submitted.status_code in (200, 201), submitted.text
        approved = approve(client, auth, submitted.json()["id"])
        assert approved.status_code == 200, approved.text
        models.append(submitted.json()["id"])
    key = resident(gateway, 4321)
    subject = [{"key": key, "consent": consent(gateway, key)}]

    first = run(client, auth, models[0], subjects=subject)
    assert first.status_code == 200, first.text
    (spent,) = entries(gateway, first.json()["audit"]["entry"])[0]["disclosure"]
    assert spent["bits"] == pytest.approx(math.log2(101), abs=1e-3)
    again = run(client, auth, models[0], subjects=subject * 3)  # the same question: free
    assert again.status_code == 200
    assert "disclosure" not in entries(gateway, again.json()["audit"]["entry"])[0]

    assert run(client, auth, models[1], subjects=subject).status_code == 200
    third = run(client, auth, models[2], subjects=subject)
    assert third.status_code == 429, third.text
    problem = third.json()
    assert problem["code"] == "subject_budget_exhausted" and "results" not in problem
    assert problem["remaining"] == pytest.approx(16 - 2 * math.log2(101), abs=1e-2)
