"""Catalog tables in the gateway database (SQLModel)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel

LEVELS = ("L1", "L2", "L3", "L4")
"""Classification levels: L1 public, L2 internal, L3 sensitive, L4 core / sensitive personal."""

USES = ("key", "compare", "aggregate", "feature", "plaintext")
"""Allowed column uses, after SecretFlow SCQL's column control lists:
key (look-up only), compare (only inside a predicate, answered as a boolean),
aggregate (only inside an aggregate over a large enough group), feature (input of an
approved model), plaintext (may be returned)."""


class Dataset(SQLModel, table=True):
    id: str = Field(primary_key=True)
    title: str
    department: str
    table_name: str
    key_column: str
    version: str


class DatasetColumn(SQLModel, table=True):
    __tablename__ = "dataset_column"

    dataset_id: str = Field(foreign_key="dataset.id", primary_key=True)
    name: str = Field(primary_key=True)
    title: str
    type: str
    level: str
    uses: list[str] = Field(sa_column=Column(JSON, nullable=False))
    bounds: list[float] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    """[low, high] a numeric column's values are clamped to where noise is added: the
    sensitivity of a differentially private sum or mean comes from them."""


class Product(SQLModel, table=True):
    id: str = Field(primary_key=True)
    kind: str
    title: str
    dataset_id: str = Field(foreign_key="dataset.id")
    spec: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    published: bool = True


class Operator(SQLModel, table=True):
    id: str = Field(primary_key=True)
    name: str
    kind: str


class Licence(SQLModel, table=True):
    id: str = Field(primary_key=True)
    operator_id: str = Field(foreign_key="operator.id", index=True)
    products: list[str] = Field(sa_column=Column(JSON, nullable=False))
    purposes: list[str] = Field(sa_column=Column(JSON, nullable=False))
    valid_from: datetime
    valid_to: datetime
    revoked_at: datetime | None = None
    grants: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    """L4 columns (``dataset.column``) the licence may use beyond looking subjects up."""
    limits: dict[str, int] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    """Usage limits the licence sets (rate_per_minute, daily_quota, subject_per_day)."""


class DatasetJoin(SQLModel, table=True):
    """Two datasets a department declares joinable (可关联), and on which columns.

    Many-to-one: ``right_column`` is the right dataset's key column, so each left row
    meets at most one right row. Aggregate queries may join exactly these, nothing else.
    """

    __tablename__ = "dataset_join"

    id: str = Field(primary_key=True)
    title: str
    left_dataset: str = Field(foreign_key="dataset.id")
    left_column: str
    right_dataset: str = Field(foreign_key="dataset.id")
    right_column: str
    max_per_right: int
    """Left rows one right-hand subject may contribute to a noised answer (at least 1):
    the contribution bound that noise over the join is scaled to."""
