"""Submitted models (模型) in the gateway database: the bytes by SHA-256, the manifest,
the review and its conditions.

A submission is pending until a department approves it (with an expiry, a maximum
number of runs and the output forms it allows) or rejects it (with a reason). Only the
bytes whose digest was approved ever run: the digest is the model's identity.
"""

from __future__ import annotations

import hashlib
import math
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator
from sqlalchemy import JSON, Column, Connection, Engine, LargeBinary, bindparam, update
from sqlmodel import Field as Column_
from sqlmodel import Session, SQLModel, select

from dataauth.canonical import canonical

Form = Literal["score", "cohort"]
"""``score``: one number per consented subject; ``cohort``: statistics over a group."""

Name = Field(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9-]*$")


class ModelBlob(SQLModel, table=True):
    """A model's bytes, by their SHA-256: the exact bytes a review approves."""

    __tablename__ = "model_blob"

    digest: str = Column_(primary_key=True)
    content: bytes = Column_(sa_column=Column(LargeBinary, nullable=False))


class ModelSubmission(SQLModel, table=True):
    __tablename__ = "model_submission"

    id: str = Column_(primary_key=True)
    digest: str = Column_(foreign_key="model_blob.digest", index=True)
    operator_id: str = Column_(index=True)
    manifest: dict[str, Any] = Column_(sa_column=Column(JSON, nullable=False))
    summary: dict[str, Any] = Column_(sa_column=Column(JSON, nullable=False))
    status: str = Column_(index=True)
    """One of ``model_status.STATUSES``."""
    submitted_at: datetime
    reviewer: str | None = None
    reviewed_at: datetime | None = None
    reason: str | None = None
    conditions: dict[str, Any] = Column_(
        default_factory=dict, sa_column=Column(JSON, nullable=False)
    )
    """expires (RFC 3339), max_runs (or null) and forms, once approved."""


# -- the manifest an operator sends with its model ----------------------------------


class InputBinding(BaseModel):
    name: str = Field(min_length=1, max_length=128, description="the graph input's name")
    columns: list[str] = Field(min_length=1, max_length=256, description="features, in order")


class Output(BaseModel):
    name: str = Field(min_length=1, max_length=128, description="the graph output read")
    column: int = Field(0, ge=0, le=1024, description="which column of a [batch, n] output")
    kind: Literal["probability", "score"] = "probability"
    meaning: str = Field(min_length=1, max_length=500)
    bounds: tuple[float, float] | None = Field(
        None,
        description="[low, high] of the score: where cohort statistics are noised, scores "
        "are clamped to it and the noise scaled to it (a probability is [0, 1] unsaid)",
    )

    @model_validator(mode="after")
    def _bounds(self) -> Output:
        if self.bounds is not None:
            low, high = self.bounds
            if not (math.isfinite(low) and math.isfinite(high) and low < high):
                raise ValueError("bounds are finite, [low, high] with low < high")
        return self


class Manifest(BaseModel):
    name: str = Name
    title: str = Field("", max_length=200)
    dataset: str = Field(min_length=1, max_length=64)
    inputs: list[InputBinding] = Field(min_length=1, max_length=16)
    output: Output
    purpose: str = Name
    forms: list[Form] = Field(min_length=1, max_length=2)

    @model_validator(mode="after")
    def _distinct(self) -> Manifest:
        columns = self.columns()
        if len(columns) != len(set(columns)):
            raise ValueError("a column is bound to at most one feature")
        if len(set(self.forms)) != len(self.forms):
            raise ValueError("each form is asked at most once")
        return self

    def columns(self) -> list[str]:
        return [c for binding in self.inputs for c in binding.columns]


class Conditions(BaseModel):
    """A department's approval: until when, how many runs, which forms."""

    expires: datetime
    max_runs: int | None = Field(None, ge=1, le=10_000_000)
    forms: list[Form] | None = Field(None, min_length=1, max_length=2)
    note: str = Field("", max_length=500)


class Rejection(BaseModel):
    reason: str = Field(min_length=1, max_length=500)


def submission_id(operator: str, digest: str, manifest: Manifest) -> str:
    """The same operator sending the same bytes and manifest gets the same id."""
    # unset optional fields left out: a manifest written before they existed keeps its id
    dumped = manifest.model_dump(exclude_none=True)
    content = {"operator": operator, "digest": digest, "manifest": dumped}
    material = canonical(content)
    return "m-" + hashlib.sha256(material).hexdigest()[:16]


def digest_of(content: bytes) -> str:
    return "sha256:" + hashlib.sha256(content).hexdigest()


_TABLE: Any = ModelSubmission.__table__
_BY_ID = select(*(c for c in _TABLE.c if c.name != "summary")).where(_TABLE.c.id == bindparam("id"))
_SUMMARY = select(_TABLE.c.summary).where(_TABLE.c.id == bindparam("id"))
SUMMARIES = 256
"""Graph summaries kept parsed, by submission id."""


class Submissions:
    """Reads and writes submissions. A review changes a pending row only, in one
    conditional update, so two reviewers racing cannot both decide."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._summaries: dict[str, dict[str, Any]] = {}

    def add(
        self, connection: Connection, submission: ModelSubmission, content: bytes
    ) -> ModelSubmission:
        """Store a submission (once) in ``connection``'s transaction, which the caller
        commits with its entry."""
        with Session(bind=connection) as session:
            existing = session.get(ModelSubmission, submission.id)
            if existing is not None:
                return existing
            if session.get(ModelBlob, submission.digest) is None:
                session.add(ModelBlob(digest=submission.digest, content=content))
            session.add(submission)
            session.flush()
            return submission

    def get(self, model_id: str) -> ModelSubmission | None:
        # read afresh every time (a revocation is in force at once), by a Core select: an
        # ORM session's get cost a fifth of a scoring request's spine. The graph's
        # summary (some 17 kB of JSON with its leakage report) is written once, at
        # submission, and never changed: it is parsed once and kept, not on every run.
        with self.engine.connect() as connection:
            row = connection.execute(_BY_ID, {"id": model_id}).mappings().one_or_none()
            if row is None:
                return None
            summary = self._summaries.get(model_id)
            if summary is None:
                summary = connection.execute(_SUMMARY, {"id": model_id}).scalar_one()
                if len(self._summaries) >= SUMMARIES:
                    self._summaries = {}  # bounded: the next runs read theirs again
                self._summaries[model_id] = summary
        return ModelSubmission.model_construct(**row, summary=summary)

    def listing(self, status: str | None, operator: str | None) -> list[ModelSubmission]:
        query = select(ModelSubmission).order_by(ModelSubmission.submitted_at)
        if status:
            query = query.where(ModelSubmission.status == status)
        if operator:
            query = query.where(ModelSubmission.operator_id == operator)
        with Session(self.engine) as session:
            return list(session.exec(query))

    def content(self, digest: str) -> bytes | None:
        """The bytes stored under ``digest``, if they still hash to it."""
        with Session(self.engine) as session:
            blob = session.get(ModelBlob, digest)
        if blob is None or digest_of(blob.content) != digest:
            return None
        return blob.content

    def review(
        self, connection: Connection, model_id: str, values: dict[str, Any], was: str = "pending"
    ) -> bool:
        """Move a submission on from status ``was`` (pending: a decision; approved: a
        revocation), in ``connection``'s transaction, which the caller commits with its
        entry; False if it was not in that status any more."""
        with Session(bind=connection) as session:
            result = session.exec(  # type: ignore[call-overload]
                update(ModelSubmission)
                .where(ModelSubmission.id == model_id)  # type: ignore[arg-type]
                .where(ModelSubmission.status == was)  # type: ignore[arg-type]
                .values(**values)
            )
            return bool(result.rowcount)
