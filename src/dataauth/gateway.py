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
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from dataauth.accounts.disclosure import DisclosureLedger, Exhausted, subject_budget
from dataauth.accounts.usage import Charge, Refusal, UsageMeter
from dataauth.audit.log import AuditLog, Receipt, Record
from dataauth.audit.stamper import Freshness
from dataauth.canonical import rfc3339, utc_now
from dataauth.catalog.store import OperatorInfo
from dataauth.errors import Problem, forbidden, not_found, unavailable
from dataauth.identity.access import Access
from dataauth.identity.consent import ConsentVerifier
from dataauth.metrics import decisions
from dataauth.operations.base import Call, Description, OperationKind
from dataauth.policy.decision import Decision, PolicyEngine
from dataauth.policy.store import PolicyStore

log = logging.getLogger(__name__)


@dataclass
class Decided:
    """A request once decided: all its audit entry needs, whatever the outcome."""

    time: datetime
    kind: str
    operator: str
    call: Call[Any]
    description: Description
    policy_input: dict[str, Any]
    consents: list[str | None]
    engine: PolicyEngine
    decision: Decision
    spent: list[dict[str, Any]] = field(default_factory=list)
    """What the answer was charged to each subject's disclosure budget."""

    def entry(self, outcome: str, result: Any) -> Record:
        return Record(
            time=self.time,
            operator=self.operator,
            operation=self.policy_input["operation"],
            purpose=self.call.purpose,
            policy_input=self.policy_input,
            decision=self.decision.as_dict(),
            policy_bundle=self.engine.digest,
            dataset_version=self.description.dataset_version,
            subjects=self.description.subjects,
            consents=self.consents,
            request=self.call.sent(),
            result=result,
            outcome=outcome,
            disclosure=self.spent,
        )


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
        max_batch: int = 10_000,
        rejections_per_minute: int = 60,
        clock: Callable[[], datetime] = utc_now,
        timestamping: Freshness | None = None,
    ) -> None:
        self.access = access
        self.catalog = access.catalog
        self.policy = policy
        self.audit = audit
        self.kinds = dict(kinds)
        self.usage = usage
        self.consent = consent
        self.disclosures = disclosures
        self.max_batch = max_batch
        self.rejections_per_minute = rejections_per_minute
        self.clock = clock
        self.timestamping = timestamping

    def handle(self, authorization: str | None, kind: str, call: Call[Any]) -> dict[str, Any]:
        """Take one request down the spine; return the disclosed result and its receipt."""
        _, operator = self.access.operator(authorization)
        operation = self.kinds.get(kind)
        if operation is None:
            raise not_found("unknown_operation", f"this gateway runs no {kind} operations")
        self.hold(kind, call, operator)
        description = self.describe(operation, call, operator)
        decided = self.decide(kind, call, operator, description)
        self.admit(operation, decided)
        result = self.execute(operation, decided)
        receipt = self.record(decided, result)
        return {**result, "audit": receipt.as_dict()}

    def hold(self, kind: str, call: Call[Any], operator: OperatorInfo) -> None:
        """Refuse every operation while the log's time-stamps lag (fail closed): before
        the kind reads the request, a decision is taken or a counter is spent; on the
        record, every refusal (not throttled: each one is an operation not served)."""
        if self.timestamping is None:
            return
        problem = self.timestamping.refusal()
        if problem is not None:
            raise self.rejected(
                operator.id, kind, call.purpose, call.sent(), problem, throttled=False
            )

    def describe(
        self, operation: OperationKind, call: Call[Any], operator: OperatorInfo
    ) -> Description:
        """The kind's description of the request; a malformed one is refused, on the record."""
        try:
            if call.body.batch() > self.max_batch:
                raise Problem(
                    413, "batch_too_large", f"a batch holds at most {self.max_batch} subjects"
                )
            description = operation.describe(call, operator)
        except Problem as problem:
            if problem.status >= 500:
                raise
            raise self.rejected(
                operator.id, operation.name, call.purpose, call.sent(), problem
            ) from None
        return description

    def decide(
        self, kind: str, call: Call[Any], operator: OperatorInfo, description: Description
    ) -> Decided:
        """The policy input (metadata only), the consent it needs, and the decision."""
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
            checked = self.consent.check(
                need.tokens, description.subjects, operator.id, call.purpose, need.product
            )
            policy_input["consent"] = {
                "required": True,
                "subjects": len(need.tokens),
                "missing": checked.missing,
            }
            consents = checked.digests
        engine = self.policy.engine()
        decision = engine.decide(policy_input)
        return Decided(
            now, kind, operator.id, call, description, policy_input, consents, engine, decision
        )

    def admit(self, operation: OperationKind, decided: Decided) -> None:
        """Deny, or hold the request to the obligations that come before any work: the
        batch limit, the usage counters, the subjects' disclosure budgets."""
        decision, description, now = decided.decision, decided.description, decided.time
        if not decision.allow:
            raise denied(decision, self.record(decided, outcome="denied"))
        limit = decision.obligations.get("batch_limit")
        size = len(description.subjects)
        if isinstance(limit, int) and size > limit:
            # a policy may oblige a limit without a rule that denies past it
            problem = forbidden(
                "batch_over_obligation",
                f"the policy obliges batches of at most {limit} subjects; this one has {size}",
            )
            problem.extensions["audit"] = self.record(decided, outcome="refused").as_dict()
            raise problem
        limits = decision.obligations.get("usage") or {}
        if limits or description.counters:
            product = description.operation.get("product", decided.kind)
            scope = f"{decided.operator}|{product}|{decided.call.purpose}"
            try:
                charges = self.usage.charges(now, scope, description.subjects, limits)
                refusal = self.usage.charge(charges + description.counters)
            except Exception as exc:  # uncounted is unanswered: a broken meter denies
                log.warning("usage could not be charged: %s", type(exc).__name__)
                raise self.unavailable(decided, "usage could not be counted; try again") from None
            if refusal is not None:
                raise limited(refusal, now, self.record(decided, outcome="limited"))
        budget = subject_budget(decision.obligations)
        if budget is None:
            return
        disclosures = operation.disclosures(description.plan, decision.obligations)
        if disclosures:
            try:
                charged = self.disclosures.charge(decided.operator, disclosures, budget, now)
            except Exception as exc:  # an answer not counted is not given
                log.warning("disclosure could not be charged: %s", type(exc).__name__)
                raise self.unavailable(
                    decided, "disclosure budgets could not be counted; try again"
                ) from None
            if isinstance(charged, Exhausted):
                raise overdrawn(charged, now, self.record(decided, outcome="limited"))
            decided.spent.extend(charged.as_entry())

    def execute(self, operation: OperationKind, decided: Decided) -> dict[str, Any]:
        """Compute in the domain and shape the answer, as the obligations say."""
        plan, obligations = decided.description.plan, decided.decision.obligations
        try:
            raw = operation.execute(plan, obligations)
            return operation.disclose(raw, plan, obligations)
        except Exception as exc:
            # a kind's own refusal after the allow (a cohort too small, a budget spent) is
            # "refused"; anything else, the domain failing included, is "failed"
            refused = isinstance(exc, Problem) and exc.status < 500
            receipt = self.record(decided, outcome="refused" if refused else "failed")
            if not refused:
                log.warning("%s operation failed after allow: %s", decided.kind, type(exc).__name__)
            problem = (
                exc
                if isinstance(exc, Problem)
                else unavailable("domain_unavailable", "the domain could not answer; try again")
            )
            problem.extensions["audit"] = receipt.as_dict()
            raise problem from None

    def record(
        self, decided: Decided, result: dict[str, Any] | None = None, *, outcome: str = "released"
    ) -> Receipt:
        """The request's entry, committed before anything leaves. Without a durable entry
        for a released answer there is no answer: say so, and try to log that."""
        try:
            receipt = self.audit.append(decided.entry(outcome, result))
        except Exception as exc:
            if outcome != "released":
                raise
            log.warning("%s answer could not be logged: %s", decided.kind, type(exc).__name__)
            problem = unavailable(
                "audit_unavailable", "the answer could not be logged, so none was released"
            )
            with suppress(Exception):
                problem.extensions["audit"] = self.audit.append(
                    decided.entry("failed", None)
                ).as_dict()
            raise problem from None
        decisions(decided.kind, outcome).inc()
        return receipt

    def unavailable(self, decided: Decided, detail: str) -> Problem:
        """503 when a counter cannot be charged: the request is on the record as failed."""
        problem = unavailable("usage_unavailable", detail)
        problem.extensions["audit"] = self.record(decided, outcome="failed").as_dict()
        return problem

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
        self,
        operator: str,
        kind: str,
        purpose: str,
        request: bytes,
        problem: Problem,
        *,
        throttled: bool = True,
    ) -> Problem:
        """Log an authenticated operator's malformed request before any decision: its
        code and the commitment to its bytes, never its content, so probing shows in
        the regulator's log. Past ``rejections_per_minute`` an operator's refusals are
        answered 429 and not logged one by one, so the log cannot be flooded; a refusal
        for the gateway's own state (``throttled=False``) is logged every time."""
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
            refusal = self.usage.charge([counter]) if throttled else None
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
        decisions(kind, "rejected").inc()
        problem.extensions["audit"] = receipt.as_dict()
        return problem


LIMIT_CODES = {
    "rate_per_minute": "rate_limited",
    "daily_quota": "quota_exceeded",
    "subject_per_day": "subject_limit_reached",
    "rejections_per_minute": "rejections_limited",
    "model_runs": "model_runs_exhausted",
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
