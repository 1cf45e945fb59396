"""The container, tested without Docker (this machine has no engine): what the image and
the compose file say, and the entrypoint run as the image runs it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import cluster, free_port
from dataauth.config import Settings
from test_issuers import Issuer

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = (ROOT / "Dockerfile").read_text()
COMPOSE = yaml.safe_load((ROOT / "compose.yaml").read_text())
FINAL = DOCKERFILE.rsplit("\nFROM ", 1)[1]  # the stage that runs


def instruction(name: str) -> list[str]:
    return re.findall(rf"^{name} (.+)$", FINAL, flags=re.M)


def image_env() -> dict[str, str]:
    block = re.search(r"^ENV (.+?)(?=^\S)", FINAL, flags=re.M | re.S).group(1)
    return dict(re.findall(r"(\w+)=(\S+)", block))


def test_the_image_runs_as_a_user_and_checks_its_health():
    assert DOCKERFILE.count("\nFROM ") >= 1 and "AS build" in DOCKERFILE  # multi-stage
    assert instruction("USER") == ["dataauth"]
    assert instruction("HEALTHCHECK")[0].endswith('CMD ["dataauth", "health"]')
    assert instruction("ENTRYPOINT") == ['["dataauth", "serve"]']


def test_no_key_or_database_goes_into_the_image():
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    ignored = [line for line in lines if line and not line.startswith("#")]
    assert ignored[0] == "*"  # everything is left out but what is named after it
    allowed = {line.strip("!/") for line in ignored if line.startswith("!")}
    assert allowed == {"pyproject.toml", "README.md", "src", "policies"}
    copied = " ".join(re.findall(r"^COPY (?!--from)(.+)$", DOCKERFILE, flags=re.M))
    assert "keys" not in copied and ".dataauth" not in copied


def test_every_setting_named_is_one_the_gateway_reads():
    """A misspelt DATAAUTH_ variable would be silently ignored: none is."""
    fields = set(Settings.model_fields)
    named = set(image_env()) | set(COMPOSE["services"]["gateway"]["environment"])
    for variable in named:
        if variable.startswith("DATAAUTH_"):
            assert variable.removeprefix("DATAAUTH_").lower() in fields, variable


def test_compose_wires_postgres_and_an_opa_sidecar():
    services = COMPOSE["services"]
    gateway = services["gateway"]["environment"]
    assert gateway["DATAAUTH_DATABASE_URL"].startswith("postgresql+psycopg://")
    assert "@postgres:5432/" in gateway["DATAAUTH_DATABASE_URL"]
    assert gateway["DATAAUTH_POLICY_ENGINE"] == "opa"
    assert gateway["DATAAUTH_OPA_URL"] == "http://opa:8181"
    assert "--server" in services["opa"]["command"]
    assert services["gateway"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    # the password comes from the deployer's environment, never from this file
    assert "${DATAAUTH_DB_PASSWORD" in services["postgres"]["environment"]["POSTGRES_PASSWORD"]


def test_image_and_compose_trust_mounted_issuers_only():
    env = image_env()
    folder = "/etc/dataauth/issuers/"
    assert env["DATAAUTH_JWKS_FILE"].startswith(folder)
    assert env["DATAAUTH_CONSENT_JWKS_FILE"].startswith(folder)
    gateway = COMPOSE["services"]["gateway"]
    assert f"./issuers:{folder.rstrip('/')}:ro" in gateway["volumes"]
    for name in ("DATAAUTH_ISSUER", "DATAAUTH_CONSENT_ISSUER"):
        assert gateway["environment"][name].startswith("${" + name + ":?")  # the deployer's
    named = set(env) | set(gateway["environment"])
    assert not {"DATAAUTH_DEVELOPMENT_ISSUERS", "DATAAUTH_JWKS_URL"} & named


def image_run(tmp_path: Path, **settings: str) -> dict[str, str]:
    """The environment of the image's entrypoint, on this machine."""
    return {
        **os.environ,
        **image_env(),
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "DATAAUTH_DATA_DIR": str(tmp_path / "volume"),
        "DATAAUTH_HOST": "127.0.0.1",
        **settings,
    }


# exec forms are JSON arrays
ENTRYPOINT = [*json.loads(instruction("ENTRYPOINT")[0]), *json.loads(instruction("CMD")[0])]


def test_the_image_without_its_issuers_mounted_refuses_to_start(tmp_path):
    env = image_run(tmp_path, DATAAUTH_PORT=str(free_port()))
    refused = subprocess.run(ENTRYPOINT, env=env, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2
    assert "operators.jwks.json, which is not a readable file" in refused.stderr


@pytest.mark.slow
def test_the_entrypoint_as_the_image_runs_it(tmp_path):
    """`dataauth serve --workers 2` with the image's settings on PostgreSQL; then the
    health check the image runs says healthy, and unhealthy once it is stopped."""
    port = free_port()
    mounted = tmp_path / "issuers"  # what compose mounts at /etc/dataauth/issuers
    mounted.mkdir()
    env = image_run(
        tmp_path,
        DATAAUTH_PORT=str(port),
        DATAAUTH_DATABASE_URL=cluster().new_database(),
        DATAAUTH_DEMO="true",
        DATAAUTH_JWKS_FILE=str(Issuer(mounted, "operators").jwks),
        DATAAUTH_CONSENT_JWKS_FILE=str(Issuer(mounted, "consent").jwks),
    )
    command = ENTRYPOINT
    health = json.loads(instruction("HEALTHCHECK")[0].split("CMD ", 1)[1])
    log = (tmp_path / "serve.log").open("wb")
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        for _ in range(600):
            if subprocess.run(health, env=env, capture_output=True).returncode == 0:
                break
            assert process.poll() is None, (tmp_path / "serve.log").read_text()[-2000:]
        checked = subprocess.run(health, env=env, capture_output=True, text=True)
        assert checked.returncode == 0 and "healthy" in checked.stdout
        assert list((tmp_path / "volume" / "keys").iterdir())  # keys made in the volume
    finally:
        process.terminate()
        process.wait(timeout=20)
    down = subprocess.run(health, env=env, capture_output=True, text=True)
    assert down.returncode == 1 and "unhealthy" in down.stderr
