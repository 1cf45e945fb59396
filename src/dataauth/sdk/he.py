"""Encrypted scoring for operators: keep the model's weights and the keys, send ciphertexts.

    secret = make_context()                        # the secret key never leaves
    with HEClient(url, token) as gateway:
        context_id = gateway.register_context(secret)
        model_id = gateway.register_model("he-credit-score", context_id, model)
        result = gateway.score(secret, context_id, model_id, model, subjects=[...],
                               purpose="credit")
    result.scores                                  # decrypted, in subject order

The filing (算法备案) holds the encrypted weights, a bound on each weight's magnitude and
a commitment to both: only those ciphertexts ever score. A regulator takes the filing
away (``filing``), demands the operator's reveal bundle (``reveal_bundle``: the
weights, the salt and the context's secret key), and checks offline with
``check_filing`` (``dataauth he check-filing``) that the filed ciphertexts decrypt to
the revealed weights in every slot, that these match the commitment, and that they lie
within the declared bounds.
"""

from __future__ import annotations

import base64
import hashlib
import math
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import tenseal as ts

from dataauth.canonical import canonical
from dataauth.ckks import ALLOWED, ciphertext_digest
from dataauth.sdk.client import Client
from dataauth.sdk.client import GatewayError as GatewayError  # what HEClient raises


def make_context(parameters: str = "ckks-8192") -> ts.Context:
    """A CKKS context with its secret key, from the gateway's allowlist."""
    chosen = ALLOWED[parameters]
    context = ts.context(
        ts.SCHEME_TYPE.CKKS,
        poly_modulus_degree=chosen.degree,
        coeff_mod_bit_sizes=list(chosen.coeff_bits),
    )
    context.global_scale = 2.0**chosen.scale_bits
    return context


def public_context(context: ts.Context) -> bytes:
    """What the gateway gets: parameters and the public key; no secret, relin or Galois keys."""
    return context.serialize(
        save_public_key=True, save_secret_key=False, save_galois_keys=False, save_relin_keys=False
    )


def slots(context: ts.Context) -> int:
    return context.seal_context().data.key_context_data().parms().poly_modulus_degree() // 2


@dataclass
class LinearModel:
    """The operator's model: score = bias + sum of weight * feature (raw catalog units)."""

    features: list[str]
    weights: list[float]
    bias: float
    salt: bytes = field(default_factory=lambda: os.urandom(16))
    """Kept by the operator with the weights; shown to a regulator with them."""
    bounds: list[float] | None = None
    """Declared bound on each weight's magnitude, filed and committed to; by default each
    weight's magnitude rounded up to a power of two (the department learns no more)."""
    _encrypted: dict[int, tuple[list[str], str]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.bounds is None:
            self.bounds = [power_of_two_above(w) for w in self.weights]

    def commitment(self) -> str:
        """SHA-256 over the canonical JSON (RFC 8785) of features, weights, bias, bounds
        and salt."""
        return commitment(self.features, self.weights, self.bias, self.salt, self.declared())

    def declared(self) -> list[float]:
        assert self.bounds is not None
        return [float(b) for b in self.bounds]

    def plain_scores(self, rows: np.ndarray) -> np.ndarray:
        """The same model in the clear, for rows of feature values in model order."""
        return rows @ np.asarray(self.weights, dtype=float) + self.bias

    def encrypted(self, context: ts.Context) -> tuple[list[str], str]:
        """Each weight and the bias replicated over every slot, encrypted, base64 (cached)."""
        cached = self._encrypted.get(id(context))
        if cached is None:
            n = slots(context)
            weights = [_b64(ts.ckks_vector(context, [w] * n).serialize()) for w in self.weights]
            cached = (weights, _b64(ts.ckks_vector(context, [self.bias] * n).serialize()))
            self._encrypted[id(context)] = cached
        return cached


def power_of_two_above(weight: float) -> float:
    """The least power of two at or above |weight| (0 for 0)."""
    return 0.0 if weight == 0 else 2.0 ** math.ceil(math.log2(abs(weight)))


def commitment(
    features: list[str], weights: list[float], bias: float, salt: bytes, bounds: list[float]
) -> str:
    document = {
        "features": list(features),
        "weights": [float(w) for w in weights],
        "bias": float(bias),
        "bounds": [float(b) for b in bounds],
        "salt": salt.hex(),
    }
    return "sha256:" + hashlib.sha256(canonical(document)).hexdigest()


@dataclass
class ScoreResult:
    scores: list[float | None]
    """Per subject, in the order sent; None where the dataset has no such subject."""
    response: dict[str, Any]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def decrypt_scores(context: ts.Context, response: dict[str, Any]) -> list[float | None]:
    """Map a score response's slots back to subjects, decrypting each block once."""
    blocks = [
        ts.ckks_vector_from(context, base64.b64decode(c)).decrypt() for c in response["ciphertexts"]
    ]
    where = response["subjects"]
    per, missing = where["per_ciphertext"], set(where["not_found"])
    return [None if i in missing else blocks[i // per][i % per] for i in range(where["count"])]


def decrypt_aggregate(context: ts.Context, response: dict[str, Any]) -> float:
    """An aggregate's value (every slot holds it, each with its own small noise)."""
    values = ts.ckks_vector_from(context, base64.b64decode(response["ciphertexts"][0])).decrypt()
    return float(np.mean(values))


class HEClient(Client):
    """The gateway's encrypted-scoring routes, over HTTP; ``filing`` is the base client's."""

    def __init__(self, url: str, token: str, timeout: float = 60.0) -> None:
        super().__init__(url, token, timeout)

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return self.request("POST", path, json=body)

    def register_context(self, context: ts.Context) -> str:
        """Register the public part of ``context``; its id."""
        return self._post("/v1/he/contexts", {"context": _b64(public_context(context))})["id"]

    def register_model(
        self, product: str, context_id: str, model: LinearModel, context: ts.Context
    ) -> str:
        """File the model (算法备案): its features, weight bounds and commitment, and its
        weights encrypted under the secret ``context``, the only ones it will score
        with; its id."""
        weights, bias = model.encrypted(context)
        body: dict[str, Any] = {
            "product": product,
            "context": context_id,
            "features": model.features,
            "commitment": model.commitment(),
            "bounds": model.declared(),
            "weights": weights,
            "bias": bias,
        }
        return self._post("/v1/he/models", body)["id"]

    def _request(
        self, context: ts.Context, context_id: str, model_id: str, model: LinearModel, send: bool
    ) -> dict[str, Any]:
        body = {"context": context_id, "model": model_id}
        if send:
            body["weights"], body["bias"] = model.encrypted(context)
        return body

    def score(
        self,
        context: ts.Context,
        context_id: str,
        model_id: str,
        model: LinearModel,
        *,
        subjects: list[dict[str, str]],
        purpose: str,
        send_weights: bool = False,
    ) -> ScoreResult:
        """Scores of subjects (``{"key": …, "consent": …}``), decrypted, in order; with the
        weights filed with the model, sent again in the request with ``send_weights``
        (they must be the filed ones)."""
        body = self._request(context, context_id, model_id, model, send_weights)
        body.update(purpose=purpose, mode="score", subjects=subjects)
        response = self._post("/v1/he/score", body)
        return ScoreResult(decrypt_scores(context, response), response)

    def aggregate(
        self,
        context: ts.Context,
        context_id: str,
        model_id: str,
        model: LinearModel,
        *,
        mode: str,
        cohort: list[dict[str, Any]],
        purpose: str,
        send_weights: bool = False,
    ) -> float:
        """The sum or mean of the model's score over a cohort, decrypted."""
        body = self._request(context, context_id, model_id, model, send_weights)
        body.update(purpose=purpose, mode=mode, cohort=cohort)
        return decrypt_aggregate(context, self._post("/v1/he/score", body))


# -- the regulator's check (算法备案) ------------------------------------------------

SLOT_TOLERANCE = 1e-6
"""How far a decrypted slot may be from the revealed weight, per unit of (1 + |w|): a
fresh CKKS encryption at scale 2^40 is off by some 1e-9."""


def reveal_bundle(model: LinearModel, context: ts.Context, model_id: str) -> dict[str, Any]:
    """What the operator hands a regulator on demand: the model's weights, bias, bounds
    and salt, and the filing context with its secret key (no Galois or relin keys)."""
    secret = context.serialize(
        save_public_key=True, save_secret_key=True, save_galois_keys=False, save_relin_keys=False
    )
    return {
        "model": model_id,
        "features": list(model.features),
        "weights": [float(w) for w in model.weights],
        "bias": float(model.bias),
        "bounds": model.declared(),
        "salt": model.salt.hex(),
        "secret_context": _b64(secret),
    }


def filing_id(filing: dict[str, Any]) -> str:
    """The id the gateway gives a filing: sha256 of its canonical shape."""
    shape = {
        "operator": filing["operator"],
        "product": filing["product"],
        "context": filing["context"],
        "features": filing["features"],
        "commitment": filing["commitment"],
        "weights": filing["weights_digest"],
        "bounds": filing["bounds"],
    }
    return "sha256:" + hashlib.sha256(canonical(shape)).hexdigest()


def check_filing(filing: dict[str, Any], reveal: dict[str, Any]) -> list[dict[str, str]]:
    """Every way the revealed model fails to account for the filing; [] if it does.

    Each problem is ``{"code", "detail"}``: the filing's own consistency (its id, its
    ciphertexts' digest), the commitment, the bounds, the context, and, decrypting each
    filed ciphertext with the revealed secret key, that every slot holds the revealed
    weight (a filing whose slots differ could read a different combination per slot).
    """
    problems: list[dict[str, str]] = []

    def problem(code: str, detail: str) -> None:
        problems.append({"code": code, "detail": detail})

    blobs = [base64.b64decode(c) for c in [*filing["weights"], filing["bias"]]]
    if ciphertext_digest(blobs) != filing["weights_digest"]:
        problem("digest_mismatch", "the filed ciphertexts do not have the filing's digest")
    if filing_id(filing) != filing["id"]:
        problem("filing_id_mismatch", "the filing's id does not cover what it holds")
    if reveal.get("model") not in (None, filing["id"]):
        problem("other_model", f"the bundle reveals model {reveal.get('model')}")
    if list(reveal["features"]) != list(filing["features"]):
        problem("features_mismatch", "the revealed features are not the filed ones")
    salt = bytes.fromhex(reveal["salt"])
    weights, bias = [float(w) for w in reveal["weights"]], float(reveal["bias"])
    bounds = [float(b) for b in filing["bounds"]]
    if commitment(reveal["features"], weights, bias, salt, bounds) != filing["commitment"]:
        problem(
            "commitment_mismatch",
            "the revealed weights, bias, salt and the filed bounds do not give the commitment",
        )
    for j, (w, b) in enumerate(zip(weights, bounds, strict=False)):
        if abs(w) > b:
            problem("weight_out_of_bounds", f"weight {j} ({filing['features'][j]}) exceeds {b}")
    context = ts.context_from(base64.b64decode(reveal["secret_context"]))
    if not context.is_private():
        problem("no_secret_key", "the revealed context holds no secret key")
        return problems
    public = hashlib.sha256(public_context(context)).hexdigest()
    if "sha256:" + public != filing["context"]:
        problem("other_context", "the revealed secret key is not the filing context's")
        return problems
    for j, (blob, expected) in enumerate(zip(blobs, [*weights, bias], strict=False)):
        what = "the bias" if j == len(weights) else f"weight {j}"
        try:
            slots_held = np.array(ts.ckks_vector_from(context, blob).decrypt())
        except Exception:  # TenSEAL raises several types for bytes it cannot read
            problem("unreadable_ciphertext", f"{what} does not decrypt under the revealed key")
            continue
        off = np.abs(slots_held - expected)
        if off.max() > SLOT_TOLERANCE * (1 + abs(expected)):
            problem(
                "ciphertext_mismatch",
                f"{what}: {int(np.sum(off > SLOT_TOLERANCE * (1 + abs(expected))))} of "
                f"{len(off)} slots do not hold the revealed value",
            )
    return problems
