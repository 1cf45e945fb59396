"""The demo domain: a Guangzhou residents register and an enterprises register.

Created deterministically (fixed seed) in its own SQLite file, which stands for the
department's own database: the gateway opens it read-only and never copies from it.
The catalog entries (classification, products, operators, licences) go into the
gateway database.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
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
from dataauth.demo.catalog import (
    BOUNDS,
    ENTERPRISE_COLUMNS,
    JOINS,
    OPERATORS,
    PRODUCTS,
    RESIDENT_COLUMNS,
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
