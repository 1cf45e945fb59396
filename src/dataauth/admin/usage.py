"""Usage and budgets per operator, as they stand and over the last days: read only.

Where each figure comes from:

- counters spent (requests this minute, subjects today, per-subject counts today): the
  usage ledger (``accounts/usage.py``), which keeps only the current windows;
- ε spent, by dataset: the privacy ledger (``accounts/privacy.py``);
- subjects near or at their disclosure budget: the disclosure ledger
  (``accounts/disclosure.py``), as counts only, never which subjects;
- the limits each is held to (a quota, an ε account's total, the subject budget): no
  ledger keeps them, since the policy obliges them per decision. They are read from the
  operator's most recent allowed decisions (the audit log, at most ``RECENT`` entries of
  the last ``RECENT_DAYS`` days): the limits the policy last applied, not a promise of
  the next decision's;
- entries per day (allowed or denied by the policy; an administrative step counts as
  allowed): the audit log's entries, counted from its indexed columns by hour
  and summed into the department's days (``DATAAUTH_TIMEZONE``).

A department sees every operator; an operator sees its own, and nothing summed across
operators (that would tell it about the others' traffic).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from dataauth.accounts.disclosure import standing
from dataauth.accounts.privacy import spent_by
from dataauth.audit.ledger import Ledger
from dataauth.catalog.store import OperatorInfo
from dataauth.gateway import Gateway

DAYS = 14
"""Days of traffic in a report."""
RECENT = 500
RECENT_DAYS = 7


def _stamp(moment: datetime) -> str:
    # the audit entries' own time form (UTC, microseconds), so strings compare as times
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class UsageReports:
    def __init__(self, gateway: Gateway, ledger: Ledger) -> None:
        self.gateway = gateway
        self.ledger = ledger

    def department(self, authorization: str | None) -> dict[str, Any]:
        """Every operator's usage and budgets (a department's token)."""
        self.gateway.access.department(authorization)
        now = self.gateway.clock()
        operators = sorted(self.gateway.catalog.snapshot().operators.values(), key=lambda o: o.id)
        reports = [self._operator(o, now) for o in operators]
        budgets = [r["disclosure"] for r in reports if r["disclosure"]]
        everyone = None
        if budgets:
            # across operators, against the widest window and total the policy last named
            window = max(b["window_days"] for b in budgets)
            total = min(b["bits_total"] for b in budgets)
            since = int((now - timedelta(days=window)).timestamp())
            counts = standing(self.gateway.usage.engine, None, since, total)
            everyone = {"window_days": window, "bits_total": total, **vars(counts)}
        return {
            "time": _stamp(now),
            "days": self._days(now, None),
            "operators": reports,
            "disclosure_all_operators": everyone,
        }

    def own(self, authorization: str | None) -> dict[str, Any]:
        """The calling operator's own usage and budgets."""
        _, operator = self.gateway.access.operator(authorization)
        now = self.gateway.clock()
        return {"time": _stamp(now), **self._operator(operator, now)}

    def _operator(self, operator: OperatorInfo, now: datetime) -> dict[str, Any]:
        held = self.gateway.usage.held(operator.id, now)
        limits = self._limits(operator.id, now)
        scopes = []
        for scope in sorted(set(held.rate) | set(held.quota) | set(limits["usage"])):
            product, _, purpose = scope.partition("|")
            usage = limits["usage"].get(scope, {})
            scopes.append(
                {
                    "product": product,
                    "purpose": purpose,
                    "rate_per_minute": _counter(held.rate.get(scope, 0), usage, "rate_per_minute"),
                    "daily_quota": _counter(held.quota.get(scope, 0), usage, "daily_quota"),
                    "subject_per_day": usage.get("subject_per_day"),
                }
            )
        per_subject = [s["subject_per_day"] for s in scopes]
        per_subject = [n for n in per_subject if isinstance(n, int)]
        spent = spent_by(self.gateway.usage.engine, operator.id)
        privacy = []
        for dataset in sorted(set(spent) | set(limits["epsilon"])):
            used, total = spent.get(dataset, 0.0), limits["epsilon"].get(dataset)
            privacy.append(
                {
                    "dataset": dataset,
                    "epsilon_spent": round(used, 6),
                    "epsilon_total": total,
                    "epsilon_left": None if total is None else round(max(total - used, 0.0), 6),
                }
            )
        disclosure = None
        budget = limits["subject_budget"]
        if budget is not None:
            since = int((now - timedelta(days=budget["window_days"])).timestamp())
            counts = standing(
                self.gateway.usage.engine, operator.id, since, budget["bits_per_operator"]
            )
            disclosure = {**budget, **vars(counts)}
        return {
            "operator": operator.id,
            "name": operator.name,
            "scopes": scopes,
            "subjects_today": {
                "subjects": held.subjects,
                "most": held.most,
                "allowed": min(per_subject) if per_subject else None,
            },
            "privacy": privacy,
            "disclosure": disclosure,
            "days": self._days(now, operator.id),
        }

    def _limits(self, operator: str, now: datetime) -> dict[str, Any]:
        """The limits the policy last applied to ``operator``: per scope, per ε account,
        and its subject budget (the newest decision naming each wins)."""
        usage: dict[str, dict[str, Any]] = {}
        epsilon: dict[str, float] = {}
        budget: dict[str, Any] | None = None
        since = _stamp(now - timedelta(days=RECENT_DAYS))
        for entry in self.ledger.recent(operator, since, RECENT):
            obligations = (entry.get("decision") or {}).get("obligations") or {}
            operation = entry.get("operation") or {}
            scope = f"{operation.get('product', operation.get('kind'))}|{entry.get('purpose')}"
            if isinstance(obligations.get("usage"), dict):
                usage.setdefault(scope, obligations["usage"])
            dp = obligations.get("dp")
            if isinstance(dp, dict):
                accounts = dp.get("budgets") or [dp.get("budget")]
                for account in accounts:
                    if isinstance(account, dict) and isinstance(account.get("key"), str):
                        dataset = account["key"].rpartition("|")[2]
                        epsilon.setdefault(dataset, account.get("epsilon"))
            terms = obligations.get("subject_budget")
            if budget is None and isinstance(terms, dict):
                budget = {
                    name: terms.get(name)
                    for name in ("window_days", "bits_per_operator", "bits_total")
                }
        return {"usage": usage, "epsilon": epsilon, "subject_budget": budget}

    def _days(self, now: datetime, operator: str | None) -> list[dict[str, Any]]:
        """Requests per day in the department's zone, the last ``DAYS`` days, oldest first."""
        zone = self.gateway.usage.zone
        today = now.astimezone(zone).replace(hour=0, minute=0, second=0, microsecond=0)
        first = today - timedelta(days=DAYS - 1)
        days = {
            (first + timedelta(days=n)).date().isoformat(): {"allowed": 0, "denied": 0}
            for n in range(DAYS)
        }
        since = first.astimezone(now.tzinfo)
        for hour, _, allowed, count in self.ledger.hourly(_stamp(since), operator):
            moment = datetime.fromisoformat(f"{hour}:00:00+00:00").astimezone(zone)
            day = days.get(moment.date().isoformat())
            if day is not None:
                day["allowed" if allowed else "denied"] += count
        return [{"day": day, **counts} for day, counts in days.items()]


def _counter(used: int, limits: dict[str, Any], name: str) -> dict[str, Any]:
    allowed = limits.get(name)
    allowed = allowed if isinstance(allowed, int) else None
    return {
        "used": used,
        "allowed": allowed,
        "left": None if allowed is None else max(allowed - used, 0),
    }
