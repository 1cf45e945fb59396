"""Model submission and review (模型提交与审查): administrative steps beside the spine.

An operator submits an ONNX graph with its manifest; the gateway checks it
(``submission_checks.py``: the graph, and the leakage check on the department's own
rows) and stores it by SHA-256 as pending. A department lists,
inspects (the weights, and the leakage check run afresh), approves with conditions (the
release the check obliges among them) or rejects. Every step, refusals included, is an
audit entry.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import Connection

from dataauth.admin.steps import Steps
from dataauth.admin.submission_checks import PROBES, SubmissionChecks, refuse_leaks
from dataauth.canonical import canonical, rfc3339
from dataauth.catalog.submissions import (
    Conditions,
    Manifest,
    ModelSubmission,
    Rejection,
    Submissions,
    digest_of,
    submission_id,
)
from dataauth.domain.database import Domain
from dataauth.errors import Problem, not_found, unprocessable


class SubmitRequest(BaseModel):
    manifest: Manifest
    onnx: str = Field(min_length=1, description="the ONNX file, base64")


def outcome(report: dict[str, Any]) -> dict[str, Any]:
    """What an operator sees of a leakage report: per form, the release obliged or
    whether it passes, not the measurements (exact statistics of the department's rows)."""
    forms = {}
    for form, judged in report.get("forms", {}).items():
        kept = {k: judged[k] for k in ("obliged", "passes", "bounded_by") if k in judged}
        forms[form] = kept
    return {"bound": report.get("bound"), "forms": forms}


def view(row: ModelSubmission, *, graph: bool = True, department: bool = False) -> dict[str, Any]:
    """A submission as the API shows it (never the bytes); the leakage measurements
    only to a department."""
    shown: dict[str, Any] = {
        "id": row.id,
        "digest": row.digest,
        "operator": row.operator_id,
        "status": row.status,
        "submitted_at": rfc3339(row.submitted_at),
        "manifest": row.manifest,
    }
    if graph:
        summary = dict(row.summary)
        if "leakage" in summary and not department:
            summary["leakage"] = outcome(summary["leakage"])
        shown["summary"] = summary
    if row.status != "pending":
        shown["review"] = {
            "by": row.reviewer,
            "at": rfc3339(row.reviewed_at) if row.reviewed_at else None,
            "reason": row.reason,
            "conditions": row.conditions or None,
        }
    return shown


class ModelReview:
    def __init__(self, steps: Steps, registry: Submissions, max_bytes: int, domain: Domain) -> None:
        self.steps = steps
        self.catalog = steps.access.catalog
        self.registry = registry
        self.max_bytes = max_bytes
        self.checks = SubmissionChecks(self.catalog, domain, steps.policy, max_bytes)

    # -- the operator's side ---------------------------------------------------------

    def submit(self, authorization: str | None, body: SubmitRequest) -> dict[str, Any]:
        _, operator = self.steps.access.operator(authorization)
        manifest = body.manifest
        if len(body.onnx) > (self.max_bytes * 4) // 3 + 4:  # before decoding, too
            raise Problem(413, "model_too_large", f"a model is at most {self.max_bytes} bytes")
        try:
            content = base64.b64decode(body.onnx, validate=True)
        except (binascii.Error, ValueError):
            raise unprocessable("model_not_base64", "onnx must be the file in base64") from None
        digest = digest_of(content)
        operation = {
            "kind": "model-submit",
            "name": manifest.name,
            "dataset": manifest.dataset,
            "digest": digest,
        }
        request = canonical({"digest": digest, "manifest": manifest.model_dump()})

        def record(outcome: str, **more: str) -> dict[str, Any]:
            receipt = self.steps.record(
                operator.id,
                {**operation, **more},
                purpose=manifest.purpose,
                request=request,
                outcome=outcome,
            )
            return receipt.as_dict()

        try:
            summary = self.checks.graph(content, manifest)
            report = self.checks.leakage(content, manifest, operator.id)
            refuse_leaks(report, manifest.forms)
        except Problem as problem:
            problem.extensions["audit"] = record("refused", code=problem.code)
            raise
        submission = ModelSubmission(
            id=submission_id(operator.id, digest, manifest),
            digest=digest,
            operator_id=operator.id,
            manifest=manifest.model_dump(mode="json"),
            summary={**summary, "leakage": report, "probes": PROBES},
            status="pending",
            submitted_at=self.steps.clock(),
        )
        row, receipt = self.steps.take(
            operator.id,
            lambda connection: self.registry.add(connection, submission, content),
            {**operation, "model": submission.id},
            purpose=manifest.purpose,
            request=request,
            outcome="submitted",
        )
        return {**view(row), "audit": receipt.as_dict()}

    # -- reading -----------------------------------------------------------------------

    def _reader(self, authorization: str | None) -> str | None:
        """None for a department (sees every submission), else the operator's id."""
        caller = self.steps.access.caller(authorization)
        if "department" in caller.roles:
            return None
        _, operator = self.steps.access.operator(authorization)
        return operator.id

    def listing(self, authorization: str | None, status: str | None) -> dict[str, Any]:
        operator = self._reader(authorization)
        rows = self.registry.listing(status, operator)
        return {"models": [view(r, graph=False) for r in rows]}

    def show(self, authorization: str | None, model_id: str) -> dict[str, Any]:
        operator = self._reader(authorization)
        row = self.registry.get(model_id)
        if row is None or (operator is not None and row.operator_id != operator):
            raise not_found("unknown_model", f"there is no model {model_id!r}")
        if operator is not None:
            return view(row)
        shown = view(row, department=True)
        content = self.registry.content(row.digest)
        if content is not None:  # against the data as it is now, not as it was
            try:
                report = self.checks.leakage(content, Manifest.model_validate(row.manifest),
                                       row.operator_id)  # fmt: skip
            except Problem as problem:
                report = {"error": problem.code, "detail": problem.detail}
            shown["summary"] = {**shown["summary"], "leakage": report}
        # a department's inspection is a step of the review: on the record too
        reviewer = self.steps.access.caller(authorization).subject
        receipt = self.steps.record(
            reviewer,
            {"kind": "model-inspect", "model": row.id, "digest": row.digest},
            purpose="model-review",
            request=canonical({"model": row.id, "digest": row.digest}),
            outcome="shown",
        )
        return {**shown, "audit": receipt.as_dict()}

    # -- the department's side -------------------------------------------------------

    def _pending(self, model_id: str) -> ModelSubmission:
        row = self.registry.get(model_id)
        if row is None:
            raise not_found("unknown_model", f"there is no model {model_id!r}")
        if row.status != "pending":
            raise Problem(409, "already_reviewed", f"model {model_id} is already {row.status}")
        return row

    def approve(
        self, authorization: str | None, model_id: str, conditions: Conditions
    ) -> dict[str, Any]:
        caller = self.steps.access.department(authorization)
        row = self._pending(model_id)
        now = self.steps.clock()
        expires = conditions.expires
        if expires.tzinfo is None:
            expires = expires.replace(tzinfo=UTC)
        if expires <= now:
            raise unprocessable("expiry_in_past", "an approval must expire in the future")
        asked = row.manifest["forms"]
        forms = conditions.forms or asked
        if not set(forms) <= set(asked):
            raise unprocessable(
                "form_not_requested", f"the submission asked for {asked}; approve only those"
            )
        content = self.registry.content(row.digest)
        if content is None:
            raise Problem(409, "model_bytes_missing", "the submitted bytes are not on record")
        report = self.checks.leakage(
            content, Manifest.model_validate(row.manifest), row.operator_id
        )
        refuse_leaks(report, forms)
        granted = {"expires": rfc3339(expires), "max_runs": conditions.max_runs, "forms": forms}
        if "score" in forms:
            # the finest release the check found safe: the run never releases finer
            granted["release"] = report["forms"]["score"]["obliged"]
        return self._decide(
            caller.subject,
            row,
            "approved",
            {"conditions": granted, "reason": conditions.note or None},
        )

    def reject(
        self, authorization: str | None, model_id: str, rejection: Rejection
    ) -> dict[str, Any]:
        caller = self.steps.access.department(authorization)
        row = self._pending(model_id)
        return self._decide(caller.subject, row, "rejected", {"reason": rejection.reason})

    def revoke(
        self, authorization: str | None, model_id: str, rejection: Rejection
    ) -> dict[str, Any]:
        """Withdraw an approval: the model runs no more, from the next request on."""
        caller = self.steps.access.department(authorization)
        row = self.registry.get(model_id)
        if row is None:
            raise not_found("unknown_model", f"there is no model {model_id!r}")
        if row.status != "approved":
            raise Problem(409, "not_approved", f"model {model_id} is {row.status}, not approved")
        values = {"conditions": row.conditions, "reason": rejection.reason}
        return self._decide(caller.subject, row, "revoked", values, was="approved")

    def _decide(
        self,
        reviewer: str,
        row: ModelSubmission,
        status: str,
        values: dict[str, Any],
        was: str = "pending",
    ) -> dict[str, Any]:
        values = {**values, "status": status, "reviewer": reviewer,
                  "reviewed_at": self.steps.clock()}  # fmt: skip
        operation = {
            "kind": "model-review",
            "model": row.id,
            "digest": row.digest,
            "decision": status,
            **({"conditions": values["conditions"]} if "conditions" in values else {}),
        }

        def review(connection: Connection) -> None:
            if not self.registry.review(connection, row.id, values, was):
                raise Problem(409, "already_reviewed", f"model {row.id} was reviewed meanwhile")

        _, receipt = self.steps.take(
            reviewer,
            review,
            operation,
            purpose="model-review",
            request=canonical({"model": row.id, "digest": row.digest, "decision": status}),
            outcome=status,
        )
        decided = self.registry.get(row.id)
        assert decided is not None
        return {**view(decided, department=True), "audit": receipt.as_dict()}
