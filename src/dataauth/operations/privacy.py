"""Differential privacy for aggregate answers: OpenDP noise, and each operator's ε ledger.

Noise: every noisy release is one vector (a value per group) through OpenDP's Laplace
or Gaussian measurement. One subject is one row, so adding or removing a subject moves
one group's count by 1 and one group's clamped sum by at most max(|low|, |high|) of the
column's declared bounds: that is the sensitivity, over the whole vector (the groups
are disjoint). OpenDP's privacy map checks that the scale gives no more than the ε asked.

One query or cohort is several measurements (a count, a sum, a histogram): ε and δ are
split evenly across them, so the release as a whole is (ε, δ)-DP by basic composition.

Budget: an operator's ε spent on a dataset is one row, charged under the gateway
database's write lock (``statements.WriteLock``), so concurrent requests and several
gateway processes never spend it twice. It is kept in millionths of ε as an integer:
sums of floats would drift. Aggregate queries and model cohorts over one dataset spend
from the same account: both release facts about the same subjects. δ is not kept in the
ledger: every noised release carries the policy's fixed δ, so an account of total ε
admits at most total / ε-per-release releases, and δ over them all is at most that
number times δ (the policy authors' guide works an example).

A release over a join reads the subjects of both datasets, so it charges the operator's
account on each (the obligation's ``budgets``), in one transaction: both or neither.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import opendp.prelude as dp
from sqlalchemy import Engine, text
from sqlmodel import Field, SQLModel

from dataauth.errors import Problem, forbidden
from dataauth.statements import WriteLock, prepare

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


@dataclass(frozen=True)
class Spend:
    allowed: bool
    spent: float
    """ε spent after this charge (or before it, when refused)."""
    total: float

    @property
    def remaining(self) -> float:
        return round(max(self.total - self.spent, 0.0), 6)


class BudgetLedger:
    """Atomic ε accounts, one per operator and dataset."""

    def __init__(self, engine: Engine) -> None:
        self._lock = WriteLock(engine, "privacy_budget")
        self._guard = threading.Lock()
        self._connection: Any = None
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
        with self._guard:
            if self._connection is None:
                self._connection = self._lock.connect()
            try:
                with self._lock.transaction(self._connection) as cursor:
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
            except BaseException:
                connection, self._connection = self._connection, None
                connection.close()
                raise
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
    if not valid or accounts is None:
        raise forbidden("obligation_malformed", "the policy's dp obligation is not usable")
    delta = float(terms.get("delta", 0.0)) if terms["mechanism"] == "gaussian" else 0.0
    return NoiseTerms(terms["mechanism"], float(terms["epsilon"]), delta, tuple(accounts))


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


def charge(ledger: BudgetLedger, terms: NoiseTerms, dataset: str) -> Noise:
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


def release(
    noise: Noise, measurements: dict[str, tuple[list[float], float]]
) -> tuple[dict[str, list[float]], dict[str, Any]]:
    """Noise each named measurement (values, sensitivity) with an even share of ε and δ.

    Returns the noisy values by name and the protections to report: mechanism, ε and δ
    in all and per measurement, each noise scale, and the account after the charge.
    """
    terms = noise.terms
    share = terms.epsilon / len(measurements)
    delta_share = terms.delta / len(measurements)
    noisy, scales = {}, {}
    for name, (values, sensitivity) in measurements.items():
        noisy[name], scale = add_noise(values, terms.mechanism, sensitivity, share, delta_share)
        scales[name] = round(scale, 6)
    report: dict[str, Any] = {
        "mechanism": terms.mechanism,
        "epsilon": terms.epsilon,
        "epsilon_per_measurement": round(share, 6),
        "noise_scale": scales,
    }
    if len(noise.spends) == 1:
        report["budget"] = _account(noise.spends[0])
    else:  # a join: each dataset's account
        report["budgets"] = [
            {"dataset": dataset_of(key), **_account(spend)}
            for (key, _), spend in zip(terms.accounts, noise.spends, strict=True)
        ]
    if terms.mechanism == "gaussian":
        report["delta"] = terms.delta
        report["delta_per_measurement"] = delta_share
    return noisy, report


def _account(spend: Spend) -> dict[str, float]:
    return {
        "epsilon_spent": spend.spent,
        "epsilon_remaining": spend.remaining,
        "epsilon_total": spend.total,
    }
