"""Encrypted scoring over HTTP: registrations, scores and aggregates checked against the
department's own data in the clear, consent, limits, and hostile ciphertexts."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest
import tenseal as ts
from sqlalchemy import text as sql

from conftest import DATABASES, on_each_database
from dataauth.identity.consent import issue_consent
from dataauth.sdk.he import (
    GatewayError,
    HEClient,
    LinearModel,
    commitment,
    make_context,
    public_context,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=DATABASES)
def gateway(request):
    """Each test here runs on SQLite and on PostgreSQL."""
    return on_each_database(request)


PRODUCT = "he-credit-score"
FEATURES = ["monthly_income", "social_insurance_months", "properties_owned"]
COLUMN_BOUNDS = {"monthly_income": (0, 50_000), "social_insurance_months": (0, 600),
                 "properties_owned": (0, 10)}  # fmt: skip
SCORE_BITS = 6  # the demo bundle's
DOCS = Path(__file__).resolve().parents[1] / "docs"


def bound(rows: np.ndarray, noise: float) -> np.ndarray:
    """The documented error bound: 1e-6 per unit of sum |x_j| (CKKS), plus the noise."""
    return 1e-6 * (1 + np.abs(rows).sum(axis=1)) + noise


def score_noise(model: LinearModel) -> float:
    """The documented noise half-width: the declared score range over 2(2^score_bits - 2)."""
    spread = sum(b * (COLUMN_BOUNDS[f][1] - COLUMN_BOUNDS[f][0])
                 for f, b in zip(model.features, model.declared(), strict=True))  # fmt: skip
    return spread / (2 * (2**SCORE_BITS - 2))


@pytest.fixture(scope="module")
def secret() -> ts.Context:
    return make_context()


@pytest.fixture(scope="module")
def model() -> LinearModel:
    return LinearModel(FEATURES, [0.0004, 0.02, 0.5], -3.0)


@pytest.fixture(scope="module")
def bank(gateway, secret, model):
    with HEClient(gateway.url, gateway.token("demo-bank")) as client:
        context_id = client.register_context(secret)
        model_id = client.register_model(PRODUCT, context_id, model, secret)
        yield client, context_id, model_id


def rows(gateway, n: int, offset: int = 0) -> list[tuple]:
    with gateway.domain_db() as db:
        return db.execute(
            f"SELECT resident_id, {', '.join(FEATURES)}, district FROM residents "
            "ORDER BY resident_id LIMIT ? OFFSET ?",
            (n, offset),
        ).fetchall()


def consented(gateway, key: str, product: str = PRODUCT) -> dict[str, str]:
    keyring = gateway.keyring
    token = issue_consent(keyring, issuer="dataauth-consent-dev",
                          subject_hash=keyring.subject_hasher()("residents", key),
                          operator="demo-bank", purpose="credit", products=[product])  # fmt: skip
    return {"key": key, "consent": token}


def test_scores_match_the_plaintext_model(gateway, bank, secret, model):
    client, context_id, model_id = bank
    sample = rows(gateway, 40)
    subjects = [consented(gateway, r[0]) for r in sample]
    subjects.append(consented(gateway, "440106190001010000"))  # not in the register
    result = client.score(secret, context_id, model_id, model, subjects=subjects, purpose="credit")
    features = np.array([r[1:4] for r in sample], dtype=float)
    expected = model.plain_scores(features)
    got = np.array(result.scores[:-1], dtype=float)
    body = result.response
    assert body["noise"] == pytest.approx(score_noise(model))
    assert np.all(np.abs(got - expected) <= bound(features, body["noise"])), got - expected
    assert result.scores[-1] is None
    assert body["noise_bits"] == 10 and body["parameters"] == "ckks-8192"
    assert body["subjects"] == {"count": 41, "per_ciphertext": 4096, "not_found": [40]}
    # nothing in the clear: no feature value, no subject key, in the answer or the log
    assert set(body) == {"product", "model", "mode", "parameters", "noise_bits", "noise",
                         "ciphertexts", "subjects", "audit"}  # fmt: skip
    text = json.dumps({k: v for k, v in body.items() if k != "ciphertexts"})
    assert all(r[0] not in text for r in sample)
    with gateway.gateway_db() as db:
        logged_rows = db.execute(sql("SELECT canonical FROM audit_entry"))
        entries = [bytes(e).decode() for (e,) in logged_rows]
    logged = "\n".join(str(e) for e in entries)
    assert "he-score" in logged
    assert all(r[0] not in logged for r in sample)


def test_the_filed_weights_score_sent_again_or_not(gateway, bank, secret, model):
    client, context_id, model_id = bank
    sample = rows(gateway, 5, offset=50)
    subjects = [consented(gateway, r[0]) for r in sample]
    features = np.array([r[1:4] for r in sample], dtype=float)
    sent = client.score(secret, context_id, model_id, model, subjects=subjects[:1],
                        purpose="credit", send_weights=True)  # fmt: skip
    noise = sent.response["noise"]
    assert (
        abs(sent.scores[0] - model.plain_scores(features[:1])[0]) <= bound(features[:1], noise)[0]
    )
    # one subject is one slot: every other slot decrypts to noise of ±2^16, not the score
    (only,) = sent.response["ciphertexts"]
    slots = np.array(ts.ckks_vector_from(secret, base64.b64decode(only)).decrypt())
    assert np.abs(slots[1:]).mean() > 2.0**13
    filed = client.score(secret, context_id, model_id, model, subjects=subjects, purpose="credit")
    got = np.array(filed.scores, dtype=float)
    assert np.all(np.abs(got - model.plain_scores(features)) <= bound(features, noise))
    # the same subject in the same slot of the same filing: the same noise, again
    again = client.score(secret, context_id, model_id, model, subjects=subjects[:1],
                         purpose="credit")  # fmt: skip
    assert abs(again.scores[0] - sent.scores[0]) < 1e-4


def mean_tolerance(weights, privacy: dict, count: int) -> float:
    """Twelve noise scales on each sum and on the count (a Laplace tail of e^-12)."""
    scales = privacy["noise_scale"]
    slack = 12 * scales["count"]
    return sum(abs(w) * (12 * scales[f"sum({f})"] + slack * COLUMN_BOUNDS[f][1])
               for f, w in zip(FEATURES, weights, strict=True)) / (count - slack)  # fmt: skip


def test_sum_and_mean_over_a_cohort_are_noised_under_the_budget(gateway, bank, secret, model):
    client, context_id, model_id = bank
    with gateway.domain_db() as db:
        district = db.execute("SELECT district FROM residents LIMIT 1").fetchone()[0]
        cohort = np.array(
            db.execute(
                f"SELECT {', '.join(FEATURES)} FROM residents WHERE district = ?", (district,)
            ).fetchall(),
            dtype=float,
        )
    scores = model.plain_scores(cohort)
    where = [{"column": "district", "op": "eq", "value": district}]
    body = {"purpose": "credit", "context": context_id, "model": model_id, "mode": "mean",
            "cohort": where}  # fmt: skip
    answer = client._post("/v1/he/score", body)
    privacy = answer["differential_privacy"]
    assert privacy["mechanism"] == "laplace" and privacy["epsilon"] == 1.0
    assert set(privacy["noise_scale"]) == {"count", *(f"sum({f})" for f in FEATURES)}
    assert privacy["clamped_to"]["monthly_income"] == [0, 50_000]
    spent = privacy["budget"]["epsilon_spent"]
    mean = client.aggregate(
        secret, context_id, model_id, model, mode="mean", cohort=where, purpose="credit"
    )
    assert abs(mean - scores.mean()) <= mean_tolerance(model.weights, privacy, len(cohort))
    answer = client._post("/v1/he/score", {**body, "mode": "sum"})
    assert answer["differential_privacy"]["budget"]["epsilon_spent"] == pytest.approx(spent + 2)
    total = client.aggregate(
        secret, context_id, model_id, model, mode="sum", cohort=where, purpose="credit"
    )
    scales = privacy["noise_scale"]
    slack = sum(
        abs(w) * 12 * scales[f"sum({f})"] for f, w in zip(FEATURES, model.weights, strict=True)
    )
    slack += abs(model.bias) * 12 * scales["count"] + 1e-6 * np.abs(cohort).sum() + 1.0
    assert abs(total - scores.sum()) <= slack


def test_a_small_cohort_is_refused(gateway, bank, secret, model):
    client, context_id, model_id = bank
    one = rows(gateway, 1)[0]
    where = [{"column": "district", "op": "eq", "value": one[4]}]
    where.append({"column": "district", "op": "ne", "value": one[4]})  # empty
    with pytest.raises(GatewayError) as refused:
        client.aggregate(
            secret, context_id, model_id, model, mode="sum", cohort=where, purpose="credit"
        )
    assert refused.value.status == 403 and refused.value.problem["code"] == "cohort_too_small"
    with pytest.raises(GatewayError) as refused:
        where = [{"column": "monthly_income", "op": "gt", "value": 0}]
        client.aggregate(
            secret, context_id, model_id, model, mode="mean", cohort=where, purpose="credit"
        )
    assert refused.value.problem["code"] == "cohort_column_not_allowed"


def test_consent_is_needed_and_subjects_are_named_once(gateway, bank, secret, model):
    client, context_id, model_id = bank
    key = rows(gateway, 1, offset=100)[0][0]
    with pytest.raises(GatewayError) as refused:
        client.score(secret, context_id, model_id, model, subjects=[{"key": key}],
                     purpose="credit")  # fmt: skip
    assert refused.value.status == 403
    assert refused.value.problem["reasons"][0]["code"] == "consent_missing"
    with pytest.raises(GatewayError) as refused:
        twice = [consented(gateway, key), consented(gateway, key)]
        client.score(secret, context_id, model_id, model, subjects=twice, purpose="credit")
    assert refused.value.problem["code"] == "duplicate_subject"


def test_a_subject_is_scored_at_most_the_daily_limit(gateway, secret):
    # a one-feature model keeps each request small: fifty requests, then a refusal
    small = LinearModel(["properties_owned"], [1.0], 0.0)
    key = rows(gateway, 1, offset=200)[0][0]
    with HEClient(gateway.url, gateway.token("demo-bank")) as client:
        context_id = client.register_context(secret)
        model_id = client.register_model(PRODUCT, context_id, small, secret)
        subject = [consented(gateway, key)]
        for _ in range(50):
            client.score(secret, context_id, model_id, small, subjects=subject, purpose="credit")
        with pytest.raises(GatewayError) as refused:
            client.score(secret, context_id, model_id, small, subjects=subject, purpose="credit")
    assert refused.value.status == 429
    assert refused.value.problem["code"] == "subject_limit_reached"


def test_model_filing_checks_features_and_keeps_the_commitment(gateway, bank, secret, model):
    client, context_id, _ = bank
    with pytest.raises(GatewayError) as refused:
        client.register_model(PRODUCT, context_id, LinearModel(["name"], [1.0], 0.0), secret)
    assert refused.value.problem["code"] == "feature_not_allowed"
    with pytest.raises(GatewayError) as refused:
        client.register_model("income-band", context_id, model, secret)
    assert refused.value.status == 404
    with pytest.raises(GatewayError) as refused:
        client.register_model(PRODUCT, "sha256:" + "0" * 64, model, secret)
    assert refused.value.problem["code"] == "unknown_context"
    shape = {"product": PRODUCT, "context": context_id, "features": model.features,
             "commitment": model.commitment()}  # fmt: skip
    weights, bias = model.encrypted(secret)
    for extra, code in (({}, "bounds_required"), ({"bounds": [1, 1, 1]}, "weights_required"),
                        ({"bounds": [1, -1, 1], "weights": weights, "bias": bias},
                         "invalid_bounds")):  # fmt: skip
        with pytest.raises(GatewayError) as refused:
            client._post("/v1/he/models", {**shape, **extra})
        assert refused.value.status == 422 and refused.value.problem["code"] == code
    # the regulator's check: the weights shown later reproduce the filed commitment, which
    # covers the declared bounds (each weight's magnitude rounded up to a power of two)
    assert model.declared() == [2.0**-11, 2.0**-5, 0.5]
    filed = model.commitment()
    bounds = model.declared()
    assert commitment(model.features, model.weights, model.bias, model.salt, bounds) == filed
    assert commitment(model.features, [0.0004, 0.02, 0.51], model.bias, model.salt,
                      bounds) != filed  # fmt: skip
    assert commitment(model.features, model.weights, model.bias, model.salt, [1, 1, 1]) != filed
    with gateway.gateway_db() as db:
        stored = db.execute(sql("SELECT commitment FROM he_model WHERE commitment = :c"),
                            {"c": filed})  # fmt: skip
        assert stored.first() is not None


def post_context(gateway, data: bytes) -> httpx.Response:
    return httpx.post(
        f"{gateway.url}/v1/he/contexts",
        json={"context": base64.b64encode(data).decode()},
        headers={"Authorization": f"Bearer {gateway.token('demo-bank')}"},
        timeout=60,
    )


def test_contexts_are_refused_with_a_reason(gateway, secret):
    full = secret.serialize(save_secret_key=True, save_relin_keys=False, save_galois_keys=False)
    refused = post_context(gateway, full)
    assert refused.status_code == 422 and refused.json()["code"] == "secret_key_sent"
    with gateway.gateway_db() as db:  # the refusal is on the record, with its code
        (logged,) = db.execute(sql('SELECT canonical FROM audit_entry WHERE "index" = :i'),
                               {"i": refused.json()["audit"]["entry"]}).one()  # fmt: skip
    entry = json.loads(bytes(logged))["entry"]
    assert entry["outcome"] == "refused" and entry["operation"]["code"] == "secret_key_sent"
    other = ts.context(ts.SCHEME_TYPE.CKKS, poly_modulus_degree=4096,
                       coeff_mod_bit_sizes=[40, 20, 40])  # fmt: skip
    other.global_scale = 2.0**20
    refused = post_context(gateway, public_context(other))
    assert refused.status_code == 422 and refused.json()["code"] == "parameters_not_allowed"
    with_keys = secret.serialize(save_secret_key=False, save_relin_keys=True)
    refused = post_context(gateway, with_keys)
    assert refused.status_code == 413 and refused.json()["code"] == "context_too_large"
    for garbage in (b"", b"\x00" * 100, os.urandom(5000), public_context(secret)[:1000]):
        refused = post_context(gateway, garbage)
        assert refused.status_code == 422, refused.text
    response = httpx.post(f"{gateway.url}/v1/he/contexts", json={"context": "%%%"},
                          headers={"Authorization": f"Bearer {gateway.token()}"})  # fmt: skip
    assert response.status_code == 400
    assert httpx.get(f"{gateway.url}/healthz").status_code == 200


def score_raw(gateway, context_id, model_id, weights, bias, key) -> httpx.Response:
    body = {"purpose": "credit", "context": context_id, "model": model_id, "weights": weights,
            "bias": bias, "subjects": [consented(gateway, key)]}  # fmt: skip
    headers = {"Authorization": f"Bearer {gateway.token('demo-bank')}"}
    return httpx.post(f"{gateway.url}/v1/he/score", json=body, headers=headers, timeout=60)


def file_raw(gateway, context_id, model, weights, bias) -> httpx.Response:
    body = {"product": PRODUCT, "context": context_id, "features": model.features,
            "commitment": model.commitment(), "bounds": model.declared(), "weights": weights,
            "bias": bias}  # fmt: skip
    headers = {"Authorization": f"Bearer {gateway.token('demo-bank')}"}
    return httpx.post(f"{gateway.url}/v1/he/models", json=body, headers=headers, timeout=60)


def test_hostile_ciphertexts_get_a_4xx(gateway, bank, secret, model):
    """Ciphertexts are read where they are filed; a score request's are only digested."""
    _, context_id, model_id = bank
    weights, bias = model.encrypted(secret)
    key = rows(gateway, 1, offset=300)[0][0]
    b64 = lambda data: base64.b64encode(data).decode()  # noqa: E731
    short = b64(ts.ckks_vector(secret, [1.0] * 10).serialize())
    other = make_context()
    foreign = b64(ts.ckks_vector(other, [1.0] * 4096).serialize())
    huge = b64(os.urandom(600_000))
    cases = {
        "wrong_vector_length": [short, *weights[1:]],
        "invalid_ciphertext": [b64(base64.b64decode(weights[0])[:5000]), *weights[1:]],
        "wrong_weight_count": weights[:2],
        "ciphertext_too_large": [huge, *weights[1:]],
    }
    for code, sent in cases.items():
        response = file_raw(gateway, context_id, model, sent, bias)
        assert response.json()["code"] == code, (code, response.text)
        assert 400 <= response.status_code < 500
    # in a score request: never read, refused as not the filed ones
    refused = {"weights_not_filed": [short, *weights[1:]], "wrong_weight_count": weights[:2],
               "ciphertext_too_large": [huge, *weights[1:]]}  # fmt: skip
    for code, sent in refused.items():
        response = score_raw(gateway, context_id, model_id, sent, bias, key)
        assert response.json()["code"] == code, (code, response.text)
    # a ciphertext under another key of the same parameters files, and decrypts to noise
    response = file_raw(gateway, context_id, model, [foreign, *weights[1:]], bias)
    assert response.status_code == 201
    response = score_raw(gateway, context_id, model_id, [*weights[:2], "not base64!"], bias, key)
    assert response.status_code == 400
    assert httpx.get(f"{gateway.url}/healthz").status_code == 200


def test_the_docs_example_runs_as_written(gateway, tmp_path):
    text = (DOCS / "operators.md").read_text()
    section = text[text.index("## Encrypted scoring") :]
    script = re.search(r"```python[^\n]*\n(.*?)```", section, re.S).group(1)
    applicant = re.search(r'applicant = "(\d+)"', script).group(1)
    consent = consented(gateway, applicant)["consent"]
    env = {**os.environ, "DATAAUTH_URL": gateway.url, "TOKEN": gateway.token("demo-bank"),
           "CONSENT": consent}  # fmt: skip
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=120, cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    with gateway.domain_db() as db:
        row = db.execute(
            f"SELECT {', '.join(FEATURES)} FROM residents WHERE resident_id = ?", (applicant,)
        ).fetchone()
    plain = LinearModel(FEATURES, [0.0004, 0.02, 0.5], -3.0).plain_scores(np.array([row], float))
    printed = float(re.search(r"encrypted score: (-?[\d.]+)", done.stdout).group(1))
    noise = score_noise(LinearModel(FEATURES, [0.0004, 0.02, 0.5], -3.0))
    assert abs(printed - plain[0]) <= bound(np.array([row], float), noise)[0] + 1e-4


def test_the_larger_parameter_set_scores_too(gateway, model):
    """ckks-16384 is on the allowlist: a context of it registers, a model files against
    it, and its scores decrypt within the same bound (8,192 slots a block)."""
    large = make_context("ckks-16384")
    sample = rows(gateway, 5, offset=100)
    with HEClient(gateway.url, gateway.token("demo-bank")) as client:
        context_id = client.register_context(large)
        model_id = client.register_model(PRODUCT, context_id, model, large)
        subjects = [consented(gateway, r[0]) for r in sample]
        result = client.score(large, context_id, model_id, model, subjects=subjects,
                              purpose="credit")  # fmt: skip
    assert result.response["parameters"] == "ckks-16384"
    assert result.response["subjects"]["per_ciphertext"] == 8192
    features = np.array([r[1:4] for r in sample], dtype=float)
    got = np.array(result.scores, dtype=float)
    assert np.all(np.abs(got - model.plain_scores(features)) <= bound(features, score_noise(model)))
