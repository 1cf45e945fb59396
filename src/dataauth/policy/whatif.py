"""What-if: past traffic against a candidate bundle, before it is published.

Each recorded decision's policy input (metadata only, as logged) is evaluated by the
candidate and compared with what was decided; the changes are counted per operator and
product, with examples, so a department sees a change's effect before it is in force.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import Engine, text

from dataauth.config import POLICY_ENGINE
from dataauth.policy.bundle import Bundle
from dataauth.policy.engines import in_process_engine


@dataclass
class Change:
    index: int
    time: str
    was: bool
    would_be: bool
    reasons: list[str]


@dataclass
class Group:
    operator: str
    product: str
    decisions: int = 0
    allow_to_deny: int = 0
    deny_to_allow: int = 0
    examples: list[Change] = field(default_factory=list)


def whatif(
    db: Engine,
    candidate: Bundle,
    since: str | None = None,
    until: str | None = None,
    examples: int = 3,
    engine_name: str = POLICY_ENGINE,
) -> dict[str, Any]:
    """Re-decide recorded decisions with ``candidate`` on the engine live decisions use
    (``engine_name``, the gateway's ``policy_engine``); return the changes as a report."""
    engine = in_process_engine(candidate, engine_name)
    engine.timeout = float("inf")
    query = 'SELECT "index", time, canonical FROM audit_entry WHERE 1 = 1'
    values: dict[str, Any] = {}
    if since:
        query += " AND time >= :since"
        values["since"] = since
    if until:
        query += " AND time < :until"
        values["until"] = until
    groups: dict[tuple[str, str], Group] = {}
    total = changed = 0
    with db.connect() as connection:
        for index, time, data in connection.execute(text(query + ' ORDER BY "index"'), values):
            entry = orjson.loads(bytes(data))["entry"]
            if entry.get("decision") is None:
                continue  # a publication, not a decision
            operation = entry["operation"]
            key = (entry["operator"], operation.get("product", operation.get("kind", "")))
            group = groups.setdefault(key, Group(*key))
            was = bool(entry["decision"]["allow"])
            decision = engine.decide(entry["policy_input"])
            total += 1
            group.decisions += 1
            if decision.allow == was:
                continue
            changed += 1
            if was:
                group.allow_to_deny += 1
            else:
                group.deny_to_allow += 1
            if len(group.examples) < examples:
                reasons = [r["message"] for r in decision.reasons]
                group.examples.append(Change(index, time, was, decision.allow, reasons))
    return {
        "candidate": candidate.digest,
        "since": since,
        "until": until,
        "decisions": total,
        "changed": changed,
        "groups": [
            {
                "operator": g.operator,
                "product": g.product,
                "decisions": g.decisions,
                "allow_to_deny": g.allow_to_deny,
                "deny_to_allow": g.deny_to_allow,
                "examples": [e.__dict__ for e in g.examples],
            }
            for g in sorted(groups.values(), key=lambda g: (g.operator, g.product))
        ],
    }
