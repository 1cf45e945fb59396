"""Running an approved model (模型运行) in the domain: per-subject scores for consented
subjects, or statistics of the scores over a cohort of at least k subjects.

Features are read by parameterised SQL in batches (subjects go in as a VALUES list
joined on the key, as verification does), scored by onnxruntime in the gateway's
process, and only the declared output column is read. Scores leave rounded or banded
as the obligations say; cohort statistics leave only over at least ``min_group_size``
subjects, with histogram bins under k suppressed.

Where the decision obliges differential privacy (``dp``, as for aggregate queries: the
model reads sensitive features), the cohort's ε is charged to the operator's account on
the dataset, the same account its aggregate queries spend, before the model runs. The
count, the sum of the scores (clamped to the output's bounds, [0, 1] for a probability)
and the histogram's counts then get OpenDP noise; the mean is the noisy sum over the
noisy count. Quantiles have no bounded-sensitivity answer here and are refused under
noise. Without noise, two cohorts that differ by one subject would give away that
subject's score from their means.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import numpy as np
import onnxruntime as ort
from pydantic import BaseModel, Field, model_validator
from pydantic.dataclasses import dataclass as pydantic_dataclass

from dataauth.accounts.disclosure import Disclosure
from dataauth.accounts.privacy import Noise, PrivacyBudgets, Release, charge, noise_terms
from dataauth.accounts.usage import Charge
from dataauth.catalog import onnx_checks
from dataauth.catalog.store import Catalog, DatasetInfo, OperatorInfo
from dataauth.catalog.submissions import ModelSubmission, Submissions
from dataauth.domain import query
from dataauth.domain.database import Domain
from dataauth.domain.lookups import Lookup
from dataauth.errors import forbidden, not_found, unprocessable
from dataauth.identity.keys import SubjectHasher
from dataauth.operations.base import (
    Call,
    ConsentNeed,
    Description,
    Request,
    Route,
    min_group_size,
)

CHUNK = 500
"""Subjects per look-up statement: two bound values each, well under SQLite's limit."""

Scalar = bool | str | int | float
STATISTICS = ("count", "mean", "quantiles", "histogram")


# a dataclass, not a BaseModel: a batch of 500 subjects validates in a third of the
# time (each model instance costs more than its checks); the schema is the same
@pydantic_dataclass(frozen=True, slots=True)
class Subject:
    key: str = Field(min_length=1, max_length=64, description="the subject's key")
    consent: str | None = Field(None, max_length=4096, description="the subject's consent token")


class Condition(BaseModel):
    column: str = Field(min_length=1, max_length=64)
    op: Literal["eq", "ne", "lt", "le", "gt", "ge", "between", "in"]
    value: Scalar | list[Scalar]

    @model_validator(mode="after")
    def _operand(self) -> Condition:
        many = isinstance(self.value, list)
        if self.op == "between" and not (many and len(self.value) == 2):  # type: ignore[arg-type]
            raise ValueError("a between value is a [low, high] pair")
        if self.op == "in" and not (many and 1 <= len(self.value) <= 16):  # type: ignore[arg-type]
            raise ValueError("an in value is a list of 1 to 16 items")
        if self.op not in ("between", "in") and many:
            raise ValueError(f"an {self.op} value is a single value")
        return self


class Cohort(BaseModel):
    where: list[Condition] = Field(default_factory=list, max_length=8, description="[]: all")
    statistics: list[Literal["count", "mean", "quantiles", "histogram"]] = Field(
        default_factory=lambda: ["count", "mean"], min_length=1, max_length=4
    )
    quantiles: list[float] = Field(default_factory=lambda: [0.25, 0.5, 0.75], max_length=9)
    bins: list[float] = Field(
        default_factory=lambda: [0.0, 0.2, 0.4, 0.6, 0.8, 1.0], min_length=2, max_length=21
    )

    @model_validator(mode="after")
    def _shape(self) -> Cohort:
        # an extreme quantile of a small cohort is one subject's score, near enough
        if any(not 0.1 <= q <= 0.9 for q in self.quantiles):
            raise ValueError("quantiles lie between 0.1 and 0.9")
        if self.bins != sorted(set(self.bins)):
            raise ValueError("bin edges strictly increase")
        return self


class RunRequest(Request):
    subjects: list[Subject] | None = Field(None, min_length=1, description="scores per subject")
    cohort: Cohort | None = Field(None, description="statistics of the scores over a cohort")

    def batch(self) -> int:
        return len(self.subjects or ())

    @model_validator(mode="after")
    def _one(self) -> RunRequest:
        if (self.subjects is None) == (self.cohort is None):
            raise ValueError("give either subjects (scores) or a cohort (statistics)")
        return self


@dataclass(frozen=True)
class Plan:
    row: ModelSubmission
    dataset: DatasetInfo
    form: str
    columns: tuple[tuple[str, ...], ...]
    """The features bound to each graph input, in order."""
    keys: list[str]
    cohort: Cohort | None


@dataclass(frozen=True)
class Scores:
    values: np.ndarray
    """One score per subject asked (NaN where unknown), or the cohort's scores."""
    noise: Noise | None = None
    """Charged noise terms, where the cohort's statistics must be noised."""


# -- disclosure ----------------------------------------------------------------------


def band(score: float, bands: dict[str, Any]) -> str:
    cuts, labels = bands["cuts"], bands["labels"]
    return labels[int(np.searchsorted(cuts, score, side="right"))]


def output_bounds(output: dict[str, Any]) -> tuple[float, float] | None:
    """The range a score is clamped to under noise: declared, or [0, 1] for a probability."""
    if output.get("bounds"):
        low, high = output["bounds"]
        return float(low), float(high)
    return (0.0, 1.0) if output.get("kind") == "probability" else None


UNBOUNDED_BITS = 64.0
"""A score with no declared range at full precision could be any float: a read."""


def released(conditions: dict[str, Any] | None, obligations: dict[str, Any]) -> dict[str, Any]:
    """The obligations with the score release in force: the policy's, never finer than
    the approval's ``release`` (what the leakage check at review found safe)."""
    release = (conditions or {}).get("release") or {}
    bands = release.get("score_bands") or obligations.get("score_bands")
    if bands:
        return {**obligations, "score_bands": bands}
    digits = int(obligations.get("score_digits", 2))
    return {**obligations, "score_digits": min(digits, int(release.get("score_digits", digits)))}


def score_bits(output: dict[str, Any], obligations: dict[str, Any]) -> float:
    """What one released score can tell about its subject: log2 of the values it can
    take under the obligations (bands, or the range at ``score_digits``)."""
    bands = obligations.get("score_bands")
    if bands:
        return math.log2(len(bands["labels"]))
    bounds = output_bounds(output)
    if bounds is None:
        return UNBOUNDED_BITS
    steps = (bounds[1] - bounds[0]) * 10 ** int(obligations.get("score_digits", 2))
    return min(math.log2(steps + 1), UNBOUNDED_BITS)


def statistics(
    scores: np.ndarray,
    cohort: Cohort,
    obligations: dict[str, Any],
    noise: Noise | None = None,
    bounds: tuple[float, float] = (0.0, 1.0),
) -> dict[str, Any]:
    """The asked statistics, under the obligations: at least k subjects, noise where
    charged, rounding, and histogram bins under k suppressed.

    Exact, the cohort and the bins are held to k on their true counts. Under noise
    nothing is decided on a true count: the cohort is released only if its noisy count
    reaches the selection's threshold (at least k, and high enough that a cohort of one
    passes with probability at most the policy's ``threshold_delta``), and each bin
    likewise on its own noisy count; the count shown is that noisy count."""
    k = min_group_size(obligations)
    if noise is None and len(scores) < k:
        raise forbidden(
            "cohort_too_small",
            f"the cohort has fewer than {k} subjects: no statistic of it may leave",
            min_group_size=k,
        )
    digits = int(obligations.get("statistic_digits", 3))
    multiple = int(obligations.get("count_multiple", 1))
    asked = set(cohort.statistics)
    counts: list[float | None] = []
    if "histogram" in asked:
        counts = [float(c) for c in np.histogram(scores, bins=cohort.bins)[0]]
    n, total = float(len(scores)), float(np.clip(scores, *bounds).sum()) if len(scores) else 0.0
    protections: dict[str, Any] = {"min_group_size": k, "differential_privacy": None}
    suppressed_under = k
    if noise is not None:
        n, total, counts, report = _noised(noise, asked, n, total, counts, k, bounds)
        protections["differential_privacy"] = report
        if counts:
            suppressed_under = report["partition_selection"]["histogram"]["threshold"]
    else:
        counts = [c if c >= k else None for c in counts]

    def count(value: float) -> int:
        return int(round(max(value, 0.0) / multiple) * multiple)

    result: dict[str, Any] = {}
    if "count" in asked:
        result["count"] = count(n)
    if "mean" in asked:
        mean = float(np.clip(total / max(n, 1.0), *bounds)) if noise else float(scores.mean())
        result["mean"] = round(mean, digits)
    if "quantiles" in asked:
        values = np.quantile(scores, cohort.quantiles)
        result["quantiles"] = {
            f"{q:g}": round(float(v), digits) for q, v in zip(cohort.quantiles, values, strict=True)
        }
    if "histogram" in asked:
        result["histogram"] = {
            "edges": cohort.bins,
            "counts": [count(c) if c is not None else None for c in counts],
            "suppressed_under": suppressed_under,
        }
    result["protections"] = protections
    return result


def _noised(
    noise: Noise,
    asked: set[str],
    n: float,
    total: float,
    counts: list[float | None],
    k: int,
    bounds: tuple[float, float],
) -> tuple[float, float, list[float | None], dict[str, Any]]:
    """The cohort's noisy count (selected: refused under the threshold), its noisy sum,
    its bins selected on noisy counts (None where left out), and the report. One subject
    is one row: in the cohort's count, in one bin, and within the bounds in the sum."""
    one = Release(noise, 1 + ("mean" in asked) + bool(counts))
    selected = one.select("count", {"cohort": int(n)}, 1, k)
    if not selected:
        threshold = one.selections["count"]["threshold"]
        raise forbidden(
            "cohort_too_small",
            f"the cohort's noisy count is under {threshold}: no statistic of it may leave",
            min_group_size=k,
        )
    n = float(selected["cohort"])
    if "mean" in asked:
        total = one.add("sum(score)", [total], max(abs(bounds[0]), abs(bounds[1])))[0]
    if counts:
        # the bins are the request's own edges, public: a bin's index names it alike
        # on neighbouring data
        bins = one.select("histogram", {str(i): int(c or 0) for i, c in enumerate(counts)}, 1, k)
        counts = [float(bins[str(i)]) if str(i) in bins else None for i in range(len(counts))]
    return n, total, counts, {**one.report(), "clamped_to": list(bounds)}


# -- the kind ------------------------------------------------------------------------


def _runs(row: ModelSubmission) -> list[Charge]:
    """One run of the ``max_runs`` an approval allows, counted until the approval expires."""
    conditions = row.conditions or {}
    if not conditions.get("max_runs") or not conditions.get("expires"):
        return []
    expires = datetime.fromisoformat(conditions["expires"])
    return [Charge(f"model-runs|{row.id}", 0, 1, conditions["max_runs"], "model_runs", expires)]


class Model:
    """The model kind: an approved model's scores or cohort statistics."""

    name = "model"
    route = Route(
        "/v1/models/{model}/run",
        RunRequest,
        "Run an approved model: scores for consented subjects, or a cohort's statistics.",
        "models (模型)",
        target=r"^m-[0-9a-f]{16}$",
    )

    def __init__(
        self,
        catalog: Catalog,
        domain: Domain,
        hasher: SubjectHasher,
        registry: Submissions,
        ledger: PrivacyBudgets,
        clock: Any,
    ) -> None:
        self.catalog = catalog
        self.domain = domain
        self.hasher = hasher
        self.registry = registry
        self.ledger = ledger
        self.clock = clock
        self._sessions: dict[str, ort.InferenceSession] = {}
        self._lock = threading.Lock()

    def session(self, digest: str) -> ort.InferenceSession:
        """One session per approved digest, made from bytes that still hash to it."""
        sess = self._sessions.get(digest)
        if sess is None:
            content = self.registry.content(digest)
            if content is None:
                raise forbidden("model_bytes_missing", "the approved bytes are not on record")
            sess = onnx_checks.session(content)
            with self._lock:
                sess = self._sessions.setdefault(digest, sess)
        return sess

    def describe(self, call: Call[RunRequest], operator: OperatorInfo) -> Description:
        row = self.registry.get(call.target or "")
        if row is None:
            raise not_found("unknown_model", f"there is no model {call.target!r}")
        manifest = row.manifest
        dataset = self.catalog.dataset(manifest["dataset"])
        if dataset is None:
            raise not_found("unknown_dataset", f"model {row.id} names no known dataset")
        body = call.body
        form = "score" if body.subjects is not None else "cohort"
        subjects = body.subjects or []
        features = [c for binding in manifest["inputs"] for c in binding["columns"]]
        used = [(dataset.key_column, "key")] if form == "score" else []
        used += [(c, "feature") for c in features]
        where = body.cohort.where if body.cohort else []
        used += [(c.column, "compare") for c in where]
        columns = []
        for name, use in used:
            info = dataset.columns.get(name)
            if info is None:
                raise unprocessable("unknown_column", f"dataset {dataset.id} has no column {name}")
            columns.append({"name": name, "use": use, "level": info.level, "uses": list(info.uses)})
        conditions = row.conditions or {}
        facts: dict[str, Any] = {
            "dataset": {"id": dataset.id, "version": dataset.version},
            "columns": columns,
            "subjects": {"count": len(subjects)},
            "model": {
                "id": row.id,
                "digest": row.digest,
                "name": manifest["name"],
                "operator": row.operator_id,
                "purpose": manifest["purpose"],
                "status": row.status,
                "output": manifest["output"]["kind"],
                "expires": conditions.get("expires"),
                "forms": conditions.get("forms", []),
            },
        }
        if body.cohort is not None:
            facts["cohort"] = {
                "conditions": [{"column": c.column, "op": c.op} for c in where],
                "statistics": sorted(set(body.cohort.statistics)),
            }
        keys = [s.key for s in subjects]
        return Description(
            operation={"model": row.id, "form": form},
            facts=facts,
            plan=Plan(
                row,
                dataset,
                form,
                tuple(tuple(b["columns"]) for b in manifest["inputs"]),
                keys,
                body.cohort,
            ),
            dataset_version=f"{dataset.id}@{dataset.version}",
            subjects=self.hasher.many(dataset.id, keys),
            consent=ConsentNeed(f"model:{manifest['name']}", [s.consent for s in subjects])
            if form == "score"
            else None,
            counters=_runs(row),
        )

    def _admit(self, plan: Plan, obligations: dict[str, Any]) -> None:
        """The kind's own guard, whatever the policy says: only an approved model, before
        its expiry, in an approved form (its runs are counted by the spine)."""
        row, conditions = plan.row, plan.row.conditions or {}
        if row.status != "approved":
            raise forbidden("model_not_approved", f"model {row.id} is {row.status}")
        expires = datetime.fromisoformat(conditions["expires"])
        now = self.clock()
        if now >= expires:
            raise forbidden("model_expired", f"the approval of model {row.id} has expired")
        if plan.form not in conditions.get("forms", []):
            raise forbidden("form_not_approved", f"model {row.id} is not approved for {plan.form}")

    def _noise(self, plan: Plan, obligations: dict[str, Any]) -> Noise | None:
        """A cohort's ε, charged before the model runs, where the decision obliges noise."""
        terms = noise_terms(obligations) if plan.form == "cohort" else None
        if terms is None:
            return None
        assert plan.cohort is not None
        if "quantiles" in plan.cohort.statistics:
            raise forbidden(
                "noise_unavailable",
                "this cohort is answered with noise, and quantiles cannot be; "
                "ask for the count, mean or histogram",
            )
        if terms.threshold_delta is None:
            # fail closed, before any ε is spent: a cohort held to k on its true size is
            # an oracle on whoever its conditions single out
            raise forbidden(
                "obligation_malformed",
                "the policy's dp obligation sets no threshold_delta to decide on a cohort with",
            )
        if output_bounds(plan.row.manifest["output"]) is None:
            raise forbidden(
                "bounds_missing",
                f"model {plan.row.id} declares no bounds of its score to clamp and noise it",
            )
        return charge(self.ledger, terms, plan.dataset.id)

    def execute(self, plan: Plan, obligations: dict[str, Any]) -> Scores:
        self._admit(plan, obligations)
        sess = self.session(plan.row.digest)
        noise = self._noise(plan, obligations)  # charged last: only for a run that happens
        output = (plan.row.manifest["output"]["name"], plan.row.manifest["output"]["column"])
        features = tuple(c for group in plan.columns for c in group)
        widths = [len(group) for group in plan.columns]
        if plan.form == "cohort":
            assert plan.cohort is not None
            where = tuple(query.Condition.of(c.column, c.op, c.value) for c in plan.cohort.where)
            rows = query.Cohort(plan.dataset.table_name, where).rows(self.domain, features)
            matrix = np.array(rows, dtype=np.float64).reshape(len(rows), len(features))
            if not len(rows):
                return Scores(np.empty(0), noise)
            return Scores(onnx_checks.run(sess, onnx_checks.split(matrix, widths), output), noise)
        matrix = np.full((len(plan.keys), len(features)), np.nan)
        lookup = Lookup(plan.dataset.table_name, plan.dataset.key_column, features)
        rows = lookup.rows(self.domain, plan.keys, CHUNK)
        if rows:
            found = np.array(rows, dtype=np.float64)
            matrix[found[:, 0].astype(np.int64)] = found[:, 1:]
        scores = np.full(len(plan.keys), np.nan)
        complete = ~np.isnan(matrix).any(axis=1)
        if complete.any():
            scores[complete] = onnx_checks.run(
                sess, onnx_checks.split(matrix[complete], widths), output
            )
        return Scores(scores)

    def disclosures(self, plan: Plan, obligations: dict[str, Any]) -> list[Disclosure]:
        """A score tells at most log2 of the values it can take: its bands, or its range
        at its rounding; a cohort names no subject (and is noised where features are
        sensitive). The same model asked the same form again is the same question."""
        if plan.form != "score":
            return []
        bits = score_bits(plan.row.manifest["output"], released(plan.row.conditions, obligations))
        question = self.hasher.question("model", plan.row.id, plan.form)
        persons = self.hasher.people(plan.keys)
        return [Disclosure(person, question, bits) for person in persons]

    def disclose(self, raw: Scores, plan: Plan, obligations: dict[str, Any]) -> dict[str, Any]:
        model = {"model": plan.row.id, "digest": plan.row.digest}
        if plan.form == "cohort":
            assert plan.cohort is not None
            bounds = output_bounds(plan.row.manifest["output"]) or (-np.inf, np.inf)
            stats = statistics(raw.values, plan.cohort, obligations, raw.noise, bounds)
            return {**model, "cohort": stats}
        form = released(plan.row.conditions, obligations)
        bands = form.get("score_bands")
        digits = int(form.get("score_digits", 2))
        results: list[dict[str, Any]] = []
        for index, score in enumerate(raw.values.tolist()):
            if score != score:  # NaN: the subject is unknown or a feature is missing
                results.append({"index": index, "score": None})
            elif bands:
                results.append({"index": index, "score": band(score, bands)})
            else:
                results.append({"index": index, "score": round(score, digits)})
        return {**model, "results": results}
