"""Exporting the log for a regulator: everything needed to check it offline.

    DIR/manifest.json   format, the entry range [from, to), the frontier at ``from``
    DIR/entries.jsonl   one line per entry: the exact bytes its leaf covers
    DIR/leaves.txt      the leaf hashes, hex, one per line (names an altered entry)
    DIR/heads.json      the signed tree heads in the range, by size
    DIR/keys.json       every public key that signed a head
    DIR/bundles/<hex>.json   each policy bundle an entry names, as canonical JSON

An export ends at a signed tree head and, when it starts later than entry 0, starts
at one, so that every root in it can be recomputed and every entry is covered.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text

from dataauth.audit.ledger import Ledger
from dataauth.canonical import utc_stamp
from dataauth.policy.store import stored_bundles

FORMAT = "dataauth-audit-export/1"
BUNDLE_REF = re.compile(rb'"policy_bundle":"(sha256:[0-9a-f]{64})"')

Progress = Callable[[int, int], None]


class ExportError(Exception):
    """The log cannot be exported as asked."""


def export_log(
    engine: Engine,
    directory: Path,
    start: int = 0,
    end: int | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Write an export of entries [start, end) to ``directory``; return its manifest."""
    ledger = Ledger(engine)
    heads = ledger.heads()
    if not heads:
        raise ExportError("no tree head is signed yet: run the gateway, which signs them")
    covered = [h for h in heads if h.size <= (heads[-1].size if end is None else end)]
    if not covered:
        raise ExportError(f"no signed tree head covers entries up to {end}")
    end = covered[-1].size
    anchors = [h for h in heads if h.size <= start]
    start = anchors[-1].size if start > 0 and anchors else 0
    if start >= end:
        raise ExportError(f"no signed entries between {start} and {end}")
    ledger.sync(upto=end)

    directory.mkdir(parents=True, exist_ok=True)
    (directory / "bundles").mkdir(exist_ok=True)
    referenced: set[str] = set()
    done = 0
    with (
        (directory / "entries.jsonl").open("wb") as entries,
        (directory / "leaves.txt").open("w") as leaves,
        engine.connect() as connection,
    ):
        rows = connection.execution_options(stream_results=True, yield_per=10_000).execute(
            text(
                'SELECT canonical, leaf_hash FROM audit_entry WHERE "index" >= :a '
                'AND "index" < :b ORDER BY "index"'
            ),
            {"a": start, "b": end},
        )
        for data, leaf in rows:
            entries.write(bytes(data) + b"\n")
            leaves.write(bytes(leaf).hex() + "\n")
            referenced.update(m.decode() for m in BUNDLE_REF.findall(bytes(data)))
            done += 1
            if progress and done % 10_000 == 0:
                progress(done, end - start)
    if progress:
        progress(done, end - start)

    bundles = stored_bundles(engine, referenced)
    for digest, content in bundles.items():
        (directory / "bundles" / f"{digest.removeprefix('sha256:')}.json").write_bytes(content)
    # each head with its checkpoint and the witnesses' cosignatures of it, where it has one
    exported_heads = [
        h.as_dict() | ({"checkpoint": note.decode()} if (note := ledger.checkpoint(h.size)) else {})
        for h in heads
        if start <= h.size <= end
    ]
    (directory / "heads.json").write_text(json.dumps(exported_heads, indent=1))
    (directory / "keys.json").write_text(json.dumps({"keys": ledger.keys()}, indent=1))
    manifest = {
        "format": FORMAT,
        "from": start,
        "to": end,
        "frontier": [h.hex() for h in ledger.tree.frontier(start)],
        "entries": end - start,
        "heads": len(exported_heads),
        "bundles": sorted(bundles),
        "missing_bundles": sorted(referenced - set(bundles)),
        "exported_at": utc_stamp(),
    }
    (directory / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return manifest
