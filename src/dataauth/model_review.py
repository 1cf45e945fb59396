"""Model submission and review (模型提交与审查): administrative steps beside the spine.

An operator submits an ONNX graph with its manifest; the gateway checks it (size,
ONNX, opsets, operators, domains, external data, inputs against the manifest, each
bound column against the catalog, and a probe for an output that copies a feature)
and stores it by SHA-256 as pending. A department lists, inspects, approves with
conditions or rejects. Every step, refusals included, is an audit entry.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC
from typing import Any

from pydantic import BaseModel, Field

from dataauth.canonical import canonical
from dataauth.catalog import onnx_checks
from dataauth.catalog.models import (
    Conditions,
    Manifest,
    ModelRegistry,
    ModelSubmission,
    Rejection,
    digest_of,
    submission_id,
)
from dataauth.catalog.store import rfc3339
from dataauth.errors import Problem, not_found, unprocessable
from dataauth.gateway import Gateway

NUMERIC = ("integer", "number")


class SubmitRequest(BaseModel):
    manifest: Manifest
    onnx: str = Field(min_length=1, description="the ONNX file, base64")


def view(row: ModelSubmission, *, graph: bool = True) -> dict[str, Any]:
    """A submission as the API shows it (never the bytes)."""
    shown: dict[str, Any] = {
        "id": row.id,
        "digest": row.digest,
        "operator": row.operator_id,
        "status": row.status,
        "submitted_at": rfc3339(row.submitted_at),
        "manifest": row.manifest,
    }
    if graph:
        shown["summary"] = row.summary
    if row.status != "pending":
        shown["review"] = {
            "by": row.reviewer,
            "at": rfc3339(row.reviewed_at) if row.reviewed_at else None,
            "reason": row.reason,
            "conditions": row.conditions or None,
        }
    return shown


class ModelReview:
    def __init__(self, gateway: Gateway, registry: ModelRegistry, max_bytes: int) -> None:
        self.gateway = gateway
        self.registry = registry
        self.max_bytes = max_bytes

    # -- the operator's side ---------------------------------------------------------

    def submit(self, authorization: str | None, body: SubmitRequest) -> dict[str, Any]:
        _, operator = self.gateway.authenticate(authorization)
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
            receipt = self.gateway.record_action(
                operator.id,
                {**operation, **more},
                purpose=manifest.purpose,
                request=request,
                outcome=outcome,
            )
            return receipt.as_dict()

        try:
            summary = self._check(content, manifest)
        except Problem as problem:
            problem.extensions["audit"] = record("refused", code=problem.code)
            raise
        row = ModelSubmission(
            id=submission_id(operator.id, digest, manifest),
            digest=digest,
            operator_id=operator.id,
            manifest=manifest.model_dump(mode="json"),
            summary=summary,
            status="pending",
            submitted_at=self.gateway.clock(),
        )
        row = self.registry.add(row, content)
        return {**view(row), "audit": record("submitted", model=row.id)}

    def _check(self, content: bytes, manifest: Manifest) -> dict[str, Any]:
        graph = onnx_checks.parse(content, self.max_bytes)
        output = (manifest.output.name, manifest.output.column)
        widths = [len(b.columns) for b in manifest.inputs]
        onnx_checks.check_inputs(graph, [(b.name, len(b.columns)) for b in manifest.inputs], output)
        dataset = self.gateway.catalog.dataset(manifest.dataset)
        if dataset is None:
            raise not_found("unknown_dataset", f"there is no dataset {manifest.dataset!r}")
        for name in manifest.columns():
            column = dataset.columns.get(name)
            if column is None:
                raise unprocessable("unknown_column", f"dataset {dataset.id} has no column {name}")
            if "feature" not in column.uses:
                raise unprocessable(
                    "column_use_not_allowed",
                    f"column {dataset.id}.{name} ({column.level}) does not allow use as feature",
                )
            if column.type not in NUMERIC:
                raise unprocessable(
                    "feature_not_numeric", f"column {dataset.id}.{name} is {column.type}"
                )
        try:
            session = onnx_checks.session(content)
            copy = onnx_checks.copies_feature(session, widths, output)
        except Problem:
            raise
        except Exception as exc:  # onnxruntime refuses what the checker let through
            raise unprocessable(
                "model_not_runnable", f"the model does not run: {type(exc).__name__}"
            ) from None
        if copy is not None:
            feature = manifest.columns()[copy["feature"]]
            raise unprocessable(
                "output_copies_feature",
                f"output {manifest.output.name} copies feature {feature} "
                f"({copy['test']} test): a model may not pass a column through",
                feature=feature,
                test=copy["test"],
            )
        return {**graph.summary, "probe": {"copies_feature": False}}

    # -- reading -----------------------------------------------------------------------

    def _reader(self, authorization: str | None) -> str | None:
        """None for a department (sees every submission), else the operator's id."""
        caller = self.gateway.tokens.verify(authorization)
        if "department" in caller.roles:
            return None
        _, operator = self.gateway.authenticate(authorization)
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
        # a department's inspection is a step of the review: on the record too
        reviewer = self.gateway.tokens.verify(authorization).subject
        receipt = self.gateway.record_action(
            reviewer,
            {"kind": "model-inspect", "model": row.id, "digest": row.digest},
            purpose="model-review",
            request=canonical({"model": row.id, "digest": row.digest}),
            outcome="shown",
        )
        return {**view(row), "audit": receipt.as_dict()}

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
        caller = self.gateway.department(authorization)
        row = self._pending(model_id)
        now = self.gateway.clock()
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
        granted = {"expires": rfc3339(expires), "max_runs": conditions.max_runs, "forms": forms}
        return self._decide(
            caller.subject,
            row,
            "approved",
            {"conditions": granted, "reason": conditions.note or None},
        )

    def reject(
        self, authorization: str | None, model_id: str, rejection: Rejection
    ) -> dict[str, Any]:
        caller = self.gateway.department(authorization)
        row = self._pending(model_id)
        return self._decide(caller.subject, row, "rejected", {"reason": rejection.reason})

    def revoke(
        self, authorization: str | None, model_id: str, rejection: Rejection
    ) -> dict[str, Any]:
        """Withdraw an approval: the model runs no more, from the next request on."""
        caller = self.gateway.department(authorization)
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
                  "reviewed_at": self.gateway.clock()}  # fmt: skip
        if not self.registry.review(row.id, values, was):
            raise Problem(409, "already_reviewed", f"model {row.id} was reviewed meanwhile")
        operation = {
            "kind": "model-review",
            "model": row.id,
            "digest": row.digest,
            "decision": status,
            **({"conditions": values["conditions"]} if "conditions" in values else {}),
        }
        receipt = self.gateway.record_action(
            reviewer,
            operation,
            purpose="model-review",
            request=canonical({"model": row.id, "digest": row.digest, "decision": status}),
            outcome=status,
        )
        decided = self.registry.get(row.id)
        assert decided is not None
        return {**view(decided), "audit": receipt.as_dict()}
