"""Attack class 2 of issue 11, the suppression oracle, over HTTP against the demo gateway
with its shipped policy.

Before: which groups were released, and ``protections.suppressed_groups``, were decided
on true counts, noised answer or not, so a filter that singles out one subject turned
"is a group there, or suppressed?" into an exact yes or no about them. Each test below
runs the attack as it stood (the "before" answers computed on the department's data,
by the rule the gateway used to apply) and then through the gateway, and states what
the attacker is left with. Every assertion holds but with probability at most δ per
try (the policy's ``threshold_delta``, 1e-8), never by luck of the noise.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from test_models import FEATURES, MODEL, approve, run, submit, variant
from test_query import K, ask, direct

pytestmark = pytest.mark.slow

STEPS = 16  # ε 8 at 0.5 a query: within every default budget of the demo
DELTA = 1e-8  # the shipped policy's threshold_delta
JOIN = "FROM enterprises e JOIN residents r ON e.legal_representative_id = r.resident_id"


def bisect(says_at_least, low: float, high: float, steps: int = STEPS) -> tuple[float, float]:
    """The interval a bisection ends in, asking ``says_at_least(T)``: "is it >= T?"."""
    for _ in range(steps):
        middle = (low + high) / 2
        low, high = (middle, high) if says_at_least(middle) else (low, middle)
    return low, high


def old_rule(count: int) -> bool:
    """What the old answer told of a filtered group of ``count`` rows: a group under k was
    counted in ``suppressed_groups``, one of k or more was shown; either way, whether
    the group existed at all was exact."""
    return count > 0


def present(body: dict) -> bool:
    """The attacker's reading of an answer: did any group show, or any count of groups
    left out say that one existed?"""
    return bool(body.get("rows")) or body.get("protections", {}).get("suppressed_groups", 0) > 0


def assert_no_exact_count(body: dict) -> None:
    protections = body["protections"]
    assert "suppressed_groups" not in protections
    selection = protections["differential_privacy"]["partition_selection"]
    assert all(s["delta"] == DELTA and s["threshold"] >= K for s in selection.values())


def bisect_on_presence(client, auth, query, high: float) -> tuple[list[dict], float, float]:
    """The attacker's bisection on whether any group of ``query(threshold)`` appears:
    every answer (none carrying an exact count), and the interval it ends in."""
    answers: list[dict] = []

    def after(threshold: float) -> bool:
        response = ask(client, auth, query(threshold))
        assert response.status_code == 200, response.text
        body = response.json()
        assert_no_exact_count(body)
        answers.append(body)
        return present(body)

    low, top = bisect(after, 0, high)
    return answers, low, top


def resident(gateway) -> tuple[str, str, int]:
    """A resident singled out by name and birth date, with an income well inside the
    range (so the bisection's corner, [0, 50,000 / 2^16], is far from it)."""
    return direct(
        gateway,
        "SELECT name, birth_date, MIN(monthly_income) FROM residents "
        "GROUP BY name, birth_date HAVING COUNT(*) = 1 AND MIN(monthly_income) >= 10000 "
        "ORDER BY name LIMIT 1",
    )[0]


def test_income_bisection_through_group_presence_gets_nothing(client, auth, gateway):
    """``WHERE name = … AND birth_date = … AND monthly_income >= T GROUP BY district``.

    Before: 16 queries bracket the income to 50,000 / 2^16 (under one yuan): the exact
    income. After: the query is noised, the one-subject group must beat a threshold on
    its noisy count (P ≤ δ per query), and no count of groups left out is shown; all 16
    answers are alike whatever T, so the attacker is left with the prior, [0, 50,000],
    and the bisection ends in its corner, nowhere near the income.
    """
    name, born, income = resident(gateway)
    where = f"name = '{name}' AND birth_date = '{born}' AND monthly_income >= "

    def before(threshold: float) -> bool:
        count = direct(gateway, f"SELECT COUNT(*) FROM residents WHERE {where}{threshold}")
        return old_rule(count[0][0])

    low, high = bisect(before, 0, 50_000)
    assert low <= income < high and high - low < 1

    answers, low, high = bisect_on_presence(
        client,
        auth,
        lambda t: f"SELECT district, COUNT(*) FROM residents WHERE {where}{t} GROUP BY district",
        50_000,
    )
    assert all(body["rows"] == [] for body in answers)
    assert not low <= income < high and high < 1  # the corner: the answers said nothing
    assert name not in json.dumps(answers, ensure_ascii=False)


def test_income_bisection_through_the_join_gets_nothing(client, auth, gateway):
    """From a firm's public name to its legal representative's income, through the
    declared join: ``WHERE e.name = … AND r.monthly_income >= T GROUP BY r.district``.

    Before: 16 queries give the representative's income to under one yuan. After: the
    group of one representative (at most five rows) must beat a threshold set for five
    rows (P ≤ δ per query); nothing shows, nothing is counted: the attacker keeps the
    prior, [0, 50,000].
    """
    firm, income = direct(
        gateway,
        "SELECT MIN(e.name), MIN(r.monthly_income) "
        f"{JOIN} GROUP BY e.name HAVING COUNT(*) = 1 AND MIN(r.monthly_income) >= 10000 "
        "ORDER BY e.name LIMIT 1",
    )[0]
    where = f"e.name = '{firm}' AND r.monthly_income >= "

    def before(threshold: float) -> bool:
        return old_rule(direct(gateway, f"SELECT COUNT(*) {JOIN} WHERE {where}{threshold}")[0][0])

    low, high = bisect(before, 0, 50_000)
    assert low <= income < high and high - low < 1

    answers, low, high = bisect_on_presence(
        client,
        auth,
        lambda t: f"SELECT r.district, COUNT(*) {JOIN} WHERE {where}{t} GROUP BY r.district",
        50_000,
    )
    assert all(b["protections"]["differential_privacy"]["contributions_bounded_to"] == 5
               for b in answers)  # fmt: skip
    assert all(body["rows"] == [] for body in answers)
    assert not low <= income < high and high < 1
    # the threshold is set for a person who moves five rows: far above five
    threshold = answers[0]["protections"]["differential_privacy"]["partition_selection"]
    assert threshold["count(*)"]["threshold"] > 50


def test_the_exact_capital_oracle_on_one_firm_is_noised(client, auth, gateway):
    """Enterprises' ``name`` is L1 and ``registered_capital`` L2: exact answers.
    ``WHERE name = … AND registered_capital >= T GROUP BY district``, k-suppressed on true
    counts, was an exact oracle on one firm's capital.

    Before: 16 exact queries bracket the capital to 10^8 / 2^16 (1,526 yuan), 27 to the
    yuan. After: comparing an L2 column is above ``exact_levels`` (L1), so the
    query is noised and its groups selected on noisy counts: the attacker keeps the
    prior, [0, 10^8]. An exact answer that compares only public columns still says
    nothing of how many groups it left out, so grouping two named firms by capital no
    longer tells whether they share one.
    """
    rows = direct(
        gateway,
        "SELECT name, MIN(registered_capital) FROM enterprises GROUP BY name "
        "HAVING COUNT(*) = 1 AND MIN(registered_capital) >= 100000 ORDER BY name LIMIT 2",
    )
    (firm, capital), (other, _) = rows
    where = f"name = '{firm}' AND registered_capital >= "

    def before(threshold: float) -> bool:
        count = direct(gateway, f"SELECT COUNT(*) FROM enterprises WHERE {where}{threshold}")
        return old_rule(count[0][0])

    low, high = bisect(before, 0, 100_000_000)
    assert low <= capital < high and high - low < 1_600

    answers, low, high = bisect_on_presence(
        client,
        auth,
        lambda t: f"SELECT district, COUNT(*) FROM enterprises WHERE {where}{t} GROUP BY district",
        100_000_000,
    )
    assert all(body["rows"] == [] for body in answers)
    assert not low <= capital < high and high < 1_600

    # an L2 label under a filter is noised too: grouping two named firms by capital
    # tells nothing of whether they share one (and no count of groups left out)
    pair = ask(
        client,
        auth,
        "SELECT registered_capital, COUNT(*) FROM enterprises "
        f"WHERE name IN ('{firm}', '{other}') GROUP BY registered_capital",
    ).json()
    assert pair["rows"] == []
    assert pair["protections"]["differential_privacy"]["partition_selection"]
    assert_no_exact_count(pair)


def test_a_noised_cohort_without_group_by_is_decided_on_its_noisy_count(client, auth, gateway):
    """A noised query without GROUP BY used to be refused on its true count, so a cohort
    of k − 1 known residents OR the target-if-income-≥-T answered exactly (refused or
    not): a bisection to the yuan in 16 queries.

    After: the cohort is released or refused on its noisy count, against a threshold
    (36 here) far above k: at the old edge (k − 1 + 1 subjects) every answer is a
    refusal (P ≤ δ each), whatever T, and a cohort of one is refused in the very words
    of a cohort of none. To make an answer depend on the target at all, the attacker
    must move the edge up to the threshold, where each answer is ε-DP (ε 0.5 a query:
    a likelihood ratio of at most e^0.5 between "income ≥ T" and not).
    """
    name, born, income = resident(gateway)
    others = [row[0] for row in direct(
        gateway,
        "SELECT name FROM residents GROUP BY name HAVING COUNT(*) = 1 AND name <> ? "
        f"ORDER BY name LIMIT {K - 1}",
        [name],
    )]  # fmt: skip
    known = ", ".join(f"'{other}'" for other in others)

    def cohort(threshold: float) -> str:
        return (
            f"WHERE name IN ({known}) OR (name = '{name}' AND birth_date = '{born}' "
            f"AND monthly_income >= {threshold})"
        )

    def before(threshold: float) -> bool:
        (count,) = direct(gateway, f"SELECT COUNT(*) FROM residents {cohort(threshold)}")[0]
        return count >= K  # answered, not refused: the old rule at the edge

    low, high = bisect(before, 0, 50_000)
    assert low <= income < high and high - low < 1

    refusals = []

    def after(threshold: float) -> bool:
        response = ask(client, auth, f"SELECT COUNT(*) FROM residents {cohort(threshold)}")
        refusals.append(response)
        return response.status_code == 200

    low, high = bisect(after, 0, 50_000)
    assert not low <= income < high and high < 1
    bodies = []
    for response in refusals:
        assert response.status_code == 403, response.text
        body = response.json()
        body.pop("audit")
        bodies.append(body)
    assert bodies[0]["code"] == "cohort_too_small" and "noisy count is under" in bodies[0]["detail"]
    assert all(body == bodies[0] for body in bodies)

    one = f"SELECT COUNT(*) FROM residents WHERE name = '{name}' AND birth_date = '{born}'"
    none = f"SELECT COUNT(*) FROM residents WHERE name = '{name}' AND monthly_income < 0"
    for sql in (one, none) * 4:
        response = ask(client, auth, sql)
        assert response.status_code == 403, response.text
        body = response.json()
        body.pop("audit")
        assert body == bodies[0]


@pytest.fixture(scope="module")
def credit_model(gateway):
    """The demo credit model (L3 features: noised cohorts), submitted and approved."""
    import httpx

    def auth(operator="demo-bank", **kwargs):
        return {"Authorization": f"Bearer {gateway.token(operator, **kwargs)}"}

    with httpx.Client(base_url=gateway.url, timeout=60) as client:
        manifest = variant(title="the suppression oracle, tried on cohorts")
        submitted = submit(client, auth, manifest=manifest)
        assert submitted.status_code in (200, 201), submitted.text
        model_id = submitted.json()["id"]
        approved = approve(client, auth, model_id, max_runs=1000)
        assert approved.status_code == 200, approved.text
    return model_id


def test_a_model_cohort_of_one_is_refused_like_a_cohort_of_none(
    client, auth, gateway, credit_model
):
    """A cohort whose conditions single out one resident (district, income and months
    equal to theirs), beside one that selects nobody.

    Before: refused on the true size, so at the k edge the refusal was an exact bit.
    After: decided on the noisy count against a threshold of at least k (P ≤ δ that a
    cohort of one passes): both are refused, in the same words, in 8 of 8 tries each;
    the attacker learns nothing of whether the resident matches.
    """
    (key, district, income, months, _) = direct(
        gateway,
        f"SELECT resident_id, district, {', '.join(FEATURES)} FROM residents "
        "GROUP BY district, monthly_income, social_insurance_months "
        "HAVING COUNT(*) = 1 AND MIN(monthly_income) >= 1000 "
        "ORDER BY resident_id LIMIT 1",
    )[0]
    one = [
        {"column": "district", "op": "eq", "value": district},
        {"column": "monthly_income", "op": "eq", "value": income},
        {"column": "social_insurance_months", "op": "eq", "value": months},
    ]
    none = [*one[:2], {"column": "social_insurance_months", "op": "lt", "value": 0}]
    bodies = []
    for where in (one, none) * 8:
        response = run(client, auth, credit_model, cohort={"where": where})
        assert response.status_code == 403, response.text
        body = response.json()
        body.pop("audit")
        bodies.append(body)
    assert bodies[0]["code"] == "cohort_too_small" and "noisy count" in bodies[0]["detail"]
    assert all(body == bodies[0] for body in bodies)
    assert key not in json.dumps(bodies) and str(income) not in json.dumps(bodies)


def test_a_histogram_bin_around_one_score_never_shows(client, auth, gateway, credit_model):
    """A large cohort (one district) with a histogram whose middle bin is drawn tightly
    around one resident's score, so it holds that resident (and any exact twins) only.

    Before: bins were shown when their noisy count reached k (20): asked with the count
    and mean (noise scale 6), a bin of one showed about once in fifty tries
    (0.5·e^(−19/6)), its noisy count with it. After: each bin must reach
    the selection's threshold on its noisy count (P ≤ δ for a bin of a few): the middle
    bin is left out in 6 of 6 tries, while the wide bins show.
    """
    import onnxruntime as ort

    (district, *features) = direct(
        gateway,
        f"SELECT district, {', '.join(FEATURES)} FROM residents "
        "WHERE district = (SELECT MIN(district) FROM residents) ORDER BY resident_id LIMIT 1",
    )[0]
    session = ort.InferenceSession(MODEL, providers=["CPUExecutionProvider"])
    (score,) = session.run(["probabilities"], {"X": np.array([features], dtype=np.float32)})[0][
        :, 1
    ]
    score = float(score)
    bins = [0.0, score - 1e-4, score + 1e-4, 1.0]
    cohort = {
        "where": [{"column": "district", "op": "eq", "value": district}],
        "statistics": ["histogram"],
        "bins": bins,
    }
    for _ in range(6):
        response = run(client, auth, credit_model, cohort=cohort)
        assert response.status_code == 200, response.text
        histogram = response.json()["cohort"]["histogram"]
        assert histogram["counts"][1] is None
        assert histogram["counts"][0] is not None or histogram["counts"][2] is not None
        assert histogram["suppressed_under"] > 20  # the threshold, not k


@pytest.fixture(scope="module")
def default_budget(gateway, tmp_path_factory):
    """A gateway of its own where demo-bank has the shipped default account, ε 10."""
    from conftest import start_with_budget, stop_gateway

    running = start_with_budget(gateway, tmp_path_factory.mktemp("default-budget"), 10)
    yield running
    stop_gateway(running)


def test_averaging_a_noisy_count_is_bounded_by_the_account(gateway, default_budget):
    """The best attack left: a large cohort that holds the target if and only if the
    answer is yes (``district = D OR (target AND monthly_income >= T)``), asked until
    the account runs out, its noisy counts averaged; the attacker is even given the
    rest of the cohort's true size.

    With ε 10 the account answers 20 such queries, each count with Laplace noise of
    scale 2: the average is off by a standard error of 2·√2 / √20 ≈ 0.63 against a
    signal of 1, so the one bit "income ≥ T" is guessed wrong about 21% of the time,
    and the 21st query is refused. The income to the yuan (16 bits) would need about
    ε 1,400.
    """
    import httpx

    name, born, income = resident(gateway)
    (home,) = direct(
        gateway, "SELECT district FROM residents WHERE name = ? AND birth_date = ?", [name, born]
    )[0]
    (other, base) = direct(
        gateway,
        "SELECT district, COUNT(*) FROM residents WHERE district <> ? GROUP BY district "
        "ORDER BY district LIMIT 1",
        [home],
    )[0]
    sql = (
        f"SELECT COUNT(*) FROM residents WHERE district = '{other}' OR (name = '{name}' "
        f"AND birth_date = '{born}' AND monthly_income >= {income})"
    )
    headers = {"Authorization": f"Bearer {default_budget.token('demo-bank')}"}
    counts, scales = [], set()
    with httpx.Client(base_url=default_budget.url, timeout=60, headers=headers) as client:
        while (
            response := client.post("/v1/query", json={"purpose": "credit", "sql": sql})
        ).status_code == 200:
            body = response.json()
            counts.append(body["rows"][0][0])
            scales.add(body["protections"]["differential_privacy"]["noise_scale"]["count(*)"])
            assert len(counts) <= 20, "the account answered more than ε 10 allows"
    assert response.status_code == 403 and response.json()["code"] == "privacy_budget_exhausted"
    assert len(counts) == 20 and scales == {2.0}
    standard_error = 2.0 * 2**0.5 / len(counts) ** 0.5
    assert standard_error > 0.6  # against a signal of one person
    estimate = float(np.mean(counts)) - base  # the attacker's reading of the bit (truth: 1)
    assert abs(estimate - 1) < 12 * standard_error  # noise, not a blunder: within bounds
