"""Policy tests as tables of decision cases: an input, and the decision it must get.

Cases live beside the policies in ``tests/*.json``::

    {"base": {<a policy input>},
     "cases": [{"name": "...", "patch": {<merged into base>},
                "allow": false, "reasons": ["licence_expired"],
                "obligations": {"batch_limit": 1000}}]}

``patch`` is merged into ``base`` recursively (objects merge, anything else replaces,
null included). ``reasons`` lists the reason codes exactly, in any order;
``obligations`` lists the ones that must be present with those values.

Tables rather than Rego ``test_`` rules: they run through the same compiled bundle and
``set_input`` path as production (rego-cpp 1.5 crashes evaluating ``with input as``
over a multi-module package), and one table can be run against every engine.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dataauth.policy.decision import PolicyEngine


@dataclass(frozen=True)
class Case:
    source: str
    name: str
    input: dict[str, Any]
    allow: bool
    reasons: frozenset[str]
    obligations: dict[str, Any]


def merge(base: Any, patch: Any) -> Any:
    if isinstance(base, dict) and isinstance(patch, dict):
        merged = dict(base)
        for key, value in patch.items():
            merged[key] = merge(base.get(key), value)
        return merged
    return patch


def load_cases(policy_dir: Path) -> list[Case]:
    cases: list[Case] = []
    for path in sorted((policy_dir / "tests").glob("*.json")):
        table = json.loads(path.read_text(encoding="utf-8"))
        base = table.get("base", {})
        for item in table["cases"]:
            cases.append(
                Case(
                    source=path.name,
                    name=item["name"],
                    input=merge(base, item.get("patch", {})),
                    allow=item["allow"],
                    reasons=frozenset(item.get("reasons", [])),
                    obligations=item.get("obligations", {}),
                )
            )
    return cases


def check(engine: PolicyEngine, case: Case) -> str | None:
    """None where the engine decides the case as expected; otherwise what differed."""
    decision = engine.decide(case.input)
    got = frozenset(r["code"] for r in decision.reasons)
    if decision.allow != case.allow:
        return f"allow is {decision.allow}, expected {case.allow} (reasons: {sorted(got)})"
    if got != case.reasons:
        return f"reasons are {sorted(got)}, expected {sorted(case.reasons)}"
    for key, value in case.obligations.items():
        if decision.obligations.get(key) != value:
            return f"obligation {key} is {decision.obligations.get(key)!r}, expected {value!r}"
    return None
