"""Encrypted scoring (he-score): an operator's secret linear model on the department's data.

The operator registers a CKKS public context and files its model (``catalog.he``): the
features, a bound on each weight, a commitment, and per feature a ciphertext whose every
slot holds that feature's weight (replicated), and the bias likewise. Only those filed
ciphertexts are used: a request may repeat them (their digest must match the filing's)
or leave them out. The gateway never sees a weight; the operator never sees a feature
value:

- ``score``: subject ``i`` of the request is in slot ``i % (degree / 2)`` of block
  ``i // (degree / 2)`` and nowhere else. Per block, one ciphertext-plaintext multiply
  per feature (the feature's values over the block, zero in unused slots) and one add
  each, plus the bias: no rotations, so no Galois keys. A block of one subject multiplies
  by scalars instead, with weights masked once per model to slot 0 (``w ⊙ e_0``, then
  rescaled): the subject is still in one slot only, so weights that differ per slot read
  one linear combination of it, not one per slot.
- ``sum`` / ``mean``: over a cohort filter of at least ``min_group_size`` subjects, the
  database counts the cohort and sums each feature clamped to the catalog's bounds;
  where the decision obliges ``dp`` those are noised by OpenDP and charged to the
  operator's ε account on the dataset (the one its aggregate queries spend) before they
  meet the encrypted weights. The ciphertext is then post-processing of a DP release:
  whatever the weights in whatever slot, it says no more than the noisy count and sums.

Before a result leaves, the gateway adds a fresh encryption, under the operator's public
key, of independent noise per slot: the encryption re-randomises the ciphertext (without
it, the second half of the result is a known linear function of the features), and the
noise floods CKKS's approximation error, which depends on the features too. A score's
noise is uniform in ±a, with a the policy's floor (``noise_bits``) widened to the
model's declared score range over ``2(2^score_bits - 2)`` (the policy's ``score_bits``),
and it is the same each time for the same subject, filing and slot (a keyed function of
them): asking again averages nothing, and what one score can reveal is what its
``Disclosure`` charges. A slot holding no subject decrypts to uniform noise of ±2^16.
"""

from __future__ import annotations

import base64
import math
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from pydantic import BaseModel, Field, model_validator

from dataauth.accounts.disclosure import Disclosure
from dataauth.accounts.privacy import PrivacyBudgets, charge, noise_terms, release
from dataauth.catalog.he import (
    ID,
    KIND,
    HEFilings,
    ModelInfo,
    b64decode,
    ciphertext_digest,
)
from dataauth.catalog.store import Catalog, DatasetInfo, OperatorInfo
from dataauth.ckks import Parameters
from dataauth.domain import query
from dataauth.domain.database import Domain
from dataauth.domain.lookups import Lookup
from dataauth.errors import Problem, forbidden, not_found, unprocessable
from dataauth.identity.keys import SubjectHasher
from dataauth.operations.base import (
    Call,
    ConsentNeed,
    Description,
    Request,
    Route,
    min_group_size,
)

NOISE_FLOOR_BITS = 20
"""``noise_bits: n`` adds uniform noise in [-2^(n-20), 2^(n-20)] per score: n bits above
2^-20, the order of CKKS's error for one multiply at a 2^40 scale. 0 adds none."""
EMPTY_SLOT_BITS = 16
"""A slot holding no subject gets uniform noise in ±2^16: it then decrypts to nothing but
that (CKKS's error there, which depends on the whole block, is some 2^-34 of it). Scores
themselves stay below 2^18 in magnitude: the one-subject path ends at scale 2^80 one
level down (a 100-bit modulus)."""
EXACT_BITS = 64.0
"""What a score without noise (a policy with neither floor nor ``score_bits``) can tell:
all of a float64."""
OFFSET = 2.0**-30
FETCH_CHUNK = 1024
"""Subject keys bound per look-up statement (SQLite allows 32,766 binds)."""


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
        description="per feature, in the model's order: base64, exactly the ciphertexts "
        "filed with the model (checked by digest); none: the filed ones",
    )
    bias: str | None = Field(None, min_length=1, description="the filed bias: base64")
    mode: Literal["score", "sum", "mean"] = "score"
    subjects: list[Subject] | None = Field(None, min_length=1)
    cohort: list[Condition] | None = Field(None, max_length=8)

    def batch(self) -> int:
        return len(self.subjects or ())

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
class Plan:
    model: ModelInfo
    dataset: DatasetInfo
    parameters: Parameters
    context: Any
    mode: str
    keys: list[str]
    persons: list[str]
    """``SubjectHasher.person`` of each key: with the slot's question, keys its noise."""
    cohort: list[Condition]
    score_range: float
    """max - min of the score over the declared weight bounds and the column bounds."""
    bounds: list[tuple[float, float]]
    """The catalog's [low, high] of each feature, in model order."""


@dataclass(frozen=True)
class Raw:
    ciphertexts: list[bytes]
    found: list[bool]
    noise_bits: int
    noise: float | None = None
    """A score's noise half-width."""
    privacy: dict[str, Any] | None = None
    """An aggregate's differential privacy, as reported."""


def noise(count: int, bits: int) -> np.ndarray:
    """Uniform noise in [-2^(bits-20), 2^(bits-20)] from the OS's random source."""
    if bits <= 0:
        return np.zeros(count)
    return _uniform(count) * 2.0 ** (bits - NOISE_FLOOR_BITS)


def _uniform(count: int) -> np.ndarray:
    """Uniform in [-1, 1), independent per element, from the OS's random source."""
    words = np.frombuffer(os.urandom(8 * count), dtype=np.uint64)
    return 2.0 * (words.astype(np.float64) / 2.0**64) - 1.0


def score_range(weight_bounds: Sequence[float], bounds: Sequence[tuple[float, float]]) -> float:
    """How far apart two subjects' scores can be under the declared bounds."""
    return float(
        sum(b * (high - low) for b, (low, high) in zip(weight_bounds, bounds, strict=True))
    )


def score_noise(range_: float, score_bits: Any, noise_bits: int) -> float:
    """A score's noise half-width: the policy's floor, widened (where the policy obliges
    ``score_bits``) so that over the score range one score takes at most
    2^score_bits - 2 distinguishable values."""
    floor = 2.0 ** (noise_bits - NOISE_FLOOR_BITS) if noise_bits > 0 else 0.0
    if not isinstance(score_bits, int | float) or isinstance(score_bits, bool):
        return floor
    return max(floor, range_ / (2.0 * (2.0 ** max(float(score_bits), 2.0) - 2.0)))


def score_disclosure(range_: float, half_width: float) -> float:
    """Bits one score can reveal: log2 of its distinguishable values over the range (a
    reading with uniform noise of width 2a over a range R: at most 1 + R / 2a), plus one
    outcome for "not found"."""
    if range_ <= 0:
        return 1.0
    if half_width <= 0:
        return EXACT_BITS
    return min(math.log2(2.0 + range_ / (2.0 * half_width)), EXACT_BITS)


def _noise_bits(obligations: dict[str, Any]) -> int:
    return int(obligations.get("noise_bits") or 0)


class EncryptedScore:
    """The encrypted-scoring kind."""

    name = KIND
    route = Route(
        "/v1/he/score",
        ScoreRequest,
        "Score subjects (or aggregate a cohort) under encrypted weights; ciphertexts back.",
        "encrypted scoring (密态计算)",
    )

    def __init__(
        self,
        catalog: Catalog,
        domain: Domain,
        hasher: SubjectHasher,
        registry: HEFilings,
        ledger: PrivacyBudgets,
        clock: Callable[[], datetime],
    ) -> None:
        self.catalog = catalog
        self.domain = domain
        self.hasher = hasher
        self.registry = registry
        self.ledger = ledger
        self.clock = clock
        self._lock = threading.Lock()
        self._questions: OrderedDict[str, tuple[list[str], bytes]] = OrderedDict()
        self._masked: OrderedDict[str, tuple[list[Any], Any]] = OrderedDict()

    def describe(self, call: Call[ScoreRequest], operator: OperatorInfo) -> Description:
        body, now = call.body, self.clock()
        model = self.registry.model(operator.id, body.model, now)
        if body.context != model.context:
            raise unprocessable("context_mismatch", "the model was filed under another context")
        parameters, context = self.registry.context(operator.id, body.context, now)
        self._check_sent(body, model, parameters)
        dataset = self.catalog.dataset(model.product.dataset_id)
        if dataset is None:
            raise not_found("unknown_dataset", f"product {model.product.id} names no dataset")
        bounds = []
        for name in model.features:
            declared = dataset.columns[name].bounds
            if declared is None:
                raise forbidden(
                    "bounds_missing",
                    f"column {name} declares no bounds: a score of it cannot be priced or noised",
                )
            bounds.append((float(declared[0]), float(declared[1])))
        if len(model.bounds) != len(model.features):
            raise unprocessable(
                "bounds_required", "the model's filing declares no weight bounds: file it again"
            )

        keys = [s.key for s in body.subjects or []]
        if len(set(keys)) != len(keys):
            # a subject named twice would be read through two slots' weights
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
        spread = score_range(model.bounds, bounds)
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
        persons = self.hasher.people(keys)
        return Description(
            operation={"product": model.product.id, "mode": body.mode, "model": model.id},
            facts=facts,
            plan=Plan(
                model,
                dataset,
                parameters,
                context,
                body.mode,
                keys,
                persons,
                cohort,
                spread,
                bounds,
            ),
            dataset_version=f"{dataset.id}@{dataset.version}",
            subjects=self.hasher.many(dataset.id, keys),
            consent=consent,
        )

    def _slot_questions(self, model: ModelInfo, slots: int) -> list[str]:
        """Per slot, the question a score there answers: this filing's combination in that
        slot (filed weights may differ per slot, so the slot is part of the question)."""
        return self._per_slot(model, slots)[0]

    def _per_slot(self, model: ModelInfo, slots: int) -> tuple[list[str], bytes]:
        """Per slot, its question; and the model's noise key (cached per model). The key is
        the gateway's keyed hash of the filing: question digests may be shown (disclosure
        records), the key never leaves."""
        with self._lock:
            cached = self._questions.get(model.id)
            if cached is not None:
                return cached
        digest = model.weights_digest or ""
        questions = [self.hasher.question(KIND, model.id, digest, str(s)) for s in range(slots)]
        key = bytes.fromhex(self.hasher("~he-noise", f"{model.id}\x00{digest}"))
        with self._lock:
            self._questions[model.id] = (questions, key)
            while len(self._questions) > 8:
                self._questions.popitem(last=False)
        return questions, key

    @staticmethod
    def _check_sent(body: ScoreRequest, model: ModelInfo, parameters: Parameters) -> None:
        """Only the filed ciphertexts score: weights sent along must be exactly those."""
        if model.weights_digest is None:
            raise unprocessable(
                "no_weights", "the model's filing holds no ciphertexts: file it again with them"
            )
        if body.weights is None or body.bias is None:
            return
        if len(body.weights) != len(model.features):
            raise unprocessable(
                "wrong_weight_count",
                f"the model has {len(model.features)} features; {len(body.weights)} weights came",
            )
        limit = parameters.max_ciphertext_bytes * 4 // 3 + 4
        if any(len(text) > limit for text in [*body.weights, body.bias]):
            raise Problem(413, "ciphertext_too_large", f"a ciphertext is at most {limit} base64")
        sent = [b64decode(w, f"weight {j}") for j, w in enumerate([*body.weights, body.bias])]
        if ciphertext_digest(sent) != model.weights_digest:
            raise forbidden(
                "weights_not_filed",
                f"the weights sent are not the ciphertexts filed with model {model.id}: "
                "send none to score with the filed ones",
            )

    def _features(self, plan: Plan) -> tuple[np.ndarray, list[bool]]:
        """The feature matrix (subjects x features) and which subjects were found."""
        lookup = Lookup(plan.dataset.table_name, plan.dataset.key_column, plan.model.features)
        rows = lookup.rows(self.domain, plan.keys, FETCH_CHUNK)
        matrix = np.zeros((len(plan.keys), len(plan.model.features)))
        hit = np.zeros(len(plan.keys), dtype=bool)
        if rows:
            # one conversion of the whole result, not one per column (NULL reads as nan)
            table = np.array(rows, dtype=float)
            at = table[:, 0].astype(np.intp)
            matrix[at] = np.nan_to_num(table[:, 1:], nan=0.0)
            hit[at] = True
        return matrix, hit.tolist()

    def _subject_noise(self, plan: Plan) -> np.ndarray:
        """Per subject, uniform in [-1, 1): AES under the model's noise key of (subject,
        slot), a keyed function of subject, filing and slot, so the same question gets
        the same noise and repeating it averages nothing; the operator cannot compute
        it. One AES-ECB call over the batch: a hash per subject would cost more."""
        _, key = self._per_slot(plan.model, plan.parameters.slots)
        blocks = np.zeros(len(plan.persons), dtype=[("person", "S12"), ("slot", "<u4")])
        # 96 bits of the subject's keyed hash: distinct for any two people of a dataset
        person = bytes.fromhex("".join(p[:24] for p in plan.persons))
        blocks["person"] = np.frombuffer(person, dtype="S12")
        blocks["slot"] = np.arange(len(plan.persons)) % plan.parameters.slots
        encryptor = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
        words = np.frombuffer(encryptor.update(blocks.tobytes()), dtype=np.uint64)[::2]
        return 2.0 * (words.astype(np.float64) / 2.0**64) - 1.0

    def _masked_to_slot_zero(
        self, plan: Plan, weights: list[Any], bias: Any
    ) -> tuple[list[Any], Any]:
        """The filed weights and bias times e_0, rescaled (cached per model): a one-subject
        block then multiplies by scalars, and slot 0, the subject's, is the only one it
        reaches. The rescale (under a copy of the context that rescales) leaves them at
        scale 2^40 one level down: the scalar products end at 2^80, with two primes
        instead of three, which is cheaper than the unmasked product was."""
        with self._lock:
            cached = self._masked.get(plan.model.id)
            if cached is not None:
                return cached
        rescaling = plan.context.copy()
        rescaling.auto_rescale = True
        unit = [1.0] + [0.0] * (plan.parameters.slots - 1)

        def masked(vector: Any) -> Any:
            copy = vector.copy()
            copy.link_context(rescaling)
            product = copy * unit
            product.link_context(plan.context)
            return product

        made = ([masked(w) for w in weights], masked(bias))
        with self._lock:
            self._masked[plan.model.id] = made
            while len(self._masked) > 8:
                self._masked.popitem(last=False)
        return made

    def execute(self, plan: Plan, obligations: dict[str, Any]) -> Raw:
        bits = _noise_bits(obligations)
        weights, bias = self.registry.weights(plan.model, plan.parameters, plan.context)
        scale_bits = plan.parameters.scale_bits
        try:
            if plan.mode != "score":
                return self._aggregate(plan, obligations, weights, bias, bits)
            matrix, found = self._features(plan)
            half = score_noise(plan.score_range, obligations.get("score_bits"), bits)
            subject_noise = self._subject_noise(plan) * half
            slots, out = plan.parameters.slots, []
            for start in range(0, len(plan.keys), slots):
                part = matrix[start : start + slots]
                flood = _uniform(slots) * 2.0**EMPTY_SLOT_BITS
                flood[: len(part)] = subject_noise[start : start + len(part)]
                if len(part) == 1:
                    masked, masked_bias = self._masked_to_slot_zero(plan, weights, bias)
                    score = self._combine(masked, masked_bias, list(part[0]))
                    out.append(self._release(plan, score, flood, 2 * scale_bits))
                    continue
                block = np.zeros((slots, matrix.shape[1]))
                block[: len(part)] = part
                score = self._combine(weights, bias, list(block.T))
                out.append(self._release(plan, score, flood, 2 * scale_bits))
        except ValueError:  # TenSEAL: scales or levels that do not fit these parameters
            raise unprocessable(
                "invalid_ciphertext", "the ciphertexts do not fit the registered parameters"
            ) from None
        return Raw(out, found, bits, noise=half)

    @staticmethod
    def _combine(weights: list[Any], bias: Any, values: list[Any], bias_times: float = 1.0) -> Any:
        """bias + sum of weight * value: plaintext multiplies, no rescale.

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
    def _release(plan: Plan, result: Any, flood: np.ndarray, scale_bits: int) -> bytes:
        """Add a fresh encryption of the noise under the operator's key: re-randomised."""
        import tenseal as ts

        result += ts.ckks_vector(plan.context, flood.tolist(), 2.0**scale_bits)
        return result.serialize()

    def _aggregate(
        self, plan: Plan, obligations: dict[str, Any], weights: list[Any], bias: Any, bits: int
    ) -> Raw:
        features = plan.model.features
        where = tuple(query.Condition.of(c.column, c.op, c.value) for c in plan.cohort)
        cohort = query.Cohort(plan.dataset.table_name, where)
        row = cohort.totals(self.domain, list(zip(features, plan.bounds, strict=True)))
        count, sums = float(row[0]), [float(v or 0) for v in row[1:]]
        k = min_group_size(obligations)
        if count < max(k, 1):
            raise forbidden(
                "cohort_too_small", f"the cohort has fewer than {k} subjects (the policy's k)"
            )
        terms = noise_terms(obligations)
        privacy = None
        if terms is not None:  # charged only for a cohort that is answered
            measurements = {"count": ([count], 1.0)}
            for name, total, (low, high) in zip(features, sums, plan.bounds, strict=True):
                measurements[f"sum({name})"] = ([total], max(abs(low), abs(high)))
            noisy, report = release(charge(self.ledger, terms, plan.dataset.id), measurements)
            count = noisy["count"][0]
            sums = [noisy[f"sum({name})"][0] for name in features]
            privacy = {
                **report,
                "clamped_to": {f: list(b) for f, b in zip(features, plan.bounds, strict=True)},
            }
        if plan.mode == "mean":
            # post-processing: a noisy sum over a noisy count, kept within the bounds
            values = [
                min(max(total / max(count, 1.0), low), high)
                for total, (low, high) in zip(sums, plan.bounds, strict=True)
            ]
            total_score = self._combine(weights, bias, values, 1.0)
        else:
            total_score = self._combine(weights, bias, sums, max(count, 0.0))
        flood = noise(plan.parameters.slots, bits)
        released = self._release(plan, total_score, flood, 2 * plan.parameters.scale_bits)
        return Raw([released], [], bits, privacy=privacy)

    def disclosures(self, plan: Plan, obligations: dict[str, Any]) -> list[Disclosure]:
        """Per subject scored, what its one decrypted score can tell: log2 of its
        distinguishable values over the declared score range at the obliged noise (the
        policy's ``score_bits`` exactly, where the widened noise binds), under the
        question of its filing and slot. Aggregates name no subject (they spend ε)."""
        if plan.mode != "score":
            return []
        half = score_noise(
            plan.score_range, obligations.get("score_bits"), _noise_bits(obligations)
        )
        bits = score_disclosure(plan.score_range, half)
        questions, slots = (
            self._slot_questions(plan.model, plan.parameters.slots),
            plan.parameters.slots,
        )
        return [
            Disclosure(person, questions[i % slots], bits) for i, person in enumerate(plan.persons)
        ]

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
            # ciphertext i // per_ciphertext; no other slot holds anything of it
            result["noise"] = raw.noise
            result["subjects"] = {
                "count": len(raw.found),
                "per_ciphertext": slots,
                "not_found": [i for i, found in enumerate(raw.found) if not found],
            }
        else:
            result["differential_privacy"] = raw.privacy
        return result
