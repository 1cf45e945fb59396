"""An operator's encrypted-scoring filings (算法备案): its public contexts and its models.

Each registration is the operator's own step, audited like a department's: the entry
names what was registered; a refused registration is on the record too, with its code.
A regulator takes a filing away to check it offline (``dataauth he check-filing``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from dataauth.admin.steps import Steps
from dataauth.catalog.he import (
    KIND,
    ContextRequest,
    Filing,
    HEFilings,
    ModelRequest,
    registration,
)
from dataauth.errors import Problem, forbidden
from dataauth.identity.access import DEPARTMENT, REGULATOR


class HEAdmin:
    def __init__(self, steps: Steps, registry: HEFilings) -> None:
        self.steps = steps
        self.registry = registry

    def register_context(
        self, authorization: str | None, body: ContextRequest, raw: bytes
    ) -> dict[str, Any]:
        """Register a public CKKS context (no secret key)."""
        return self._register(authorization, raw, "context", self.registry.context_filing, body)

    def register_model(
        self, authorization: str | None, body: ModelRequest, raw: bytes
    ) -> dict[str, Any]:
        """File a model: product, features in order, commitment to its weights."""
        return self._register(authorization, raw, "model", self.registry.model_filing, body)

    def filing(self, authorization: str | None, model_id: str) -> dict[str, Any]:
        """A filing as a regulator takes it away."""
        caller = self.steps.access.caller(authorization)
        if REGULATOR not in caller.roles:
            raise forbidden("not_allowed", "reading a model filing needs a regulator's token")
        return self.registry.filing(model_id)

    def listing(self, authorization: str | None) -> dict[str, Any]:
        """Every context and model filed, with its commitments (a department's or a
        regulator's token)."""
        caller = self.steps.access.caller(authorization)
        if not {DEPARTMENT, REGULATOR} & set(caller.roles):
            raise forbidden("not_allowed", "the filings need a department's or a regulator's token")
        return self.registry.listing()

    def _register(
        self,
        authorization: str | None,
        raw: bytes,
        what: str,
        make: Callable[[str, Any, datetime], Filing],
        body: Any,
    ) -> dict[str, Any]:
        _, operator = self.steps.access.operator(authorization)
        kind = f"{KIND}-{what}"
        try:
            filing = make(operator.id, body, self.steps.clock())
        except Problem as problem:
            problem.extensions["audit"] = self.steps.record(
                operator.id,
                {"kind": kind, "code": problem.code},
                purpose="he-registration",
                request=raw,
                outcome="refused",
            ).as_dict()
            raise
        _, receipt = self.steps.take(
            operator.id,
            lambda connection: self.registry.save(connection, filing),
            {"kind": kind, "id": filing.row.id},
            purpose="he-registration",
            request=raw,
            outcome="registered",
        )
        return {**registration(filing.row), "audit": receipt.as_dict()}
