"""A read view of the catalog, cached for ``catalog_ttl_seconds``.

The spine reads operators, licences and products on every request; reading them from
the database each time would cost more than the decision itself. A revoked licence
takes effect within one TTL.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session, select

from dataauth.canonical import rfc3339
from dataauth.catalog.tables import (
    Dataset,
    DatasetColumn,
    DatasetJoin,
    Licence,
    Operator,
    Product,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ColumnInfo:
    name: str
    title: str
    type: str
    level: str
    uses: tuple[str, ...]
    bounds: tuple[float, float] | None = None


@dataclass(frozen=True)
class DatasetInfo:
    id: str
    title: str
    department: str
    table_name: str
    key_column: str
    version: str
    columns: dict[str, ColumnInfo]


@dataclass(frozen=True)
class JoinInfo:
    """A declared join: each left row meets at most one right row (on the right's key)."""

    id: str
    title: str
    left_dataset: str
    left_column: str
    right_dataset: str
    right_column: str
    max_per_right: int
    """Left rows one right-hand subject may contribute to a noised answer."""

    @property
    def on(self) -> tuple[tuple[str, str], tuple[str, str]]:
        """The two (dataset, column) the join equates, left first."""
        return (self.left_dataset, self.left_column), (self.right_dataset, self.right_column)


def _usable(join: DatasetJoin, datasets: dict[str, DatasetInfo]) -> bool:
    """Whether a declared join is one the query kind can take: two datasets, both columns
    known, and the right column the right dataset's key (many-to-one)."""
    left, right = datasets.get(join.left_dataset), datasets.get(join.right_dataset)
    return (
        left is not None
        and right is not None
        and left.id != right.id
        and join.left_column in left.columns
        and join.right_column == right.key_column
        and join.right_column in right.columns
        and isinstance(join.max_per_right, int)
        and join.max_per_right >= 1
    )


@dataclass(frozen=True)
class LicenceInfo:
    id: str
    products: tuple[str, ...]
    purposes: tuple[str, ...]
    valid_from: datetime
    valid_to: datetime
    revoked_at: datetime | None
    grants: tuple[str, ...] = ()
    limits: dict[str, int] = field(default_factory=dict)

    def status(self, now: datetime) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if now < self.valid_from.replace(tzinfo=UTC):
            return "not_yet_valid"
        if now >= self.valid_to.replace(tzinfo=UTC):
            return "expired"
        return "active"

    @cached_property
    def facts(self) -> dict[str, Any]:
        """The licence as the policy reads it (computed once per catalog snapshot)."""
        return {
            "id": self.id,
            "products": list(self.products),
            "purposes": list(self.purposes),
            "valid_from": rfc3339(self.valid_from),
            "valid_to": rfc3339(self.valid_to),
            "revoked": self.revoked_at is not None,
            "grants": list(self.grants),
            "limits": dict(self.limits),
        }


@dataclass(frozen=True)
class OperatorInfo:
    id: str
    name: str
    kind: str
    licence: LicenceInfo | None


@dataclass(frozen=True)
class ProductInfo:
    id: str
    kind: str
    title: str
    dataset_id: str
    spec: dict[str, Any]
    published: bool


@dataclass
class Snapshot:
    operators: dict[str, OperatorInfo] = field(default_factory=dict)
    products: dict[str, ProductInfo] = field(default_factory=dict)
    datasets: dict[str, DatasetInfo] = field(default_factory=dict)
    loaded_at: float = 0.0
    joins: dict[str, JoinInfo] = field(default_factory=dict)


def load_snapshot(engine: Engine) -> Snapshot:
    with Session(engine) as session:
        columns: dict[str, dict[str, ColumnInfo]] = {}
        for column in session.exec(select(DatasetColumn)):
            columns.setdefault(column.dataset_id, {})[column.name] = ColumnInfo(
                column.name,
                column.title,
                column.type,
                column.level,
                tuple(column.uses),
                tuple(column.bounds) if column.bounds else None,  # type: ignore[arg-type]
            )
        datasets = {
            d.id: DatasetInfo(
                d.id,
                d.title,
                d.department,
                d.table_name,
                d.key_column,
                d.version,
                columns.get(d.id, {}),
            )
            for d in session.exec(select(Dataset))
        }
        joins = {}
        for join in session.exec(select(DatasetJoin)):
            if not _usable(join, datasets):
                # fail closed: a join we cannot check is one no query may use
                log.warning("declared join %s is not many-to-one and bounded", join.id)
                continue
            joins[join.id] = JoinInfo(
                join.id,
                join.title,
                join.left_dataset,
                join.left_column,
                join.right_dataset,
                join.right_column,
                join.max_per_right,
            )
        licences: dict[str, LicenceInfo] = {}
        # the newest licence of an operator is the one in force
        for lic in session.exec(select(Licence).order_by(Licence.valid_from)):
            licences[lic.operator_id] = LicenceInfo(
                lic.id,
                tuple(lic.products),
                tuple(lic.purposes),
                lic.valid_from,
                lic.valid_to,
                lic.revoked_at,
                tuple(lic.grants or ()),
                dict(lic.limits or {}),
            )
        operators = {
            o.id: OperatorInfo(o.id, o.name, o.kind, licences.get(o.id))
            for o in session.exec(select(Operator))
        }
        products = {
            p.id: ProductInfo(p.id, p.kind, p.title, p.dataset_id, dict(p.spec), p.published)
            for p in session.exec(select(Product))
        }
    return Snapshot(operators, products, datasets, time.monotonic(), joins)


class Catalog:
    """Cached catalog reads for the spine and the operation kinds."""

    def __init__(self, engine: Engine, ttl_seconds: float = 2.0) -> None:
        self.engine = engine
        self.ttl_seconds = ttl_seconds
        self._lock = threading.Lock()
        self._snapshot = load_snapshot(engine)

    def snapshot(self) -> Snapshot:
        snap = self._snapshot
        if time.monotonic() - snap.loaded_at > self.ttl_seconds:
            with self._lock:
                if self._snapshot is snap:
                    self._snapshot = load_snapshot(self.engine)
            snap = self._snapshot
        return snap

    def refresh(self) -> None:
        """Reload now, after a change to the catalog."""
        with self._lock:
            self._snapshot = load_snapshot(self.engine)

    def operator(self, operator_id: str) -> OperatorInfo | None:
        return self.snapshot().operators.get(operator_id)

    def product(self, product_id: str) -> ProductInfo | None:
        product = self.snapshot().products.get(product_id)
        return product if product is not None and product.published else None

    def dataset(self, dataset_id: str) -> DatasetInfo | None:
        return self.snapshot().datasets.get(dataset_id)

    def products(self) -> list[ProductInfo]:
        return [p for p in self.snapshot().products.values() if p.published]

    def listing(self, operator: OperatorInfo, now: datetime) -> dict[str, Any]:
        """What an operator may see: its licence's status and the products it covers."""
        licence = operator.licence
        covered = set(licence.products) if licence else set()
        return {
            "operator": operator.id,
            "licence": None
            if licence is None
            else {
                "status": licence.status(now),
                "valid_from": rfc3339(licence.valid_from),
                "valid_to": rfc3339(licence.valid_to),
                "purposes": list(licence.purposes),
            },
            "products": [
                {
                    "id": p.id,
                    "kind": p.kind,
                    "title": p.title,
                    "dataset": p.dataset_id,
                    "parameters": p.spec.get("parameters", {}),
                    "answer": p.spec.get("answer", {"form": "boolean"}),
                }
                for p in self.products()
                if p.id in covered
            ],
        }
