"""The catalog document: how a department writes down its catalog (分类分级 and more).

One JSON document lists datasets with their classified columns, products, declared
joins, operators and licences. ``problems`` says everything wrong with one, each
problem naming the item and the field, so that a department can fix them all at once.
A document names what it changes: checked against the catalog it lands on (``current``),
an item it refers to but does not list (a licence's product, a join's dataset) may be one
the catalog holds already.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from dataauth.catalog.specs import SPECS  # kinds with a Product row; queries are
from dataauth.catalog.tables import LEVELS, USES

# licensed per dataset (query:<dataset>) and models go through review: neither is a product

TYPES = ("string", "integer", "number", "date")
"""A column's declared type; a numeric type's bounds and a literal's form follow from it."""

LIMITS = ("rate_per_minute", "daily_quota", "subject_per_day")
"""The usage limits a licence may set."""

NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
"""Dataset ids, tables and columns: plain SQL identifiers, as queries name them."""
PRODUCT_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
"""As the /v1/verify/{product} route takes it."""


class Item(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ColumnDoc(Item):
    name: str
    title: str
    type: str
    level: str
    uses: list[str]
    bounds: list[float] | None = None
    """[low, high] a numeric column is clamped to where noise is added."""


class DatasetDoc(Item):
    id: str
    title: str
    department: str | None = None
    """The department that holds it; the publishing department's id when left out."""
    table: str
    key_column: str
    version: str
    columns: list[ColumnDoc]


class ProductDoc(Item):
    id: str
    kind: str = "verify"
    title: str
    dataset: str
    spec: dict[str, Any]
    published: bool = True


class JoinDoc(Item):
    id: str
    title: str
    left_dataset: str
    left_column: str
    right_dataset: str
    right_column: str
    max_per_right: int


class OperatorDoc(Item):
    id: str = Field(min_length=1, max_length=128)
    name: str
    kind: str


class LicenceDoc(Item):
    id: str = Field(min_length=1, max_length=128)
    operator_id: str
    products: list[str]
    purposes: list[str]
    valid_from: datetime
    valid_to: datetime
    revoked_at: datetime | None = None
    grants: list[str] = Field(default_factory=list)
    limits: dict[str, int] = Field(default_factory=dict)

    @field_validator("valid_from", "valid_to", "revoked_at")
    @classmethod
    def _utc(cls, moment: datetime | None) -> datetime | None:
        """In UTC, as the catalog stores times (a time without a zone is taken as UTC)."""
        if moment is None:
            return None
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class CatalogDocument(Item):
    datasets: list[DatasetDoc] = Field(default_factory=list)
    products: list[ProductDoc] = Field(default_factory=list)
    joins: list[JoinDoc] = Field(default_factory=list)
    operators: list[OperatorDoc] = Field(default_factory=list)
    licences: list[LicenceDoc] = Field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {section: len(getattr(self, section)) for section in SECTIONS}

    def merged_over(self, current: CatalogDocument | None) -> CatalogDocument:
        """The catalog once this document is applied over ``current``: by id, what this
        names replaces what was; what it does not name stays."""
        if current is None:
            return self
        sections = {}
        for section in SECTIONS:
            items = {item_id(x): x for x in getattr(current, section)}
            items.update({item_id(x): x for x in getattr(self, section)})
            sections[section] = list(items.values())
        return CatalogDocument(**sections)


SECTIONS = ("datasets", "products", "joins", "operators", "licences")


def item_id(item: BaseModel) -> str:
    return str(getattr(item, "id", None) or getattr(item, "name", ""))


def problem(at: str, message: str) -> dict[str, str]:
    """One thing wrong: ``at`` is the item and field (``datasets/residents/columns/x/level``)."""
    return {"at": at, "message": message}


def parse(content: Any) -> tuple[CatalogDocument | None, list[dict[str, str]]]:
    """The document, or the problems with its shape (a field missing, a wrong type)."""
    try:
        return CatalogDocument.model_validate(content), []
    except ValidationError as exc:
        return None, [
            problem(_where(content, error["loc"]), error["msg"]) for error in exc.errors()
        ]


def _where(content: Any, loc: tuple[Any, ...]) -> str:
    """A pydantic location with list positions replaced by the items' ids where known."""
    parts, node = [], content
    for step in loc:
        child = None
        if isinstance(node, list) and isinstance(step, int) and step < len(node):
            child = node[step]
            known = child.get("id") or child.get("name") if isinstance(child, dict) else None
            parts.append(str(known) if isinstance(known, str) and known else f"#{step}")
        else:
            if isinstance(node, dict):
                child = node.get(step)
            parts.append(str(step))
        node = child
    return "/".join(parts)


def problems(document: CatalogDocument, current: CatalogDocument | None = None) -> list[dict]:
    """Everything wrong with ``document``, applied over ``current`` (none: on its own)."""
    whole = document.merged_over(current)
    datasets = {d.id: d for d in whole.datasets}
    found: list[dict[str, str]] = []
    found += _duplicates(document)
    for dataset in document.datasets:
        found += _dataset(dataset)
    products = {p.id for p in whole.products}
    for product in document.products:
        found += _product(product, datasets)
    for join in document.joins:
        found += _join(join, datasets)
    operators = {o.id for o in whole.operators}
    for licence in document.licences:
        found += _licence(licence, datasets, products, operators)
    return found


def _duplicates(document: CatalogDocument) -> list[dict[str, str]]:
    found = []
    for section in SECTIONS:
        seen: set[str] = set()
        for item in getattr(document, section):
            if item_id(item) in seen:
                found.append(problem(f"{section}/{item_id(item)}", "listed twice"))
            seen.add(item_id(item))
    return found


def _dataset(dataset: DatasetDoc) -> list[dict[str, str]]:
    at = f"datasets/{dataset.id}"
    found = []
    if not NAME.match(dataset.id):
        found.append(problem(f"{at}/id", "a dataset id is a plain identifier (letters, _)"))
    if not NAME.match(dataset.table):
        found.append(problem(f"{at}/table", "a table is named by a plain identifier"))
    names: set[str] = set()
    for column in dataset.columns:
        where = f"{at}/columns/{column.name}"
        if column.name in names:
            found.append(problem(where, "listed twice"))
        names.add(column.name)
        found += _column(column, where)
    key = next((c for c in dataset.columns if c.name == dataset.key_column), None)
    if key is None:
        found.append(problem(f"{at}/key_column", f"{dataset.key_column!r} is not a column listed"))
    elif "key" not in key.uses:
        found.append(problem(f"{at}/key_column", f"{key.name} does not allow the key use"))
    return found


def _column(column: ColumnDoc, at: str) -> list[dict[str, str]]:
    found = []
    if not NAME.match(column.name):
        found.append(problem(f"{at}/name", "a column is named by a plain identifier"))
    if column.type not in TYPES:
        found.append(problem(f"{at}/type", f"{column.type!r} is not one of {', '.join(TYPES)}"))
    if column.level not in LEVELS:
        found.append(problem(f"{at}/level", f"{column.level!r} is not one of {', '.join(LEVELS)}"))
    for use in column.uses:
        if use not in USES:
            found.append(problem(f"{at}/uses", f"{use!r} is not one of {', '.join(USES)}"))
    if len(set(column.uses)) != len(column.uses):
        found.append(problem(f"{at}/uses", "a use is listed twice"))
    if column.bounds is not None:
        if column.type not in ("integer", "number"):
            found.append(problem(f"{at}/bounds", "only a numeric column has bounds"))
        elif (
            len(column.bounds) != 2
            or not all(math.isfinite(b) for b in column.bounds)
            or column.bounds[0] >= column.bounds[1]
        ):
            found.append(problem(f"{at}/bounds", "bounds are [low, high] with low < high"))
    return found


def _product(product: ProductDoc, datasets: dict[str, DatasetDoc]) -> list[dict[str, str]]:
    at = f"products/{product.id}"
    found = []
    if not PRODUCT_ID.match(product.id):
        found.append(problem(f"{at}/id", "a product id is lower case letters, digits and -"))
    model = SPECS.get(product.kind)
    if model is None:
        kinds = ", ".join(SPECS)
        found.append(problem(f"{at}/kind", f"{product.kind!r} is not a product kind ({kinds})"))
        return found
    dataset = datasets.get(product.dataset)
    if dataset is None:
        found.append(problem(f"{at}/dataset", f"no dataset {product.dataset!r}"))
    try:
        spec = model.model_validate(product.spec)
    except ValidationError as exc:
        for error in exc.errors():
            where = "/".join(str(step) for step in ("spec", *error["loc"]))
            found.append(problem(f"{at}/{where}", error["msg"]))
        return found
    if dataset is None:
        return found
    columns = {c.name: c for c in dataset.columns}
    for name, use in dict.fromkeys(spec.column_uses()):
        column = columns.get(name)
        if column is None:
            found.append(problem(f"{at}/spec", f"no column {name!r} in dataset {dataset.id}"))
        elif use not in column.uses:
            found.append(
                problem(f"{at}/spec", f"column {dataset.id}.{name} does not allow the {use} use")
            )
    return found


def _join(join: JoinDoc, datasets: dict[str, DatasetDoc]) -> list[dict[str, str]]:
    """As the catalog snapshot takes a join: many-to-one onto the right dataset's key."""
    at = f"joins/{join.id}"
    found = []
    left, right = datasets.get(join.left_dataset), datasets.get(join.right_dataset)
    for side, dataset, name in (("left", left, join.left_dataset), ("right", right,
                                join.right_dataset)):  # fmt: skip
        if dataset is None:
            found.append(problem(f"{at}/{side}_dataset", f"no dataset {name!r}"))
    if left is not None and join.left_column not in {c.name for c in left.columns}:
        found.append(problem(f"{at}/left_column", f"no column {join.left_column!r} in {left.id}"))
    if right is not None and join.right_column != right.key_column:
        found.append(
            problem(
                f"{at}/right_column",
                f"{join.right_column!r} is not {right.id}'s key column ({right.key_column}): "
                "a join is many-to-one onto the right dataset's key",
            )
        )
    if left is not None and right is not None and left.id == right.id:
        found.append(problem(f"{at}/right_dataset", "a join joins two datasets"))
    if join.max_per_right < 1:
        found.append(problem(f"{at}/max_per_right", "at least 1"))
    return found


def _licence(
    licence: LicenceDoc,
    datasets: dict[str, DatasetDoc],
    products: set[str],
    operators: set[str],
) -> list[dict[str, str]]:
    at = f"licences/{licence.id}"
    found = []
    if licence.operator_id not in operators:
        found.append(problem(f"{at}/operator_id", f"no operator {licence.operator_id!r}"))
    for name in licence.products:
        dataset = name.removeprefix("query:") if name.startswith("query:") else None
        known = dataset in datasets if dataset is not None else name in products
        if not known:
            what = f"dataset {dataset!r} to query" if dataset is not None else f"product {name!r}"
            found.append(problem(f"{at}/products", f"no {what}"))
    if licence.valid_from >= licence.valid_to:
        found.append(problem(f"{at}/valid_to", "a licence ends after it begins"))
    for grant in licence.grants:
        dataset_id, _, name = grant.partition(".")
        dataset = datasets.get(dataset_id)
        column = next((c for c in dataset.columns if c.name == name), None) if dataset else None
        if column is None:
            found.append(problem(f"{at}/grants", f"no column {grant!r} (dataset.column)"))
        elif column.level != "L4":
            found.append(problem(f"{at}/grants", f"{grant} is {column.level}; grants are for L4"))
    for limit, value in licence.limits.items():
        if limit not in LIMITS:
            found.append(problem(f"{at}/limits/{limit}", f"not one of {', '.join(LIMITS)}"))
        elif value < 1:
            found.append(problem(f"{at}/limits/{limit}", "at least 1"))
    return found
