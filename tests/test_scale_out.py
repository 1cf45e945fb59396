"""Several gateway processes on one PostgreSQL under concurrent load: one log, with no
gap, loss or duplicate; consistent tree heads; counters never spent twice."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from sqlalchemy import text

from conftest import cluster, start_beside, stop_gateway
from test_audit_log import dataauth
from test_usage import ask, publish_limits

pytestmark = pytest.mark.slow

QUOTA = 150
REQUESTS = 240
EPSILON = 3.0  # six noised queries at ε 0.5


@pytest.fixture(scope="module")
def pair(sqlite_gateway, tmp_path_factory):
    """Two `serve --workers 2` processes (four workers) on one PostgreSQL database."""
    env = {"DATAAUTH_DATABASE_URL": cluster().new_database(), "DATAAUTH_CATALOG_TTL_SECONDS": "0.2"}
    where = tmp_path_factory.mktemp("scale")
    first = start_beside(sqlite_gateway, where, "--workers", "2", env=env)
    second = first.another("--workers", "2")
    publish_limits(first, {"demo-bank": {"daily_quota": QUOTA}}, tmp_path_factory.mktemp("p"),
                   epsilon=EPSILON)  # fmt: skip
    time.sleep(0.5)  # every worker takes the new bundle within its TTL
    with sqlite_gateway.domain_db() as db:
        keys = [r[0] for r in db.execute(f"SELECT resident_id FROM residents LIMIT {REQUESTS}")]
    yield first, second, keys
    stop_gateway(second)
    stop_gateway(first)


def test_four_workers_one_log(pair, tmp_path):
    first, second, keys = pair

    def send(n: int) -> tuple[int, int]:
        response = ask((first, second)[n % 2], "demo-bank", "income-at-least", [keys[n]])
        assert response.status_code in (200, 429), response.text
        return response.status_code, response.json()["audit"]["entry"]

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(send, range(REQUESTS)))

    codes = [code for code, _ in answers]
    assert codes.count(200) == QUOTA  # the quota is spent exactly once, across processes
    assert codes.count(429) == REQUESTS - QUOTA
    entries = [entry for _, entry in answers]
    assert len(set(entries)) == REQUESTS  # no two answers share an entry

    with first.gateway_db() as db:
        indexes = [r[0] for r in db.execute(text('SELECT "index" FROM audit_entry ORDER BY 1'))]
        used = db.execute(text("SELECT SUM(used) FROM usage_counter")).scalar()
    assert indexes == list(range(len(indexes)))  # no gap, no duplicate
    assert set(entries) <= set(indexes)
    assert used == QUOTA

    # every worker signed heads; the exported log verifies: one chain, consistent roots
    time.sleep(0.5)
    exported = first.cli("audit", "export", str(tmp_path / "log"))
    assert exported.returncode == 0, exported.stderr
    verified = dataauth("audit", "verify", str(tmp_path / "log"))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert f"entries [0, {len(indexes)})" in verified.stdout


def test_a_privacy_budget_is_spent_once_across_processes(pair):
    first, second, _ = pair
    sql = "SELECT AVG(monthly_income) FROM residents"

    def query(n: int) -> int:
        running = (first, second)[n % 2]
        response = httpx.post(f"{running.url}/v1/query", json={"purpose": "credit", "sql": sql},
                              headers={"Authorization": f"Bearer {running.token()}"},
                              timeout=60)  # fmt: skip
        assert response.status_code in (200, 403), response.text
        return response.status_code

    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(query, range(16)))
    assert codes.count(200) == 6 and codes.count(403) == 10
    with first.gateway_db() as db:
        spent = db.execute(text("SELECT SUM(spent) FROM privacy_budget")).scalar()
    assert spent == EPSILON * 1_000_000  # kept in millionths of ε
