"""Encrypted scoring (he-score): an operator's secret linear model on the department's data.

The operator registers a CKKS public context and files its model (he_registry.py),
then sends, per feature, a ciphertext whose every slot holds that feature's weight
(replicated), and the bias likewise. The gateway never sees a weight; the operator
never sees a feature value:

- ``score``: subjects are packed into blocks of ``degree / 2`` slots; per block, one
  ciphertext-plaintext multiply per feature (the feature's values over the block) and
  one add each, plus the bias: no rotations, so no Galois keys. Slot ``s`` of block
  ``b`` is the score of the subject the slot map names.
- ``sum`` / ``mean``: over a cohort filter of at least ``min_cohort`` subjects, the
  database sums each feature, and the gateway multiplies each weight by that plaintext
  sum (or mean): every slot of the one result holds the aggregate score.

Before a result leaves, the gateway adds a fresh encryption, under the operator's
public key, of noise of the obliged magnitude (``noise_bits``): the encryption
re-randomises the ciphertext (without it, the second half of the result is a known
linear function of the features), and the noise floods CKKS's approximation error,
which depends on the features too. Aggregates get the same noise in every slot, so
averaging slots does not remove it; a score request may name a subject once.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, Field, model_validator

from dataauth.accounts.disclosure import Disclosure
from dataauth.catalog.store import Catalog, DatasetInfo
from dataauth.domain.database import Domain
from dataauth.errors import Problem, forbidden, not_found, unprocessable
from dataauth.keyring import SubjectHasher
from dataauth.operations.base import ConsentNeed, Description, Request
from dataauth.operations.he_params import Parameters, load_vector
from dataauth.operations.he_registry import ID, KIND, ModelInfo, Registry, b64decode
from dataauth.statements import Prepared

NOISE_FLOOR_BITS = 20
"""``noise_bits: n`` adds uniform noise in [-2^(n-20), 2^(n-20)] per score: n bits above
2^-20, the order of CKKS's error for one multiply at a 2^40 scale. 0 adds none."""
OFFSET = 2.0**-30
FETCH_CHUNK = 1024
"""Subject keys bound per look-up statement (SQLite allows 32,766 binds)."""
OPS = {"eq": "=", "ne": "<>", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}


class Subject(BaseModel):
    key: str = Field(min_length=1, max_length=64)
    consent: str | None = Field(None, max_length=4096)


class Condition(BaseModel):
    column: str = Field(max_length=64)
    op: Literal["eq", "ne", "lt", "le", "gt", "ge"]
    value: str | int | float = Field(union_mode="left_to_right")

    @model_validator(mode="after")
    def _scalar(self) -> Condition:
        if isinstance(self.value, bool) or (isinstance(self.value, str) and len(self.value) > 64):
            raise ValueError("a cohort value is a number or a string of at most 64")
        return self


class ScoreRequest(Request):
    context: str = Field(pattern=ID, description="a registered context's id")
    model: str = Field(pattern=ID, description="a registered model's id")
    weights: list[str] | None = Field(
        None,
        min_length=1,
        max_length=64,
        description="per feature, in the model's order: base64; none: those filed with the model",
    )
    bias: str | None = Field(None, min_length=1, description="the bias, replicated: base64")
    mode: Literal["score", "sum", "mean"] = "score"
    subjects: list[Subject] | None = Field(None, min_length=1)
    cohort: list[Condition] | None = Field(None, max_length=8)

    @model_validator(mode="after")
    def _target(self) -> ScoreRequest:
        if self.mode == "score" and (self.subjects is None or self.cohort is not None):
            raise ValueError("a score request names subjects (a cohort gives only aggregates)")
        if self.mode != "score" and (self.cohort is None or self.subjects is not None):
            raise ValueError("an aggregate names a cohort filter ([] for the whole dataset)")
        if (self.weights is None) != (self.bias is None):
            raise ValueError("send weights and bias together, or neither (the filed ones)")
        return self


@dataclass(frozen=True)
class ScoreCall:
    operator: str
    """The authenticated operator: contexts and models are looked up as its own."""
    body: ScoreRequest
    raw: bytes = b""

    @property
    def purpose(self) -> str:
        return self.body.purpose

    def sent(self) -> bytes:
        return b"he-score\n" + self.raw


@dataclass(frozen=True)
class Plan:
    model: ModelInfo
    dataset: DatasetInfo
    parameters: Parameters
    context: Any
    weights: list[bytes] | None
    """As sent; None: the ones filed with the model."""
    bias: bytes | None
    mode: str
    keys: list[str]
    cohort: list[Condition]


@dataclass(frozen=True)
class Raw:
    ciphertexts: list[bytes]
    found: list[bool]
    noise_bits: int


def noise(count: int, bits: int) -> np.ndarray:
    """Uniform noise in [-2^(bits-20), 2^(bits-20)] from the OS's random source."""
    if bits <= 0:
        return np.zeros(count)
    words = np.frombuffer(os.urandom(8 * count), dtype=np.uint64)
    unit = words.astype(np.float64) / 2.0**64
    return (2.0 * unit - 1.0) * 2.0 ** (bits - NOISE_FLOOR_BITS)


@lru_cache(maxsize=64)
def _lookup(domain: Domain, table: str, key: str, features: tuple[str, ...]) -> Prepared:
    names = ", ".join(f"t.{domain.quote(f)}" for f in features)
    binds = ", ".join(f":k{i}" for i in range(FETCH_CHUNK))
    return domain.statement(
        f"SELECT t.{domain.quote(key)}, {names} FROM {domain.quote(table)} AS t "
        f"WHERE t.{domain.quote(key)} IN ({binds})"
    )


def _aggregate(
    domain: Domain, table: str, features: Sequence[str], cohort: Sequence[Condition]
) -> tuple[Prepared, dict[str, Any]]:
    sums = ", ".join(f"SUM(t.{domain.quote(f)})" for f in features)
    where = [f"t.{domain.quote(c.column)} {OPS[c.op]} :c{i}" for i, c in enumerate(cohort)]
    sql = f"SELECT COUNT(*), {sums} FROM {domain.quote(table)} AS t"
    if where:
        sql += " WHERE " + " AND ".join(where)
    return domain.statement(sql), {f"c{i}": c.value for i, c in enumerate(cohort)}


class EncryptedScore:
    """The encrypted-scoring kind."""

    name = KIND

    def __init__(
        self,
        catalog: Catalog,
        domain: Domain,
        hasher: SubjectHasher,
        registry: Registry,
        max_batch: int,
        clock: Callable[[], datetime],
    ) -> None:
        self.catalog = catalog
        self.domain = domain
        self.hasher = hasher
        self.registry = registry
        self.max_batch = max_batch
        self.clock = clock

    def describe(self, call: ScoreCall) -> Description:
        body, now = call.body, self.clock()
        model = self.registry.model(call.operator, body.model, now)
        if body.context != model.context:
            raise unprocessable("context_mismatch", "the model was filed under another context")
        parameters, context = self.registry.context(call.operator, body.context, now)
        weights, bias = self._sent(body, model, parameters)
        dataset = self.catalog.dataset(model.product.dataset_id)
        if dataset is None:
            raise not_found("unknown_dataset", f"product {model.product.id} names no dataset")

        keys = [s.key for s in body.subjects or []]
        if len(keys) > self.max_batch:
            raise Problem(413, "batch_too_large", f"a batch holds at most {self.max_batch}")
        if len(set(keys)) != len(keys):
            # a subject named twice would get two independent noises to average
            raise unprocessable("duplicate_subject", "a request names each subject once")
        cohort = body.cohort or []
        for i, condition in enumerate(cohort):
            column = dataset.columns.get(condition.column)
            if condition.column not in model.spec.cohort_columns or column is None:
                raise unprocessable(
                    "cohort_column_not_allowed",
                    f"condition {i}: product {model.product.id} does not filter on that column",
                )
        columns = [{"name": dataset.key_column, "use": "key"}] if keys else []
        columns += [{"name": f, "use": "feature"} for f in model.features]
        columns += [{"name": c.column, "use": "compare"} for c in cohort]
        for column in columns:
            info = dataset.columns[column["name"]]
            column.update(level=info.level, uses=list(info.uses))
        facts = {
            "dataset": {"id": dataset.id, "version": dataset.version},
            "columns": columns,
            "subjects": {"count": len(keys)},
            "he": {
                "parameters": parameters.name,
                "features": len(model.features),
                "cohort_conditions": len(cohort),
            },
        }
        consent = None
        if model.spec.consent and body.mode == "score":
            consent = ConsentNeed(model.product.id, [s.consent for s in body.subjects or []])
        return Description(
            operation={"product": model.product.id, "mode": body.mode, "model": model.id},
            facts=facts,
            plan=Plan(model, dataset, parameters, context, weights, bias, body.mode, keys, cohort),
            dataset_version=f"{dataset.id}@{dataset.version}",
            subjects=[self.hasher(dataset.id, key) for key in keys],
            consent=consent,
        )

    @staticmethod
    def _sent(
        body: ScoreRequest, model: ModelInfo, parameters: Parameters
    ) -> tuple[list[bytes] | None, bytes | None]:
        """The ciphertexts sent, decoded (sizes checked before anything reads them)."""
        if body.weights is None or body.bias is None:
            if not model.stored_weights:
                raise unprocessable(
                    "no_weights", "send the weights: none were filed with the model"
                )
            return None, None
        if len(body.weights) != len(model.features):
            raise unprocessable(
                "wrong_weight_count",
                f"the model has {len(model.features)} features; {len(body.weights)} weights came",
            )
        limit = parameters.max_ciphertext_bytes * 4 // 3 + 4
        if any(len(text) > limit for text in [*body.weights, body.bias]):
            raise Problem(413, "ciphertext_too_large", f"a ciphertext is at most {limit} base64")
        weights = [b64decode(w, f"weight {j}") for j, w in enumerate(body.weights)]
        return weights, b64decode(body.bias, "the bias")

    def _vectors(self, plan: Plan) -> tuple[list[Any], Any]:
        """The weight and bias ciphertexts: as sent (read only now, after the allow), or filed."""
        if plan.weights is None or plan.bias is None:
            return self.registry.weights(plan.model, plan.parameters, plan.context)
        weights = [
            load_vector(plan.context, plan.parameters, data, f"weight {j}")
            for j, data in enumerate(plan.weights)
        ]
        return weights, load_vector(plan.context, plan.parameters, plan.bias, "the bias")

    def _features(self, plan: Plan) -> tuple[np.ndarray, list[bool]]:
        """The feature matrix (subjects x features) and which subjects were found."""
        table, key = plan.dataset.table_name, plan.dataset.key_column
        statement = _lookup(self.domain, table, key, plan.model.features)
        position = {k: i for i, k in enumerate(plan.keys)}
        matrix = np.zeros((len(plan.keys), len(plan.model.features)))
        found = [False] * len(plan.keys)
        for start in range(0, len(plan.keys), FETCH_CHUNK):
            chunk = plan.keys[start : start + FETCH_CHUNK]
            params = {f"k{i}": (chunk[i] if i < len(chunk) else None) for i in range(FETCH_CHUNK)}
            rows = self.domain.fetch(statement, params)
            if not rows:
                continue
            keys, *columns = zip(*rows, strict=True)
            at = [position[k] for k in keys]
            for j, column in enumerate(columns):
                matrix[at, j] = np.array(column, dtype=float)  # NULL reads as nan
            for i in at:
                found[i] = True
        return np.nan_to_num(matrix, nan=0.0), found

    def execute(self, plan: Plan, obligations: dict[str, Any]) -> Raw:
        bits = int(obligations.get("noise_bits") or 0)
        limit = obligations.get("batch_limit")
        if plan.mode == "score" and isinstance(limit, int) and len(plan.keys) > limit:
            raise forbidden(
                "batch_over_obligation", f"the policy obliges batches of at most {limit} subjects"
            )
        weights, bias = self._vectors(plan)
        try:
            if plan.mode != "score":
                return self._aggregate(plan, obligations, weights, bias, bits)
            matrix, found = self._features(plan)
            slots, out = plan.parameters.slots, []
            for start in range(0, len(plan.keys), slots):
                part = matrix[start : start + slots]
                if len(part) == 1:
                    # one subject: scalar multiplies, the score (and its noise) in every slot
                    score = self._combine(weights, bias, list(part[0]))
                    out.append(self._release(plan, score, noise(1, bits).repeat(slots)))
                    continue
                block = np.zeros((slots, matrix.shape[1]))
                block[: len(part)] = part
                score = self._combine(weights, bias, list(block.T))
                out.append(self._release(plan, score, noise(slots, bits)))
        except ValueError:  # TenSEAL: scales or levels that do not fit these parameters
            raise unprocessable(
                "invalid_ciphertext", "the ciphertexts do not fit the registered parameters"
            ) from None
        return Raw(out, found, bits)

    @staticmethod
    def _combine(weights: list[Any], bias: Any, values: list[Any], bias_times: float = 1.0) -> Any:
        """bias + sum of weight * value: plaintext multiplies, left at scale^2 (no rescale).

        SEAL refuses a product by an all-zero plaintext (a "transparent" result), so every
        value is offset by ``OFFSET``: the same work whatever the data, so a response's
        time says nothing about which features are zero; it moves a score by
        ``OFFSET * sum |w_j|``, far inside the error bound."""
        total = bias * (bias_times + OFFSET)
        for weight, value in zip(weights, values, strict=True):
            shifted = value + OFFSET
            total += weight * (shifted.tolist() if isinstance(shifted, np.ndarray) else shifted)
        return total

    @staticmethod
    def _release(plan: Plan, result: Any, flood: np.ndarray) -> bytes:
        """Add a fresh encryption of the noise under the operator's key: re-randomised."""
        import tenseal as ts

        scale = 2.0 ** (2 * plan.parameters.scale_bits)
        result += ts.ckks_vector(plan.context, flood.tolist(), scale)
        return result.serialize()

    def _aggregate(
        self, plan: Plan, obligations: dict[str, Any], weights: list[Any], bias: Any, bits: int
    ) -> Raw:
        table, features = plan.dataset.table_name, plan.model.features
        statement, params = _aggregate(self.domain, table, features, plan.cohort)
        row = self.domain.fetch(statement, params)[0]
        count, sums = int(row[0]), [float(v or 0) for v in row[1:]]
        k = int(obligations.get("min_cohort") or 1)
        if count < max(k, 1):
            raise forbidden(
                "cohort_too_small", f"the cohort has fewer than {k} subjects (the policy's k)"
            )
        scale = 1.0 / count if plan.mode == "mean" else 1.0
        total = self._combine(weights, bias, [float(s * scale) for s in sums], count * scale)
        # the same noise in every slot: averaging the slots does not remove it
        flood = noise(1, bits).repeat(plan.parameters.slots)
        return Raw([self._release(plan, total, flood)], [], bits)

    def disclosures(self, plan: Plan, obligations: dict[str, Any]) -> list[Disclosure]:
        """Per subject scored, what one decrypted score can tell (placeholder until the
        filing declares its weights' bounds): the policy's ``score_bits``."""
        bits = obligations.get("score_bits")
        if plan.mode != "score" or not isinstance(bits, int | float):
            return []
        question = self.hasher.question("he-score", plan.model.id)
        return [Disclosure(self.hasher.person(key), question, float(bits)) for key in plan.keys]

    def disclose(self, raw: Raw, plan: Plan, obligations: dict[str, Any]) -> dict[str, Any]:
        slots = plan.parameters.slots
        result: dict[str, Any] = {
            "product": plan.model.product.id,
            "model": plan.model.id,
            "mode": plan.mode,
            "parameters": plan.parameters.name,
            "noise_bits": raw.noise_bits,
            "ciphertexts": [base64.b64encode(c).decode() for c in raw.ciphertexts],
        }
        if plan.mode == "score":
            # the slot map: subject i (in request order) is slot i % per_ciphertext of
            # ciphertext i // per_ciphertext (a block of one subject has it in every slot)
            result["subjects"] = {
                "count": len(raw.found),
                "per_ciphertext": slots,
                "not_found": [i for i, found in enumerate(raw.found) if not found],
            }
        return result
