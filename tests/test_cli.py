"""The command line: the token command a new user runs, and its refusal outside development."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow


def dataauth(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dataauth.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=60,
    )


def test_token_command_gives_a_working_token(client, gateway):
    result = dataauth("token", "--operator", "demo-insurer", "--data-dir", str(gateway.data_dir))
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    response = client.get("/v1/products", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200 and response.json()["operator"] == "demo-insurer"


def test_token_command_refuses_when_a_real_issuer_is_configured(tmp_path):
    jwks = tmp_path / "jwks.json"
    jwks.write_text('{"keys": []}')
    result = dataauth(
        "token",
        "--operator",
        "demo-bank",
        "--data-dir",
        str(tmp_path),
        env={"DATAAUTH_JWKS_FILE": str(jwks)},
    )
    assert result.returncode == 2 and "not trusted" in result.stderr
    assert not (tmp_path / "keys").exists()


def test_private_keys_are_mode_0600(gateway):
    for name in ("dev-issuer.ed25519.pem", "subject-hmac.key", "audit-signing.ed25519.pem"):
        assert (gateway.data_dir / "keys" / name).stat().st_mode & 0o777 == 0o600
