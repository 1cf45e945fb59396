"""Differential privacy for aggregate answers: OpenDP noise, and each operator's ε ledger.

Noise: every noisy release is one vector (a value per group) through OpenDP's Laplace
or Gaussian measurement. One subject is one row, so adding or removing a subject moves
one group's count by 1 and one group's clamped sum by at most max(|low|, |high|) of the
column's declared bounds: that is the sensitivity, over the whole vector (the groups
are disjoint). OpenDP's privacy map checks that the scale gives no more than the ε asked.

Budget: an operator's ε spent on a dataset is one row, charged under the gateway
database's write lock (``statements.WriteLock``), so concurrent requests and several
gateway processes never spend it twice. It is kept in millionths of ε as an integer:
sums of floats would drift.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import opendp.prelude as dp
from sqlalchemy import Engine, text
from sqlmodel import Field, SQLModel

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
        asked, limit = round(epsilon * MICRO), round(total * MICRO)
        with self._guard:
            if self._connection is None:
                self._connection = self._lock.connect()
            try:
                with self._lock.transaction(self._connection) as cursor:
                    cursor.execute(self._read.sql, self._read.bind({"key": key}))
                    row = cursor.fetchone()
                    spent = row[0] if row else 0
                    if spent + asked > limit:
                        return Spend(False, spent / MICRO, total)
                    values = {"key": key, "spent": spent + asked}
                    cursor.execute(self._write.sql, self._write.bind(values))
            except BaseException:
                connection, self._connection = self._connection, None
                connection.close()
                raise
        return Spend(True, (spent + asked) / MICRO, total)
