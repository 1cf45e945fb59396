"""Every token defect is refused with 401 and its own code, before anything else runs."""

from __future__ import annotations

import base64
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from dataauth.identity.keys import public_jwk

pytestmark = pytest.mark.slow

BODY = {
    "purpose": "credit",
    "subjects": [{"key": "440106199001010011", "claims": {"name": "张三"}}],
}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims(**overrides):
    now = int(time.time())
    base = {
        "iss": "dataauth-dev",
        "aud": "dataauth",
        "sub": "demo-bank",
        "iat": now,
        "nbf": now,
        "exp": now + 600,
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def dev_key(gateway):
    key = gateway.keyring.dev_issuer_key()
    return key, public_jwk(key.public_key())["kid"]


def call(client, token):
    headers = {} if token is None else {"Authorization": token}
    return client.post("/v1/verify/identity-match", json=BODY, headers=headers)


def assert_refused(response, code):
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == code
    assert "Bearer" in response.headers["www-authenticate"]


def signed(gateway, alg="EdDSA", **overrides):
    key, kid = dev_key(gateway)
    return jwt.encode(claims(**overrides), key, algorithm=alg, headers={"kid": kid})


def test_a_good_token_passes(client, gateway):
    assert call(client, f"Bearer {signed(gateway)}").status_code == 200


@pytest.mark.parametrize(
    ("header", "code"),
    [
        (None, "missing_token"),
        ("Basic dXNlcjpwYXNz", "malformed_token"),
        ("Bearer", "malformed_token"),
        ("Bearer not.a.jwt", "malformed_token"),
        ("Bearer " + "a" * 9000, "token_too_large"),
    ],
)
def test_malformed_headers(client, header, code):
    assert_refused(call(client, header), code)


def test_alg_none(client, gateway):
    _, kid = dev_key(gateway)
    header = b64(json.dumps({"alg": "none", "typ": "JWT", "kid": kid}).encode())
    token = f"{header}.{b64(json.dumps(claims()).encode())}."
    assert_refused(call(client, f"Bearer {token}"), "algorithm_not_allowed")


def test_hmac_signed_with_the_public_key(client, gateway):
    key, kid = dev_key(gateway)
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode())
    payload = b64(json.dumps(claims()).encode())
    import hashlib
    import hmac

    signature = b64(hmac.new(public, f"{header}.{payload}".encode(), hashlib.sha256).digest())
    assert_refused(call(client, f"Bearer {header}.{payload}.{signature}"), "algorithm_not_allowed")


def test_unknown_key_id(client, gateway):
    other = Ed25519PrivateKey.generate()
    token = jwt.encode(claims(), other, algorithm="EdDSA", headers={"kid": "someone-else"})
    assert_refused(call(client, f"Bearer {token}"), "unknown_key")


def test_no_key_id(client, gateway):
    key, _ = dev_key(gateway)
    assert_refused(
        call(client, f"Bearer {jwt.encode(claims(), key, algorithm='EdDSA')}"), "unknown_key"
    )


def test_kid_injection(client, gateway):
    key, _ = dev_key(gateway)
    for kid in ("../../keys/dev-issuer.ed25519.pem", "' OR 1=1 --", "x" * 200):
        token = jwt.encode(claims(), key, algorithm="EdDSA", headers={"kid": kid})
        assert_refused(call(client, f"Bearer {token}"), "unknown_key")


def test_right_kid_wrong_key(client, gateway):
    _, kid = dev_key(gateway)
    token = jwt.encode(
        claims(), Ed25519PrivateKey.generate(), algorithm="EdDSA", headers={"kid": kid}
    )
    assert_refused(call(client, f"Bearer {token}"), "bad_signature")


def test_es256_token_for_an_eddsa_key(client, gateway):
    _, kid = dev_key(gateway)
    token = jwt.encode(
        claims(), ec.generate_private_key(ec.SECP256R1()), algorithm="ES256", headers={"kid": kid}
    )
    assert_refused(call(client, f"Bearer {token}"), "algorithm_not_allowed")


def test_tampered_payload(client, gateway):
    header, _, signature = signed(gateway).split(".")
    payload = b64(json.dumps(claims(sub="demo-expired")).encode())
    assert_refused(call(client, f"Bearer {header}.{payload}.{signature}"), "bad_signature")


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"exp": int(time.time()) - 3600}, "token_expired"),
        ({"nbf": int(time.time()) + 3600}, "token_not_yet_valid"),
        ({"aud": "another-gateway"}, "wrong_audience"),
        ({"iss": "someone-else"}, "wrong_issuer"),
        ({"exp": None}, "missing_claim"),
        ({"sub": None}, "missing_claim"),
    ],
)
def test_claim_defects(client, gateway, overrides, code):
    assert_refused(call(client, f"Bearer {signed(gateway, **overrides)}"), code)
