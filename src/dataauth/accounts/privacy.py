"""Differential privacy for aggregate answers: OpenDP noise, and each operator's ε ledger.

Noise: every noisy release is one vector (a value per group) through OpenDP's Laplace
or Gaussian measurement. One subject is one row, so adding or removing a subject moves
one group's count by 1 and one group's clamped sum by at most max(|low|, |high|) of the
column's declared bounds: that is the sensitivity, over the whole vector (the groups
are disjoint). OpenDP's privacy map checks that the scale gives no more than the ε asked.

Which groups appear (partition selection): where a noised answer's groups come from the
data (GROUP BY labels, a cohort that may be empty), the set released is itself decided
on noisy counts, by OpenDP's thresholded mechanism (``make_laplace_threshold``, or
``make_gaussian_threshold``): a group is released only if its noisy count reaches a
threshold, and the released count is that noisy count. The threshold is the larger of
the policy's k and the least one at which a group that exists for one subject alone
appears with probability at most the policy's ``threshold_delta`` (OpenDP's privacy map
says it; it grows with the noise scale and with log(1/δ)). No exact count, and no
number of groups left out, is released beside it.

One query or cohort is several measurements (the selection's count, a sum, a
histogram): ε and δ are split evenly across them, and each partition selection adds its
``threshold_delta``, so the release as a whole is (ε, δ)-DP by basic composition, with
δ = the Gaussian δ (if any) + the number of selections times ``threshold_delta``.

Budget: an operator's ε spent on a dataset is one row, charged under the gateway
database's write lock (``store.statements.Writer``), so concurrent requests and several
gateway processes never spend it twice. It is kept in millionths of ε as an integer:
sums of floats would drift. Aggregate queries and model cohorts over one dataset spend
from the same account: both release facts about the same subjects. δ is not kept in the
ledger: every noised release carries the policy's fixed δ, so an account of total ε
admits at most total / ε-per-release releases, and δ over them all is at most that
number times the release's δ (the policy authors' guide works an example).

A release over a join reads the subjects of both datasets, so it charges the operator's
account on each (the obligation's ``budgets``), in one transaction: both or neither.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import opendp.prelude as dp
from sqlalchemy import Engine, text
from sqlmodel import Field, SQLModel

from dataauth.errors import Problem, forbidden
from dataauth.store.statements import Writer, prepare

dp.enable_features("contrib")

MICRO = 1_000_000


class PrivacyBudget(SQLModel, table=True):
    __tablename__ = "privacy_budget"

    key: str = Field(primary_key=True)
    """operator|dataset"""
    spent: int
    """ε spent, in millionths."""


@lru_cache(maxsize=256)
def _measurement(
    mechanism: str, sensitivity: float, epsilon: float, delta: float
) -> tuple[Any, float]:
    """The OpenDP measurement for one vector release at ε (and δ for Gaussian), and its
    noise scale."""
    domain = dp.vector_domain(dp.atom_domain(T=float, nan=False))
    if mechanism == "laplace":
        scale = sensitivity / epsilon
        measurement = dp.m.make_laplace(domain, dp.l1_distance(T=float), scale=scale)
        if measurement.map(sensitivity) > epsilon * (1 + 1e-9):
            raise ValueError("the Laplace scale does not meet the ε asked")
        return measurement, scale

    def gaussian(scale: float) -> Any:
        zcdp = dp.m.make_gaussian(domain, dp.l2_distance(T=float), scale=scale)
        return dp.c.make_fix_delta(dp.c.make_zCDP_to_approxDP(zcdp), delta)

    scale = dp.binary_search_param(gaussian, d_in=sensitivity, d_out=(epsilon, delta))
    return dp.m.make_gaussian(domain, dp.l2_distance(T=float), scale=scale), scale


def add_noise(
    values: list[float], mechanism: str, sensitivity: float, epsilon: float, delta: float = 0.0
) -> tuple[list[float], float]:
    """The values with noise for ε (a vector over the groups), and the noise scale."""
    measurement, scale = _measurement(mechanism, float(sensitivity), float(epsilon), float(delta))
    if not values:
        return [], scale
    return list(measurement([float(v) for v in values])), scale


@lru_cache(maxsize=256)
def _threshold(
    mechanism: str, rows: int, epsilon: float, delta: float, threshold_delta: float, floor: int
) -> tuple[Any, float, int]:
    """The thresholded measurement over a map of counts (group → count), its noise scale
    and its threshold: the least at or above ``floor`` (k) whose privacy map, for a
    subject who moves ``rows`` rows in as many groups, stays within ε at
    ``threshold_delta`` (plus the Gaussian δ for Gaussian noise)."""
    domain = dp.map_domain(dp.atom_domain(T=str), dp.atom_domain(T=int))
    d_in = (rows, rows, rows)  # groups touched, total and largest change of one subject
    if mechanism == "laplace":
        laplace = dp.l01inf_distance(dp.absolute_distance(T=int))
        scale = rows / epsilon

        def make(threshold: int) -> Any:
            return dp.m.make_laplace_threshold(domain, laplace, scale=scale, threshold=threshold)

        def fits(threshold: int) -> bool:
            spent, tail = make(threshold).map(d_in)
            return spent <= epsilon * (1 + 1e-9) and tail <= threshold_delta

    else:
        gauss = dp.l02inf_distance(dp.absolute_distance(T=int))
        scale = _measurement("gaussian", float(rows), epsilon, delta)[1]

        def make(threshold: int) -> Any:
            return dp.m.make_gaussian_threshold(domain, gauss, scale=scale, threshold=threshold)

        def fits(threshold: int) -> bool:
            measurement = make(threshold)
            if measurement.map(d_in)[1] > threshold_delta:
                return False
            approx = dp.c.make_fix_delta(
                dp.c.make_zCDP_to_approxDP(measurement), delta + threshold_delta
            )
            return approx.map(d_in)[0] <= epsilon * (1 + 1e-9)

    threshold = floor if fits(floor) else dp.binary_search(fits, bounds=(floor, None), T=int)
    return make(threshold), scale, threshold


@dataclass(frozen=True)
class Spend:
    allowed: bool
    spent: float
    """ε spent after this charge (or before it, when refused)."""
    total: float

    @property
    def remaining(self) -> float:
        return round(max(self.total - self.spent, 0.0), 6)


class PrivacyBudgets:
    """Atomic ε accounts, one per operator and dataset."""

    def __init__(self, engine: Engine) -> None:
        self._writer = Writer(engine, "privacy_budget")
        self._read = prepare(engine, text("SELECT spent FROM privacy_budget WHERE key = :key"))
        self._write = prepare(
            engine,
            text(
                "INSERT INTO privacy_budget (key, spent) VALUES (:key, :spent) "
                "ON CONFLICT (key) DO UPDATE SET spent = excluded.spent"
            ),
        )

    def spend(self, key: str, epsilon: float, total: float) -> Spend:
        """Charge ``epsilon`` to ``key`` if the account stays within ``total``."""
        return self.spend_all([(key, epsilon, total)])[0]

    def spend_all(self, charges: list[tuple[str, float, float]]) -> list[Spend]:
        """Charge each (key, ε, total) in one transaction: every one, if each account
        stays within its total. If any is short none is charged: each comes back with
        what it held before, and the short ones not allowed."""
        if len({key for key, _, _ in charges}) != len(charges):
            raise ValueError("an account is charged once per release")
        with self._writer.transaction() as cursor:
            held = []
            for key, _, _ in charges:
                cursor.execute(self._read.sql, self._read.bind({"key": key}))
                row = cursor.fetchone()
                held.append(row[0] if row else 0)
            after = [
                spent + round(epsilon * MICRO)
                for spent, (_, epsilon, _) in zip(held, charges, strict=True)
            ]
            fits = [
                spent <= round(total * MICRO)
                for spent, (_, _, total) in zip(after, charges, strict=True)
            ]
            if all(fits):
                for spent, (key, _, _) in zip(after, charges, strict=True):
                    values = {"key": key, "spent": spent}
                    cursor.execute(self._write.sql, self._write.bind(values))
        now = after if all(fits) else held
        return [
            Spend(fit, spent / MICRO, total)
            for fit, spent, (_, _, total) in zip(fits, now, charges, strict=True)
        ]


# -- one noised release: terms from the policy, ε charged, noise added ---------------


@dataclass(frozen=True)
class NoiseTerms:
    """A ``dp`` obligation: {mechanism, epsilon, delta, budget: {key, epsilon}}, or for a
    join ``budgets: [{key, epsilon}, ...]`` in place of ``budget``, one per dataset."""

    mechanism: str
    epsilon: float
    delta: float
    accounts: tuple[tuple[str, float], ...]
    """Every account (key, total ε) the release charges ``epsilon`` to: all or none."""
    threshold_delta: float | None = None
    """δ of each partition selection (which groups appear); None: the policy gives none,
    and a release that must select groups refuses."""


def noise_terms(obligations: dict[str, Any]) -> NoiseTerms | None:
    """The decision's ``dp`` obligation, or None; a malformed one refuses (fail closed)."""
    terms = obligations.get("dp")
    if terms is None:
        return None
    accounts = _accounts(terms) if isinstance(terms, dict) else None
    valid = (
        accounts is not None
        and terms.get("mechanism") in ("laplace", "gaussian")
        and _positive(terms.get("epsilon"))
        and (terms["mechanism"] == "laplace" or 0 < terms.get("delta", 0) < 1)
    )
    selection = terms.get("threshold_delta") if isinstance(terms, dict) else None
    if selection is not None and not (_positive(selection) and selection < 1):
        valid = False
    if not valid or accounts is None:
        raise forbidden("obligation_malformed", "the policy's dp obligation is not usable")
    delta = float(terms.get("delta", 0.0)) if terms["mechanism"] == "gaussian" else 0.0
    return NoiseTerms(
        terms["mechanism"],
        float(terms["epsilon"]),
        delta,
        tuple(accounts),
        float(selection) if selection is not None else None,
    )


def _accounts(terms: dict[str, Any]) -> list[tuple[str, float]] | None:
    """The obligation's accounts: its one ``budget``, or its ``budgets`` (distinct keys)."""
    if ("budget" in terms) == ("budgets" in terms):
        return None
    budgets = [terms["budget"]] if "budget" in terms else terms["budgets"]
    if not isinstance(budgets, list) or not budgets:
        return None
    accounts = []
    for budget in budgets:
        if not (
            isinstance(budget, dict)
            and isinstance(budget.get("key"), str)
            and _positive(budget.get("epsilon"))
        ):
            return None
        accounts.append((budget["key"], float(budget["epsilon"])))
    return accounts if len({key for key, _ in accounts}) == len(accounts) else None


def _positive(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


@dataclass(frozen=True)
class Noise:
    """Terms whose ε has been charged: what a release may now spend."""

    terms: NoiseTerms
    spends: tuple[Spend, ...]
    """Each account after the charge, in the order of ``terms.accounts``."""


def dataset_of(key: str) -> str:
    """The dataset an account (``operator|dataset``) is kept on."""
    return key.rpartition("|")[2]


def charge(ledger: PrivacyBudgets, terms: NoiseTerms, dataset: str) -> Noise:
    """Charge the release's ε to every account before anything is computed: all or none;
    refuse over budget, naming the dataset whose account is short."""
    accounts = terms.accounts
    spends = ledger.spend_all([(key, terms.epsilon, total) for key, total in accounts])
    for (key, _), spend in zip(accounts, spends, strict=True):
        if spend.allowed:
            continue
        short = dataset if len(accounts) == 1 else dataset_of(key)
        raise Problem(
            403,
            "privacy_budget_exhausted",
            f"this needs ε {terms.epsilon:g}; the remaining privacy budget on {short} "
            f"is ε {spend.remaining:g} of {spend.total:g}",
            dataset=short,
            asked=terms.epsilon,
            remaining=spend.remaining,
            budget=spend.total,
        )
    return Noise(terms, tuple(spends))


class Release:
    """One noised release of ``measurements`` measurements, each with an even share of ε
    and δ: partition selections (which groups appear, on noisy counts) and noisy vectors.
    ``report`` is the protections to show: mechanism, ε and δ in all and per measurement,
    each noise scale, each selection's threshold and δ, the accounts after the charge."""

    def __init__(self, noise: Noise, measurements: int) -> None:
        self.noise = noise
        self.epsilon = noise.terms.epsilon / measurements
        self.delta = noise.terms.delta / measurements
        self.scales: dict[str, float] = {}
        self.selections: dict[str, dict[str, Any]] = {}

    def select(self, name: str, counts: dict[str, int], rows: int, floor: int) -> dict[str, int]:
        """The groups whose noisy count reaches the threshold, with that noisy count: a
        group of one subject (who moves at most ``rows`` rows) appears with probability
        at most the policy's ``threshold_delta``. Keys must be the groups' own labels
        (not positions), so that neighbouring data name the same group alike."""
        threshold_delta = self.noise.terms.threshold_delta
        if threshold_delta is None:
            # fail closed: without a δ for it, a selection on true counts is an oracle
            raise forbidden(
                "obligation_malformed",
                "the policy's dp obligation sets no threshold_delta to select groups with",
            )
        terms = self.noise.terms
        measurement, scale, threshold = _threshold(
            terms.mechanism, max(int(rows), 1), self.epsilon, self.delta, threshold_delta, floor
        )
        self.scales[name] = round(scale, 6)
        self.selections[name] = {"threshold": threshold, "delta": threshold_delta}
        released = measurement({key: int(count) for key, count in counts.items()})
        return {key: int(count) for key, count in released.items()}

    def add(self, name: str, values: list[float], sensitivity: float) -> list[float]:
        """The values with noise (a vector over groups already selected)."""
        terms = self.noise.terms
        noisy, scale = add_noise(values, terms.mechanism, sensitivity, self.epsilon, self.delta)
        self.scales[name] = round(scale, 6)
        return noisy

    def report(self) -> dict[str, Any]:
        terms, noise = self.noise.terms, self.noise
        report: dict[str, Any] = {
            "mechanism": terms.mechanism,
            "epsilon": terms.epsilon,
            "epsilon_per_measurement": round(self.epsilon, 6),
            "noise_scale": self.scales,
        }
        if self.selections:
            report["partition_selection"] = self.selections
        if len(noise.spends) == 1:
            report["budget"] = _account(noise.spends[0])
        else:  # a join: each dataset's account
            report["budgets"] = [
                {"dataset": dataset_of(key), **_account(spend)}
                for (key, _), spend in zip(terms.accounts, noise.spends, strict=True)
            ]
        if terms.mechanism == "gaussian":
            report["delta"] = terms.delta
            report["delta_per_measurement"] = self.delta
        return report


def release(
    noise: Noise, measurements: dict[str, tuple[list[float], float]]
) -> tuple[dict[str, list[float]], dict[str, Any]]:
    """Noise each named measurement (values, sensitivity) with an even share of ε and δ:
    the noisy values by name, and the protections to report (``Release.report``)."""
    one = Release(noise, len(measurements))
    noisy = {name: one.add(name, values, s) for name, (values, s) in measurements.items()}
    return noisy, one.report()


def _account(spend: Spend) -> dict[str, float]:
    return {
        "epsilon_spent": spend.spent,
        "epsilon_remaining": spend.remaining,
        "epsilon_total": spend.total,
    }


def spent_by(engine: Engine, operator: str) -> dict[str, float]:
    """ε ``operator`` has spent, by dataset (its accounts as they stand)."""
    prefix = f"{operator}|"
    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT key, spent FROM privacy_budget WHERE substr(key, 1, :n) = :prefix"),
            {"n": len(prefix), "prefix": prefix},
        )
        return {dataset_of(key): spent / MICRO for key, spent in rows}
