"""Reading the catalog out as a document, checking one against the department's
database, and writing one in (one transaction: every item it names, or none)."""

from __future__ import annotations

import hashlib
from typing import Any

from sqlalchemy import Connection, Engine
from sqlmodel import Session, select

from dataauth.canonical import canonical
from dataauth.catalog.document import (
    CatalogDocument,
    ColumnDoc,
    DatasetDoc,
    JoinDoc,
    LicenceDoc,
    OperatorDoc,
    ProductDoc,
)
from dataauth.catalog.tables import (
    Dataset,
    DatasetColumn,
    DatasetJoin,
    Licence,
    Operator,
    Product,
)


def export(engine: Engine) -> CatalogDocument:
    """The whole catalog in the gateway database, as a document."""
    with Session(engine) as session:
        columns: dict[str, list[ColumnDoc]] = {}
        for c in session.exec(select(DatasetColumn).order_by(DatasetColumn.dataset_id)):
            row = c.model_dump(exclude={"dataset_id"})
            columns.setdefault(c.dataset_id, []).append(ColumnDoc.model_validate(row))
        datasets = [
            DatasetDoc.model_validate(
                {
                    **d.model_dump(exclude={"table_name"}),
                    "table": d.table_name,
                    "columns": columns.get(d.id, []),
                }
            )
            for d in session.exec(select(Dataset).order_by(Dataset.id))
        ]
        products = [
            ProductDoc.model_validate(
                {**p.model_dump(exclude={"dataset_id"}), "dataset": p.dataset_id}
            )
            for p in session.exec(select(Product).order_by(Product.id))
        ]
        joins = [
            JoinDoc.model_validate(j.model_dump())
            for j in session.exec(select(DatasetJoin).order_by(DatasetJoin.id))
        ]
        operators = [
            OperatorDoc.model_validate(o.model_dump())
            for o in session.exec(select(Operator).order_by(Operator.id))
        ]
        licences = [
            LicenceDoc.model_validate(lic.model_dump())
            for lic in session.exec(select(Licence).order_by(Licence.id))
        ]
    return CatalogDocument(datasets=datasets, products=products, joins=joins,
                           operators=operators, licences=licences)  # fmt: skip


def apply(connection: Connection, document: CatalogDocument, department: str) -> None:
    """Upsert every item the document names, in ``connection``'s transaction (the
    caller commits it, with the publication's entry); others stay."""
    with Session(bind=connection) as session:
        for d in document.datasets:
            session.merge(
                Dataset(id=d.id, title=d.title, department=d.department or department,
                        table_name=d.table, key_column=d.key_column, version=d.version)
            )  # fmt: skip
            for c in d.columns:
                session.merge(DatasetColumn(dataset_id=d.id, **c.model_dump()))
        for p in document.products:
            session.merge(
                Product(id=p.id, kind=p.kind, title=p.title, dataset_id=p.dataset,
                        spec=p.spec, published=p.published)
            )  # fmt: skip
        for j in document.joins:
            session.merge(DatasetJoin(**j.model_dump()))
        for o in document.operators:
            session.merge(Operator(**o.model_dump()))
        for lic in document.licences:
            session.merge(Licence(**lic.model_dump()))
        session.flush()


def as_json(document: CatalogDocument) -> dict[str, Any]:
    """The document as JSON, times as RFC 3339 (UTC)."""
    content = document.model_dump(mode="json")
    for licence in content["licences"]:
        for field in ("valid_from", "valid_to", "revoked_at"):
            if licence[field] is not None and not licence[field].endswith("Z"):
                licence[field] += "Z"
    return content


def digest(document: CatalogDocument) -> str:
    """The document's identity: SHA-256 of its canonical JSON (RFC 8785)."""
    return "sha256:" + hashlib.sha256(canonical(as_json(document))).hexdigest()
