"""The demo domain: a Guangzhou residents register and an enterprises register.

Created deterministically (fixed seed) in its own SQLite file, which stands for the
department's own database: the gateway opens it read-only and never copies from it.
The catalog entries (classification, products, operators, licences) go into the
gateway database.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    Date,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    insert,
    inspect,
    text,
)
from sqlmodel import Session

from dataauth.catalog.specs import SPECS
from dataauth.catalog.tables import (
    Dataset,
    DatasetColumn,
    DatasetJoin,
    Licence,
    Operator,
    Product,
)
from dataauth.demo.data import (
    assign_representatives,
    generate_enterprises,
    generate_residents,
)

SEED = 20261125
RESIDENTS = 100_000
ENTERPRISES = 20_000
REVISION = 2
"""The demo data's revision: bump it when the generated rows or columns change, and a
demo database of an older revision is made again (its SQLite ``user_version``).
2: enterprises' legal representatives."""
VERSION = f"demo-{SEED}-{REVISION}"
DEPARTMENT = "广州市政务服务数据管理局 (demo)"

Progress = Callable[[str, int, int], None]
"""Called as (task, done, total) while the domain is generated."""

metadata = MetaData()
residents = Table(
    "residents",
    metadata,
    Column("resident_id", String(18), primary_key=True),
    Column("name", String(32), nullable=False),
    Column("birth_date", Date, nullable=False),
    Column("district", String(16), nullable=False),
    Column("monthly_income", Integer, nullable=False),
    Column("social_insurance_months", Integer, nullable=False),
    Column("properties_owned", Integer, nullable=False),
)
enterprises = Table(
    "enterprises",
    metadata,
    Column("credit_code", String(18), primary_key=True),
    Column("name", String(128), nullable=False),
    Column("status", String(8), nullable=False),
    Column("registered_capital", Integer, nullable=False),
    Column("tax_paid_last_year", Integer, nullable=False),
    Column("district", String(16), nullable=False),
    Column("legal_representative_id", String(18), nullable=False),
)

# (name, title, type, level, uses): the classification (分类分级) of every column
RESIDENT_COLUMNS = [
    ("resident_id", "公民身份号码 national ID number", "string", "L4", ["key"]),
    ("name", "姓名 name", "string", "L3", ["compare"]),
    ("birth_date", "出生日期 birth date", "date", "L3", ["compare", "aggregate", "feature"]),
    ("district", "户籍区 district", "string", "L2", ["compare", "aggregate", "plaintext"]),
    (
        "monthly_income",
        "月收入 monthly income",
        "integer",
        "L3",
        ["compare", "aggregate", "feature"],
    ),
    (
        "social_insurance_months",
        "社保缴纳月数 months of social insurance paid",
        "integer",
        "L3",
        ["compare", "aggregate", "feature"],
    ),
    (
        "properties_owned",
        "房产数 properties owned",
        "integer",
        "L3",
        ["compare", "aggregate", "feature"],
    ),
]
ENTERPRISE_COLUMNS = [
    (
        "credit_code",
        "统一社会信用代码 unified social credit code",
        "string",
        "L1",
        ["key", "plaintext"],
    ),
    ("name", "企业名称 name", "string", "L1", ["compare", "plaintext"]),
    (
        "status",
        "登记状态 registration status",
        "string",
        "L1",
        ["compare", "aggregate", "plaintext"],
    ),
    (
        "registered_capital",
        "注册资本 registered capital",
        "integer",
        "L2",
        ["compare", "aggregate", "feature", "plaintext"],
    ),
    (
        "tax_paid_last_year",
        "上年纳税额 tax paid last year",
        "integer",
        "L3",
        ["compare", "aggregate", "feature"],
    ),
    ("district", "登记区 district", "string", "L1", ["compare", "aggregate", "plaintext"]),
    (
        "legal_representative_id",
        "法定代表人公民身份号码 legal representative's national ID number",
        "string",
        "L4",
        ["key"],
    ),
]

# joins a department declares (可关联): each left row meets at most one right row, on the
# right dataset's key. Queries may join these and no others.
JOINS: list[dict[str, Any]] = [
    {
        "id": "enterprise-representative",
        "title": "企业法定代表人 Enterprises and their legal representatives",
        "left_dataset": "enterprises",
        "left_column": "legal_representative_id",
        "right_dataset": "residents",
        "right_column": "resident_id",
        # a serial representative's firms count at most five times in a noised answer
        "max_per_right": 5,
    },
]

# [low, high] of numeric columns: contributions to a noisy sum or mean are clamped to
# these, and the noise is scaled to them (a wider range, more noise)
BOUNDS: dict[tuple[str, str], list[float]] = {
    ("residents", "monthly_income"): [0, 50_000],
    ("residents", "social_insurance_months"): [0, 600],
    ("residents", "properties_owned"): [0, 10],
    ("enterprises", "registered_capital"): [0, 100_000_000],
    ("enterprises", "tax_paid_last_year"): [0, 5_000_000],
}

PRODUCTS: list[dict[str, Any]] = [
    {
        "id": "identity-match",
        "title": "身份核验 Does the ID number belong to the named person?",
        "dataset": "residents",
        "spec": {
            "checks": [{"column": "name", "op": "eq", "param": "name"}],
            "parameters": {"name": {"type": "string", "description": "the name given"}},
            "not_found": "false",
        },
    },
    {
        "id": "income-at-least",
        "title": "收入核验 Is the monthly income at least the threshold?",
        "dataset": "residents",
        "spec": {
            "checks": [{"column": "monthly_income", "op": "ge", "param": "threshold"}],
            "parameters": {
                "threshold": {
                    "type": "number",
                    "minimum": 0,
                    "maximum": 10_000_000,
                    "description": "yuan per month: one of the department's cut points",
                    # the department's choice: whatever is asked, income is told no
                    # finer than these six intervals (log2 6 = 2.6 bits a resident)
                    "one_of": [3000, 5000, 8000, 12000, 20000],
                }
            },
            "not_found": "false",
        },
    },
    {
        "id": "social-insurance-at-least",
        "title": "社保核验 Has social insurance been paid for at least N months?",
        "dataset": "residents",
        "spec": {
            "checks": [{"column": "social_insurance_months", "op": "ge", "param": "threshold"}],
            "parameters": {
                "threshold": {
                    "type": "integer",
                    "minimum": 0,
                    "maximum": 1200,
                    "description": "months: one of the department's cut points",
                    "one_of": [6, 12, 24, 36, 60, 120, 180],
                }
            },
            "not_found": "false",
        },
    },
    {
        "id": "income-band",
        "title": "收入区间 Which band is the monthly income in?",
        "dataset": "residents",
        "spec": {
            "answer": {
                "form": "band",
                "column": "monthly_income",
                "cuts": [3000, 8000, 20000],
                "labels": ["below 3000", "3000 to 7999", "8000 to 19999", "20000 or more"],
            },
            "consent": True,
            "not_found": "explicit",
        },
    },
    {
        "id": "enterprise-active",
        "title": "企业存续核验 Is the enterprise active (存续/在业)?",
        "dataset": "enterprises",
        "spec": {
            "checks": [{"column": "status", "op": "in", "value": ["存续", "在业"]}],
            "not_found": "explicit",
        },
    },
    {
        "id": "he-credit-score",
        "kind": "he-score",
        "title": "密态评分 Encrypted scoring with the operator's own model (weights stay secret)",
        "dataset": "residents",
        "spec": {
            "features": ["monthly_income", "social_insurance_months", "properties_owned"],
            "cohort_columns": ["district"],
            "consent": True,
        },
    },
]

QUERIES = ["query:residents", "query:enterprises"]
"""Aggregate queries are licensed per dataset, as ``query:<dataset>`` in a licence's
products (like a product; there is no Product row for them)."""
ALL_PRODUCTS = [p["id"] for p in PRODUCTS] + QUERIES
OPERATORS: list[dict[str, Any]] = [
    {
        "id": "demo-bank",
        "name": "示范银行 Demo Bank",
        "kind": "bank",
        "products": ALL_PRODUCTS,
        "purposes": ["credit", "account-opening"],
        "valid": (datetime(2026, 1, 1, tzinfo=UTC), datetime(2031, 1, 1, tzinfo=UTC)),
    },
    {
        "id": "demo-insurer",
        "name": "示范保险 Demo Insurer",
        "kind": "insurer",
        "products": ["identity-match", "social-insurance-at-least"],
        "purposes": ["underwriting"],
        "valid": (datetime(2026, 1, 1, tzinfo=UTC), datetime(2031, 1, 1, tzinfo=UTC)),
        "limits": {"daily_quota": 10000},
    },
    {
        "id": "demo-expired",
        "name": "示范征信 Demo Credit Bureau (licence expired)",
        "kind": "credit-bureau",
        "products": ALL_PRODUCTS,
        "purposes": ["credit"],
        "valid": (datetime(2024, 1, 1, tzinfo=UTC), datetime(2025, 1, 1, tzinfo=UTC)),
    },
    {
        "id": "demo-revoked",
        "name": "示范小贷 Demo Lender (licence revoked)",
        "kind": "lender",
        "products": ALL_PRODUCTS,
        "purposes": ["credit"],
        "valid": (datetime(2026, 1, 1, tzinfo=UTC), datetime(2031, 1, 1, tzinfo=UTC)),
        "revoked_at": datetime(2026, 6, 1, tzinfo=UTC),
    },
]


def _chunks(rows: Iterable[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    iterator = iter(rows)
    while chunk := list(islice(iterator, size)):
        yield chunk


def is_stale(path: Path) -> bool:
    """Whether ``path`` holds a demo database of another revision, to be made again. A
    database without the demo's tables is someone else's (a benchmark's), left alone."""
    engine = create_engine(f"sqlite:///file:{path}?mode=ro&uri=true")
    try:
        with engine.connect() as connection:
            revision = connection.execute(text("PRAGMA user_version")).scalar()
            tables = set(inspect(connection).get_table_names())
    finally:
        engine.dispose()
    return revision != REVISION and set(metadata.tables) <= tables


def _fill(
    connection: Connection,
    table: Table,
    rows: Iterable[dict[str, Any]],
    total: int,
    progress: Progress | None,
) -> None:
    done = 0
    for chunk in _chunks(rows, 5000):
        connection.execute(insert(table), chunk)
        done += len(chunk)
        if progress:
            progress(table.name, done, total)


def create_domain(path: Path, progress: Progress | None = None) -> None:
    """Generate the demo department database at ``path`` (atomically: all or nothing)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    partial.unlink(missing_ok=True)
    engine = create_engine(f"sqlite:///{partial}")
    metadata.create_all(engine)
    resident_ids: list[str] = []

    def people() -> Iterator[dict[str, Any]]:
        for row in generate_residents(RESIDENTS, SEED):
            resident_ids.append(row["resident_id"])
            yield row

    with engine.begin() as connection:
        _fill(connection, residents, people(), RESIDENTS, progress)
    firms = assign_representatives(generate_enterprises(ENTERPRISES, SEED), resident_ids, SEED)
    with engine.begin() as connection:
        _fill(connection, enterprises, firms, ENTERPRISES, progress)
        connection.execute(text(f"PRAGMA user_version = {REVISION}"))
    engine.dispose()
    os.replace(partial, path)


def register_catalog(engine: Engine) -> None:
    """Register the demo datasets, products, operators and licences (idempotent)."""
    with Session(engine) as session:
        for dataset_id, title, table, key, columns in (
            (
                "residents",
                "户籍人口 Residents register",
                residents,
                "resident_id",
                RESIDENT_COLUMNS,
            ),
            (
                "enterprises",
                "企业登记 Enterprises register",
                enterprises,
                "credit_code",
                ENTERPRISE_COLUMNS,
            ),
        ):
            session.merge(
                Dataset(
                    id=dataset_id,
                    title=title,
                    department=DEPARTMENT,
                    table_name=table.name,
                    key_column=key,
                    version=VERSION,
                )
            )
            for name, column_title, kind, level, uses in columns:
                session.merge(
                    DatasetColumn(
                        dataset_id=dataset_id,
                        name=name,
                        title=column_title,
                        type=kind,
                        level=level,
                        uses=uses,
                        bounds=BOUNDS.get((dataset_id, name)),
                    )
                )
        for join in JOINS:
            session.merge(DatasetJoin(**join))
        for product in PRODUCTS:
            kind = product.get("kind", "verify")
            SPECS[kind].model_validate(product["spec"])  # a bad demo product fails here
            session.merge(
                Product(
                    id=product["id"],
                    kind=kind,
                    title=product["title"],
                    dataset_id=product["dataset"],
                    spec=product["spec"],
                )
            )
        for op in OPERATORS:
            session.merge(Operator(id=op["id"], name=op["name"], kind=op["kind"]))
            session.merge(
                Licence(
                    id=f"{op['id']}-licence",
                    operator_id=op["id"],
                    products=op["products"],
                    purposes=op["purposes"],
                    valid_from=op["valid"][0],
                    valid_to=op["valid"][1],
                    revoked_at=op.get("revoked_at"),
                    limits=op.get("limits", {}),
                )
            )
        session.commit()
