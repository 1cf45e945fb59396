"""Fixtures: a real gateway process on loopback, its demo domain, and real tokens."""

from __future__ import annotations

import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Connection, create_engine

import postgres
from dataauth.config import SOURCE_POLICIES
from dataauth.identity.dev_issuer import issue_token
from dataauth.identity.keys import Keyring
from dataauth.policy.bundle import load_bundle

ISSUER, AUDIENCE = "dataauth-dev", "dataauth"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Running:
    url: str
    data_dir: Path
    process: subprocess.Popen[bytes]
    log: Path
    env: dict[str, str] = field(default_factory=dict)
    """The settings it was started with, beyond the environment's."""

    @property
    def database_url(self) -> str:
        return self.env.get("DATAAUTH_DATABASE_URL") or f"sqlite:///{self.data_dir}/gateway.sqlite"

    @property
    def on_postgres(self) -> bool:
        return self.database_url.startswith("postgresql")

    @property
    def keyring(self) -> Keyring:
        return Keyring(self.data_dir / "keys")

    def token(self, operator: str = "demo-bank", **kwargs: object) -> str:
        return issue_token(
            self.keyring, subject=operator, issuer=ISSUER, audience=AUDIENCE, **kwargs
        )

    @contextmanager
    def gateway_db(self) -> Iterator[Connection]:
        """A connection to its gateway database, SQLite or PostgreSQL."""
        engine = create_engine(self.database_url)
        try:
            with engine.connect() as connection:
                yield connection
        finally:
            engine.dispose()

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``dataauth ARGS --data-dir ...`` with the settings this gateway runs with."""
        return subprocess.run(
            [sys.executable, "-m", "dataauth.cli", *args, "--data-dir", str(self.data_dir)],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, **self.env},
        )

    def another(self, *args: str) -> Running:
        """Another gateway process on the same data directory and database."""
        return start_gateway(self.data_dir, "--demo", *args, env=self.env)

    def domain_db(self) -> sqlite3.Connection:
        return sqlite3.connect(f"file:{self.data_dir / 'demo-domain.sqlite'}?mode=ro", uri=True)


def zone_at(hour: int) -> str:
    """A fixed-offset time zone where the local time now is about ``hour`` o'clock: the
    demo's hours rules (demo-insurer asks 07:00 to 23:00) then hold whenever tests run."""
    offset = (hour - time.gmtime().tm_hour + 12) % 24 - 12
    return f"Etc/GMT{-offset:+d}"  # POSIX signs: Etc/GMT-8 is eight hours ahead of UTC


def start_gateway(data_dir: Path, *args: str, env: dict[str, str] | None = None) -> Running:
    """Start ``dataauth serve`` on a free port and wait for /healthz."""
    # the suite's gateways take thousands of malformed requests from a few operators
    # (schemathesis, hostile SQL): the throttle of logged refusals has a test of its own
    env = {"DATAAUTH_TIMEZONE": zone_at(12), "DATAAUTH_REJECTIONS_PER_MINUTE": "1000000",
           **(env or {})}  # fmt: skip
    port = free_port()
    log = data_dir.with_suffix(".log")
    handle = log.open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dataauth.cli",
            "serve",
            "--port",
            str(port),
            "--data-dir",
            str(data_dir),
            *args,
        ],
        stdout=handle,
        stderr=subprocess.STDOUT,
        env={**os.environ, **env},
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the gateway exited:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return Running(url, data_dir, process, log, env)
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.kill()
    raise RuntimeError("the gateway did not become ready in time")


def start_beside(
    running: Running, where: Path, *args: str, env: dict[str, str] | None = None
) -> Running:
    """Another gateway with the demo domain and keys of ``running``, on a database of its
    own (of the same kind): a test that changes policy or kills a process leaves the
    session's alone."""
    data = where / "data"
    data.mkdir(parents=True)
    shutil.copy(running.data_dir / "demo-domain.sqlite", data)
    shutil.copytree(running.data_dir / "keys", data / "keys")
    env = dict(env or {})
    if running.on_postgres:
        env.setdefault("DATAAUTH_DATABASE_URL", cluster().new_database())
    if "DATAAUTH_DOMAIN_URL" in running.env:  # read only: the department's, shared
        env.setdefault("DATAAUTH_DOMAIN_URL", running.env["DATAAUTH_DOMAIN_URL"])
    return start_gateway(data, "--demo", *args, env=env)


def start_with_budget(running: Running, where: Path, epsilon: float) -> Running:
    """A gateway beside ``running`` whose published policy gives demo-bank an ε account of
    ``epsilon`` on each dataset, read by the time this returns."""
    beside = start_beside(running, where, env={"DATAAUTH_CATALOG_TTL_SECONDS": "0.2"})
    bundle = load_bundle(SOURCE_POLICIES)
    data = json.loads(json.dumps(bundle.data))
    data["dataauth"]["limits"]["query"]["budget"]["operators"]["demo-bank"]["epsilon"] = epsilon
    department = beside.token("a-department", roles=("department",))
    published = httpx.post(f"{beside.url}/v1/admin/policy",
                           json={"modules": bundle.modules, "data": data},
                           headers={"Authorization": f"Bearer {department}"})  # fmt: skip
    assert published.status_code == 200, published.text
    time.sleep(1.0)  # five catalog TTLs: the gateway has read the published bundle
    return beside


_cluster: postgres.Postgres | None = None


def cluster() -> postgres.Postgres:
    """The PostgreSQL server of this test session (skips, or fails in CI, without one)."""
    global _cluster
    if _cluster is None:
        _cluster = postgres.connect()
    return _cluster


def pytest_sessionfinish() -> None:
    if _cluster is not None:
        _cluster.drop_all()


def stop_gateway(running: Running) -> None:
    running.process.terminate()
    try:
        running.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        running.process.kill()


def roomy_policies(where: Path) -> Path:
    """The shipped policies with subject budgets no suite of tests exhausts.

    The session's gateways answer hundreds of tests about the same few hundred
    residents, each with its own questions: under the shipped 16 bits a subject they
    would run out in an order-dependent way. Every test of the budgets themselves (and
    of attacks they bound) starts a gateway of its own on the shipped policies."""
    shutil.copytree(SOURCE_POLICIES, where)
    path = where / "dataauth" / "limits" / "data.json"
    limits = json.loads(path.read_text())
    limits["subject_budget"]["defaults"].update(bits_per_operator=10**9, bits_total=10**9)
    path.write_text(json.dumps(limits, indent=2))
    return where


@pytest.fixture(scope="session")
def sqlite_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """The gateway with the demo domain, started once for the whole session."""
    where = tmp_path_factory.mktemp("gw")
    env = {"DATAAUTH_POLICY_DIR": str(roomy_policies(where / "policies"))}
    running = start_gateway(where / "data", "--demo", env=env)
    yield running
    stop_gateway(running)


@pytest.fixture(scope="session")
def pg_gateway(
    sqlite_gateway: Running, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Running]:
    """The same gateway on PostgreSQL, beside the SQLite one (its keys): its own database
    and the department's (the demo domain, copied) both on PostgreSQL, as deployed."""
    domain = sqlite_gateway.data_dir / "demo-domain.sqlite"
    env = {
        "DATAAUTH_DATABASE_URL": cluster().new_database(),
        "DATAAUTH_DOMAIN_URL": cluster().copy_domain(str(domain)),
        "DATAAUTH_POLICY_DIR": sqlite_gateway.env["DATAAUTH_POLICY_DIR"],
    }
    running = start_beside(sqlite_gateway, tmp_path_factory.mktemp("pg"), env=env)
    yield running
    stop_gateway(running)


@pytest.fixture(scope="session")
def gateway(sqlite_gateway: Running) -> Running:
    """The gateway most tests use: on SQLite. Storage and audit modules take
    ``on_each_database`` instead, and run once on each."""
    return sqlite_gateway


GATEWAYS = {"sqlite": "sqlite_gateway", "postgresql": "pg_gateway"}
DATABASES = list(GATEWAYS)


def on_each_database(request: pytest.FixtureRequest) -> Running:
    """Body of a module's own ``gateway`` fixture parametrized over ``DATABASES``."""
    return request.getfixturevalue(GATEWAYS[request.param])


@pytest.fixture
def client(gateway: Running) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.url, timeout=30) as http:
        yield http


@pytest.fixture
def auth(gateway: Running) -> Callable[..., dict[str, str]]:
    """Authorization headers for an operator, from the running gateway's dev issuer."""

    def headers(operator: str = "demo-bank", **kwargs: object) -> dict[str, str]:
        return {"Authorization": f"Bearer {gateway.token(operator, **kwargs)}"}

    return headers
