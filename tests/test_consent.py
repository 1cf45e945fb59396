"""Consent (授权): a product that needs it answers only for subjects whose own, valid,
unrevoked consent names this operator, purpose and product."""

from __future__ import annotations

import json
import time

import jwt
import pytest
from sqlalchemy import text

from conftest import DATABASES, on_each_database
from test_audit_log import dataauth

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=DATABASES)
def gateway(request):
    return on_each_database(request)


def subjects(gateway, n=3):
    with gateway.domain_db() as db:
        return [r[0] for r in db.execute("SELECT resident_id FROM residents LIMIT ?", (n,))]


def consent(gateway, key, operator="demo-bank", purpose="credit", product="income-band",
            ttl=600):  # fmt: skip
    result = dataauth("consent", "issue", "--subject", key, "--operator", operator, "--purpose",
                      purpose, "--product", product, "--ttl", str(ttl), "--data-dir",
                      str(gateway.data_dir))  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def band(client, auth, keyed):
    body = {"purpose": "credit", "subjects": [{"key": k, "consent": c} for k, c in keyed]}
    return client.post("/v1/verify/income-band", json=body, headers=auth())


def test_valid_consent_answers(client, auth, gateway):
    keys = subjects(gateway)
    response = band(client, auth, [(k, consent(gateway, k)) for k in keys])
    assert response.status_code == 200, response.text
    assert all(isinstance(r["result"], str) for r in response.json()["results"])


@pytest.mark.parametrize(
    "wrong",
    [
        {"operator": "demo-insurer"},
        {"purpose": "marketing"},
        {"product": "income-at-least"},
        {"subject": "other"},
        {"missing": True},
        {"garbage": True},
    ],
)
def test_wrong_or_missing_consent_is_denied(client, auth, gateway, wrong):
    keys = subjects(gateway)
    tokens = [consent(gateway, k) for k in keys]
    if wrong.get("missing"):
        tokens[1] = None
    elif wrong.get("garbage"):
        tokens[1] = "not.a.token"
    elif "subject" in wrong:
        tokens[1] = consent(gateway, keys[0])  # someone else's consent
    else:
        tokens[1] = consent(gateway, keys[1], **wrong)
    response = band(client, auth, list(zip(keys, tokens, strict=True)))
    assert response.status_code == 403, response.text
    problem = response.json()
    assert [r["code"] for r in problem["reasons"]] == ["consent_missing"]
    assert "subjects [1]" in problem["detail"]


def test_a_revoked_consent_is_refused(client, auth, gateway):
    key = subjects(gateway, 1)[0]
    token = consent(gateway, key)
    assert band(client, auth, [(key, token)]).status_code == 200
    jti = jwt.decode(token, options={"verify_signature": False})["jti"]
    assert gateway.cli("consent", "revoke", jti).returncode == 0
    assert band(client, auth, [(key, token)]).status_code == 403


def test_an_expired_consent_is_refused(client, auth, gateway):
    from dataauth.identity.consent import issue_consent

    key = subjects(gateway, 1)[0]
    # expired a minute ago: past the 30 s leeway
    token = issue_consent(gateway.keyring, issuer="dataauth-consent-dev",
                          subject_hash=gateway.keyring.subject_hasher()("residents", key),
                          operator="demo-bank", purpose="credit", products=["income-band"],
                          ttl_seconds=-60)  # fmt: skip
    assert band(client, auth, [(key, token)]).status_code == 403


def test_a_consent_verified_before_still_expires(client, auth, gateway):
    """The gateway keeps a verified consent so as not to check its signature again, but
    never past its expiry: here one that expired 25 s ago, inside the 30 s leeway, then
    six seconds later, outside it."""
    from dataauth.identity.consent import issue_consent

    key = subjects(gateway, 1)[0]
    token = issue_consent(gateway.keyring, issuer="dataauth-consent-dev",
                          subject_hash=gateway.keyring.subject_hasher()("residents", key),
                          operator="demo-bank", purpose="credit", products=["income-band"],
                          ttl_seconds=-25)  # fmt: skip
    assert band(client, auth, [(key, token)]).status_code == 200
    time.sleep(6)
    assert band(client, auth, [(key, token)]).status_code == 403


def test_the_log_keeps_the_consents_digest_not_the_token(client, auth, gateway):
    key = subjects(gateway, 1)[0]
    token = consent(gateway, key)
    receipt = band(client, auth, [(key, token)]).json()["audit"]
    with gateway.gateway_db() as db:
        data = db.execute(text('SELECT canonical FROM audit_entry WHERE "index" = :i'),
                          {"i": receipt["entry"]}).scalar()  # fmt: skip
    assert token.encode() not in data
    from dataauth.identity.consent import consent_digest

    assert json.loads(data)["entry"]["consents"] == [consent_digest(token)]
