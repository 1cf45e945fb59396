"""Encrypted scoring for operators: keep the model's weights and the keys, send ciphertexts.

    secret = make_context()                        # the secret key never leaves
    with HEClient(url, token) as gateway:
        context_id = gateway.register_context(secret)
        model_id = gateway.register_model("he-credit-score", context_id, model)
        result = gateway.score(secret, context_id, model_id, model, subjects=[...],
                               purpose="credit")
    result.scores                                  # decrypted, in subject order

A regulator who demands the weights checks them with ``LinearModel.commitment``
against the filing (算法备案).
"""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np
import tenseal as ts

from dataauth.canonical import canonical
from dataauth.operations.he_params import ALLOWED


class GatewayError(Exception):
    """A problem+json answer from the gateway."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        super().__init__(f"{status} {problem.get('code')}: {problem.get('detail')}")
        self.status = status
        self.problem = problem


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
    _encrypted: dict[int, tuple[list[str], str]] = field(default_factory=dict, repr=False)

    def commitment(self) -> str:
        """SHA-256 over the canonical JSON (RFC 8785) of features, weights, bias and salt."""
        return commitment(self.features, self.weights, self.bias, self.salt)

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


def commitment(features: list[str], weights: list[float], bias: float, salt: bytes) -> str:
    document = {
        "features": list(features),
        "weights": [float(w) for w in weights],
        "bias": float(bias),
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
    """An aggregate's value (every slot holds it, with the same noise)."""
    values = ts.ckks_vector_from(context, base64.b64decode(response["ciphertexts"][0])).decrypt()
    return float(np.mean(values))


class HEClient:
    """The gateway's encrypted-scoring routes, over HTTP."""

    def __init__(self, url: str, token: str, timeout: float = 60.0) -> None:
        self.http = httpx.Client(
            base_url=url, timeout=timeout, headers={"Authorization": f"Bearer {token}"}
        )

    def __enter__(self) -> HEClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.http.close()

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self.http.post(path, json=body)
        if response.status_code >= 400:
            raise GatewayError(response.status_code, response.json())
        return response.json()

    def register_context(self, context: ts.Context) -> str:
        """Register the public part of ``context``; its id."""
        return self._post("/v1/he/contexts", {"context": _b64(public_context(context))})["id"]

    def register_model(
        self,
        product: str,
        context_id: str,
        model: LinearModel,
        context: ts.Context | None = None,
    ) -> str:
        """File the model's shape and its commitment; its id. Given the secret ``context``,
        file its encrypted weights too, so that score requests need not carry them."""
        body: dict[str, Any] = {
            "product": product,
            "context": context_id,
            "features": model.features,
            "commitment": model.commitment(),
        }
        if context is not None:
            body["weights"], body["bias"] = model.encrypted(context)
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
        weights filed with the model, or sent in the request (``send_weights``)."""
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
