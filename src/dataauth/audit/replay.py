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


def replay_export(
    directory: Path,
    progress: Callable[[int], None] | None = None,
    engine_name: str = POLICY_ENGINE,
) -> ReplayReport:
    """Re-decide every entry of the export in ``directory`` on the engine ``engine_name``."""
    engines: dict[str, Memoised] = {}
    report = ReplayReport()
    with (directory / "entries.jsonl").open("rb") as handle:
        for line in handle:
            leaf = orjson.loads(line)
            index, entry = leaf["index"], leaf["entry"]
            report.entries += 1
            recorded = entry["decision"]
            if entry.get("outcome") == "rejected":
                report.rejected += 1
                continue
            if recorded is None:  # a policy publication: nothing was decided
                report.administrative += 1
                continue
            if {r.get("code") for r in recorded.get("reasons", [])} & ENGINE_FAILURES:
                report.not_replayable += 1
                continue
            digest = entry["policy_bundle"]
            if digest not in engines:
                engine = in_process_engine(load_export_bundle(directory, digest), engine_name)
                engine.timeout = float("inf")  # a deadline is the gateway's, not replay's
                engines[digest] = engine
            replayed = engines[digest].decide(entry["policy_input"]).as_dict()
            if _normal(replayed) == _normal(recorded):
                report.matched += 1
            else:
                report.mismatches.append(Mismatch(index, recorded, replayed))
            if progress and report.entries % 10_000 == 0:
                progress(report.entries)
    return report
