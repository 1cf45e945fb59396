"""The audit log: append rate, export and verify of a million entries, proof times.

Runs on its own: ``python benchmarks/bench_audit.py [--entries 1000000]``. Prints one
JSON object as its last line. Everything runs on SQLite in a temporary directory with
the gateway's own settings (WAL, synchronous=FULL).

- appends: the gateway's append path (canonical entry, commitments, group commit) from
  many threads, with the tree-head signer running; beside it, raw inserts into the same
  table in the same run: one row per transaction, and all rows in one transaction (the
  ratio to the latter is the figure that travels between machines).
- appends with time-stamping and witnessing: the same appends again, in the same run,
  with the stamper running beside the signer against a local TSA (OpenSSL's ``ts
  -reply``, tests/tsa_server.py, in a process of its own) and the witness pusher
  offering each checkpoint to two local witnesses (``dataauth witness serve``, a
  process each); the ratio to the appends without is the figure (target within 10%:
  neither network call is on the append path). Both cases sign checkpoints, as the
  gateway always does; only the stamper and the pusher differ.
- export and verify: a log of ``--entries`` entries with a signed head every 10,000,
  exported and verified offline, timed together.
- proofs: inclusion and consistency proofs at that size, for random indexes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing as mp
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
from sqlalchemy import Engine, text
from sqlalchemy import insert as sql_insert

from dataauth.audit.checkpoints import note_signer
from dataauth.audit.export import export_log
from dataauth.audit.ledger import HeadSigner, Ledger
from dataauth.audit.log import LEAF_PREFIX, AuditLog, Record, leaf_data
from dataauth.audit.pusher import WitnessEndpoint, WitnessPusher
from dataauth.audit.signing import Ed25519Signer
from dataauth.audit.stamper import Freshness, Stamper, Stamps
from dataauth.audit.tables import AuditEntry
from dataauth.audit.timestamps import load_roots
from dataauth.audit.verify import verify_export
from dataauth.audit.writer import WriterClient, WriterServer
from dataauth.canonical import canonical
from dataauth.config import SOURCE_POLICIES
from dataauth.policy.bundle import load_bundle
from dataauth.policy.store import record_bundle
from dataauth.store.engine import gateway_engine
from dataauth.store.statements import prepare
from harness import free_port

TARGETS = {
    "appends_per_second_min": 20_000,
    "appends_to_raw_one_transaction_ratio_min": 0.2,
    "stamped_witnessed_to_plain_appends_ratio_min": 0.9,
    "export_and_verify_seconds_max": 60,
    "proof_milliseconds_max": 1.0,
}

POLICY_INPUT = {
    "time": "2026-11-25T08:00:00Z",
    "operator": {"id": "demo-bank", "kind": "bank", "licence": {
        "id": "demo-bank-licence", "products": ["identity-match", "income-at-least"],
        "purposes": ["credit"], "valid_from": "2026-01-01T00:00:00Z",
        "valid_to": "2031-01-01T00:00:00Z", "revoked": False}},
    "purpose": "credit",
    "operation": {"kind": "verify", "product": "identity-match"},
    "dataset": {"id": "residents", "version": "demo-20261125"},
    "columns": [{"name": "resident_id", "level": "L4", "uses": ["key"], "use": "key"},
                {"name": "name", "level": "L3", "uses": ["compare"], "use": "compare"}],
    "subjects": {"count": 1}, "parameters": ["name"], "answer": "boolean",
}  # fmt: skip
DECISION = {"allow": True, "reasons": [], "obligations": {"batch_limit": 1000}}
ORIGIN = "bench.example.test/audit"
"""The log's origin, fixed so each process's note signer and the witnesses agree."""


@dataclass(frozen=True)
class Extras:
    """What runs beside the signer in the "on" case: a TSA (url, roots file) and
    witnesses (``<url> <vkey>`` each, as DATAAUTH_WITNESSES lists them)."""

    tsa: tuple[str, str] | None = None
    witnesses: tuple[str, ...] = ()
    writer: str | None = None
    """A writer's socket the appends go through (``bench_writer``)."""


def record(n: int) -> Record:
    return Record(
        time=datetime.now(UTC),
        operator="demo-bank",
        operation=POLICY_INPUT["operation"],
        purpose="credit",
        policy_input=POLICY_INPUT,
        decision=DECISION,
        policy_bundle="sha256:" + "ab" * 32,
        dataset_version="residents@demo-20261125",
        subjects=[hashlib.sha256(str(n).encode()).hexdigest()[:32]],
        consents=[None],
        request=b'verify identity-match\n{"purpose": "credit", "subjects": [{"key": "%d"}]}' % n,
        result={"product": "identity-match", "results": [{"index": 0, "result": True}]},
        outcome="released",
    )  # fmt: skip


def log_ledger(engine: Engine, keys: Path) -> Ledger:
    """The ledger as app.py's ``audit_ledger`` builds it: heads and checkpoint notes."""
    heads = Ed25519Signer.from_keys_dir(keys)
    return Ledger(engine, heads, note_signer(engine, heads, keys, ORIGIN))


def _append_for(
    path: str, keys: str, args: argparse.Namespace, slot: int, out, extras: Extras
) -> None:
    """One gateway process's worth of appenders, with its own tree-head signer and,
    as a gateway worker has them, its own stamper and witness pusher where given; given
    a writer's socket, its entries go through that writer, as a worker's of ``dataauth
    serve --workers`` do."""
    engine = gateway_engine(f"sqlite:///{path}", sqlite_synchronous=args.synchronous)
    ledger = log_ledger(engine, Path(keys))
    signer = HeadSigner(ledger, args.head_delay_ms / 1000)
    threads = args.threads
    log = AuditLog(
        engine,
        on_commit=signer.notify,
        remote=WriterClient(extras.writer) if extras.writer else None,
    )
    stamper = None
    if extras.tsa is not None:
        freshness = Freshness(max_age=3600)
        url, roots = extras.tsa
        stamper = Stamper(ledger, freshness, url, load_roots(Path(roots)), args.tsa_interval)
        stamper.start()
    pusher = WitnessPusher(ledger, [WitnessEndpoint.parse(w) for w in extras.witnesses])
    signer.on_head = pusher.notify
    pusher.start()
    signer.start()
    counts = [0] * threads
    deadline = time.perf_counter() + args.seconds

    def work(thread: int) -> None:
        n = (slot * threads + thread) * 10_000_000
        while time.perf_counter() < deadline:
            log.append(record(n))
            n += 1
            counts[thread] += 1

    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    if stamper is not None:
        stamper.stop()
    signer.stop()
    pusher.stop()
    out.put(sum(counts))


def bench_raw(directory: Path, name: str, rows: int) -> tuple[float, float]:
    """Raw inserts of ready rows into a fresh copy of the table: no canonical JSON, no
    hashing; a fiftieth of ``rows`` with one commit per row, then ``rows`` in one
    transaction (rows a second)."""
    table = gateway_engine(f"sqlite:///{directory / name}")
    insert = prepare(table, sql_insert(AuditEntry.__table__))
    entry = canonical({"example": "entry", "policy_input": POLICY_INPUT, "decision": DECISION})

    def row(i: int) -> list:
        data = leaf_data(i, entry)
        return insert.bind({"index": i, "time": "2026-11-25T08:00:00.000000Z",
                            "operator_id": "demo-bank", "operation": "verify", "allowed": True,
                            "canonical": data,
                            "leaf_hash": hashlib.sha256(LEAF_PREFIX + data).digest()})  # fmt: skip

    connection = table.raw_connection()
    cursor = connection.cursor()
    single = max(1, rows // 50)
    started = time.perf_counter()
    for i in range(single):
        cursor.execute(insert.sql, row(i))
        connection.commit()
    per_row_commit = single / (time.perf_counter() - started)
    ready = [row(i) for i in range(single, single + rows)]
    started = time.perf_counter()
    cursor.executemany(insert.sql, ready)
    connection.commit()
    one_transaction = len(ready) / (time.perf_counter() - started)
    connection.close()
    return per_row_commit, one_transaction


def bench_appends(
    directory: Path,
    args: argparse.Namespace,
    tsa: tuple[str, str] | None = None,
    witnesses: int = 0,
    through_writer: bool = False,
) -> dict[str, float]:
    """Appends for ``--seconds``; given a TSA, with the stamper, and given witnesses,
    with the pusher offering checkpoints to that many witnesses started for the run."""
    directory.mkdir(parents=True, exist_ok=True)
    case = "extras" if tsa is not None or witnesses else "appends"
    path = str(directory / f"{case}.sqlite")
    engine = gateway_engine(f"sqlite:///{path}")  # tables and triggers, once
    log_vkey = log_ledger(engine, directory / "keys").notes.verifier.vkey()
    engine.dispose()
    writer = None
    if through_writer:
        engine = gateway_engine(f"sqlite:///{path}", sqlite_synchronous=args.synchronous)
        writer = WriterServer(AuditLog(engine), str(directory / "writer.sock"))
        writer.start()
    running = [start_witness(directory / f"witness-{n}", log_vkey, n) for n in range(witnesses)]
    try:
        extras = Extras(tsa, tuple(f"{w.url} {w.vkey}" for w in running), writer and writer.path)
        # the baseline on either side of the appends: a shared machine drifts
        before = bench_raw(directory, f"raw-before-{case}.sqlite", args.raw_rows)
        queue: mp.Queue = mp.Queue()
        runs = [
            mp.Process(
                target=_append_for, args=(path, str(directory / "keys"), args, i, queue, extras)
            )
            for i in range(args.processes)
        ]
        started = time.perf_counter()
        for run in runs:
            run.start()
        appended = sum(queue.get() for _ in runs)
        for run in runs:
            run.join()
        elapsed = time.perf_counter() - started
    finally:
        for witness in running:
            witness.stop()
        if writer is not None:
            writer.stop()
    ledger = Ledger(gateway_engine(f"sqlite:///{path}"))
    heads = len(ledger.heads())
    covered = ledger.latest_head()
    stamps = len(Stamps(ledger.engine).between(0, covered.size if covered else 0))
    cosignatures, by_all = cosigned(ledger.engine, witnesses)
    after = bench_raw(directory, f"raw-after-{case}.sqlite", args.raw_rows)
    per_row_commit = (before[0] + after[0]) / 2
    one_transaction = (before[1] + after[1]) / 2

    return {
        "appends_per_second": appended / elapsed,
        "appends_to_raw_one_transaction_ratio": appended / elapsed / one_transaction,
        "appended": appended,
        "tree_heads_signed": heads,
        "tree_heads_per_entry": heads / max(appended, 1),
        "last_head_covers": covered.size if covered else 0,
        "timestamps": stamps,
        "cosignatures": cosignatures,
        "checkpoints_cosigned_by_every_witness": by_all,
        "raw_insert_one_commit_per_row_per_second": per_row_commit,
        "raw_insert_one_transaction_per_second": one_transaction,
    }


@dataclass
class Witness:
    url: str
    vkey: str
    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def start_witness(directory: Path, log_vkey: str, n: int) -> Witness:
    """``dataauth witness serve`` following this log, once it answers with its vkey."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "dataauth.cli", "witness", "serve", "--dir", str(directory),
         "--name", f"witness.example.test/w{n + 1}", "--port", str(port), "--log", log_vkey],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"a witness exited: {process.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
        try:
            return Witness(url, httpx.get(url, timeout=1).text.splitlines()[0], process)
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit("a witness did not start")


def cosigned(engine: Engine, witnesses: int) -> tuple[int, int]:
    """The cosignatures the pushers stored, and the checkpoints every witness cosigned."""
    with engine.connect() as connection:
        total = connection.execute(text("SELECT COUNT(*) FROM witness_cosignature")).scalar()
        by_all = connection.execute(
            text(
                "SELECT COUNT(*) FROM (SELECT size FROM witness_cosignature GROUP BY size "
                "HAVING COUNT(*) >= :n)"
            ),
            {"n": max(witnesses, 1)},
        ).scalar()
    return int(total or 0), int(by_all or 0)


def bench_extras(directory: Path, args: argparse.Namespace) -> dict[str, float]:
    """Appends without and with the stamper and the witness pusher, back to back in this
    run, and their ratio."""
    server = None
    tsa = None
    try:
        if args.tsa_interval > 0:
            server = subprocess.Popen(
                [sys.executable, str(Path(__file__).parents[1] / "tests" / "tsa_server.py"),
                 str(directory / "tsa")], stdout=subprocess.PIPE, text=True,
            )  # fmt: skip
            url = server.stdout.readline().strip()  # type: ignore[union-attr]
            tsa = (url, str(directory / "tsa" / "root.pem"))
        # A B B A: a shared machine drifts, and the order alone would show as a ratio
        plain = bench_appends(directory / "a1", args)
        on = [bench_appends(directory / f"b{n}", args, tsa, args.witnesses) for n in (1, 2)]
        plain_again = bench_appends(directory / "a2", args)
    finally:
        if server is not None:
            server.terminate()
            server.wait()
    without = (plain["appends_per_second"] + plain_again["appends_per_second"]) / 2
    with_extras = sum(run["appends_per_second"] for run in on) / 2
    return plain | {
        "appends_per_second": without,
        "stamped_witnessed_appends_per_second": with_extras,
        "stamped_witnessed_to_plain_appends_ratio": with_extras / without,
        "stamped_witnessed_tree_heads_signed": sum(run["tree_heads_signed"] for run in on),
        "stamped_witnessed_timestamps": sum(run["timestamps"] for run in on),
        "stamped_witnessed_cosignatures": sum(run["cosignatures"] for run in on),
        "stamped_witnessed_checkpoints_cosigned_by_every_witness": sum(
            run["checkpoints_cosigned_by_every_witness"] for run in on
        ),
    }


def build_log(directory: Path, entries: int) -> tuple[Ledger, float]:
    """A log of ``entries`` realistic entries, a head signed every 10,000 (setup, untimed)."""
    engine = gateway_engine(f"sqlite:///{directory / 'big.sqlite'}", sqlite_synchronous="NORMAL")
    ledger = Ledger(engine, Ed25519Signer.from_keys_dir(directory / "keys"))
    bundle = load_bundle(SOURCE_POLICIES)
    record_bundle(engine, bundle)
    insert = prepare(engine, sql_insert(AuditEntry.__table__))
    started = time.perf_counter()
    connection = engine.raw_connection()
    for start in range(0, entries, 10_000):
        rows = []
        for i in range(start, min(start + 10_000, entries)):
            entry = canonical({
                "v": 1, "time": "2026-11-25T08:00:00.000000Z", "operator": "demo-bank",
                "operation": POLICY_INPUT["operation"], "purpose": "credit",
                "policy_input": POLICY_INPUT, "decision": DECISION,
                "policy_bundle": bundle.digest, "dataset_version": "residents@demo",
                "subjects": [hashlib.sha256(str(i).encode()).hexdigest()[:32]],
                "request_digest": "sha256:" + hashlib.sha256(b"q%d" % i).hexdigest(),
                "result_digest": "sha256:" + hashlib.sha256(b"r%d" % i).hexdigest(),
                "outcome": "released",
            })  # fmt: skip
            data = leaf_data(i, entry)
            rows.append(insert.bind({
                "index": i, "time": "2026-11-25T08:00:00.000000Z", "operator_id": "demo-bank",
                "operation": "verify", "allowed": True, "canonical": data,
                "leaf_hash": hashlib.sha256(LEAF_PREFIX + data).digest()}))  # fmt: skip
        cursor = connection.cursor()
        cursor.executemany(insert.sql, rows)
        connection.commit()
        ledger.sign_pending()
    connection.close()
    return ledger, time.perf_counter() - started


def bench_export_verify(directory: Path, entries: int) -> dict[str, float]:
    ledger, built = build_log(directory, entries)
    started = time.perf_counter()
    export_log(ledger.engine, directory / "export")
    exported = time.perf_counter() - started
    started = time.perf_counter()
    report = verify_export(directory / "export")
    verified = time.perf_counter() - started
    return {
        "entries": report.entries,
        "tree_heads": report.heads,
        "export_seconds": exported,
        "verify_seconds": verified,
        "export_and_verify_seconds": exported + verified,
        "build_seconds_untimed_setup": built,
    }, ledger


def bench_proofs(ledger: Ledger, samples: int = 2000) -> dict[str, float]:
    size = ledger.sync()
    rng = random.Random(7)
    inclusion, consistency = [], []
    for _ in range(samples):
        index = rng.randrange(size)
        started = time.perf_counter()
        ledger.tree.inclusion_proof(index, size)
        inclusion.append(time.perf_counter() - started)
        old = rng.randrange(1, size)
        started = time.perf_counter()
        ledger.tree.consistency_proof(old, size)
        consistency.append(time.perf_counter() - started)

    def ms(values: list[float], q: float) -> float:
        return statistics.quantiles(values, n=100)[int(q) - 1] * 1000

    return {
        "tree_size": size,
        "inclusion_p50_ms": ms(inclusion, 50),
        "inclusion_p99_ms": ms(inclusion, 99),
        "consistency_p50_ms": ms(consistency, 50),
        "consistency_p99_ms": ms(consistency, 99),
    }


def bench_writer(directory: Path, args: argparse.Namespace) -> dict[str, float]:
    """Appends with each process writing its own groups, and through one writer for all
    (as ``dataauth serve --workers`` runs them), A A B B in this run, and their ratio."""
    own = [bench_appends(directory / f"own{n}", args) for n in (1, 2)]
    shared = [bench_appends(directory / f"shared{n}", args, through_writer=True) for n in (1, 2)]
    alone = (own[0]["appends_per_second"] + own[1]["appends_per_second"]) / 2
    through = sum(run["appends_per_second"] for run in shared) / 2
    return {
        "own_group_appends_per_second": alone,
        "writer_appends_per_second": through,
        "writer_to_own_group_appends_ratio": through / alone,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument(
        "--seconds", type=float, default=10.0, help="each append case (A B B A: 4 of them)"
    )
    parser.add_argument(
        "--raw-rows", type=int, default=100_000,
        help="rows of the raw-insert baseline taken before and after each append case",
    )  # fmt: skip
    parser.add_argument("--threads", type=int, default=64, help="appenders per process")
    parser.add_argument("--head-delay-ms", type=float, default=100.0, help="as the gateway's")
    parser.add_argument(
        "--tsa-interval", type=float, default=1.0,
        help="seconds between time-stamps in the stamped case; 0: no stamper",
    )  # fmt: skip
    parser.add_argument(
        "--witnesses", type=int, default=2,
        help="local witnesses the pusher offers each checkpoint to in that case; 0: no pusher",
    )  # fmt: skip
    parser.add_argument(
        "--writer",
        action="store_true",
        help="also append through one writer process for all, beside each process's own",
    )
    parser.add_argument("--synchronous", default="FULL", choices=["FULL", "NORMAL"])
    parser.add_argument(
        "--processes",
        type=int,
        default=os.cpu_count() or 1,
        help="as gateway workers: one per core",
    )
    args = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="bench-audit-"))
    extras = args.tsa_interval > 0 or args.witnesses > 0
    appends = bench_extras(directory, args) if extras else bench_appends(directory, args)
    if args.writer:
        appends |= bench_writer(directory / "writer", args)
    export_verify, ledger = bench_export_verify(directory, args.entries)
    proofs = bench_proofs(ledger)
    rounded = {k: round(v, 4) if isinstance(v, float) else v for k, v in
               {**appends, **export_verify, **proofs}.items()}  # fmt: skip
    baseline = {k: rounded.pop(k) for k in list(rounded) if k.startswith("raw_insert")}
    setup = {
        "threads": args.threads,
        "processes": args.processes,
        "head_delay_ms": args.head_delay_ms,
        "tsa_interval": args.tsa_interval,
        "witnesses": args.witnesses,
        "sqlite_synchronous": args.synchronous,
    }
    summary = {"benchmark": "audit", "metrics": rounded, "baseline": baseline}
    print(json.dumps(summary | {"targets": TARGETS, "setup": setup}))


if __name__ == "__main__":
    main()
