"""Replaying every recorded decision against the bundle that was in force, offline.

Each entry records its policy input, its decision and the digest of the bundle that
made it. Replay compiles each bundle from the export (its digest checked), evaluates
the recorded input with an in-process engine (the gateway's default unless told), and
compares. A decision the engine
could not make at the time (an error or a timeout, which deny) is not a decision of
the policy and is counted apart.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from dataauth.audit.verify import Failed
from dataauth.config import POLICY_ENGINE
from dataauth.policy.bundle import Bundle, bundle_digest
from dataauth.policy.decision import Decision
from dataauth.policy.engines import in_process_engine
from dataauth.policy.memo import Memoised

ENGINE_FAILURES = {"policy_error", "policy_timeout"}


@dataclass
class Mismatch:
    index: int
    recorded: dict[str, Any]
    replayed: dict[str, Any]


@dataclass
class ReplayReport:
    entries: int = 0
    matched: int = 0
    not_replayable: int = 0
    administrative: int = 0
    rejected: int = 0
    """Requests refused as malformed before any decision: nothing to re-decide."""
    mismatches: list[Mismatch] = field(default_factory=list)


def _normal(decision: dict[str, Any]) -> dict[str, Any]:
    parsed = Decision.parse(decision)
    reasons = sorted((r["code"], r["message"]) for r in parsed.reasons)
    return {"allow": parsed.allow, "reasons": reasons, "obligations": parsed.obligations}


def load_export_bundle(directory: Path, digest: str) -> Bundle:
    path = directory / "bundles" / f"{digest.removeprefix('sha256:')}.json"
    try:
        content = path.read_bytes()
    except FileNotFoundError:
        raise Failed(f"policy bundle {digest} is not in the export") from None
    if "sha256:" + hashlib.sha256(content).hexdigest() != digest:
        raise Failed(f"policy bundle {digest}: its content has another digest")
    value = json.loads(content)
    modules, data = value["modules"], value["data"]
    if bundle_digest(modules, data) != digest:
        raise Failed(f"policy bundle {digest}: its content is not canonical")
    return Bundle(modules, data, digest)


def judge(
    entry: dict[str, Any], engine_for: Callable[[str], Memoised]
) -> tuple[str, dict[str, Any] | None]:
    """What replay makes of one entry: "matched" or "differs" (with the replayed
    decision), or why there is nothing to re-decide ("rejected", "administrative",
    "not_replayable")."""
    recorded = entry["decision"]
    if entry.get("outcome") == "rejected":
        return "rejected", None
    if recorded is None:  # a policy publication: nothing was decided
        return "administrative", None
    if {r.get("code") for r in recorded.get("reasons", [])} & ENGINE_FAILURES:
        return "not_replayable", None
    replayed = engine_for(entry["policy_bundle"]).decide(entry["policy_input"]).as_dict()
    return ("matched" if _normal(replayed) == _normal(recorded) else "differs"), replayed


def engines_over(
    load: Callable[[str], Bundle], engine_name: str = POLICY_ENGINE
) -> Callable[[str], Memoised]:
    """One engine per bundle digest, compiled on first use from ``load(digest)``."""
    engines: dict[str, Memoised] = {}

    def engine_for(digest: str) -> Memoised:
        if digest not in engines:
            engine = in_process_engine(load(digest), engine_name)
            engine.timeout = float("inf")  # a deadline is the gateway's, not replay's
            engines[digest] = engine
        return engines[digest]

    return engine_for


def replay_export(
    directory: Path,
    progress: Callable[[int], None] | None = None,
    engine_name: str = POLICY_ENGINE,
) -> ReplayReport:
    """Re-decide every entry of the export in ``directory`` on the engine ``engine_name``."""
    engine_for = engines_over(lambda digest: load_export_bundle(directory, digest), engine_name)
    report = ReplayReport()
    with (directory / "entries.jsonl").open("rb") as handle:
        for line in handle:
            leaf = orjson.loads(line)
            index, entry = leaf["index"], leaf["entry"]
            report.entries += 1
            verdict, replayed = judge(entry, engine_for)
            if verdict == "matched":
                report.matched += 1
            elif verdict == "differs":
                report.mismatches.append(Mismatch(index, entry["decision"], replayed or {}))
            else:
                setattr(report, verdict, getattr(report, verdict) + 1)
            if progress and report.entries % 10_000 == 0:
                progress(report.entries)
    return report
