"""Product specs (Product.spec in the catalog): what each product may read, and how.

A department declares a product as data; the catalog checks it when the catalog is
published, and the product's kind reads it at each request. Each spec names the
columns it reads and the use it makes of each (``column_uses``), so the catalog
checks them against the columns' classification (分类分级) without knowing the kind.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

HE_SCORE = "he-score"
"""The encrypted-scoring kind's name, as products and the policy call it."""

IN_SLOTS = 16
"""A claimed list for an ``in`` check binds this many slots (unused ones are NULL)."""

# bool first, so that pydantic keeps true as a bool (and the claim check refuses it)
Scalar = bool | str | int | float
ClaimValue = Scalar | list[Scalar]


class Parameter(BaseModel):
    type: Literal["string", "number", "integer", "date"]
    description: str = ""
    minimum: float | None = None
    maximum: float | None = None
    max_length: int = 64
    one_of: list[str | float] | None = Field(None, min_length=1, max_length=64)
    """The only values a claim may take: a threshold's cut points (3000, 5000, 8000 ...),
    fixed by the department. Whatever an operator asks, the product's answers then place
    a subject in one of ``len(one_of) + 1`` intervals and no finer: the information a
    subject can give away through the product is bounded by construction."""

    @model_validator(mode="after")
    def _choices(self) -> Parameter:
        if self.one_of is not None and len(set(self.one_of)) != len(self.one_of):
            raise ValueError("one_of lists each value once")
        return self


class Check(BaseModel):
    column: str
    op: Literal["eq", "ne", "lt", "le", "gt", "ge", "between", "in", "exists"]
    param: str | None = None
    """The claim that supplies the operand; ``between`` takes a [low, high] pair, ``in`` a list."""
    value: Any = None
    """Or a constant operand fixed by the product."""

    @model_validator(mode="after")
    def _operand(self) -> Check:
        if self.op == "exists":
            if self.param is not None or self.value is not None:
                raise ValueError("an exists check takes no operand")
            return self
        if (self.param is None) == (self.value is None):
            raise ValueError(f"check on {self.column}: give exactly one of param or value")
        pair = isinstance(self.value, list) and len(self.value) == 2
        if self.value is not None and self.op == "between" and not pair:
            raise ValueError("a between value is a [low, high] pair")
        listed = isinstance(self.value, list) and 1 <= len(self.value) <= IN_SLOTS
        if self.value is not None and self.op == "in" and not listed:
            raise ValueError(f"an in value is a list of 1 to {IN_SLOTS} items")
        return self


class Answer(BaseModel):
    form: Literal["boolean", "band"] = "boolean"
    column: str | None = None
    cuts: list[float] = Field(default_factory=list)
    labels: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _band(self) -> Answer:
        if self.form == "band":
            if not self.column or not self.cuts or self.cuts != sorted(set(self.cuts)):
                raise ValueError("a band needs a column and strictly increasing cut points")
            if len(self.labels) != len(self.cuts) + 1:
                raise ValueError("a band needs one label more than it has cut points")
        return self


class VerificationSpec(BaseModel):
    checks: list[Check] = Field(default_factory=list)
    parameters: dict[str, Parameter] = Field(default_factory=dict)
    answer: Answer = Field(default_factory=Answer)
    consent: bool = False
    """Each subject's consent (授权) is needed: a token per subject, checked by the gateway."""
    not_found: Literal["false", "explicit"] = "false"
    """"false": an unknown subject answers false, so an answer tells no more than a
    mismatch would; "explicit": it answers null with not_found (for public registers)."""

    @model_validator(mode="after")
    def _consistent(self) -> VerificationSpec:
        used = {c.param for c in self.checks if c.param is not None}
        if used != set(self.parameters):
            raise ValueError("every check parameter must be declared, and only those")
        if self.answer.form == "boolean" and not self.checks:
            raise ValueError("a boolean product needs at least one check")
        if self.answer.form == "band" and self.not_found != "explicit":
            raise ValueError("a band product answers an unknown subject explicitly")
        return self

    def fixed(self) -> bool:
        """Whether every claim comes from the product's fixed choices (or it takes none):
        then all its questions about a subject are one question, answered once."""
        return all(p.one_of is not None for p in self.parameters.values())

    def bits(self) -> float:
        """What a subject can give away through this product, in bits: log2 of the
        answers it can get. A fixed product's answers, over every choice an operator may
        ask, place the subject in one of prod(len(one_of) + 1) cells (times the band, for
        a banded answer); a free claim gets true or false (a label, or none). An
        unknown subject answered explicitly is one answer more."""
        per_question = 2 if self.answer.form == "boolean" else len(self.answer.labels) + 1
        outcomes = per_question
        if self.fixed() and self.parameters:
            cells = math.prod(len(p.one_of or ()) + 1 for p in self.parameters.values())
            outcomes = cells if self.answer.form == "boolean" else cells * per_question
        return math.log2(outcomes + (1 if self.not_found == "explicit" else 0))

    def column_uses(self) -> list[tuple[str, str]]:
        """(column, use): every check and the banded column are compared."""
        return [(name, "compare") for name in self.column_names()]

    def column_names(self) -> list[str]:
        names = [c.column for c in self.checks]
        if self.answer.column:
            names.append(self.answer.column)
        return list(dict.fromkeys(names))


class HEProductSpec(BaseModel):
    """An encrypted-scoring product (Product.spec): what a model may read."""

    features: list[str] = Field(min_length=1, max_length=64)
    """Columns a model may use as features (each must allow the ``feature`` use)."""
    cohort_columns: list[str] = Field(default_factory=list)
    """Columns a cohort filter may compare (each must allow ``compare``)."""
    consent: bool = True
    """Per-subject scores need each subject's consent (授权)."""

    def column_uses(self) -> list[tuple[str, str]]:
        """(column, use): features feed the model, cohort columns are compared."""
        return [(f, "feature") for f in self.features] + [
            (c, "compare") for c in self.cohort_columns
        ]


SPECS: dict[str, type[VerificationSpec] | type[HEProductSpec]] = {
    "verify": VerificationSpec,
    HE_SCORE: HEProductSpec,
}
"""The spec of each kind of product a catalog may declare."""
