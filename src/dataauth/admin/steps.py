"""What every administrative step shares: who takes it, and its entry in the log."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from dataauth.audit.log import AuditLog, Receipt, Record
from dataauth.audit.stamper import Freshness
from dataauth.canonical import utc_now
from dataauth.catalog.store import OperatorInfo
from dataauth.identity.access import Access
from dataauth.identity.tokens import Caller
from dataauth.policy.store import PolicyStore


class Steps:
    """Authentication and the audit record for a department's or an operator's step."""

    def __init__(
        self,
        access: Access,
        audit: AuditLog,
        policy: PolicyStore,
        clock: Callable[[], datetime] = utc_now,
        timestamping: Freshness | None = None,
    ) -> None:
        self.access = access if timestamping is None else HeldAccess(access, self, timestamping)
        self.audit = audit
        self.policy = policy
        self.clock = clock

    def record(
        self,
        actor: str,
        operation: dict[str, Any],
        *,
        purpose: str,
        request: bytes,
        outcome: str,
        refusal: str | None = None,
    ) -> Receipt:
        """Log a step: the actor, what it did (metadata), the commitment to its request."""
        return self.audit.append(
            Record.action(
                self.clock(),
                actor,
                operation,
                self.policy.engine().digest,
                purpose=purpose,
                request=request,
                outcome=outcome,
                refusal=refusal,
            )
        )


class HeldAccess(Access):
    """Authentication for administrative steps that also refuses them, on the record,
    while the log's time-stamps lag: a publication or review taken then would be an
    entry no third party dates. Every step authenticates as an operator or a
    department first, so each is held before it changes anything; ``caller`` (a
    regulator's or reviewer's reads) is not held."""

    def __init__(self, access: Access, steps: Steps, timestamping: Freshness) -> None:
        super().__init__(access.tokens, access.catalog)
        self._steps = steps
        self._timestamping = timestamping

    def _hold(self, actor: str) -> None:
        problem = self._timestamping.refusal()
        if problem is None:
            return
        try:
            receipt = self._steps.record(
                actor,
                {"kind": "administrative"},
                purpose="administration",
                request=b"",
                outcome="rejected",
                refusal=problem.code,
            )
            problem.extensions["audit"] = receipt.as_dict()
        except Exception as exc:  # the refusal stands without its entry
            raise problem from exc
        raise problem

    def operator(self, authorization: str | None) -> tuple[Caller, OperatorInfo]:
        caller, operator = super().operator(authorization)
        self._hold(operator.id)
        return caller, operator

    def department(self, authorization: str | None) -> Caller:
        caller = super().department(authorization)
        self._hold(caller.subject)
        return caller
