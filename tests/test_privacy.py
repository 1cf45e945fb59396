"""The shared differential-privacy pieces: the dp obligation read fail-closed, and one
release's ε and δ split across its measurements so the whole stays within (ε, δ)."""

from __future__ import annotations

import opendp.prelude as dp
import pytest

from dataauth.accounts.privacy import Noise, NoiseTerms, Release, Spend, noise_terms, release
from dataauth.errors import Problem

BUDGET = {"key": "demo-bank|residents", "epsilon": 10}
FIRMS = {"key": "demo-bank|enterprises", "epsilon": 10}


@pytest.mark.parametrize(
    "terms",
    [
        {"mechanism": "laplace", "epsilon": 0, "budget": BUDGET},
        {"mechanism": "laplace", "epsilon": True, "budget": BUDGET},
        {"mechanism": "laplace", "epsilon": 0.5},
        {"mechanism": "laplace", "epsilon": 0.5, "budget": {"key": "k", "epsilon": -1}},
        {"mechanism": "gaussian", "epsilon": 0.5, "budget": BUDGET},
        {"mechanism": "gaussian", "epsilon": 0.5, "delta": 1, "budget": BUDGET},
        {"mechanism": "exponential", "epsilon": 0.5, "budget": BUDGET},
        {"mechanism": "laplace", "epsilon": 0.5, "budgets": []},
        {"mechanism": "laplace", "epsilon": 0.5, "budgets": BUDGET},
        {"mechanism": "laplace", "epsilon": 0.5, "budgets": [FIRMS, {"key": 1, "epsilon": 1}]},
        {"mechanism": "laplace", "epsilon": 0.5, "budgets": [BUDGET, BUDGET]},
        {"mechanism": "laplace", "epsilon": 0.5, "budget": BUDGET, "budgets": [FIRMS]},
        {"mechanism": "laplace", "epsilon": 0.5, "budget": BUDGET, "threshold_delta": 0},
        {"mechanism": "laplace", "epsilon": 0.5, "budget": BUDGET, "threshold_delta": 1},
        {"mechanism": "laplace", "epsilon": 0.5, "budget": BUDGET, "threshold_delta": True},
        {"mechanism": "laplace", "epsilon": 0.5, "budget": BUDGET, "threshold_delta": "1e-8"},
        "laplace",
    ],
)
def test_a_malformed_dp_obligation_refuses(terms):
    with pytest.raises(Problem) as raised:
        noise_terms({"dp": terms})
    assert raised.value.code == "obligation_malformed"


def test_no_dp_obligation_is_no_noise_and_laplace_has_no_delta():
    assert noise_terms({"min_group_size": 10}) is None
    terms = noise_terms({"dp": {"mechanism": "laplace", "epsilon": 1, "delta": 0.1,
                                "budget": BUDGET}})  # fmt: skip
    assert terms == NoiseTerms("laplace", 1.0, 0.0, (("demo-bank|residents", 10.0),))


def test_a_joins_obligation_names_every_account_and_reports_each():
    terms = noise_terms({"dp": {"mechanism": "laplace", "epsilon": 0.5,
                                "budgets": [FIRMS, BUDGET]}})  # fmt: skip
    assert terms is not None
    assert terms.accounts == (("demo-bank|enterprises", 10.0), ("demo-bank|residents", 10.0))
    noise = Noise(terms, (Spend(True, 0.5, 10.0), Spend(True, 2.5, 10.0)))
    _, report = release(noise, {"count": ([5.0], 5.0)})
    assert "budget" not in report
    assert report["budgets"] == [
        {"dataset": "enterprises", "epsilon_spent": 0.5, "epsilon_remaining": 9.5,
         "epsilon_total": 10.0},
        {"dataset": "residents", "epsilon_spent": 2.5, "epsilon_remaining": 7.5,
         "epsilon_total": 10.0},
    ]  # fmt: skip
    assert report["noise_scale"] == {"count": 10.0}


def test_gaussian_splits_delta_as_well_as_epsilon():
    """Three measurements at (ε/3, δ/3) each compose to (ε, δ): each one's own privacy
    map, at its noise scale, must stay within its share."""
    terms = NoiseTerms("gaussian", 0.9, 3e-6, (("demo-bank|residents", 10.0),))
    noise = Noise(terms, (Spend(True, 0.9, 10.0),))
    sensitivities = {"count": 1.0, "sum(x)": 50.0, "histogram": 1.0}
    noisy, report = release(noise, {k: ([5.0, 7.0], s) for k, s in sensitivities.items()})
    assert report["epsilon_per_measurement"] == pytest.approx(0.3)
    assert report["delta"] == 3e-6 and report["delta_per_measurement"] == pytest.approx(1e-6)
    dp.enable_features("contrib")
    domain = dp.vector_domain(dp.atom_domain(T=float, nan=False))
    for name, sensitivity in sensitivities.items():
        gaussian = dp.m.make_gaussian(domain, dp.l2_distance(T=float),
                                      scale=report["noise_scale"][name])  # fmt: skip
        approx = dp.c.make_fix_delta(dp.c.make_zCDP_to_approxDP(gaussian), 1e-6)
        epsilon, delta = approx.map(sensitivity)
        assert epsilon <= 0.3 * (1 + 1e-6) and delta <= 1e-6
        assert len(noisy[name]) == 2


def noise_of(mechanism: str, delta: float = 0.0, threshold_delta: float | None = 1e-8) -> Noise:
    terms = NoiseTerms(mechanism, 0.5, delta, (("demo-bank|residents", 10.0),), threshold_delta)
    return Noise(terms, (Spend(True, 0.5, 10.0),))


@pytest.mark.parametrize(("mechanism", "delta"), [("laplace", 0.0), ("gaussian", 1e-6)])
@pytest.mark.parametrize("rows", [1, 5])
def test_the_selection_threshold_is_the_least_that_meets_its_delta(mechanism, delta, rows):
    """OpenDP's own privacy map, for a subject who moves ``rows`` rows in as many groups:
    at the threshold the selection stays within its share of ε and within δ; one under
    it, it would not (unless k is the binding floor)."""
    one = Release(noise_of(mechanism, delta), 2)
    one.select("count(*)", {"a": 1000}, rows, 10)
    threshold = one.selections["count(*)"]["threshold"]
    assert one.selections["count(*)"]["delta"] == 1e-8 and threshold > 10
    dp.enable_features("contrib")
    domain = dp.map_domain(dp.atom_domain(T=str), dp.atom_domain(T=int))
    scale = one.scales["count(*)"]

    def tail(at: int) -> float:
        if mechanism == "laplace":
            metric = dp.l01inf_distance(dp.absolute_distance(T=int))
            made = dp.m.make_laplace_threshold(domain, metric, scale=scale, threshold=at)
            epsilon, tail = made.map((rows, rows, rows))
            assert epsilon <= 0.25 * (1 + 1e-6)
            return tail
        metric = dp.l02inf_distance(dp.absolute_distance(T=int))
        made = dp.m.make_gaussian_threshold(domain, metric, scale=scale, threshold=at)
        return made.map((rows, rows, rows))[1]

    assert tail(threshold) <= 1e-8 < tail(threshold - 1)


def test_a_group_of_one_is_not_selected_and_a_large_one_is():
    """P(a one-subject group clears the threshold) ≤ δ: over 200 tries, none does."""
    for _ in range(200):
        one = Release(noise_of("laplace"), 1)
        selected = one.select("count(*)", {'["a"]': 1, '["b"]': 5000, '["c"]': 0}, 1, 10)
        assert set(selected) == {'["b"]'} and abs(selected['["b"]'] - 5000) < 200


def test_a_selection_without_its_delta_refuses():
    with pytest.raises(Problem) as raised:
        Release(noise_of("laplace", threshold_delta=None), 1).select("count(*)", {"a": 50}, 1, 10)
    assert raised.value.code == "obligation_malformed"
