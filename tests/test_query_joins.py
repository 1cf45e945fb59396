"""Aggregate queries over a declared join (enterprises and their legal representatives),
over HTTP, checked against direct SQL on the department's own data."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.dialects import sqlite
from sqlmodel import Session, create_engine

from conftest import DATABASES, on_each_database, start_beside, start_with_budget, stop_gateway
from dataauth.catalog.store import Catalog
from dataauth.catalog.tables import Licence, Operator
from dataauth.domain.aggregates import statement
from dataauth.operations.aggregate import measures, parse
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


BOUND = 5  # the demo join's max_per_right

BOUNDED_TRUTH = f"""
SELECT district, COUNT(*), SUM(CASE WHEN capital < 0 THEN 0 WHEN capital > 100000000
    THEN 100000000 ELSE capital END), COUNT(DISTINCT representative)
FROM (SELECT r.district AS district, e.registered_capital AS capital,
        r.resident_id AS representative,
        ROW_NUMBER() OVER (PARTITION BY r.resident_id ORDER BY e.credit_code) AS contribution
    {JOIN} WHERE e.status IN ('存续', '在业')) AS bounded
WHERE contribution <= {BOUND} GROUP BY district
"""
"""The join of docs/operators.md answered by hand on the department's data: at most five firms per
representative (the first by credit code), capital clamped to its declared bounds."""


def spent(gateway, operator: str = "demo-bank") -> dict[str, int]:
    """The operator's ε spent per dataset, in millionths, read from the gateway database."""
    with gateway.gateway_db() as db:
        rows = db.execute(text("SELECT key, spent FROM privacy_budget")).fetchall()
    return {key.split("|")[1]: value for key, value in rows if key.startswith(f"{operator}|")}


def test_active_enterprises_per_representative_district_are_noised(client, auth, gateway):
    sql = (
        "SELECT r.district, COUNT(*) AS n, SUM(e.registered_capital) AS capital "
        f"{JOIN} WHERE e.status IN ('存续', '在业') GROUP BY r.district"
    )
    before = spent(gateway)
    body = answered(client, auth, sql)
    after = spent(gateway)
    assert body["columns"] == ["district", "n", "capital"]
    noise = body["protections"]["differential_privacy"]
    assert noise["contributions_bounded_to"] == BOUND
    assert noise["clamped_to"] == {"registered_capital": [0, 100_000_000]}
    # ε 0.5 over two measurements; one representative moves at most five rows
    assert noise["noise_scale"] == {
        "count(*)": BOUND / 0.25,
        "sum(registered_capital)": BOUND * 100_000_000 / 0.25,
    }
    assert "budget" not in noise
    assert [b["dataset"] for b in noise["budgets"]] == ["enterprises", "residents"]
    for account in noise["budgets"]:
        dataset = account["dataset"]
        assert after[dataset] - before.get(dataset, 0) == 500_000  # ε 0.5 on each account
        assert account["epsilon_spent"] == after[dataset] / 1_000_000
        assert account["epsilon_total"] == 1000
    truth = {row[0]: row for row in direct(gateway, BOUNDED_TRUTH)}
    # every district: each holds hundreds of people, far over the threshold that a
    # representative's five rows would need to show (partition selection, δ 1e-8)
    selection = noise["partition_selection"]["count(*)"]
    assert selection["delta"] == 1e-8 and selection["threshold"] > 10 * BOUND
    assert len(body["rows"]) == len(truth) == 11
    assert all(row[1] >= K and row[3] >= K for row in truth.values())
    exact = {row[0]: row for row in direct(gateway, BOUNDED_TRUTH.replace(f"<= {BOUND}", "> 0"))}
    assert any(exact[d][1] > truth[d][1] for d in truth), "the bound should drop some firms"
    # Laplace: P(|noise| > 20 scales) = e^-20, under 1e-8 over all 22 numbers
    scale = noise["noise_scale"]
    for district, n, capital in body["rows"]:
        assert abs(n - truth[district][1]) <= 20 * scale["count(*)"] + 1
        assert abs(capital - truth[district][2]) <= 20 * scale["sum(registered_capital)"]
    recorded = entry(client, auth, body["audit"]["entry"])
    assert recorded["decision"]["obligations"]["dp"]["budgets"] == [
        {"key": "demo-bank|enterprises", "epsilon": 1000},
        {"key": "demo-bank|residents", "epsilon": 1000},
    ]
    text_recorded = json.dumps(recorded, ensure_ascii=False)
    for row in truth.values():
        assert f"{row[1]}," not in text_recorded and str(row[2]) not in text_recorded
    assert_no_key(json.dumps(body, ensure_ascii=False), representatives(gateway))
    assert_no_key(text_recorded, representatives(gateway))


def test_a_join_differencing_pair_no_longer_reveals_a_district(client, auth, gateway):
    """Two counts by the representative's district over firm sets that differ by one
    firm, named by its L1 name: exact, the difference would be 1 in that person's
    district (L2) and 0 elsewhere. Noised, it is spread over every district."""
    (firm,) = direct(
        gateway,
        "SELECT MIN(name) FROM enterprises WHERE status = '存续' "
        "GROUP BY legal_representative_id HAVING COUNT(*) = 1 "
        "ORDER BY legal_representative_id LIMIT 1",
    )[0]
    base = f"SELECT r.district, COUNT(*) AS n {JOIN} WHERE e.status IN ('存续', '在业')"
    every = answered(client, auth, f"{base} GROUP BY r.district")
    but_one = answered(client, auth, f"{base} AND e.name <> '{firm}' GROUP BY r.district")
    for body in (every, but_one):
        noise = body["protections"]["differential_privacy"]
        # one firm moves a count by 1; the noise is ten times that
        assert noise["noise_scale"] == {"count(*)": BOUND / 0.5}
    left, right = dict(every["rows"]), dict(but_one["rows"])
    assert set(left) == set(right) and len(left) == 11
    moved = [d for d in left if left[d] != right[d]]
    # a difference of two Laplace(10) counts is 0 with probability under 0.05: fewer than
    # three of eleven districts differing has probability under 1e-9
    assert len(moved) >= 3, "the difference should not single out one district"
    for body in (every, but_one):
        recorded = entry(client, auth, body["audit"]["entry"])
        assert firm not in json.dumps(recorded, ensure_ascii=False)
        assert firm not in json.dumps(body, ensure_ascii=False)


def test_a_serial_representatives_firms_count_at_most_the_bound(gateway):
    """The statement the gateway builds for a noised join, run on the department's data:
    a representative behind more than five firms counts five times."""
    (serial, firms) = direct(
        gateway,
        "SELECT legal_representative_id, COUNT(*) FROM enterprises "
        "GROUP BY legal_representative_id ORDER BY COUNT(*) DESC, legal_representative_id "
        "LIMIT 1",
    )[0]
    assert firms > BOUND
    names = [row[0] for row in direct(
        gateway, "SELECT name FROM enterprises WHERE legal_representative_id = ?", [serial]
    )]  # fmt: skip
    engine = create_engine(gateway.database_url)
    try:
        snapshot = Catalog(engine).snapshot()
    finally:
        engine.dispose()
    shape = parse(
        f"SELECT COUNT(*), SUM(e.registered_capital) {JOIN} WHERE e.name IN ({names_in(names)})",
        snapshot.datasets,
        snapshot.joins,
    )
    assert shape.join is not None and shape.join.max_per_right == BOUND

    def run(noisy: bool) -> tuple[int, ...]:
        built = statement(shape, measures(shape, noisy), noisy)
        compiled = built.compile(dialect=sqlite.dialect(), compile_kwargs={"literal_binds": True})
        return tuple(direct(gateway, str(compiled))[0])

    rows, capital = run(noisy=True)
    assert rows == BOUND
    first = direct(
        gateway,
        f"SELECT SUM(registered_capital) FROM (SELECT registered_capital FROM enterprises "
        f"WHERE legal_representative_id = ? ORDER BY credit_code LIMIT {BOUND}) AS kept",
        [serial],
    )[0][0]
    assert capital == first  # the first five by credit code, within bounds
    # exact joins are not bounded, and count the distinct people behind a group (under
    # noise that count is neither computed nor needed: the bound protects each person)
    assert run(noisy=False)[:2] == (firms, 1)


def test_either_orientation_and_qualifying_by_dataset_name_answer_alike(client, auth, gateway):
    # only left-side L1 columns and the keys: no right-hand column, so exact
    one = answered(
        client,
        auth,
        f"SELECT e.status, COUNT(*) {JOIN} WHERE e.district = '天河区' GROUP BY e.status",
    )
    other = answered(
        client,
        auth,
        "SELECT enterprises.status, COUNT(*) FROM residents INNER JOIN enterprises "
        "ON resident_id = legal_representative_id WHERE enterprises.district = '天河区' "
        "GROUP BY enterprises.status",
    )
    assert one["rows"] == other["rows"] and one["rows"]
    assert one["protections"]["differential_privacy"] is None


def test_a_join_counting_by_left_side_l1_columns_alone_stays_exact(client, auth, gateway):
    sql = f"SELECT e.district, COUNT(*) {JOIN} WHERE e.status = '存续' GROUP BY e.district"
    body = answered(client, auth, sql)
    assert body["protections"]["differential_privacy"] is None
    truth = direct(
        gateway,
        f"SELECT e.district, COUNT(*), COUNT(DISTINCT r.resident_id) {JOIN} "
        "WHERE e.status = '存续' GROUP BY e.district",
    )
    assert sorted(map(tuple, body["rows"])) == sorted(
        row[:2] for row in truth if row[1] >= K and row[2] >= K
    )
    summed = answered(client, auth, sql.replace("COUNT(*)", "COUNT(*), SUM(e.registered_capital)"))
    assert summed["protections"]["differential_privacy"]["contributions_bounded_to"] == 5


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
    # the answer is noised (an L2 column of the right side); the true means never appear
    assert body["protections"]["differential_privacy"]["contributions_bounded_to"] == BOUND
    truth = direct(
        gateway,
        f"SELECT r.district, SUM(e.registered_capital) {JOIN} WHERE e.district <> '南沙区' "
        "AND e.registered_capital >= 123457 GROUP BY r.district",
    )
    assert truth and not [total for _, total in truth if str(total) in text]


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
    assert "suppressed_groups" not in body["protections"]  # not even how many
    alone = ask(client, auth, f"SELECT COUNT(*) {JOIN} WHERE e.name IN ({names_in(crowded)})")
    assert alone.status_code == 403, alone.text
    problem = alone.json()
    assert problem["code"] == "cohort_too_small"
    recorded = entry(client, auth, problem["audit"]["entry"])
    assert recorded["outcome"] == "refused"
    text = json.dumps(recorded, ensure_ascii=False) + alone.text + json.dumps(body)
    assert not [name for name in crowded + single if name in text]
    assert_no_key(text, representatives(gateway))


def test_min_and_max_over_a_noised_join_are_denied(client, auth):
    for aggregate in ("MAX(e.registered_capital)", "MIN(e.tax_paid_last_year)"):
        response = ask(client, auth, f"SELECT r.district, {aggregate} {JOIN} GROUP BY r.district")
        assert response.status_code == 403, response.text
        problem = response.json()
        assert [r["code"] for r in problem["reasons"]] == ["noise_unavailable"]
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
            "max_per_right": BOUND,
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


def asker(running, operator: str) -> Callable[[str], httpx.Response]:
    """Ask a gateway of a test's own a query as ``operator``."""
    headers = {"Authorization": f"Bearer {running.token(operator)}"}

    def one(sql: str) -> httpx.Response:
        body = {"purpose": "credit", "sql": sql}
        return httpx.post(f"{running.url}/v1/query", json=body, headers=headers, timeout=30)

    return one


def test_a_licence_without_the_joined_dataset_is_denied(enterprises_only):
    ask_as_lender = asker(enterprises_only, "firm-lender")
    deadline = time.monotonic() + 10  # the new operator takes one catalog TTL
    while (alone := ask_as_lender("SELECT COUNT(*) FROM enterprises")).status_code != 200:
        assert time.monotonic() < deadline, alone.text
    joined = ask_as_lender(f"SELECT COUNT(*) {JOIN} WHERE r.district = '天河区'")
    assert joined.status_code == 403, joined.text
    reasons = joined.json()["reasons"]
    assert [r["code"] for r in reasons] == ["product_not_licensed"]
    assert "query:residents" in reasons[0]["message"]


@pytest.fixture(scope="module")
def small_budget(gateway, tmp_path_factory):
    """A gateway of its own whose policy gives demo-bank ε 2 on each dataset."""
    running = start_with_budget(gateway, tmp_path_factory.mktemp("join-budget"), 2)
    yield running
    stop_gateway(running)


def test_a_join_charges_both_accounts_or_neither(small_budget):
    one = asker(small_budget, "demo-bank")
    joined = f"SELECT r.district, COUNT(*) {JOIN} GROUP BY r.district"
    first = one(joined)
    assert first.status_code == 200, first.text
    budgets = first.json()["protections"]["differential_privacy"]["budgets"]
    assert {b["dataset"]: b["epsilon_spent"] for b in budgets} == {
        "enterprises": 0.5,
        "residents": 0.5,
    }
    assert all(b["epsilon_total"] == 2 for b in budgets)
    # spend what remains on residents alone
    for _ in range(3):
        alone = one("SELECT AVG(monthly_income) FROM residents")
        assert alone.status_code == 200, alone.text
    assert spent(small_budget) == {"enterprises": 500_000, "residents": 2_000_000}
    refused = one(joined)
    assert refused.status_code == 403, refused.text
    problem = refused.json()
    assert problem["code"] == "privacy_budget_exhausted"
    assert problem["dataset"] == "residents" and "on residents" in problem["detail"]
    assert problem["asked"] == 0.5 and problem["remaining"] == 0 and problem["budget"] == 2
    # neither: the enterprises account was not charged for the refused join
    assert spent(small_budget) == {"enterprises": 500_000, "residents": 2_000_000}
    still = one("SELECT SUM(tax_paid_last_year) FROM enterprises")
    assert still.status_code == 200, still.text
    assert spent(small_budget)["enterprises"] == 1_000_000
