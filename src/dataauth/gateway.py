"""The spine: the one path every request takes, whatever its kind.

    authenticate -> describe -> decide -> execute -> disclose -> audit -> respond

The spine names no operation kind: kinds are handed to it at assembly (app.py).
Nothing leaves without a durable audit entry, denials included; an engine failure
denies; a failure after an allow is logged as such and answered without a result.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from contextlib import suppress
from datetime import datetime
from typing import Any

from dataauth.accounts.disclosure import DisclosureLedger, Exhausted, subject_budget
from dataauth.accounts.usage import Charge, Refusal, UsageMeter
from dataauth.audit.log import AuditLog, Receipt, Record
from dataauth.canonical import rfc3339, utc_now
from dataauth.errors import Problem, forbidden, not_found, unavailable
from dataauth.identity.access import Access
from dataauth.identity.consent import ConsentVerifier, consent_digest
from dataauth.metrics import DECISIONS
from dataauth.operations.base import Call, OperationKind
from dataauth.policy.decision import Decision
from dataauth.policy.store import PolicyStore

log = logging.getLogger(__name__)


class Gateway:
    def __init__(
        self,
        *,
        access: Access,
        policy: PolicyStore,
        audit: AuditLog,
        kinds: Mapping[str, OperationKind],
        usage: UsageMeter,
        consent: ConsentVerifier,
        disclosures: DisclosureLedger,
        rejections_per_minute: int = 60,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.access = access
        self.catalog = access.catalog
        self.policy = policy
        self.audit = audit
        self.kinds = dict(kinds)
        self.usage = usage
        self.consent = consent
        self.disclosures = disclosures
        self.rejections_per_minute = rejections_per_minute
        self.clock = clock

    def handle(self, authorization: str | None, kind: str, call: Call) -> dict[str, Any]:
        """Take one request down the spine; return the disclosed result and its receipt."""
        _, operator = self.access.operator(authorization)
        operation = self.kinds.get(kind)
        if operation is None:
            raise not_found("unknown_operation", f"this gateway runs no {kind} operations")
        try:
            description = operation.describe(call)
        except Problem as problem:
            if problem.status >= 500:
                raise
            raise self.rejected(operator.id, kind, call.purpose, call.sent(), problem) from None

        now = self.clock()
        policy_input = {
            "time": rfc3339(now),
            "local_time": now.astimezone(self.usage.zone).strftime("%H:%M"),
            "operator": {
                "id": operator.id,
                "kind": operator.kind,
                "licence": operator.licence.facts if operator.licence else None,
            },
            "purpose": call.purpose,
            "operation": {"kind": kind, **description.operation},
            **description.facts,
        }
        consents: list[str | None] = []
        if description.consent is not None:
            need = description.consent
            missing = self.consent.missing(
                need.tokens, description.subjects, operator.id, call.purpose, need.product
            )
            policy_input["consent"] = {
                "required": True,
                "subjects": len(need.tokens),
                "missing": missing,
            }
            consents = [consent_digest(t) if t else None for t in need.tokens]
        engine = self.policy.engine()
        decision = engine.decide(policy_input)

        spent: list[dict[str, Any]] = []

        def record(outcome: str, result: Any = None) -> Receipt:
            DECISIONS.labels(kind, outcome).inc()
            return self.audit.append(
                Record(
                    time=now,
                    operator=operator.id,
                    operation=policy_input["operation"],
                    purpose=call.purpose,
                    policy_input=policy_input,
                    decision=decision.as_dict(),
                    policy_bundle=engine.digest,
                    dataset_version=description.dataset_version,
                    subjects=description.subjects,
                    consents=consents,
                    request=call.sent(),
                    result=result,
                    outcome=outcome,
                    disclosure=spent,
                )
            )

        if not decision.allow:
            raise denied(decision, record("denied"))
        limits = decision.obligations.get("usage") or {}
        if limits:
            scope = f"{operator.id}|{description.operation.get('product', kind)}|{call.purpose}"
            try:
                refusal = self.usage.charge(
                    self.usage.charges(now, scope, description.subjects, limits)
                )
            except Exception as exc:  # uncounted is unanswered: a broken meter denies
                log.warning("usage could not be charged: %s", type(exc).__name__)
                problem = unavailable("usage_unavailable", "usage could not be counted; try again")
                problem.extensions["audit"] = record("failed").as_dict()
                raise problem from None
            if refusal is not None:
                raise limited(refusal, now, record("limited"))
        budget = subject_budget(decision.obligations)
        disclosures = operation.disclosures(description.plan, decision.obligations)
        if budget is not None and disclosures:
            try:
                charged = self.disclosures.charge(operator.id, disclosures, budget, now)
            except Exception as exc:  # an answer not counted is not given
                log.warning("disclosure could not be charged: %s", type(exc).__name__)
                problem = unavailable(
                    "usage_unavailable", "disclosure budgets could not be counted; try again"
                )
                problem.extensions["audit"] = record("failed").as_dict()
                raise problem from None
            if isinstance(charged, Exhausted):
                raise overdrawn(charged, now, record("limited"))
            spent.extend(charged.as_entry())
        try:
            raw = operation.execute(description.plan, decision.obligations)
            result = operation.disclose(raw, description.plan, decision.obligations)
        except Exception as exc:
            # a kind's own refusal after the allow (a cohort too small, a budget spent) is
            # "refused"; anything else, the domain failing included, is "failed"
            refused = isinstance(exc, Problem) and exc.status < 500
            receipt = record("refused" if refused else "failed")
            if not refused:
                log.warning("%s operation failed after allow: %s", kind, type(exc).__name__)
            problem = (
                exc
                if isinstance(exc, Problem)
                else unavailable("domain_unavailable", "the domain could not answer; try again")
            )
            problem.extensions["audit"] = receipt.as_dict()
            raise problem from None
        try:
            receipt = record("released", result)
        except Exception as exc:  # no durable entry, no answer: say so, and try to log that
            log.warning("%s answer could not be logged: %s", kind, type(exc).__name__)
            problem = unavailable(
                "audit_unavailable", "the answer could not be logged, so none was released"
            )
            with suppress(Exception):
                problem.extensions["audit"] = record("failed").as_dict()
            raise problem from None
        return {**result, "audit": receipt.as_dict()}

    def reject(
        self, authorization: str | None, kind: str, purpose: str, request: bytes, problem: Problem
    ) -> Problem:
        """A request the HTTP layer refused as malformed, before the spine saw it: if its
        caller is an operator, the refusal is an entry like any other (see ``rejected``)."""
        try:
            _, operator = self.access.operator(authorization)
        except Problem:
            return problem  # no one to hold to account: no entry
        return self.rejected(operator.id, kind, purpose, request, problem)

    def rejected(
        self, operator: str, kind: str, purpose: str, request: bytes, problem: Problem
    ) -> Problem:
        """Log an authenticated operator's malformed request before any decision: its
        code and the commitment to its bytes, never its content, so probing shows in
        the regulator's log. Past ``rejections_per_minute`` an operator's refusals are
        answered 429 and not logged one by one, so the log cannot be flooded."""
        now = self.clock()
        minute = int(now.timestamp()) // 60
        resets = datetime.fromtimestamp((minute + 1) * 60, tz=now.tzinfo)
        counter = Charge(
            f"rejected|{operator}",
            minute,
            1,
            self.rejections_per_minute,
            "rejections_per_minute",
            resets,
        )
        try:
            refusal = self.usage.charge([counter])
            if refusal is not None:
                return limited(refusal, now, None)
            receipt = self.audit.append(
                Record.action(
                    now,
                    operator,
                    {"kind": kind},
                    self.policy.engine().digest,
                    purpose=purpose,
                    request=request,
                    outcome="rejected",
                    refusal=problem.code,
                )
            )
        except Exception as exc:  # the refusal stands without its entry; say so in the log
            log.warning("a rejected request could not be logged: %s", type(exc).__name__)
            return problem
        DECISIONS.labels(kind, "rejected").inc()
        problem.extensions["audit"] = receipt.as_dict()
        return problem


LIMIT_CODES = {
    "rate_per_minute": "rate_limited",
    "daily_quota": "quota_exceeded",
    "subject_per_day": "subject_limit_reached",
    "rejections_per_minute": "rejections_limited",
}


def limited(refusal: Refusal, now: datetime, receipt: Receipt | None) -> Problem:
    """429 for a limit reached: which, its size, when it resets; with the refusal's
    entry, except for a throttled rejection (not logged one by one)."""
    problem = Problem(
        429,
        LIMIT_CODES.get(refusal.limit, "usage_limited"),
        f"the {refusal.limit.replace('_', ' ')} limit of {refusal.allowed} is reached; "
        f"it resets at {rfc3339(refusal.resets)}",
        limit=refusal.limit,
        allowed=refusal.allowed,
        resets=rfc3339(refusal.resets),
    )
    if receipt is not None:
        problem.extensions["audit"] = receipt.as_dict()
    problem.headers["Retry-After"] = str(refusal.retry_after(now))
    return problem


def overdrawn(refusal: Exhausted, now: datetime, receipt: Receipt) -> Problem:
    """429 subject_budget_exhausted: which subject of the request, and when it renews."""
    whose = "this operator's" if refusal.scope == "operator" else "all operators'"
    problem = Problem(
        429,
        "subject_budget_exhausted",
        f"subject {refusal.index}: the answer could tell {refusal.asked:g} bits more about "
        f"this subject than {whose} disclosure budget has left ({refusal.remaining:g} of "
        f"{refusal.budget:g} bits); it renews from {rfc3339(refusal.renews)}",
        subject=refusal.index,
        scope=refusal.scope,
        asked=refusal.asked,
        remaining=refusal.remaining,
        budget=refusal.budget,
        resets=rfc3339(refusal.renews),
        audit=receipt.as_dict(),
    )
    problem.headers["Retry-After"] = str(max(1, int((refusal.renews - now).total_seconds())))
    return problem


def denied(decision: Decision, receipt: Receipt) -> Problem:
    detail = "; ".join(r["message"] for r in decision.reasons) or "denied by policy"
    return forbidden("policy_denied", detail, reasons=decision.reasons, audit=receipt.as_dict())
