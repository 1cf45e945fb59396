"""What every administrative step shares: who takes it, and its entry in the log.

A step that changes what is in force (``take``) writes the change and its entry in one
transaction of the gateway database: if the entry cannot be committed, the change is not
either, and the caller gets ``503 audit_unavailable``. Whatever a process keeps of the
change in memory (the catalog's snapshot, the policy engine) moves only after the commit.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Connection

from dataauth.audit.log import AuditLog, EntryNotWritten, Receipt, Record
from dataauth.audit.stamper import Freshness
from dataauth.canonical import utc_now
from dataauth.catalog.store import OperatorInfo
from dataauth.errors import Problem, unavailable
from dataauth.identity.access import Access
from dataauth.identity.tokens import Caller
from dataauth.policy.store import PolicyStore

log = logging.getLogger(__name__)

T = TypeVar("T")


def not_logged(operation: dict[str, Any], exc: BaseException) -> Problem:
    log.warning("%s could not be logged: %s", operation.get("kind"), type(exc).__name__)
    return unavailable("audit_unavailable", "the step could not be logged, so it was not taken")


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

    def _record(
        self,
        actor: str,
        operation: dict[str, Any],
        *,
        purpose: str,
        request: bytes,
        outcome: str,
        bundle: str,
        refusal: str | None = None,
    ) -> Record:
        return Record.action(
            self.clock(),
            actor,
            operation,
            bundle,
            purpose=purpose,
            request=request,
            outcome=outcome,
            refusal=refusal,
        )

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
        """Log a step that changes nothing in force (a refusal, an inspection): the actor,
        what it did (metadata), the commitment to its request."""
        record = self._record(actor, operation, purpose=purpose, request=request, outcome=outcome,
                              bundle=self.policy.engine().digest, refusal=refusal)  # fmt: skip
        try:
            return self.audit.append(record)
        except Exception as exc:
            raise not_logged(operation, exc) from None

    def take(
        self,
        actor: str,
        change: Callable[[Connection], T],
        operation: dict[str, Any],
        *,
        purpose: str,
        request: bytes,
        outcome: str,
        found: Callable[[T], dict[str, Any]] | None = None,
        bundle: str | None = None,
    ) -> tuple[T, Receipt]:
        """Make ``change`` (on the connection given, writing nothing elsewhere) and log
        it, in one transaction. ``found`` adds to the operation what the change found
        (the bundle a publication replaces); ``bundle`` names the policy in force when
        the step is its publication."""
        named = bundle or self.policy.engine().digest

        def with_entry(connection: Connection) -> tuple[T, Record]:
            value = change(connection)
            what = operation if found is None else {**operation, **found(value)}
            record = self._record(actor, what, purpose=purpose, request=request,
                                  outcome=outcome, bundle=named)  # fmt: skip
            return value, record

        try:
            return self.audit.append_with(with_entry)
        except EntryNotWritten as exc:
            raise not_logged(operation, exc.__cause__ or exc) from None


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
