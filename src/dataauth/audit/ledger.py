"""The log as a Merkle tree: leaves read from the database, tree heads signed over them.

Each gateway process keeps the tree in memory (the hashes of every complete subtree,
about 64 bytes a leaf), catches it up from the database before it answers, and signs
heads at a pace that does not follow traffic: a background thread wakes when entries
are appended and signs one head for all of them, but never sooner than an interval
after the last head any process signed. Heads per entry thus fall as load rises, and
an entry waits at most about one interval for a head. Several processes may sign; the
head table's write lock and its chain (each head names the one before) keep one
history.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Engine, text

from dataauth.audit.checkpoints import checkpoint_note
from dataauth.audit.heads import TreeHead, sign_head
from dataauth.audit.merkle import MerkleTree
from dataauth.audit.note import Signer as NoteSigner
from dataauth.audit.signing import Signer
from dataauth.canonical import utc_now, utc_stamp
from dataauth.store.statements import WriteLock, fetch_all, insert_once, prepare

log = logging.getLogger(__name__)

HEAD_COLUMNS = "size, root, time, key_id, algorithm, prev, signature"


def _head(row: Any) -> TreeHead:
    size, root, time, key_id, algorithm, prev, signature = row
    return TreeHead(int(size), bytes(root), time, key_id, algorithm, prev, bytes(signature))


class Ledger:
    def __init__(
        self, engine: Engine, signer: Signer | None = None, notes: NoteSigner | None = None
    ) -> None:
        self.engine = engine
        self.signer = signer
        self.notes = notes
        """Signs each head's checkpoint (see ``audit/checkpoints.py``)."""
        self.tree = MerkleTree()
        # heads are signed under the log's own lock: a head's size is then every entry
        self._write_lock = WriteLock(engine, "audit_entry")
        self._lock = threading.Lock()
        self._leaves = prepare(
            engine,
            text(
                'SELECT "index", leaf_hash FROM audit_entry '
                'WHERE "index" >= :start AND "index" < :end ORDER BY "index"'
            ),
        )
        self._count = prepare(engine, text('SELECT COALESCE(MAX("index") + 1, 0) FROM audit_entry'))
        self._latest = prepare(
            engine, text(f"SELECT {HEAD_COLUMNS} FROM signed_tree_head ORDER BY size DESC LIMIT 1")
        )
        self._at = prepare(
            engine, text(f"SELECT {HEAD_COLUMNS} FROM signed_tree_head WHERE size = :size")
        )
        self._insert_head = prepare(
            engine,
            text(
                f"INSERT INTO signed_tree_head ({HEAD_COLUMNS}) "
                "VALUES (:size, :root, :time, :key_id, :algorithm, :prev, :signature)"
            ),
        )
        self._insert_checkpoint = prepare(
            engine, text("INSERT INTO tree_head_checkpoint (size, note) VALUES (:size, :note)")
        )
        self._checkpoint_latest = prepare(
            engine, text("SELECT MAX(size) FROM tree_head_checkpoint")
        )
        if signer is not None:
            self._register_key(signer)
        if notes is not None:
            insert_once(
                engine,
                "INSERT INTO checkpoint_key VALUES (:v, :o)",
                {"v": notes.verifier.vkey(), "o": notes.name},
            )

    def _register_key(self, signer: Signer) -> None:
        insert_once(
            self.engine,
            "INSERT INTO audit_key VALUES (:k, :a, :p)",
            {"k": signer.key_id, "a": signer.algorithm, "p": signer.public_key_pem()},
        )

    def _run(self, prepared: Any, values: dict[str, Any], cursor: Any = None) -> list[Any]:
        if cursor is not None:
            cursor.execute(prepared.sql, prepared.bind(values))
            return cursor.fetchall()
        return fetch_all(self.engine, prepared, prepared.bind(values))

    def sync(self, cursor: Any = None, upto: int | None = None) -> int:
        """Catch the in-memory tree up with the database; return its size."""
        with self._lock:
            end = upto if upto is not None else self._run(self._count, {}, cursor)[0][0]
            if end > self.tree.size:
                for index, leaf in self._run(
                    self._leaves, {"start": self.tree.size, "end": end}, cursor
                ):
                    if index != self.tree.size:
                        raise RuntimeError(f"the audit log has a gap at entry {self.tree.size}")
                    self.tree.append(bytes(leaf))
            return self.tree.size

    def size(self) -> int:
        """Entries in the log, as the database has it now."""
        return int(self._run(self._count, {})[0][0])

    def latest_head(self) -> TreeHead | None:
        rows = self._run(self._latest, {})
        return _head(rows[0]) if rows else None

    def head(self, size: int) -> TreeHead | None:
        rows = self._run(self._at, {"size": size})
        return _head(rows[0]) if rows else None

    def heads(self, start: int = 0, end: int | None = None) -> list[TreeHead]:
        """Heads with ``start <= size <= end``, by size."""
        query = f"SELECT {HEAD_COLUMNS} FROM signed_tree_head WHERE size >= :start"
        values: dict[str, Any] = {"start": start}
        if end is not None:
            query += " AND size <= :end"
            values["end"] = end
        with self.engine.connect() as connection:
            rows = connection.execute(text(query + " ORDER BY size"), values).all()
        return [_head(row) for row in rows]

    def entries(
        self, start: int, limit: int, operator: str | None = None
    ) -> list[tuple[int, bytes, bytes]]:
        """(index, leaf data, leaf hash) from ``start`` on, of one operator or all."""
        query = 'SELECT "index", canonical, leaf_hash FROM audit_entry WHERE "index" >= :start'
        values: dict[str, Any] = {"start": start, "limit": limit}
        if operator is not None:
            query += " AND operator_id = :operator"
            values["operator"] = operator
        with self.engine.connect() as connection:
            rows = connection.execute(text(query + ' ORDER BY "index" LIMIT :limit'), values)
            return [(int(i), bytes(data), bytes(leaf)) for i, data, leaf in rows]

    def hourly(self, since: str, operator: str | None = None) -> list[tuple[str, str, bool, int]]:
        """Entries since ``since`` (UTC, the entries' own form) counted by hour, operator
        and whether the decision allowed: (``YYYY-MM-DDTHH``, operator, allowed, count).
        Read from the indexed columns, no entry parsed: cheap over a long log."""
        query = (
            "SELECT substr(time, 1, 13), operator_id, allowed, COUNT(*) FROM audit_entry "
            "WHERE time >= :since"
        )
        values: dict[str, Any] = {"since": since}
        if operator is not None:
            query += " AND operator_id = :operator"
            values["operator"] = operator
        query += " GROUP BY substr(time, 1, 13), operator_id, allowed"
        with self.engine.connect() as connection:
            rows = connection.execute(text(query), values)
            return [(hour, who, bool(allowed), int(n)) for hour, who, allowed, n in rows]

    def recent(self, operator: str, since: str, limit: int) -> list[dict[str, Any]]:
        """``operator``'s latest allowed entries since ``since``, newest first, parsed."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                text(
                    "SELECT canonical FROM audit_entry WHERE operator_id = :operator "
                    'AND time >= :since AND allowed ORDER BY "index" DESC LIMIT :limit'
                ),
                {"operator": operator, "since": since, "limit": limit},
            )
            return [orjson.loads(bytes(data))["entry"] for (data,) in rows]

    def checkpoint(self, size: int | None = None) -> bytes | None:
        """The signed checkpoint note of the head of ``size`` (the newest that has one by
        default), with the witnesses' cosignatures of it, as ``/checkpoint`` serves it;
        None where there is none."""
        if size is None:
            rows = self._run(self._checkpoint_latest, {})
            if not rows or rows[0][0] is None:
                return None
            size = int(rows[0][0])
        return self.checkpoints(size, size).get(size)

    def checkpoints(self, start: int, end: int) -> dict[int, bytes]:
        """The checkpoint notes of the heads with ``start <= size <= end``, by size, each
        with the witnesses' cosignatures of it."""
        with self.engine.connect() as connection:
            values = {"start": start, "end": end}
            rows = connection.execute(
                text(
                    "SELECT size, note FROM tree_head_checkpoint "
                    "WHERE size >= :start AND size <= :end"
                ),
                values,
            )
            notes = {int(size): bytes(note) for size, note in rows}
            cosignatures = connection.execute(
                text(
                    "SELECT size, line FROM witness_cosignature "
                    "WHERE size >= :start AND size <= :end ORDER BY size, witness"
                ),
                values,
            )
            for size, line in cosignatures:
                if int(size) in notes:
                    notes[int(size)] += line.encode()
            return notes

    def witnessed_size(self, witnesses: int, at_least: int) -> int | None:
        """The largest size of at least ``at_least`` whose checkpoint ``witnesses``
        witnesses have cosigned, or None."""
        with self.engine.connect() as connection:
            return connection.execute(
                text(
                    "SELECT size FROM witness_cosignature WHERE size >= :at_least "
                    "GROUP BY size HAVING COUNT(*) >= :witnesses ORDER BY size DESC LIMIT 1"
                ),
                {"at_least": at_least, "witnesses": witnesses},
            ).scalar()

    def vkeys(self) -> list[str]:
        """Every note key that has signed a checkpoint, as a vkey."""
        with self.engine.connect() as connection:
            rows = connection.execute(text("SELECT vkey FROM checkpoint_key ORDER BY vkey"))
            return [vkey for (vkey,) in rows]

    def sign_missing_checkpoints(self) -> int:
        """Sign the checkpoints of heads signed before there were checkpoints; return how
        many. Ed25519 signatures are deterministic, so processes racing here would write
        the same bytes; the one that comes second writes nothing."""
        if self.notes is None:
            return 0
        with self.engine.begin() as connection:
            rows = connection.execute(
                text(
                    "SELECT h.size, h.root FROM signed_tree_head h "
                    "LEFT JOIN tree_head_checkpoint c ON c.size = h.size WHERE c.size IS NULL"
                )
            ).all()
            for size, root in rows:
                connection.execute(
                    text(
                        "INSERT INTO tree_head_checkpoint (size, note) VALUES (:size, :note) "
                        "ON CONFLICT (size) DO NOTHING"
                    ),
                    {"note": checkpoint_note(self.notes, int(size), bytes(root)), "size": size},
                )
        return len(rows)

    def keys(self) -> list[dict[str, Any]]:
        """Every key that has signed or will sign heads. A key another has since taken
        over from (a logged rotation or revocation) carries ``last_size``, the size of
        the last head it signed: a head it signs past that is not this log's, which a
        receipt's verifier can tell without the entries that record the change."""
        latest = self.latest_head()
        with self.engine.connect() as connection:
            rows = connection.execute(
                text(
                    "SELECT k.key_id, k.algorithm, k.public_key_pem, "
                    "(SELECT MAX(h.size) FROM signed_tree_head h WHERE h.key_id = k.key_id) "
                    "FROM audit_key k ORDER BY k.key_id"
                )
            ).all()
        keys: list[dict[str, Any]] = []
        for key_id, algorithm, pem, last in rows:
            key = {"key_id": key_id, "algorithm": algorithm, "public_key_pem": pem}
            if last is not None and latest is not None and key_id != latest.key_id:
                key["last_size"] = int(last)
            keys.append(key)
        return keys

    def sign_pending(self) -> TreeHead | None:
        """Sign a head over every committed entry, if any is not covered yet."""
        return self.sign_spaced(0.0)[0]

    def sign_spaced(self, interval: float) -> tuple[TreeHead | None, float]:
        """Sign a head over every committed entry not covered yet, unless a head (of any
        process) was signed less than ``interval`` seconds ago: then sign nothing and
        say how long to wait. Returns (the head or None, seconds to wait, 0 if none)."""
        if self.signer is None:
            return None, 0.0
        connection = self._write_lock.connect()
        try:
            with self._write_lock.transaction(connection) as cursor:
                size = self._run(self._count, {}, cursor)[0][0]
                latest = self._run(self._latest, {}, cursor)
                previous = _head(latest[0]) if latest else None
                if size == 0 or (previous is not None and previous.size >= size):
                    return None, 0.0
                if interval > 0 and previous is not None:
                    wait = _remaining(previous.time, interval)
                    if wait > 0:
                        return None, wait
                self.sync(cursor, upto=size)
                head = sign_head(
                    self.signer,
                    size,
                    self.tree.root(size),
                    utc_stamp(),
                    previous.digest() if previous else "",
                )
                row = head.as_dict() | {"root": head.root, "signature": head.signature}
                cursor.execute(self._insert_head.sql, self._insert_head.bind(row))
                if self.notes is not None:  # the same transaction: no head without its note
                    note = {"size": size, "note": checkpoint_note(self.notes, size, head.root)}
                    cursor.execute(self._insert_checkpoint.sql, self._insert_checkpoint.bind(note))
            return head, 0.0
        finally:
            connection.close()


def _remaining(signed: str, interval: float) -> float:
    """Seconds left of ``interval`` since a head stamped ``signed``; clocks that disagree
    (another host's) can make it at most ``interval``, never a longer stall."""
    try:
        elapsed = (utc_now() - datetime.fromisoformat(signed)).total_seconds()
    except ValueError:
        return 0.0
    return min(interval, max(0.0, interval - elapsed))


class HeadSigner:
    """Signs at most one head per ``interval`` across the processes sharing the log:
    woken by appends, it signs at once if the last head is older than that, else when
    it will be, covering everything committed by then."""

    def __init__(
        self,
        ledger: Ledger,
        interval_seconds: float = 0.1,
        on_head: Callable[[], None] | None = None,
    ) -> None:
        self.ledger = ledger
        self.interval = interval_seconds
        self.on_head = on_head
        """Called after each head this process signs (the witness pusher's wake-up)."""
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tree-head-signer", daemon=True)

    def start(self) -> None:
        self._wake.set()  # cover whatever a previous run left unsigned
        self._thread.start()

    def notify(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        not_before = 0.0  # monotonic: this process signs no head before then
        while not self._stop.is_set():
            self._wake.wait()
            if self._stop.wait(max(0.0, not_before - time.monotonic())):
                break
            self._wake.clear()
            try:
                head, wait = self.ledger.sign_spaced(self.interval)
            except Exception as exc:  # retried after an interval
                log.warning("signing a tree head failed: %s", type(exc).__name__)
                head, wait = None, self.interval
            if head is not None:
                not_before = time.monotonic() + self.interval
                if self.on_head is not None:
                    self.on_head()
            elif wait > 0:  # another process signed a moment ago; ours are not covered yet
                not_before = time.monotonic() + wait
                self._wake.set()
        try:
            self.ledger.sign_pending()  # leave nothing unsigned on a clean stop
        except Exception as exc:
            log.warning("signing the last tree head failed: %s", type(exc).__name__)
