"""Model submission and review (模型提交与审查): administrative steps beside the spine.

An operator submits an ONNX graph with its manifest; the gateway checks it (size,
ONNX, opsets, operators, domains, external data, inputs against the manifest, each
bound column against the catalog, a probe for an output that copies a feature, and the
leakage check on the department's own rows: how finely each release form the model
asks pins each feature) and stores it by SHA-256 as pending. A department lists,
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

from dataauth.admin.steps import Steps
from dataauth.canonical import canonical, rfc3339
from dataauth.catalog import leakage, onnx_checks
from dataauth.catalog.store import DatasetInfo
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
from dataauth.domain.query import Cohort
from dataauth.errors import Problem, not_found, unavailable, unprocessable
from dataauth.policy.store import load_stored_bundle

NUMERIC = ("integer", "number")
SAMPLE_ROWS = 20_000
"""The most rows of the department's dataset the leakage check reads."""
MIN_ROWS = 100
"""Fewer rows than this measure nothing: the check refuses rather than guess."""
PROBES = [
    {"name": "copies_feature", "what": "random inputs at scales 1, 100, 1e4 and 1e6: "
     "refused if the output is an affine function of one feature, or moves with one "
     "feature only"},
    {"name": "leakage", "what": f"up to {SAMPLE_ROWS} of the dataset's rows; for "
     f"{leakage.SUBJECTS} of them, each feature over {leakage.GRID} grid values with "
     f"the other features of {leakage.BACKGROUNDS} rows and of the subject itself: the "
     "share of the department's subjects holding a value the release leaves possible"},
]  # fmt: skip


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
        self.domain = domain

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
            summary = self._check(content, manifest)
            report = self._leakage(content, manifest, operator.id)
            _refuse_leaks(report, manifest.forms)
        except Problem as problem:
            problem.extensions["audit"] = record("refused", code=problem.code)
            raise
        row = ModelSubmission(
            id=submission_id(operator.id, digest, manifest),
            digest=digest,
            operator_id=operator.id,
            manifest=manifest.model_dump(mode="json"),
            summary={**summary, "leakage": report, "probes": PROBES},
            status="pending",
            submitted_at=self.steps.clock(),
        )
        row = self.registry.add(row, content)
        return {**view(row), "audit": record("submitted", model=row.id)}

    def _check(self, content: bytes, manifest: Manifest) -> dict[str, Any]:
        graph = onnx_checks.parse(content, self.max_bytes)
        output = (manifest.output.name, manifest.output.column)
        widths = [len(b.columns) for b in manifest.inputs]
        onnx_checks.check_inputs(graph, [(b.name, len(b.columns)) for b in manifest.inputs], output)
        dataset = self.catalog.dataset(manifest.dataset)
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

    # -- the leakage check -----------------------------------------------------------

    def _limits(self) -> dict[str, Any]:
        """``limits.model`` of the policy bundle in force."""
        store = self.steps.policy
        try:
            digest = store.current_digest()
            bundle = load_stored_bundle(store.db, digest or "")
        except Exception:  # no bundle, or the database: the check cannot run
            raise unavailable("policy_unavailable", "the policy in force cannot be read") from None
        limits: dict[str, Any] = bundle.data.get("dataauth", {}).get("limits", {})
        return limits.get("model", {})

    def _sample(self, dataset: DatasetInfo, features: list[str]) -> Any:
        import numpy as np

        rows = Cohort(dataset.table_name).rows(self.domain, features, limit=SAMPLE_ROWS)
        return np.array(rows, dtype=np.float64).reshape(len(rows), len(features))

    def _leakage(self, content: bytes, manifest: Manifest, operator: str) -> dict[str, Any]:
        """The leakage report: for each form asked, how finely its release pins each
        feature on the department's rows, against the policy's bound."""
        dataset = self.catalog.dataset(manifest.dataset)
        if dataset is None:
            raise not_found("unknown_dataset", f"there is no dataset {manifest.dataset!r}")
        features = manifest.columns()
        rows = self._sample(dataset, features)
        if len(rows) < MIN_ROWS:
            raise unprocessable(
                "leakage_not_measurable",
                f"dataset {dataset.id} has fewer than {MIN_ROWS} complete rows of these "
                "features: the leakage check cannot measure the model",
            )
        limits = self._limits()
        mine = {**limits, **limits.get("operators", {}).get(operator, {})}
        bound = leakage.Bound.from_policy(limits.get("leakage", {}))
        sess = onnx_checks.session(content)
        widths = [len(b.columns) for b in manifest.inputs]
        output = (manifest.output.name, manifest.output.column)

        def score(matrix: Any) -> Any:
            return onnx_checks.run(sess, onnx_checks.split(matrix, widths), output)

        sample = leakage.Sample.of(rows, [dataset.columns[c].bounds for c in features])
        try:
            probe = leakage.Probe.run(score, sample)
        except Exception as exc:  # onnxruntime fails on the department's values
            raise unprocessable(
                "model_not_runnable", f"the model does not run on the data: {type(exc).__name__}"
            ) from None
        report: dict[str, Any] = {
            "rows_read": len(rows),
            "bound": {"min_share": bound.min_share, "max_pinned_share": bound.max_pinned_share},
            "forms": {},
        }
        if "score" in manifest.forms:
            if mine.get("score_bands"):
                policy = leakage.Release(bands=mine["score_bands"])
            else:
                policy = leakage.Release(digits=int(mine.get("score_digits", 2)))
            span = _output_span(manifest, probe)
            report["forms"]["score"] = leakage.assess_score(probe, policy, bound, features, span)
        if "cohort" in manifest.forms:
            report["forms"]["cohort"] = _assess_cohort(probe, bound, features, dataset, mine)
        return report

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
                report = self._leakage(content, Manifest.model_validate(row.manifest),
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
        report = self._leakage(content, Manifest.model_validate(row.manifest), row.operator_id)
        _refuse_leaks(report, forms)
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
        if not self.registry.review(row.id, values, was):
            raise Problem(409, "already_reviewed", f"model {row.id} was reviewed meanwhile")
        operation = {
            "kind": "model-review",
            "model": row.id,
            "digest": row.digest,
            "decision": status,
            **({"conditions": values["conditions"]} if "conditions" in values else {}),
        }
        receipt = self.steps.record(
            reviewer,
            operation,
            purpose="model-review",
            request=canonical({"model": row.id, "digest": row.digest, "decision": status}),
            outcome=status,
        )
        decided = self.registry.get(row.id)
        assert decided is not None
        return {**view(decided, department=True), "audit": receipt.as_dict()}


def _output_span(manifest: Manifest, probe: leakage.Probe) -> float:
    """The width of the score's range: 1 for a probability, its declared bounds, or
    what the model gives on the sample."""
    if manifest.output.bounds is not None:
        return manifest.output.bounds[1] - manifest.output.bounds[0]
    if manifest.output.kind == "probability":
        return 1.0
    import numpy as np

    finite = probe.own[np.isfinite(probe.own)]
    return float(np.ptp(finite)) if len(finite) else 1.0


def _assess_cohort(
    probe: leakage.Probe,
    bound: leakage.Bound,
    features: list[str],
    dataset: DatasetInfo,
    limits: dict[str, Any],
) -> dict[str, Any]:
    """A noised cohort is bounded by its ε, not measured; an exact one can be differenced
    into one subject's score, so it is judged as the score at ``statistic_digits``."""
    dp = limits.get("dp", {})
    if any(dataset.columns[c].level in dp.get("levels", []) for c in features):
        return {
            "bounded_by": "differential_privacy",
            "mechanism": dp.get("mechanism"),
            "epsilon": dp.get("epsilon"),
            "passes": True,
        }
    release = leakage.Release(digits=int(limits.get("statistic_digits", 3)))
    return {"bounded_by": "differencing", **probe.judge(release, bound, features)}


def _refuse_leaks(report: dict[str, Any], forms: list[str]) -> None:
    """Refuse where a form asked leaves some feature pinned at every resolution tried."""
    for form in forms:
        judged = report["forms"].get(form)
        if judged is None:
            continue
        last = judged["tried"][-1] if form == "score" else judged
        if not last["passes"]:
            pinned = [f["feature"] for f in last["features"] if not f["passes"]]
            bound = report["bound"]
            at = (f"at every resolution down to {last['release']}" if form == "score"
                  else f"as exact statistics ({last['release']})")  # fmt: skip
            raise unprocessable(
                "model_reveals_feature",
                f"the model's {form} {at} leaves {', '.join(pinned)} pinned for some of the "
                f"department's subjects (the values it leaves possible are held by less "
                f"than {bound['min_share']:.0%} of them): a model may not pass a feature "
                "through",
                form=form,
                features=pinned,
            )
