"""Secure by default: outside the demo the gateway trusts only the issuers it is told to.

The attacker is whoever can read the data directory (a backup, a shared volume, another
process of the same user): before, a gateway started without an issuer configured
trusted the development issuer whose private key it had generated there, and the
consent issuer likewise, so that reader could mint operator, department and regulator
tokens and any subject's consent. Now such a gateway does not start; it names the
settings to set, or the flag that asks for development issuers by name.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from conftest import AUDIENCE, free_port, start_beside, start_gateway, stop_gateway
from dataauth.app import UntrustedIssuers, prepare
from dataauth.config import Settings
from dataauth.identity.keys import public_jwk

pytestmark = pytest.mark.slow

SETTINGS = ("DATAAUTH_JWKS_FILE", "DATAAUTH_JWKS_URL", "DATAAUTH_CONSENT_JWKS_FILE")
ISSUER = "https://login.example.gov.cn"


def serve(data_dir, *args: str, env: dict[str, str] | None = None):
    """``dataauth serve`` that is expected to refuse: it must exit, and soon."""
    return subprocess.run(
        [sys.executable, "-m", "dataauth.cli", "serve", "--port", str(free_port()),
         "--data-dir", str(data_dir), *args],
        capture_output=True, text=True, timeout=60, env={**os.environ, **(env or {})},
    )  # fmt: skip


class Issuer:
    """A real issuer of the deployment's: its private key stays here, its JWKS is a file."""

    def __init__(self, folder, name: str) -> None:
        self.key = Ed25519PrivateKey.generate()
        self.jwks = folder / f"{name}.jwks.json"
        self.jwks.write_text(json.dumps({"keys": [public_jwk(self.key.public_key())]}))

    def token(self, subject: str, roles: tuple[str, ...] = ("operator",)) -> str:
        now = int(time.time())
        claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": subject, "iat": now, "nbf": now,
                  "exp": now + 300, "jti": uuid.uuid4().hex, "roles": list(roles)}  # fmt: skip
        kid = public_jwk(self.key.public_key())["kid"]
        return jwt.encode(claims, self.key, algorithm="EdDSA", headers={"kid": kid})


@pytest.fixture
def issuers(tmp_path):
    folder = tmp_path / "issuers"
    folder.mkdir()
    operators, consent = Issuer(folder, "operators"), Issuer(folder, "consent")
    env = {"DATAAUTH_JWKS_FILE": str(operators.jwks), "DATAAUTH_ISSUER": ISSUER,
           "DATAAUTH_CONSENT_JWKS_FILE": str(consent.jwks)}  # fmt: skip
    return operators, env


def test_without_issuers_the_gateway_refuses_to_start_and_says_what_to_set(tmp_path):
    refused = serve(tmp_path / "data")
    assert refused.returncode == 2, refused.stderr
    message = " ".join(refused.stderr.split())
    assert message.startswith("dataauth will not start: no trusted issuer is configured")
    assert all(name in message for name in SETTINGS)
    assert "--development-issuers" in message and "DATAAUTH_DEVELOPMENT_ISSUERS=1" in message
    assert not (tmp_path / "data").exists()  # no key was generated to be trusted later


def test_one_issuer_is_not_enough(tmp_path, issuers):
    _, env = issuers
    only_tokens = {k: v for k, v in env.items() if k != "DATAAUTH_CONSENT_JWKS_FILE"}
    refused = serve(tmp_path / "data", env=only_tokens)
    assert refused.returncode == 2
    assert "DATAAUTH_CONSENT_JWKS_FILE" in refused.stderr
    assert "DATAAUTH_JWKS_URL" not in refused.stderr  # what is set is not asked for
    missing = {**env, "DATAAUTH_JWKS_FILE": str(tmp_path / "nowhere.json")}
    refused = serve(tmp_path / "data", env=missing)
    assert (
        refused.returncode == 2 and "nowhere.json, which is not a readable file" in refused.stderr
    )


def test_an_empty_setting_is_unset(monkeypatch, tmp_path):
    """The image names JWKS files; emptying the variables takes them back (then the demo,
    or --development-issuers, is needed again)."""
    for name in ("DATAAUTH_JWKS_FILE", "DATAAUTH_CONSENT_JWKS_FILE"):
        monkeypatch.setenv(name, "")
    settings = Settings(data_dir=tmp_path)
    assert settings.jwks_file is None and settings.consent_jwks_file is None
    assert "no trusted issuer is configured" in settings.issuer_refusal()
    assert Settings(data_dir=tmp_path, demo=True).issuer_refusal() is None


def test_the_factory_refuses_too(tmp_path):
    """``uvicorn --factory dataauth.app:create_app`` goes through prepare: same rule."""
    with pytest.raises(UntrustedIssuers, match="DATAAUTH_CONSENT_JWKS_FILE"):
        prepare(Settings(data_dir=tmp_path / "data"))
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize("asked", [("--development-issuers",), ()])
def test_development_issuers_asked_for_by_name_start(tmp_path, asked):
    env = {} if asked else {"DATAAUTH_DEVELOPMENT_ISSUERS": "1"}
    running = start_gateway(tmp_path / "data", *asked, env=env)
    try:
        token = running.cli("token", "--operator", "demo-bank")
        assert token.returncode == 0, token.stderr
        answer = httpx.get(f"{running.url}/v1/products",
                           headers={"Authorization": f"Bearer {token.stdout.strip()}"})  # fmt: skip
        assert answer.status_code != 401, answer.text  # the development issuer is trusted
    finally:
        stop_gateway(running)


def test_with_jwks_files_it_starts_and_trusts_only_them(tmp_path, issuers):
    operators, env = issuers
    running = start_gateway(tmp_path / "data", env=env)
    try:
        assert not (running.data_dir / "keys" / "dev-issuer.ed25519.pem").exists()
        assert not (running.data_dir / "keys" / "dev-consent-issuer.ed25519.pem").exists()
        real = {"Authorization": f"Bearer {operators.token('demo-bank')}"}
        assert httpx.get(f"{running.url}/v1/products", headers=real).status_code != 401
        minted = running.cli("token", "--operator", "demo-bank")
        assert minted.returncode == 2 and "not trusted" in minted.stderr
        forged = {"Authorization": f"Bearer {running.token('demo-bank')}"}  # a key of its own
        assert httpx.get(f"{running.url}/v1/products", headers=forged).status_code == 401
    finally:
        stop_gateway(running)


def test_the_demo_with_real_issuers_trusts_them_not_its_keys(gateway, tmp_path, issuers):
    """compose.yaml's setting: the demo domain, the deployment's issuers."""
    operators, env = issuers
    running = start_beside(gateway, tmp_path / "beside", env=env)  # the dev keys are there
    try:
        real = {"Authorization": f"Bearer {operators.token('demo-bank')}"}
        listed = httpx.get(f"{running.url}/v1/products", headers=real)
        assert listed.status_code == 200 and listed.json()["operator"] == "demo-bank"
        forged = {"Authorization": f"Bearer {running.token('demo-bank')}"}
        assert httpx.get(f"{running.url}/v1/products", headers=forged).status_code == 401
    finally:
        stop_gateway(running)
