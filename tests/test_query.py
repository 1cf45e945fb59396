"""Aggregate queries over HTTP, checked against direct SQL on the department's own data."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from conftest import DATABASES, on_each_database, start_with_budget, stop_gateway

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=DATABASES)
def gateway(request):
    """Each test here runs on SQLite, and on PostgreSQL for both the gateway's database
    and the department's."""
    return on_each_database(request)


K = 10  # the demo bundle's min_group_size


def ask(client, auth, sql, operator="demo-bank", purpose="credit"):
    return client.post("/v1/query", json={"purpose": purpose, "sql": sql}, headers=auth(operator))


def answered(client, auth, sql):
    """The body of a query that must be answered."""
    response = ask(client, auth, sql)
    assert response.status_code == 200, response.text
    return response.json()


def direct(gateway, sql, params=()):
    with gateway.domain_db() as db:
        return db.execute(sql, params).fetchall()


def entry(client, auth, index):
    """The audit entry at ``index``, as a regulator reads it."""
    headers = auth("cac-regulator", roles=("regulator",))
    got = client.get("/v1/audit/entries", params={"from": index, "limit": 1}, headers=headers)
    return got.json()["entries"][0]["entry"]


def test_count_by_district_is_exact_without_noise(client, auth, gateway):
    body = answered(client, auth, "SELECT district, COUNT(*) AS n FROM residents GROUP BY district")
    assert set(body) == {"columns", "rows", "protections", "audit"}
    assert body["columns"] == ["district", "n"]
    expected = direct(gateway, "SELECT district, COUNT(*) FROM residents GROUP BY district")
    assert sorted(map(tuple, body["rows"])) == sorted(expected)
    assert body["protections"] == {"min_group_size": K, "differential_privacy": None}


def test_enterprise_counts_over_public_filters_are_exact(client, auth, gateway):
    sql = (
        "SELECT status, COUNT(*) FROM enterprises "
        "WHERE district IN ('天河区', '越秀区') AND NOT (status IN ('吊销', '注销'))"
        " GROUP BY status"
    )
    body = answered(client, auth, sql)
    assert body["columns"] == ["status", "count(*)"]
    assert body["protections"]["differential_privacy"] is None
    expected = {row[0]: row for row in direct(gateway, sql) if row[1] >= K}
    assert sorted(map(tuple, body["rows"])) == sorted(expected.values())


def test_an_l2_aggregate_under_a_filter_is_noised(client, auth, gateway):
    """An exact SUM of registered capital (L2), asked with and without one firm, would
    be that firm's capital: it is noised, and MIN and MAX are refused."""
    where = "FROM enterprises WHERE district IN ('天河区', '越秀区') GROUP BY status"
    body = answered(client, auth, f"SELECT status, COUNT(*), SUM(registered_capital) {where}")
    assert body["protections"]["differential_privacy"]["mechanism"] == "laplace"
    maximum = {"purpose": "credit", "sql": f"SELECT MAX(registered_capital) {where}"}
    refused = client.post("/v1/query", headers=auth(), json=maximum)
    assert refused.status_code == 403
    assert "noise_unavailable" in {r["code"] for r in refused.json()["reasons"]}


def test_small_groups_are_suppressed_and_not_counted(client, auth, gateway):
    sql = "SELECT district, status, COUNT(*) FROM enterprises GROUP BY district, status"
    body = answered(client, auth, sql)
    groups = direct(gateway, sql)
    big = sorted(tuple(g) for g in groups if g[2] >= K)
    small = [g for g in groups if g[2] < K]
    assert small, "the demo should have some small groups here"
    assert sorted(map(tuple, body["rows"])) == big
    # how many were left out is not said: for a filter that singles out a few subjects
    # it would tell how many distinct labels they have
    assert body["protections"] == {"min_group_size": K, "differential_privacy": None}


def test_sensitive_columns_are_noised_and_close(client, auth, gateway):
    sql = (
        "SELECT district, COUNT(*) AS n, AVG(monthly_income) AS income FROM residents "
        "WHERE birth_date < '1970-01-01' GROUP BY district"
    )
    body = answered(client, auth, sql)
    noise = body["protections"]["differential_privacy"]
    assert noise["mechanism"] == "laplace" and noise["epsilon"] == 0.5
    assert noise["clamped_to"] == {"monthly_income": [0, 50000]}
    assert noise["budget"]["epsilon_total"] == 1000
    scales = noise["noise_scale"]
    # which districts appear is decided on their noisy counts, over the threshold
    selection = noise["partition_selection"]
    assert selection == {"count(*)": {"threshold": selection["count(*)"]["threshold"],
                                      "delta": 1e-8}}  # fmt: skip
    assert "suppressed_groups" not in body["protections"]
    truth = {r[0]: r for r in direct(gateway, sql)}
    assert len(body["rows"]) == len(truth) == 11  # thousands each: all over the threshold
    for district, n, income in body["rows"]:
        true_n, true_income = truth[district][1], truth[district][2]
        # 12 scales: a Laplace draw that far out has a chance of e^-12
        assert abs(n - true_n) <= 12 * scales["count(*)"] + 1
        error = 12 * (scales["sum(monthly_income)"] + 50000 * scales["count(monthly_income)"])
        assert abs(income - true_income) <= error / true_n
        assert isinstance(n, int)


def test_a_too_small_cohort_is_refused_and_audited(client, auth, gateway):
    (name,) = direct(gateway, "SELECT name FROM enterprises ORDER BY credit_code LIMIT 1")[0]
    response = ask(client, auth, f"SELECT COUNT(*) FROM enterprises WHERE name = '{name}'")
    assert response.status_code == 403, response.text
    problem = response.json()
    assert problem["code"] == "cohort_too_small"
    assert name not in response.text
    recorded = entry(client, auth, problem["audit"]["entry"])
    assert recorded["operation"] == {
        "kind": "query",
        "product": "query:enterprises",
        "dataset": "enterprises",
    }
    assert recorded["policy_input"]["query"]["filters"] == [{"column": "name", "op": "eq"}]
    assert recorded["outcome"] == "refused"  # allowed by policy, refused by disclosure
    assert name not in json.dumps(recorded, ensure_ascii=False)


def test_audit_entries_hold_the_shape_but_no_values(client, auth, gateway):
    sql = (
        "SELECT district, SUM(social_insurance_months) AS months FROM residents "
        "WHERE monthly_income >= 12345 AND district <> '南沙区' GROUP BY district"
    )
    body = answered(client, auth, sql)
    recorded = entry(client, auth, body["audit"]["entry"])
    assert recorded["outcome"] == "released"
    policy_input = recorded["policy_input"]
    assert policy_input["query"] == {
        "aggregates": [{"function": "sum", "column": "social_insurance_months"}],
        "group_by": ["district"],
        "filters": [
            {"column": "monthly_income", "op": "ge"},
            {"column": "district", "op": "ne"},
        ],
    }
    uses = {(c["name"], c["use"]) for c in policy_input["columns"]}
    assert uses == {
        ("social_insurance_months", "aggregate"),
        ("district", "plaintext"),
        ("monthly_income", "compare"),
        ("district", "compare"),
    }
    text = json.dumps(recorded, ensure_ascii=False)
    assert "12345" not in text and "南沙区" not in text and sql not in text
    for row in body["rows"]:
        assert str(row[1]) not in text


def test_the_datasets_an_operator_may_query(client, auth):
    listing = client.get("/v1/query/datasets", headers=auth()).json()
    datasets = {d["id"]: d for d in listing["datasets"]}
    assert set(datasets) == {"residents", "enterprises"}
    income = next(c for c in datasets["residents"]["columns"] if c["name"] == "monthly_income")
    assert income["bounds"] == [0, 50000] and "aggregate" in income["uses"]
    assert all(c["name"] != "resident_id" for c in datasets["residents"]["columns"])
    insurer = client.get("/v1/query/datasets", headers=auth("demo-insurer")).json()
    assert insurer["datasets"] == []


def test_a_licence_without_queries_is_denied(client, auth):
    response = ask(client, auth, "SELECT COUNT(*) FROM enterprises", "demo-insurer", "underwriting")
    assert response.status_code == 403
    assert [r["code"] for r in response.json()["reasons"]] == ["product_not_licensed"]


@pytest.fixture(scope="module")
def small_budget(gateway, tmp_path_factory):
    """A gateway of its own whose policy gives demo-bank ε 2 on each dataset."""
    running = start_with_budget(gateway, tmp_path_factory.mktemp("budget"), 2)
    yield running
    stop_gateway(running)


def test_the_privacy_budget_is_spent_once_and_refused_with_what_remains(small_budget):
    token = small_budget.token("demo-bank")
    sql = "SELECT AVG(monthly_income) FROM residents"

    def one(_: int) -> httpx.Response:
        return httpx.post(f"{small_budget.url}/v1/query",
                          json={"purpose": "credit", "sql": sql},
                          headers={"Authorization": f"Bearer {token}"}, timeout=30)  # fmt: skip

    deadline = time.monotonic() + 10  # the published bundle takes one catalog TTL
    while (
        one(0)
        .json()
        .get("protections", {})
        .get("differential_privacy", {})
        .get("budget", {})
        .get("epsilon_total")
        != 2
    ):
        assert time.monotonic() < deadline
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(one, range(8)))
    ok = [a for a in answers if a.status_code == 200]
    refused = [a for a in answers if a.status_code != 200]
    assert len(ok) == 3  # ε 2 at 0.5 a query: four in all, one spent while waiting above
    for answer in refused:
        assert answer.status_code == 403
        problem = answer.json()
        assert problem["code"] == "privacy_budget_exhausted"
        assert problem["remaining"] == 0 and problem["budget"] == 2 and problem["asked"] == 0.5
        assert "audit" in problem
    # a dataset's budget is its own: enterprises' L3 column still answers
    other = httpx.post(f"{small_budget.url}/v1/query",
                       json={"purpose": "credit",
                             "sql": "SELECT SUM(tax_paid_last_year) FROM enterprises"},
                       headers={"Authorization": f"Bearer {token}"})  # fmt: skip
    assert other.status_code == 200, other.text
