"""Aggregate queries over a declared join (enterprises and their legal representatives),
over HTTP, checked against direct SQL on the department's own data."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import httpx
import pytest
from sqlmodel import Session, create_engine

from conftest import DATABASES, on_each_database, start_beside, stop_gateway
from dataauth.catalog.tables import Licence, Operator
from test_query import K, answered, ask, direct, entry

pytestmark = pytest.mark.slow

JOIN = "FROM enterprises e JOIN residents r ON e.legal_representative_id = r.resident_id"


@pytest.fixture(scope="module", params=DATABASES)
def gateway(request):
    """Each test here runs on SQLite, and on PostgreSQL for both the gateway's database
    and the department's."""
    return on_each_database(request)


def representatives(gateway) -> set[str]:
    """Every legal representative's national ID number: none may ever leave."""
    return {row[0] for row in direct(gateway, "SELECT legal_representative_id FROM enterprises")}


def assert_no_key(text: str, keys: set[str]) -> None:
    leaked = [key for key in keys if key in text]
    assert not leaked, f"{len(leaked)} representative ID numbers leaked"


def test_active_enterprises_per_representative_district_are_exact(client, auth, gateway):
    sql = (
        "SELECT r.district, COUNT(*) AS n, SUM(e.registered_capital) AS capital "
        f"{JOIN} WHERE e.status IN ('存续', '在业') GROUP BY r.district"
    )
    body = answered(client, auth, sql)
    assert body["columns"] == ["district", "n", "capital"]
    truth = direct(
        gateway,
        "SELECT r.district, COUNT(*), SUM(e.registered_capital), "
        f"COUNT(DISTINCT r.resident_id) {JOIN} WHERE e.status IN ('存续', '在业') "
        "GROUP BY r.district",
    )
    expected = sorted(row[:3] for row in truth if row[1] >= K and row[3] >= K)
    assert len(expected) == 11  # every district: the join answers, not suppresses
    assert sorted(map(tuple, body["rows"])) == expected
    assert body["protections"] == {
        "min_group_size": K,
        "suppressed_groups": 0,
        "differential_privacy": None,
    }
    recorded = entry(client, auth, body["audit"]["entry"])
    assert_no_key(json.dumps(body, ensure_ascii=False), representatives(gateway))
    assert_no_key(json.dumps(recorded, ensure_ascii=False), representatives(gateway))


def test_either_orientation_and_qualifying_by_dataset_name_answer_alike(client, auth, gateway):
    one = answered(
        client,
        auth,
        f"SELECT e.status, COUNT(*) {JOIN} WHERE r.district = '天河区' GROUP BY e.status",
    )
    other = answered(
        client,
        auth,
        "SELECT enterprises.status, COUNT(*) FROM residents INNER JOIN enterprises "
        "ON resident_id = legal_representative_id WHERE residents.district = '天河区' "
        "GROUP BY enterprises.status",
    )
    assert one["rows"] == other["rows"] and one["rows"]


def test_the_audit_entry_shows_the_join_and_no_literal(client, auth, gateway):
    sql = (
        f"SELECT r.district, AVG(e.registered_capital) AS capital {JOIN} "
        "WHERE e.district <> '南沙区' AND e.registered_capital >= 123457 GROUP BY r.district"
    )
    body = answered(client, auth, sql)
    recorded = entry(client, auth, body["audit"]["entry"])
    assert recorded["outcome"] == "released"
    assert recorded["operation"] == {
        "kind": "query",
        "product": "query:enterprises",
        "dataset": "enterprises",
        "join": "enterprise-representative",
    }
    assert recorded["dataset_version"].startswith("enterprises@demo-")
    assert " residents@demo-" in recorded["dataset_version"]
    policy_input = recorded["policy_input"]
    assert policy_input["join"] == {
        "id": "enterprise-representative",
        "datasets": ["enterprises", "residents"],
        "on": [
            {"dataset": "enterprises", "column": "legal_representative_id"},
            {"dataset": "residents", "column": "resident_id"},
        ],
    }
    assert policy_input["query"] == {
        "aggregates": [{"function": "avg", "column": "enterprises.registered_capital"}],
        "group_by": ["residents.district"],
        "filters": [
            {"column": "enterprises.district", "op": "ne"},
            {"column": "enterprises.registered_capital", "op": "ge"},
        ],
    }
    uses = {(c["dataset"], c["name"], c["use"]) for c in policy_input["columns"]}
    assert uses == {
        ("enterprises", "registered_capital", "aggregate"),
        ("residents", "district", "plaintext"),
        ("enterprises", "district", "compare"),
        ("enterprises", "registered_capital", "compare"),
        ("enterprises", "legal_representative_id", "key"),
        ("residents", "resident_id", "key"),
    }
    text = json.dumps(recorded, ensure_ascii=False)
    assert "南沙区" not in text and "123457" not in text and sql not in text
    for row in body["rows"]:
        assert str(row[1]) not in text


def cohort(gateway) -> tuple[list[str], list[str]]:
    """Names of 存续 enterprises with at least k rows but fewer than k distinct
    representatives (serial representatives' firms), and names of k + 2 在业 ones each
    with a representative of its own."""
    serial = direct(
        gateway,
        "SELECT legal_representative_id FROM enterprises WHERE status = '存续' "
        "GROUP BY legal_representative_id HAVING COUNT(*) >= 3 "
        "ORDER BY COUNT(*) DESC, legal_representative_id LIMIT 3",
    )
    marks = ", ".join("?" for _ in serial)
    crowded = direct(
        gateway,
        f"SELECT name FROM enterprises WHERE status = '存续' "
        f"AND legal_representative_id IN ({marks}) ORDER BY name LIMIT 20",
        [row[0] for row in serial],
    )
    single = direct(
        gateway,
        "SELECT MIN(name) FROM enterprises WHERE status = '在业' "
        "GROUP BY legal_representative_id HAVING COUNT(*) = 1 "
        f"ORDER BY legal_representative_id LIMIT {K + 2}",
    )
    assert len(crowded) >= K and len(serial) < K and len(single) == K + 2
    return [row[0] for row in crowded], [row[0] for row in single]


def names_in(names: list[str]) -> str:
    return ", ".join(f"'{name}'" for name in names)


def test_a_group_of_few_representatives_is_suppressed(client, auth, gateway):
    crowded, single = cohort(gateway)
    sql = (
        f"SELECT e.status, COUNT(*) AS n {JOIN} "
        f"WHERE e.name IN ({names_in(crowded + single)}) GROUP BY e.status"
    )
    body = answered(client, auth, sql)
    # 存续 has at least k firms but fewer than k people behind them: left out
    assert body["rows"] == [["在业", K + 2]]
    assert body["protections"]["suppressed_groups"] == 1
    alone = ask(client, auth, f"SELECT COUNT(*) {JOIN} WHERE e.name IN ({names_in(crowded)})")
    assert alone.status_code == 403, alone.text
    problem = alone.json()
    assert problem["code"] == "cohort_too_small"
    recorded = entry(client, auth, problem["audit"]["entry"])
    assert recorded["outcome"] == "refused"
    text = json.dumps(recorded, ensure_ascii=False) + alone.text + json.dumps(body)
    assert not [name for name in crowded + single if name in text]
    assert_no_key(text, representatives(gateway))


def test_a_join_touching_an_l3_column_is_refused(client, auth):
    response = ask(
        client, auth, f"SELECT r.district, AVG(e.tax_paid_last_year) {JOIN} GROUP BY r.district"
    )
    assert response.status_code == 403, response.text
    problem = response.json()
    assert [r["code"] for r in problem["reasons"]] == ["noise_unavailable"]
    assert "noise over joins is not supported yet" in problem["detail"]
    recorded = entry(client, auth, problem["audit"]["entry"])
    assert recorded["outcome"] == "denied"


def test_the_declared_joins_are_listed(client, auth):
    listing = client.get("/v1/query/datasets", headers=auth()).json()
    assert listing["joins"] == [
        {
            "id": "enterprise-representative",
            "title": "企业法定代表人 Enterprises and their legal representatives",
            "left": {"dataset": "enterprises", "column": "legal_representative_id"},
            "right": {"dataset": "residents", "column": "resident_id"},
        }
    ]
    insurer = client.get("/v1/query/datasets", headers=auth("demo-insurer")).json()
    assert insurer["joins"] == []


@pytest.fixture(scope="module")
def enterprises_only(sqlite_gateway, tmp_path_factory):
    """A gateway of its own with an operator licensed to query enterprises only."""
    running = start_beside(
        sqlite_gateway,
        tmp_path_factory.mktemp("joins"),
        env={"DATAAUTH_CATALOG_TTL_SECONDS": "0.2"},
    )
    engine = create_engine(running.database_url)
    with Session(engine) as session:
        session.add(Operator(id="firm-lender", name="企业贷 Firm Lender", kind="lender"))
        session.add(
            Licence(
                id="firm-lender-licence",
                operator_id="firm-lender",
                products=["query:enterprises"],
                purposes=["credit"],
                valid_from=datetime(2026, 1, 1, tzinfo=UTC),
                valid_to=datetime(2031, 1, 1, tzinfo=UTC),
            )
        )
        session.commit()
    engine.dispose()
    yield running
    stop_gateway(running)


def test_a_licence_without_the_joined_dataset_is_denied(enterprises_only):
    headers = {"Authorization": f"Bearer {enterprises_only.token('firm-lender')}"}

    def ask_as_lender(sql: str) -> httpx.Response:
        body = {"purpose": "credit", "sql": sql}
        return httpx.post(f"{enterprises_only.url}/v1/query", json=body, headers=headers)

    deadline = time.monotonic() + 10  # the new operator takes one catalog TTL
    while (alone := ask_as_lender("SELECT COUNT(*) FROM enterprises")).status_code != 200:
        assert time.monotonic() < deadline, alone.text
    joined = ask_as_lender(f"SELECT COUNT(*) {JOIN} WHERE r.district = '天河区'")
    assert joined.status_code == 403, joined.text
    reasons = joined.json()["reasons"]
    assert [r["code"] for r in reasons] == ["product_not_licensed"]
    assert "query:residents" in reasons[0]["message"]
