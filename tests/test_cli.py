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


def test_a_validation_problem_lists_every_error_readably(gateway):
    """A 422 invalid_request lists FastAPI's validation errors (``loc``), not a KeyError."""
    result = dataauth("models", "show", "m-bad", "--url", gateway.url,
                      "--data-dir", str(gateway.data_dir))  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    # one error, which the detail names already: said once
    assert result.stderr.splitlines() == [
        "FAILED (invalid_request): path.model: String should match pattern '^m-[0-9a-f]{16}$'"
    ]


def test_error_items_of_every_shape_print_where_and_what():
    from dataauth.cli.common import listed

    errors = [
        {"at": "products[0].name", "message": "missing"},
        {"loc": ["body", "expires"], "msg": "Field required", "type": "missing"},
        {"loc": ["path", "model_id"], "message": "String should match pattern"},
        {"detail": "no place"},
        "plain",
    ]
    assert listed(errors[:1], "products[0].name: missing") == ""
    assert listed(errors).splitlines()[1:] == [
        "  products[0].name: missing",
        "  body.expires: Field required",
        "  path.model_id: String should match pattern",
        '  {"detail": "no place"}',
        "  plain",
    ]


NEEDS_A_GATEWAY = [
    ("token", "--operator", "demo-bank"),
    ("audit", "export", "out"),
    ("audit", "revoke-key"),
    ("consent", "issue", "--subject", "1", "--operator", "demo-bank", "--purpose", "credit",
     "--product", "income-band"),
    ("consent", "revoke", "some-jti"),
    ("policy", "whatif", "policies"),
    ("db", "current"),
    ("models", "list", "--url", "http://127.0.0.1:9"),
]  # fmt: skip


@pytest.mark.parametrize("args", NEEDS_A_GATEWAY, ids=lambda a: " ".join(a[:2]))
def test_a_command_outside_any_gateway_refuses_and_creates_nothing(tmp_path, args):
    """Run where there is no ./.dataauth, a command says where it looked, and makes none."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATAAUTH_")}
    result = subprocess.run([sys.executable, "-m", "dataauth.cli", *args], capture_output=True,
                            text=True, env=env, cwd=tmp_path, timeout=60)  # fmt: skip
    assert result.returncode == 2, result.stdout + result.stderr
    assert str(tmp_path / ".dataauth") in result.stderr
    assert "--data-dir" in result.stderr and "DATAAUTH_DATA_DIR" in result.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args", NEEDS_A_GATEWAY[:3], ids=lambda a: " ".join(a[:2]))
def test_a_command_on_a_folder_that_holds_no_gateway_refuses(tmp_path, args):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = dataauth(*args, "--data-dir", str(empty))
    assert result.returncode == 2, result.stdout + result.stderr
    assert str(empty) in result.stderr and "no gateway" in result.stderr
    assert list(empty.iterdir()) == []


def test_serve_help_shows_every_default():
    result = dataauth("serve", "--help", env={"COLUMNS": "200", "NO_COLOR": "1"})
    assert result.returncode == 0, result.stderr
    for default in ("127.0.0.1", "8080", ".dataauth", "default: 1"):
        assert default in result.stdout, result.stdout
    assert "DATAAUTH_DATA_DIR" in result.stdout


def test_a_token_for_a_gateway_that_trusts_real_issuers_is_refused(tmp_path):
    """Its data directory has keys but no development issuer's: minting one would give a
    token signed by a key made on the spot, which the gateway rejects."""
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "subject-hmac.key").write_bytes(b"k" * 32)
    result = dataauth("token", "--operator", "demo-bank", "--data-dir", str(tmp_path))
    assert result.returncode == 2 and "does not trust the development issuers" in result.stderr
    assert sorted(p.name for p in (tmp_path / "keys").iterdir()) == ["subject-hmac.key"]


def test_the_help_shows_the_settings_own_defaults():
    """Help shows the defaults without reading the settings; they are the settings' own."""
    from dataauth.cli.common import SHOWN_DEFAULTS
    from dataauth.config import Settings

    fields = Settings.model_fields
    assert {name: str(fields[name].default) for name in SHOWN_DEFAULTS} == SHOWN_DEFAULTS
