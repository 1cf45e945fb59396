"""A department publishes its catalog (分类分级, products, joins, operators, licences).

The document is checked on its own, over the catalog it lands on, and against the
department's database; then applied in one transaction and audited with one entry of
metadata (the document's digest and how many items of each section it names).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError, OperationalError

from dataauth.admin.steps import Steps
from dataauth.catalog.document import CatalogDocument, parse, problem, problems
from dataauth.catalog.publish import apply, as_json, digest, export
from dataauth.domain.database import domain_problem
from dataauth.domain.schema import agrees, tables
from dataauth.errors import Problem, unprocessable


def invalid(found: list[dict[str, str]]) -> Problem:
    count = f"{len(found)} problem{'s' if len(found) != 1 else ''}"
    first = f"{found[0]['at']}: {found[0]['message']}"
    return unprocessable("catalog_invalid", f"the catalog has {count}; {first}", errors=found)


def check(content: Any, current: CatalogDocument | None, domain: Engine | None) -> CatalogDocument:
    """The document, once nothing is wrong with it (else a 422 ``catalog_invalid``)."""
    document, found = parse(content)
    if document is None:
        raise invalid(found)
    found = problems(document, current)
    if domain is not None:
        try:
            found += database_problems(document, domain)
        except Exception as exc:  # the department's database failing is not the document's
            raise domain_problem(exc) from None
    if found:
        raise invalid(found)
    return document


def database_problems(document: CatalogDocument, domain: Engine) -> list[dict[str, str]]:
    """Each dataset's table and columns must be in the department's database, of a type
    that agrees with the one declared."""
    held = tables(domain)
    sqlite = domain.dialect.name == "sqlite"
    found = []
    for dataset in document.datasets:
        at = f"datasets/{dataset.id}"
        columns = held.get(dataset.table)
        if columns is None:
            found.append(problem(f"{at}/table", f"no table {dataset.table!r} in the database"))
            continue
        for column in dataset.columns:
            if column.name not in columns:
                found.append(
                    problem(f"{at}/columns/{column.name}", f"no such column in {dataset.table}")
                )
            elif not agrees(column.type, columns[column.name], sqlite):
                found.append(
                    problem(
                        f"{at}/columns/{column.name}/type",
                        f"declared {column.type}, the database holds {columns[column.name]}",
                    )
                )
    return found


def stale_products(document: CatalogDocument, current: CatalogDocument) -> list[dict[str, str]]:
    """Products the document leaves alone whose columns, as it reclassifies them, no longer
    allow what they do: accepted (a department may mean it), and policy denies them."""
    named = {p.id for p in document.products}
    others = [p for p in current.products if p.id not in named and p.published]
    merged = document.merged_over(current)
    return [
        w for w in problems(CatalogDocument(products=others), merged) if w["at"].endswith("/spec")
    ]


class CatalogAdmin:
    def __init__(self, steps: Steps, domain: Engine) -> None:
        self.steps = steps
        self.catalog = steps.access.catalog
        self.domain = domain
        self.engine = self.catalog.engine

    def show(self, authorization: str | None) -> dict[str, Any]:
        self.steps.access.department(authorization)
        return as_json(export(self.engine))

    def publish(self, authorization: str | None, content: Any) -> dict[str, Any]:
        caller = self.steps.access.department(authorization)
        current = export(self.engine)
        document = check(content, current, self.domain)
        try:
            name = digest(document)
        except Exception:  # NaN or an infinity somewhere: JSON has no such number
            raise invalid([{"at": "", "message": "a number is not finite"}]) from None
        counts = document.counts()
        try:
            _, receipt = self.steps.take(
                caller.subject,
                lambda connection: apply(connection, document, caller.subject),
                {"kind": "catalog-publish", "digest": name, "counts": counts},
                purpose="catalog-administration",
                request=name.encode(),
                outcome="published",
            )
        except (IntegrityError, OperationalError):  # another publication at the same moment
            raise Problem(409, "catalog_conflict", "the catalog changed; try again") from None
        self.catalog.refresh()  # this worker now, once committed; the others within one TTL
        return {
            "digest": name,
            "counts": counts,
            "warnings": stale_products(document, current),
            "audit": receipt.as_dict(),
        }
