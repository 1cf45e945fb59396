"""Verification (核验): does a subject's record satisfy a claim? Answered per subject.

A product is declarative (catalog): a dataset, checks over columns that allow the
``compare`` use, and the form of the answer (a boolean, or a band from declared cut
points). Every comparison runs inside the department's database as one statement per
batch, so the stored values never reach the gateway's memory, let alone the response.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from pydantic import BaseModel, Field

from dataauth.accounts.disclosure import Disclosure
from dataauth.catalog.specs import IN_SLOTS, ClaimValue, Parameter, VerificationSpec
from dataauth.catalog.store import Catalog, DatasetInfo, OperatorInfo, ProductInfo
from dataauth.domain.database import Domain
from dataauth.domain.lookups import Band, Check, Verification
from dataauth.domain.query import Op
from dataauth.errors import Problem, not_found, unprocessable
from dataauth.identity.keys import SubjectHasher
from dataauth.operations.base import Call, ConsentNeed, Description, Request, Route

# -- requests ------------------------------------------------------------------------


class Subject(BaseModel):
    key: str = Field(min_length=1, max_length=64, description="the subject's key")
    claims: dict[str, ClaimValue] = Field(default_factory=dict, max_length=16)
    consent: str | None = Field(None, max_length=4096, description="the subject's consent token")


class VerifyRequest(Request):
    subjects: list[Subject] = Field(min_length=1, description="one subject, or a batch")

    def batch(self) -> int:
        return len(self.subjects)


@dataclass(frozen=True)
class Plan:
    product: str
    spec: VerificationSpec
    dataset: DatasetInfo
    spec_json: str
    keys: list[str]
    claims: list[list[Any]]
    """Per subject, the operands bound for each check, in check order."""


# -- the kind ------------------------------------------------------------------------


def _claim_error(index: int, name: str, why: str) -> Problem:
    return unprocessable(
        "invalid_claim",
        f"subject {index}: claim {name!r} {why}",
        subject=index,
        claim=name,
    )


def _scalar(value: Any, parameter: Parameter, index: int, name: str) -> Any:
    kind = parameter.type
    if kind == "string":
        if not isinstance(value, str) or len(value) > parameter.max_length:
            raise _claim_error(index, name, f"must be a string of at most {parameter.max_length}")
        return _one_of(value, parameter, index, name)
    if kind == "date":
        try:
            return _one_of(dt.date.fromisoformat(value).isoformat(), parameter, index, name)
        except (TypeError, ValueError):
            raise _claim_error(index, name, "must be a date as YYYY-MM-DD") from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _claim_error(index, name, f"must be a {kind}")
    if kind == "integer" and not (isinstance(value, int) or float(value).is_integer()):
        raise _claim_error(index, name, "must be a whole number")
    if not math.isfinite(value):
        raise _claim_error(index, name, "must be finite")
    if parameter.minimum is not None and value < parameter.minimum:
        raise _claim_error(index, name, f"must be at least {parameter.minimum:g}")
    if parameter.maximum is not None and value > parameter.maximum:
        raise _claim_error(index, name, f"must be at most {parameter.maximum:g}")
    return _one_of(int(value) if kind == "integer" else value, parameter, index, name)


def _one_of(value: Any, parameter: Parameter, index: int, name: str) -> Any:
    """The claim, if it is one of the product's fixed choices (where it has any)."""
    if parameter.one_of is not None and value not in parameter.one_of:
        choices = ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in parameter.one_of)
        raise _claim_error(index, name, f"must be one of {choices}")
    return value


def _operands(spec: VerificationSpec, claims: dict[str, Any], index: int) -> list[Any]:
    unknown = set(claims) - set(spec.parameters)
    if unknown:
        name = sorted(unknown)[0]
        raise _claim_error(index, name, "is not a parameter of this product")
    bound: list[Any] = []
    for check in spec.checks:
        if check.param is None:
            continue
        if check.param not in claims:
            raise _claim_error(index, check.param, "is missing")
        value, parameter = claims[check.param], spec.parameters[check.param]
        if check.op == "between":
            if not (isinstance(value, list) and len(value) == 2):
                raise _claim_error(index, check.param, "must be a [low, high] pair")
            bound.extend(_scalar(v, parameter, index, check.param) for v in value)
        elif check.op == "in":
            if not (isinstance(value, list) and 1 <= len(value) <= IN_SLOTS):
                raise _claim_error(index, check.param, f"must be a list of 1 to {IN_SLOTS}")
            items = [_scalar(v, parameter, index, check.param) for v in value]
            bound.extend(items + [None] * (IN_SLOTS - len(items)))
        else:
            if isinstance(value, list):
                raise _claim_error(index, check.param, "must be a single value")
            bound.append(_scalar(value, parameter, index, check.param))
    return bound


def _all_operands(spec: VerificationSpec, subjects: list[Subject]) -> list[list[Any]]:
    """Each subject's operands (``_operands``), checked once per distinct claims: a batch
    mostly asks every subject the same. Claims are told apart by their ``repr``, which
    keeps what equality merges (``True``, ``1``, ``1.0``; ``0.0`` and ``-0.0``); only
    claims that pass are remembered, so the first subject with failing claims is the one
    named, as when each is checked in turn. Subjects with the same claims share one list
    (read only: ``Verify.disclosures`` asks its question once per list)."""
    seen: dict[str, list[Any]] = {}
    claims = []
    for index, subject in enumerate(subjects):
        given = subject.claims
        key = repr(given)
        bound = seen.get(key)
        if bound is None:
            bound = seen[key] = _operands(spec, given, index)
        claims.append(bound)
    return claims


def _asked(operands: list[Any]) -> str:
    """The claims as one question: numbers as floats, so that 5000 and 5000.0 are one."""
    return repr(
        [float(v) if isinstance(v, int) and not isinstance(v, bool) else v for v in operands]
    )


@lru_cache(maxsize=256)
def _query(spec_json: str, table: str, key: str) -> Verification:
    """The product's checks and answer as the domain's verification query (kept per
    spec: the query keeps its statement per batch size, compiled once)."""
    spec = VerificationSpec.model_validate_json(spec_json)
    checks = []
    for check in spec.checks:
        fixed = None
        if check.value is not None:
            listed = check.op in ("between", "in")
            fixed = tuple(check.value) if listed else (check.value,)
        checks.append(Check(check.column, Op(check.op), fixed))
    answer = spec.answer
    band = Band(answer.column or "", tuple(answer.cuts)) if answer.form == "band" else None
    return Verification(table, key, tuple(checks), band, IN_SLOTS)


class Verify:
    """The verification kind."""

    name = "verify"
    route = Route(
        "/v1/verify/{product}",
        VerifyRequest,
        "Verify claims about one subject or a batch: true/false or a band, never a value.",
        "verification (核验)",
        target=r"^[a-z0-9][a-z0-9-]{0,63}$",
    )

    def __init__(self, catalog: Catalog, domain: Domain, hasher: SubjectHasher):
        self.catalog = catalog
        self.domain = domain
        self.hasher = hasher
        self._specs: dict[str, tuple[ProductInfo, VerificationSpec, str]] = {}

    def _spec(self, product: ProductInfo) -> tuple[VerificationSpec, str]:
        """The product's parsed spec and its JSON, parsed once per catalog snapshot."""
        cached = self._specs.get(product.id)
        if cached is None or cached[0] is not product:
            spec = VerificationSpec.model_validate(product.spec)
            cached = (product, spec, spec.model_dump_json())
            self._specs[product.id] = cached
        return cached[1], cached[2]

    def describe(self, call: Call[VerifyRequest], operator: OperatorInfo) -> Description:
        product = self.catalog.product(call.target or "")
        if product is None or product.kind != self.name:
            raise not_found("unknown_product", f"there is no verification product {call.target!r}")
        dataset = self.catalog.dataset(product.dataset_id)
        if dataset is None:
            raise not_found("unknown_dataset", f"product {product.id} names no known dataset")
        spec, spec_json = self._spec(product)
        subjects = call.body.subjects
        claims = _all_operands(spec, subjects)
        keys = [s.key for s in subjects]

        columns = [{"name": dataset.key_column, "use": "key"}]
        uses = spec.column_uses()
        missing = [name for name, _ in uses if name not in dataset.columns]
        if missing:  # the catalog checks this when it is published
            raise not_found("unknown_column", f"product {product.id} names no column {missing[0]}")
        columns += [{"name": name, "use": use} for name, use in uses]
        for column in columns:
            info = dataset.columns[column["name"]]
            column.update(level=info.level, uses=list(info.uses))
        facts = {
            "dataset": {"id": dataset.id, "version": dataset.version},
            "columns": columns,
            "subjects": {"count": len(subjects)},
            "parameters": sorted(spec.parameters),
            "answer": spec.answer.form,
        }
        return Description(
            operation={"product": product.id},
            facts=facts,
            plan=Plan(product.id, spec, dataset, spec_json, keys, claims),
            dataset_version=f"{dataset.id}@{dataset.version}",
            subjects=self.hasher.many(dataset.id, keys),
            consent=ConsentNeed(product.id, [s.consent for s in subjects])
            if spec.consent
            else None,
        )

    def disclosures(self, plan: Plan, obligations: dict[str, Any]) -> list[Disclosure]:
        """Per subject, its question and what the answer can reveal (``VerificationSpec.bits``):
        a fixed product is one question whatever the claim; a free claim, one question
        per distinct claim (a number as a float: 5000 and 5000.0 ask the same)."""
        bits, people = plan.spec.bits(), self.hasher.people(plan.keys)
        if plan.spec.fixed():
            question = self.hasher.question("verify", plan.product)
            return [Disclosure(person, question, bits) for person in people]
        # subjects with the same claims share one operand list (``_all_operands``): its
        # question is hashed once, by the list's identity (every list is alive in the plan)
        asked: dict[int, str] = {}
        disclosures = []
        for person, ops in zip(people, plan.claims, strict=True):
            question = asked.get(id(ops))
            if question is None:
                question = asked[id(ops)] = self.hasher.question(
                    "verify", plan.product, _asked(ops)
                )
            disclosures.append(Disclosure(person, question, bits))
        return disclosures

    def execute(self, plan: Plan, obligations: dict[str, Any]) -> list[tuple[int, int, Any]]:
        size = len(plan.keys)
        query = _query(plan.spec_json, plan.dataset.table_name, plan.dataset.key_column)
        rows = query.answers(self.domain, plan.keys, plan.claims)
        answers: list[tuple[int, int, Any]] = [(0, 0, None)] * size
        if query.band is None:
            for index, found, passed in rows:
                answers[index] = (found, passed, None)
        else:
            for index, found, passed, band in rows:
                answers[index] = (found, passed, band)
        return answers

    def disclose(
        self, raw: list[tuple[int, int, Any]], plan: Plan, obligations: dict[str, Any]
    ) -> dict[str, Any]:
        answer, explicit = plan.spec.answer, plan.spec.not_found == "explicit"
        if answer.form == "boolean" and not explicit:  # the common product, in one pass
            results = [{"index": i, "result": bool(f and p)} for i, (f, p, _) in enumerate(raw)]
            return {"product": plan.product, "results": results}
        results = []
        for index, (found, passed, band) in enumerate(raw):
            if not found and explicit:
                results.append({"index": index, "result": None, "not_found": True})
            elif answer.form == "band":
                label = None if band is None or not passed else answer.labels[int(band)]
                results.append({"index": index, "result": label})
            else:
                results.append({"index": index, "result": bool(found and passed)})
        return {"product": plan.product, "results": results}
