"""Attacks on encrypted scoring (issue 11, class 4) by a motivated licensed operator,
over HTTP against the demo gateway, with real TenSEAL ciphertexts and the shipped policy.

The operator chooses its encrypted weights, so it can file ciphertexts whose slots hold
different weights (slot 0 one-hot on income, slot 1 on months, a slot of zeros). Each
test states what the attacker is left with; the figures come from the demo's bounds
(income 0..50,000, months 0..600, properties 0..10), the policy's ``score_bits`` (6)
and the policy's ε (1 per HE aggregate, split over the count and three sums).
"""

from __future__ import annotations

import base64
import json

import httpx
import numpy as np
import pytest
import tenseal as ts
from sqlalchemy import text as sql

from conftest import start_beside, start_with_budget, stop_gateway
from dataauth.sdk.he import GatewayError, HEClient, LinearModel, make_context
from test_he import FEATURES, PRODUCT, consented, rows

pytestmark = pytest.mark.slow

SLOTS = 4096
READER = LinearModel(FEATURES, [1.0, 1.0, 1.0], 0.0)
"""What the reader claims to have filed: bounds of 1 on every weight (honest ones for a
one-hot reader), so the gateway knows the score range it must noise."""
HALF_WIDTH = (50_000 + 600 + 10) / (2 * (2**6 - 2))
"""The noise half-width of one score of the reader: its declared range over 2(2^6 - 2)."""


@pytest.fixture(scope="module")
def gateway(sqlite_gateway, tmp_path_factory):
    """A gateway of its own on the shipped policies: the subject budgets bound the
    attacks, and the session's gateway has roomy ones."""
    running = start_beside(sqlite_gateway, tmp_path_factory.mktemp("he-attacks"))
    yield running
    stop_gateway(running)


@pytest.fixture(scope="module")
def secret() -> ts.Context:
    return make_context()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def one_hot(slot: int) -> list[float]:
    return [1.0 if s == slot else 0.0 for s in range(SLOTS)]


def file_slots(client, secret, context_id, columns, claimed=READER) -> str:
    """File ciphertexts holding ``columns`` (one per-slot vector per feature, bias zero),
    under the commitment and bounds of ``claimed``: the gateway cannot see the slots."""
    weights = [b64(ts.ckks_vector(secret, column).serialize()) for column in columns]
    bias = b64(ts.ckks_vector(secret, [0.0] * SLOTS).serialize())
    body = {"product": PRODUCT, "context": context_id, "features": claimed.features,
            "commitment": claimed.commitment(), "bounds": claimed.declared(),
            "weights": weights, "bias": bias}  # fmt: skip
    return client._post("/v1/he/models", body)["id"]


def score_slots(client, secret, context_id, model_id, subjects) -> tuple[dict, np.ndarray]:
    body = {"purpose": "credit", "context": context_id, "model": model_id, "mode": "score",
            "subjects": subjects}  # fmt: skip
    answer = client._post("/v1/he/score", body)
    (only,) = answer["ciphertexts"]
    return answer, np.array(ts.ckks_vector_from(secret, base64.b64decode(only)).decrypt())


@pytest.fixture(scope="module")
def bank(gateway, secret):
    with HEClient(gateway.url, gateway.token("demo-bank")) as client:
        yield client, client.register_context(secret)


def test_per_slot_weights_read_one_feature_of_a_subject_not_three(gateway, bank, secret):
    """Before: one subject was replicated over every slot with one noise, so slots 0, 1, 2
    gave income, months and properties exactly (to ±2^-10). After: the subject is in
    slot 0 only; slots 1 and 2 decrypt to uniform noise of ±2^16, and slot 0 gives income
    to ±408 yuan (an interval of 816 yuan, 6 bits charged). Reading months too needs the
    subject in slot 1 of another request: another question, charged again."""
    client, context_id = bank
    model_id = file_slots(client, secret, context_id, [one_hot(0), one_hot(1), one_hot(2)])
    key, income, months, properties, _ = rows(gateway, 1, offset=400)[0]
    answer, slots = score_slots(client, secret, context_id, model_id, [consented(gateway, key)])
    assert answer["noise"] == pytest.approx(HALF_WIDTH)
    assert abs(slots[0] - income) <= HALF_WIDTH + 1e-3
    assert abs(slots[1] - months) > 5 and abs(slots[2] - properties) > 5
    assert np.abs(slots[1:]).mean() > 2.0**13  # noise of ±2^16 has mean magnitude 2^15
    # two subjects: each is read through its own slot's weights, once
    other = rows(gateway, 1, offset=401)[0]
    subjects = [consented(gateway, key), consented(gateway, other[0])]
    _, both = score_slots(client, secret, context_id, model_id, subjects)
    assert abs(both[0] - income) <= HALF_WIDTH + 1e-3
    assert abs(both[1] - other[2]) <= HALF_WIDTH + 1e-3  # the other's months, not this one's
    assert abs(both[2] - properties) > 5


def test_a_zero_weights_slot_reads_only_its_own_noise(gateway, bank, secret):
    """Before: a slot of zero weights decrypted to the very noise on the income slot, so
    their difference was the exact income. After: noise is independent per slot (a slot
    of no subject holds ±2^16), so the difference is off by up to 2 · 408 yuan; and the
    same subject in the same slot of the same filing gets the same noise, so asking
    again to average it gives back the same number."""
    client, context_id = bank
    zero = [0.0] * SLOTS
    model_id = file_slots(client, secret, context_id, [one_hot(0), zero, zero])
    key, income, *_ = rows(gateway, 1, offset=410)[0]
    other = rows(gateway, 1, offset=411)[0][0]
    _, alone = score_slots(client, secret, context_id, model_id, [consented(gateway, key)])
    assert abs(alone[1]) > 1.0  # an empty slot: not the noise of slot 0
    pair = [consented(gateway, key), consented(gateway, other)]
    _, paired = score_slots(client, secret, context_id, model_id, pair)
    assert abs(paired[1]) <= HALF_WIDTH + 1e-3  # the other subject's own noise
    assert abs((paired[0] - paired[1]) - income) > 0.01
    assert abs(paired[0] - alone[0]) < 1e-3  # the same question: the same noise
    assert abs(alone[0] - income) <= HALF_WIDTH + 1e-3


def test_weights_other_than_the_filed_ones_are_refused(gateway, bank, secret):
    """Before: a request could carry any ciphertexts, whatever was filed and committed.
    After: 403 ``weights_not_filed``; the attacker is left with the filed model."""
    client, context_id = bank
    honest = LinearModel(FEATURES, [0.0004, 0.02, 0.5], -3.0)
    model_id = client.register_model(PRODUCT, context_id, honest, secret)
    reader = [b64(ts.ckks_vector(secret, one_hot(s)).serialize()) for s in range(3)]
    _, bias = honest.encrypted(secret)
    key = rows(gateway, 1, offset=420)[0][0]
    body = {"purpose": "credit", "context": context_id, "model": model_id,
            "subjects": [consented(gateway, key)], "weights": reader, "bias": bias}  # fmt: skip
    with pytest.raises(GatewayError) as refused:
        client._post("/v1/he/score", body)
    assert refused.value.status == 403 and refused.value.problem["code"] == "weights_not_filed"


def noisy_sums(client, secret, context_id, model_id, cohort) -> tuple[dict, np.ndarray]:
    body = {"purpose": "credit", "context": context_id, "model": model_id, "mode": "sum",
            "cohort": cohort}  # fmt: skip
    answer = client._post("/v1/he/score", body)
    (only,) = answer["ciphertexts"]
    return answer, np.array(ts.ckks_vector_from(secret, base64.b64decode(only)).decrypt()[:3])


def test_cohorts_of_one_and_differencing(gateway, bank, secret):
    """Before: an aggregate's per-slot weights read the exact feature sums of a cohort, and
    two cohorts differing by one subject gave that subject's features. After: a cohort is
    a conjunction on ``district`` (the product's only cohort column) of at least 20: no
    filter singles a subject out (name, ID or income filters are refused), and the sums
    the weights meet are OpenDP-noised: income's Laplace scale is 50,000 / (1 / 4) =
    200,000 yuan per release, four times the most one subject can move it, so the
    difference of two releases tells one subject's income to no better than that."""
    client, context_id = bank
    model_id = file_slots(client, secret, context_id, [one_hot(0), one_hot(1), one_hot(2)])
    for column, value in (("resident_id", "440106190001010000"), ("monthly_income", 3000)):
        with pytest.raises(GatewayError) as refused:
            noisy_sums(client, secret, context_id, model_id,
                       [{"column": column, "op": "eq", "value": value}])  # fmt: skip
        assert refused.value.problem["code"] == "cohort_column_not_allowed"
    district = rows(gateway, 1, offset=430)[0][4]
    empty = [{"column": "district", "op": "eq", "value": district},
             {"column": "district", "op": "ne", "value": district}]  # fmt: skip
    with pytest.raises(GatewayError) as refused:
        noisy_sums(client, secret, context_id, model_id, empty)
    assert refused.value.problem["code"] == "cohort_too_small"
    with gateway.domain_db() as db:
        true = db.execute(
            f"SELECT {', '.join(FEATURES)} FROM residents WHERE district = ?", (district,)
        ).fetchall()
    exact = np.array(true, dtype=float).sum(axis=0)
    where = [{"column": "district", "op": "eq", "value": district}]
    answer, first = noisy_sums(client, secret, context_id, model_id, where)
    _, second = noisy_sums(client, secret, context_id, model_id, where)
    scale = answer["differential_privacy"]["noise_scale"]["sum(monthly_income)"]
    assert scale == pytest.approx(50_000 * 4 / 1.0)
    assert first[0] != pytest.approx(exact[0], abs=1.0)  # the income sum is not exact
    assert abs(first[0] - exact[0]) <= 15 * scale  # but within the released noise
    assert abs(first[0] - second[0]) > 1.0  # two releases: two independent noises


def test_repeating_an_aggregate_to_average_its_noise_runs_out_of_epsilon(gateway, secret, tmp_path):
    """Before: HE aggregates spent no ε, so averaging n answers cut the noise by √n
    without end. After: each spends ε 1 from the operator's account on the dataset, the
    same one ``/v1/query`` spends: with an account of ε 5, one query (0.5) and four
    aggregates, then 403 ``privacy_budget_exhausted``. Four averaged income sums keep a
    noise of standard deviation √2 · 200,000 / √4 ≈ 141,000 yuan."""
    beside = start_with_budget(gateway, tmp_path, 5.0)
    try:
        token = beside.token("demo-bank")
        query = httpx.post(f"{beside.url}/v1/query", headers={"Authorization": f"Bearer {token}"},
                           json={"purpose": "credit",
                                 "sql": "SELECT district, AVG(monthly_income) FROM residents "
                                        "GROUP BY district"}, timeout=60)  # fmt: skip
        assert query.status_code == 200, query.text
        with HEClient(beside.url, token) as client:
            context_id = client.register_context(secret)
            model_id = file_slots(client, secret, context_id, [one_hot(0), one_hot(1), one_hot(2)])
            reads = []
            for _ in range(4):
                answer, sums = noisy_sums(client, secret, context_id, model_id, [])
                reads.append(sums[0])
            assert answer["differential_privacy"]["budget"]["epsilon_spent"] == pytest.approx(4.5)
            with pytest.raises(GatewayError) as refused:
                noisy_sums(client, secret, context_id, model_id, [])
        assert refused.value.status == 403
        assert refused.value.problem["code"] == "privacy_budget_exhausted"
        assert len(set(reads)) == 4  # each answer had noise of its own
    finally:
        stop_gateway(beside)


def spent(gateway, answer: dict) -> list[float] | None:
    """The bits the answer's audit entry charged, per subject (None: nothing new)."""
    with gateway.gateway_db() as db:
        (logged,) = db.execute(sql('SELECT canonical FROM audit_entry WHERE "index" = :i'),
                               {"i": answer["audit"]["entry"]}).one()  # fmt: skip
    found = json.loads(bytes(logged))["entry"].get("disclosure")
    return None if found is None else [d["bits"] for d in found]


def test_reading_one_subject_through_many_slots_spends_its_budget(gateway, bank, secret):
    """Before: nothing counted what a score revealed. After: each score is charged the
    policy's ``score_bits`` (6) under its filing and slot; the same question again is
    free (and answers the same); the subject moved to another slot to read months asks
    anew; with 16 bits per operator in 30 days the third question is refused (429
    ``subject_budget_exhausted``): the attacker is left with one reading of income and one
    of months, each to ±408 (the reader's declared range over 124), no more."""
    client, context_id = bank
    model_id = file_slots(client, secret, context_id, [one_hot(0), one_hot(1), one_hot(2)])
    key, income, months, *_ = rows(gateway, 1, offset=7000)[0]
    fillers = [consented(gateway, r[0]) for r in rows(gateway, 2, offset=7001)]
    subject = consented(gateway, key)
    first, slots = score_slots(client, secret, context_id, model_id, [subject])
    assert spent(gateway, first) == [pytest.approx(6.0)]
    assert abs(slots[0] - income) <= HALF_WIDTH + 1e-3
    again, repeated = score_slots(client, secret, context_id, model_id, [subject])
    assert spent(gateway, again) is None and abs(repeated[0] - slots[0]) < 1e-3
    second, moved = score_slots(client, secret, context_id, model_id, [fillers[0], subject])
    assert spent(gateway, second) == [pytest.approx(6.0)] * 2
    assert abs(moved[1] - months) <= HALF_WIDTH + 1e-3
    with pytest.raises(GatewayError) as refused:
        score_slots(client, secret, context_id, model_id, [*fillers, subject])
    assert refused.value.status == 429
    assert refused.value.problem["code"] == "subject_budget_exhausted"
