"""Operator-side registrations for encrypted scoring: public contexts and model filings.

A context (the operator's TenSEAL CKKS public context) is registered once, stored by
its digest with an expiry, and referenced by id. A model filing (算法备案) names a
product, the catalog columns it reads in order, a bound on each weight's magnitude, a
commitment to the plaintext weights (and those bounds), and the encrypted weights
themselves: scoring uses only these filed ciphertexts, and the filing is bound to their
digest, so the ciphertexts a regulator later checks against the revealed weights are
the ones every score was computed with. Both are administrative steps: audited with
``admin.he``, no policy decision.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import math
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import JSON, Column, Connection, Engine, LargeBinary
from sqlmodel import Field as SQLField
from sqlmodel import Session, SQLModel, select

from dataauth.canonical import canonical, rfc3339
from dataauth.catalog.specs import HE_SCORE as KIND
from dataauth.catalog.specs import HEProductSpec
from dataauth.catalog.store import Catalog, ProductInfo
from dataauth.ckks import (
    ALLOWED,
    Parameters,
    check_context,
    ciphertext_digest,
    load_context,
    load_vector,
)
from dataauth.errors import Problem, bad_request, not_found, unprocessable

ID = r"^sha256:[0-9a-f]{64}$"


class HEContext(SQLModel, table=True):
    __tablename__ = "he_context"

    id: str = SQLField(primary_key=True)
    """sha256 of the serialized public context."""
    operator: str = SQLField(primary_key=True)
    parameters: str
    registered: datetime
    expires: datetime
    data: bytes = SQLField(sa_column=Column(LargeBinary, nullable=False))


class HEModel(SQLModel, table=True):
    __tablename__ = "he_model"

    id: str = SQLField(primary_key=True)
    operator: str = SQLField(index=True)
    product: str
    context: str
    features: list[str] = SQLField(sa_column=Column(JSON, nullable=False))
    commitment: str
    registered: datetime
    expires: datetime
    weights_digest: str | None = None
    """``ciphertext_digest`` of the filed weights and bias (None: a filing from before
    filings had to carry them, which cannot score)."""
    bounds: list[float] | None = SQLField(default=None, sa_column=Column(JSON, nullable=True))
    """Declared bound on each weight's magnitude, in feature order (committed to)."""


class HEWeight(SQLModel, table=True):
    """A model's encrypted weights, filed with it: position ``len(features)`` is the bias."""

    __tablename__ = "he_model_weight"

    model: str = SQLField(primary_key=True)
    position: int = SQLField(primary_key=True)
    data: bytes = SQLField(sa_column=Column(LargeBinary, nullable=False))


class ContextRequest(BaseModel):
    context: str = Field(min_length=1, description="the public context, base64")


class ModelRequest(BaseModel):
    product: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")
    context: str = Field(pattern=ID)
    features: list[str] = Field(min_length=1, max_length=64)
    commitment: str = Field(
        pattern=ID,
        description="sha256 of the canonical features, weights, bias, bounds, salt (see the SDK)",
    )
    weights: list[str] | None = Field(
        None,
        max_length=64,
        description="the encrypted weights (base64, one per feature, each replicated in "
        "every slot): the only ones the model scores with",
    )
    bias: str | None = Field(None, description="the encrypted bias, with weights")
    bounds: list[float] | None = Field(
        None,
        max_length=64,
        description="per feature, a bound on the weight's magnitude (|w_j| <= bounds[j]): "
        "it sets the noise and what a score may cost; the commitment covers it",
    )


@dataclass(frozen=True)
class ModelInfo:
    id: str
    operator: str
    product: ProductInfo
    spec: HEProductSpec
    context: str
    features: tuple[str, ...]
    commitment: str
    weights_digest: str | None
    """The filed ciphertexts' digest; None: nothing filed (such a model cannot score)."""
    bounds: tuple[float, ...]
    """Declared |w_j| bounds, in feature order ((): none declared)."""


def b64decode(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise bad_request("invalid_base64", f"{what} is not base64") from None


def check_bounds(bounds: list[float] | None, features: list[str]) -> list[float]:
    """The declared weight bounds, one finite non-negative number per feature."""
    if bounds is None or len(bounds) != len(features):
        raise unprocessable(
            "bounds_required",
            "declare one bound on the weight's magnitude per feature (bounds), committed to",
        )
    if not all(math.isfinite(b) and b >= 0 for b in bounds):
        raise unprocessable("invalid_bounds", "a weight bound is a finite number of at least 0")
    return [float(b) for b in bounds]


@dataclass(frozen=True)
class Filing:
    """A registration to write: the context or model row, and a model's ciphertexts."""

    row: HEContext | HEModel
    weights: list[bytes] = field(default_factory=list)


def he_product(catalog: Catalog, product_id: str) -> tuple[ProductInfo, HEProductSpec]:
    product = catalog.product(product_id)
    if product is None or product.kind != KIND:
        raise not_found("unknown_product", f"there is no encrypted-scoring product {product_id!r}")
    return product, HEProductSpec.model_validate(product.spec)


class HEFilings:
    """Registered contexts and models, by id; deserialized contexts kept in memory."""

    def __init__(self, engine: Engine, catalog: Catalog, ttl_days: float) -> None:
        self.engine = engine
        self.catalog = catalog
        self.ttl = timedelta(days=ttl_days)
        self._contexts: OrderedDict[str, tuple[Parameters, Any]] = OrderedDict()
        self._weights: OrderedDict[str, tuple[list[Any], Any]] = OrderedDict()
        self._lock = threading.Lock()

    def save(self, connection: Connection, filing: Filing) -> None:
        """Write ``filing`` in ``connection``'s transaction, which the caller commits with
        its entry: insert it, or renew the expiry of the same registration (idempotent).
        The ciphertexts go in with it: a model row is never there without the ones it
        is bound to."""
        row = filing.row
        with Session(bind=connection) as session:
            for position, data in enumerate(filing.weights):
                session.merge(HEWeight(model=row.id, position=position, data=data))
            key = (row.id, row.operator) if isinstance(row, HEContext) else (row.id,)
            existing = session.get(type(row), key)
            if existing is not None:
                existing.expires = row.expires
            else:
                session.add(row)
            session.flush()

    def context_filing(self, operator: str, body: ContextRequest, now: datetime) -> Filing:
        """The context's registration, checked; nothing is written yet (``save``)."""
        data = b64decode(body.context, "context")
        parameters = check_context(data)
        row = HEContext(
            id="sha256:" + hashlib.sha256(data).hexdigest(),
            operator=operator,
            parameters=parameters.name,
            registered=now,
            expires=now + self.ttl,
            data=data,
        )
        return Filing(row)

    def model_filing(self, operator: str, body: ModelRequest, now: datetime) -> Filing:
        """The model's filing, checked against its context, product and ciphertexts;
        nothing is written yet (``save``)."""
        parameters, context = self.context(operator, body.context, now)
        product, spec = he_product(self.catalog, body.product)
        dataset = self.catalog.dataset(product.dataset_id)
        if dataset is None:
            raise not_found("unknown_dataset", f"product {product.id} names no known dataset")
        if len(set(body.features)) != len(body.features):
            raise unprocessable("duplicate_feature", "a model names each feature once")
        for name in body.features:
            column = dataset.columns.get(name)
            if name not in spec.features or column is None or "feature" not in column.uses:
                raise unprocessable(
                    "feature_not_allowed",
                    f"column {name!r} is not a feature of product {product.id}",
                )
        bounds = check_bounds(body.bounds, body.features)
        blobs = self._weight_blobs(body, parameters, context)
        digest = ciphertext_digest(blobs)
        shape = {
            "operator": operator,
            "product": product.id,
            "context": body.context,
            "features": body.features,
            "commitment": body.commitment,
            "weights": digest,
            "bounds": bounds,
        }
        row = HEModel(
            id="sha256:" + hashlib.sha256(canonical(shape)).hexdigest(),
            operator=operator,
            product=product.id,
            context=body.context,
            features=body.features,
            commitment=body.commitment,
            registered=now,
            expires=now + self.ttl,
            weights_digest=digest,
            bounds=bounds,
        )
        return Filing(row, blobs)

    def _weight_blobs(
        self, body: ModelRequest, parameters: Parameters, context: Any
    ) -> list[bytes]:
        """The filed ciphertexts, read against the context (a malformed one is refused)."""
        if body.weights is None and body.bias is None:
            raise unprocessable(
                "weights_required",
                "file the encrypted weights and bias with the model: only filed ones score",
            )
        if body.weights is None or body.bias is None or len(body.weights) != len(body.features):
            raise unprocessable(
                "wrong_weight_count", "file one encrypted weight per feature, and the bias"
            )
        limit = parameters.max_ciphertext_bytes * 4 // 3 + 4
        if any(len(text) > limit for text in [*body.weights, body.bias]):
            raise Problem(413, "ciphertext_too_large", f"a ciphertext is at most {limit} base64")
        blobs = [b64decode(w, f"weight {j}") for j, w in enumerate([*body.weights, body.bias])]
        for j, data in enumerate(blobs):
            load_vector(context, parameters, data, f"ciphertext {j}")
        return blobs

    def weights(
        self, model: ModelInfo, parameters: Parameters, context: Any
    ) -> tuple[list[Any], Any]:
        """The model's filed weights and bias, deserialized (cached)."""
        with self._lock:
            cached = self._weights.get(model.id)
            if cached is not None:
                return cached
        with Session(self.engine) as session:
            rows = session.exec(
                select(HEWeight).where(HEWeight.model == model.id).order_by(HEWeight.position)
            ).all()
            blobs = [r.data for r in rows]
        vectors = [load_vector(context, parameters, b, "a filed ciphertext") for b in blobs]
        loaded = (vectors[:-1], vectors[-1])
        with self._lock:
            self._weights[model.id] = loaded
            while len(self._weights) > 8:
                self._weights.popitem(last=False)
        return loaded

    def context(self, operator: str, context_id: str, now: datetime) -> tuple[Parameters, Any]:
        """A registered, unexpired context of this operator, deserialized (cached)."""
        with Session(self.engine) as session:
            found = session.exec(
                select(HEContext.expires).where(
                    HEContext.id == context_id, HEContext.operator == operator
                )
            ).first()
            if found is None:
                raise not_found("unknown_context", "no such context is registered by this operator")
            if found.replace(tzinfo=UTC) <= now:
                raise Problem(410, "context_expired", "the context's registration has expired")
            with self._lock:
                cached = self._contexts.get(context_id)
                if cached is not None:
                    self._contexts.move_to_end(context_id)
                    return cached
            row = session.get(HEContext, (context_id, operator))
            assert row is not None
            data, name = row.data, row.parameters
        context = load_context(data)
        # products stay at scale 2^80 with no rescale: one rescale costs more than a multiply
        context.auto_rescale = False
        loaded = (ALLOWED[name], context)
        with self._lock:
            self._contexts[context_id] = loaded
            while len(self._contexts) > 32:
                self._contexts.popitem(last=False)
        return loaded

    def model(self, operator: str, model_id: str, now: datetime) -> ModelInfo:
        with Session(self.engine) as session:
            row = session.get(HEModel, model_id)
            if row is None or row.operator != operator:
                raise not_found("unknown_model", "no such model is registered by this operator")
            if row.expires.replace(tzinfo=UTC) <= now:
                raise Problem(410, "model_expired", "the model's registration has expired")
            product, spec = he_product(self.catalog, row.product)
            return ModelInfo(
                row.id,
                row.operator,
                product,
                spec,
                row.context,
                tuple(row.features),
                row.commitment,
                row.weights_digest,
                tuple(row.bounds or ()),
            )

    def filing(self, model_id: str) -> dict[str, Any]:
        """A filing as a regulator takes it away: what was filed, the public context and
        the filed ciphertexts, for ``dataauth he check-filing`` against the revealed weights."""
        with Session(self.engine) as session:
            row = session.get(HEModel, model_id)
            if row is None:
                raise not_found("unknown_model", "no such model is filed")
            context = session.exec(
                select(HEContext.data).where(
                    HEContext.id == row.context, HEContext.operator == row.operator
                )
            ).first()
            blobs = session.exec(
                select(HEWeight.data).where(HEWeight.model == row.id).order_by(HEWeight.position)
            ).all()
        encoded = [base64.b64encode(b).decode() for b in blobs]
        return {
            **registration(row),
            "operator": row.operator,
            "context_data": None if context is None else base64.b64encode(context).decode(),
            "weights": encoded[:-1],
            "bias": encoded[-1] if encoded else None,
        }

    def listing(self) -> dict[str, Any]:
        """Every registered context and filed model, as registered (no context bytes or
        ciphertexts: those are the filing itself, ``filing``), newest first."""
        with Session(self.engine) as session:
            contexts = session.exec(
                select(HEContext).order_by(HEContext.registered.desc())  # type: ignore[attr-defined]
            ).all()
            models = session.exec(
                select(HEModel).order_by(HEModel.registered.desc())  # type: ignore[attr-defined]
            ).all()
            return {
                "contexts": [{**registration(c), "operator": c.operator} for c in contexts],
                "models": [{**registration(m), "operator": m.operator} for m in models],
            }


def registration(row: HEContext | HEModel) -> dict[str, Any]:
    """What the operator gets back for a registration."""
    common = {"id": row.id, "registered": rfc3339(row.registered), "expires": rfc3339(row.expires)}
    if isinstance(row, HEContext):
        return {**common, "parameters": ALLOWED[row.parameters].as_dict()}
    return {
        **common,
        "product": row.product,
        "context": row.context,
        "features": row.features,
        "commitment": row.commitment,
        "bounds": row.bounds,
        "weights_digest": row.weights_digest,
    }
