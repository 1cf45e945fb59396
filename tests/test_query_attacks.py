"""Attacks on aggregate queries: differencing, injection, hostile and random SQL."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from test_query import ask, direct, entry

pytestmark = pytest.mark.slow


def target(gateway):
    """A resident whose name no one else has, and their monthly income."""
    return direct(
        gateway,
        "SELECT name, MIN(monthly_income) FROM residents GROUP BY name HAVING COUNT(*) = 1 "
        "ORDER BY MIN(monthly_income) DESC LIMIT 1",
    )[0]


def test_differencing_two_sums_does_not_reveal_one_income(client, auth, gateway):
    name, income = target(gateway)
    everyone = "SELECT SUM(monthly_income) FROM residents"
    but_one = f"SELECT SUM(monthly_income) FROM residents WHERE name <> '{name}'"
    # without protection the attack works: the two sums differ by exactly that income
    assert direct(gateway, everyone)[0][0] - direct(gateway, but_one)[0][0] == income
    errors = []
    for _ in range(6):
        first, second = ask(client, auth, everyone), ask(client, auth, but_one)
        assert first.status_code == second.status_code == 200, second.text
        noise = second.json()["protections"]["differential_privacy"]
        # ε 0.5 over two measurements (the cohort's count, which decides whether it is
        # released, and the sum): 50,000 / 0.25
        assert noise["noise_scale"]["sum(monthly_income)"] == 200000
        errors.append(abs(first.json()["rows"][0][0] - second.json()["rows"][0][0] - income))
        assert name not in second.text
    # each guess is off by the difference of two Laplace draws of scale 200,000: all six
    # within 10,000 of the truth would happen about once in a hundred thousand runs
    assert max(errors) > 10_000, errors


def test_differencing_counts_by_suppression_answers_alike(client, auth, gateway):
    """Present or absent, a one-subject cohort is refused in the same words."""
    (name,) = direct(gateway, "SELECT name FROM enterprises ORDER BY credit_code LIMIT 1")[0]
    there = ask(client, auth, f"SELECT COUNT(*) FROM enterprises WHERE name = '{name}'")
    absent = ask(client, auth, "SELECT COUNT(*) FROM enterprises WHERE name = '没有这家公司'")
    assert there.status_code == absent.status_code == 403
    there, absent = there.json(), absent.json()
    assert there.pop("audit")["entry"] != absent.pop("audit")["entry"]
    assert there == absent and there["code"] == "cohort_too_small"


ON = "e.legal_representative_id = r.resident_id"
HOSTILE = [
    ("SELECT * FROM residents", 422, "select_star"),
    ("SELECT COUNT(*) FROM residents; DROP TABLE residents", 422, "multiple_statements"),
    ("SELECT COUNT(*) FROM residents WHERE district = '' OR 1=1 --'", 422, "sql_comment"),
    ("SELECT COUNT(*) FROM residents /* hi */", 422, "sql_comment"),
    ("SELECT COUNT(*) FROM residents WHERE district = 'x' OR '1' = '1'", 422,
     "construct_not_allowed"),
    ("SELECT COUNT(*) FROM (SELECT * FROM residents)", 422, "subquery_not_allowed"),
    ("SELECT COUNT(*) FROM residents WHERE monthly_income IN "
     "(SELECT monthly_income FROM residents)", 422, "subquery_not_allowed"),
    ("SELECT SUM(length(name)) FROM residents", 422, "function_not_allowed"),
    ("SELECT COUNT(*) FROM residents WHERE upper(name) = 'X'", 422, "function_not_allowed"),
    ("SELECT load_extension('x') FROM residents", 422, "function_not_allowed"),
    ("SELECT COUNT(*) FROM residents r JOIN enterprises e ON r.district = e.district", 422,
     "join_not_declared"),
    (f"SELECT COUNT(*) FROM enterprises e LEFT JOIN residents r ON {ON}", 422, "join_not_allowed"),
    (f"SELECT COUNT(*) FROM enterprises e FULL OUTER JOIN residents r ON {ON}", 422,
     "join_not_allowed"),
    ("SELECT COUNT(*) FROM enterprises e CROSS JOIN residents r", 422, "join_not_allowed"),
    ("SELECT COUNT(*) FROM enterprises NATURAL JOIN residents", 422, "join_not_allowed"),
    ("SELECT COUNT(*) FROM enterprises JOIN residents USING (district)", 422, "join_not_allowed"),
    ("SELECT COUNT(*) FROM enterprises JOIN residents", 422, "join_not_allowed"),
    (f"SELECT COUNT(*) FROM enterprises e JOIN residents r ON {ON} "
     "JOIN enterprises f ON f.legal_representative_id = r.resident_id", 422, "join_not_allowed"),
    (f"SELECT COUNT(*) FROM enterprises e JOIN residents r ON {ON} AND r.district = '天河区'", 422,
     "join_condition_not_allowed"),
    ("SELECT COUNT(*) FROM enterprises e JOIN residents r ON 1 = 1", 422,
     "join_condition_not_allowed"),
    ("SELECT COUNT(*) FROM enterprises e JOIN residents r "
     "ON e.legal_representative_id > r.resident_id", 422, "join_condition_not_allowed"),
    ("SELECT COUNT(*) FROM enterprises e JOIN residents r ON e.credit_code = r.resident_id", 422,
     "join_not_declared"),
    ("SELECT COUNT(*) FROM residents a JOIN residents b ON a.resident_id = b.resident_id", 422,
     "join_not_declared"),
    (f"SELECT COUNT(*) FROM enterprises e JOIN residents e ON {ON}", 422, "ambiguous_dataset"),
    (f"SELECT district, COUNT(*) FROM enterprises e JOIN residents r ON {ON} GROUP BY district",
     422, "ambiguous_column"),
    (f"SELECT COUNT(*) FROM enterprises e JOIN residents r ON {ON} WHERE x.district = 'a'", 422,
     "unknown_dataset"),
    ("SELECT COUNT(*) FROM enterprises e JOIN (SELECT * FROM residents) r "
     "ON e.legal_representative_id = r.resident_id", 422, "subquery_not_allowed"),
    (f"SELECT COUNT(*) FROM enterprises e JOIN residents r ON {ON} "
     "WHERE r.resident_id = '440115195011083222'", 403, "column_use_not_allowed"),
    (f"SELECT e.legal_representative_id, COUNT(*) FROM enterprises e JOIN residents r ON {ON} "
     "GROUP BY e.legal_representative_id", 403, "column_level_not_granted"),
    (f"SELECT COUNT(r.resident_id) FROM enterprises e JOIN residents r ON {ON}", 403,
     "column_use_not_allowed"),
    (f"SELECT r.district, MAX(r.monthly_income) FROM enterprises e JOIN residents r ON {ON} "
     "GROUP BY r.district", 403, "noise_unavailable"),
    ("SELECT COUNT(*) FROM residents, enterprises", 422, "join_not_allowed"),
    ("SELECT COUNT(*) FROM sqlite_master", 422, "unknown_dataset"),
    ("SELECT COUNT(*) FROM main.residents", 422, "unknown_dataset"),
    ("SELECT COUNT(nickname) FROM residents", 422, "unknown_column"),
    ("SELECT COUNT(*) FROM residents LIMIT 1", 422, "construct_not_allowed"),
    ("SELECT COUNT(*) FROM residents ORDER BY 1", 422, "construct_not_allowed"),
    ("SELECT district, COUNT(*) FROM residents GROUP BY district HAVING COUNT(*) < 5", 422,
     "construct_not_allowed"),
    ("WITH r AS (SELECT * FROM residents) SELECT COUNT(*) FROM r", 422, "subquery_not_allowed"),
    ("SELECT COUNT(DISTINCT district) FROM residents", 422, "construct_not_allowed"),
    ("SELECT SUM(monthly_income + 1) FROM residents", 422, "construct_not_allowed"),
    ("SELECT AVG(name) FROM residents", 422, "not_numeric"),
    ("SELECT COUNT(*) FROM residents WHERE name LIKE '陈%'", 422, "construct_not_allowed"),
    ("SELECT COUNT(*) FROM residents WHERE monthly_income > social_insurance_months", 422,
     "construct_not_allowed"),
    ("SELECT COUNT(*) FROM residents WHERE monthly_income = '5000'", 422,
     "literal_type_mismatch"),
    ("SELECT COUNT(*) FROM residents WHERE birth_date < 'yesterday'", 422,
     "literal_type_mismatch"),
    ("SELECT COUNT(*) FROM residents WHERE name IS NULL", 422, "construct_not_allowed"),
    ("SELECT district FROM residents GROUP BY district", 422, "no_aggregate"),
    ("SELECT district, COUNT(*) FROM residents", 422, "ungrouped_column"),
    ("SELECT COUNT(*) FROM residents UNION SELECT COUNT(*) FROM enterprises", 422,
     "not_a_select"),
    ("DELETE FROM residents", 422, "not_a_select"),
    ("PRAGMA table_info(residents)", 422, "not_a_select"),
    ("SELECT COUNT(*) FROM", 422, "sql_syntax"),
    ("SELECT name, COUNT(*) FROM residents GROUP BY name", 403, "column_use_not_allowed"),
    ("SELECT COUNT(*) FROM residents WHERE resident_id = '440115195011083222'", 403,
     "column_use_not_allowed"),
    ("SELECT birth_date, COUNT(*) FROM residents GROUP BY birth_date", 403,
     "column_use_not_allowed"),
    ("SELECT MAX(monthly_income) FROM residents", 403, "noise_unavailable"),
]  # fmt: skip


@pytest.mark.parametrize(("sql", "status", "code"), HOSTILE)
def test_hostile_sql_is_refused_with_its_reason(client, auth, sql, status, code):
    response = ask(client, auth, sql)
    assert response.status_code == status, response.text
    problem = response.json()
    if status == 403:
        assert problem["code"] == "policy_denied"
        assert code in {r["code"] for r in problem["reasons"]}
    else:
        assert problem["code"] == code, problem
        assert "entry" in problem["audit"]  # refused before a decision: a rejected entry
    for literal in ("440115195011083222", "陈%", "yesterday"):
        assert literal not in response.text


def test_a_refused_decision_is_audited_without_the_value(client, auth):
    response = ask(client, auth, HOSTILE[-3][0])
    recorded = entry(client, auth, response.json()["audit"]["entry"])
    assert recorded["outcome"] == "denied"
    assert "440115195011083222" not in json.dumps(recorded)


FRAGMENTS = [
    "SELECT", "COUNT(*)", "SUM(", "AVG(", "MIN(", "MAX(", "monthly_income", "district", "name",
    ")", "(", ",", "FROM", "residents", "enterprises", "WHERE", "GROUP BY", "AND", "OR", "NOT",
    "=", "<>", "<", ">=", "IN", "BETWEEN", "'x'", "'2000-01-01'", "1", "-5", "1e308", "*",
    ";", "--", "/*", "*/", "'", '"', "UNION", "SELECT 1", "HAVING", "ORDER BY", "LIMIT",
    "NULL", "sqlite_master", "AS", "x", "\\", "\x00", "?", ":p", "$1", "JOIN", "ON",
    "LEFT", "e", "r", "e.legal_representative_id", "r.resident_id", "r.district", "USING",
]  # fmt: skip


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(st.one_of(
    st.text(min_size=1, max_size=200),
    st.lists(st.sampled_from(FRAGMENTS), min_size=1, max_size=25).map(" ".join),
))  # fmt: skip
def test_random_sql_is_never_a_server_error(client, auth, sql):
    response = ask(client, auth, sql)
    assert response.status_code < 500, (sql, response.text)
    if response.status_code >= 400:
        assert response.headers["content-type"].startswith("application/problem+json")
