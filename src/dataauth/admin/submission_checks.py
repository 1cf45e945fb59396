"""The checks a submitted model passes before a department sees it, and again at review.

The graph (size, ONNX, opsets, operators, domains, external data, inputs against the
manifest, each bound column against the catalog, a probe for an output that copies a
feature), and the leakage check on the department's own rows: how finely each release
form the model asks pins each feature, against the bound of the policy in force.
"""

from __future__ import annotations

from typing import Any

from dataauth.catalog import leakage, onnx_checks
from dataauth.catalog.store import Catalog, DatasetInfo
from dataauth.catalog.submissions import Manifest
from dataauth.domain.database import Domain
from dataauth.domain.query import Cohort
from dataauth.errors import Problem, not_found, unavailable, unprocessable
from dataauth.policy.store import PolicyStore, load_stored_bundle

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


class SubmissionChecks:
    def __init__(self, catalog: Catalog, domain: Domain, policy: PolicyStore, max_bytes: int):
        self.catalog = catalog
        self.domain = domain
        self.policy = policy
        self.max_bytes = max_bytes

    def graph(self, content: bytes, manifest: Manifest) -> dict[str, Any]:
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

    def _limits(self) -> dict[str, Any]:
        """``limits.model`` of the policy bundle in force."""
        store = self.policy
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

    def leakage(self, content: bytes, manifest: Manifest, operator: str) -> dict[str, Any]:
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


def refuse_leaks(report: dict[str, Any], forms: list[str]) -> None:
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
