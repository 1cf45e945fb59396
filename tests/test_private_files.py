"""Files 0600, folders 0700: what the gateway and its commands write is for no other user.

The attacker is another account on the gateway's host: before, the gateway database (audit
entries, keyed subject hashes, budgets) and the demo domain (its residents' incomes) were
created 0644 in a 0755 folder, readable by every local user. Now the reader is left with
nothing it may open: every file 0600, every folder 0700.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from conftest import start_gateway, stop_gateway

pytestmark = pytest.mark.slow


def loose(top: Path) -> list[str]:
    """Everything under ``top`` (itself included) that a group or other user may use."""
    found = []
    for path in [top, *top.rglob("*")]:
        mode = path.lstat().st_mode
        wanted = 0o700 if stat.S_ISDIR(mode) else 0o600
        if stat.S_IMODE(mode) != wanted:
            found.append(f"{path.relative_to(top.parent)} {stat.S_IMODE(mode):o}")
    return found


def traffic(running) -> None:
    """Requests that write: audit entries (so -wal and -shm), counters, metrics files."""
    body = {"purpose": "credit", "subjects": [{"key": "1", "claims": {"name": "x"}}]}
    headers = {"Authorization": f"Bearer {running.token()}"}
    answer = httpx.post(f"{running.url}/v1/verify/identity-match", json=body, headers=headers)
    assert answer.status_code == 200, answer.text
    assert httpx.get(f"{running.url}/metrics").status_code == 200


def test_a_new_gateway_and_its_commands_write_only_private_files(tmp_path):
    # a permissive umask, as a shell's often is: the gateway must not depend on it
    previous = os.umask(0o022)
    try:
        running = start_gateway(tmp_path / "data", "--demo", "--workers", "2")
    finally:
        os.umask(previous)
    try:
        traffic(running)
        made = {p.name for p in running.data_dir.rglob("*")}
        assert {"gateway.sqlite", "gateway.sqlite-wal", "gateway.sqlite-shm", "keys",
                "demo-domain.sqlite", "metrics", "gateway.sqlite.migrate-lock"} <= made  # fmt: skip
        assert any(p.suffix == ".db" for p in (running.data_dir / "metrics").rglob("*"))
        export = tmp_path / "export"
        exported = running.cli("audit", "export", str(export))
        assert exported.returncode == 0, exported.stderr
        assert (export / "manifest.json").exists()
        revoked = running.cli("consent", "revoke", "no-such-consent")
        assert revoked.returncode == 0, revoked.stderr
        elsewhere = tmp_path / "elsewhere" / "gateway.sqlite"
        elsewhere.parent.mkdir(mode=0o700)  # a database the deployer placed: its files
        upgraded = running.cli("db", "upgrade")
        assert upgraded.returncode == 0, upgraded.stderr
        moved = {**os.environ, **running.env, "DATAAUTH_DATABASE_URL": f"sqlite:///{elsewhere}"}
        made_elsewhere = subprocess.run([sys.executable, "-m", "dataauth.cli", "db", "upgrade"],
                                        capture_output=True, text=True, env=moved)  # fmt: skip
        assert made_elsewhere.returncode == 0, made_elsewhere.stderr
        assert loose(running.data_dir) == []
        assert loose(export) == []
        assert loose(elsewhere.parent) == []
    finally:
        stop_gateway(running)


def test_files_an_older_version_left_open_are_made_private(gateway, tmp_path):
    """A data directory from before (0644 files, 0755 folders) is tightened at start."""
    data = tmp_path / "old" / "data"
    data.mkdir(parents=True)
    (data / "demo-domain.sqlite").write_bytes(
        (gateway.data_dir / "demo-domain.sqlite").read_bytes()
    )
    (data / "keys").mkdir()
    for key in (gateway.data_dir / "keys").iterdir():
        (data / "keys" / key.name).write_bytes(key.read_bytes())
    for path in [data, *data.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    running = start_gateway(data, "--demo")
    try:
        traffic(running)
        assert loose(data) == []
    finally:
        stop_gateway(running)
