"""The log as a Merkle tree: leaves read from the database, tree heads signed over them.

Each gateway process keeps the tree in memory (the hashes of every complete subtree,
about 64 bytes a leaf), catches it up from the database before it answers, and signs
heads in batches: a background thread wakes when entries are appended, waits a few
milliseconds for more, and signs one head for all of them. Several processes may sign;
the head table's write lock and its chain (each head names the one before) keep one
history.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from sqlalchemy import Engine, text

from dataauth.audit.heads import TreeHead, sign_head
from dataauth.audit.merkle import MerkleTree
from dataauth.audit.signing import Signer
from dataauth.canonical import utc_stamp
from dataauth.store.statements import WriteLock, insert_once, prepare

log = logging.getLogger(__name__)

HEAD_COLUMNS = "size, root, time, key_id, algorithm, prev, signature"


def _head(row: Any) -> TreeHead:
    size, root, time, key_id, algorithm, prev, signature = row
    return TreeHead(int(size), bytes(root), time, key_id, algorithm, prev, bytes(signature))


class Ledger:
    def __init__(self, engine: Engine, signer: Signer | None = None) -> None:
        self.engine = engine
        self.signer = signer
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
        if signer is not None:
            self._register_key(signer)

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
        connection = self.engine.raw_connection()
        try:
            own = connection.cursor()
            own.execute(prepared.sql, prepared.bind(values))
            return own.fetchall()
        finally:
            connection.close()

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

    def keys(self) -> list[dict[str, str]]:
        with self.engine.connect() as connection:
            rows = connection.execute(
                text("SELECT key_id, algorithm, public_key_pem FROM audit_key ORDER BY key_id")
            ).all()
        return [{"key_id": k, "algorithm": a, "public_key_pem": p} for k, a, p in rows]

    def sign_pending(self) -> TreeHead | None:
        """Sign a head over every committed entry, if any is not covered yet."""
        if self.signer is None:
            return None
        connection = self._write_lock.connect()
        try:
            with self._write_lock.transaction(connection) as cursor:
                size = self._run(self._count, {}, cursor)[0][0]
                latest = self._run(self._latest, {}, cursor)
                previous = _head(latest[0]) if latest else None
                if size == 0 or (previous is not None and previous.size >= size):
                    return None
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
            return head
        finally:
            connection.close()


class HeadSigner:
    """Signs heads in batches: woken by appends, it waits ``delay`` for more, then signs."""

    def __init__(self, ledger: Ledger, delay_seconds: float = 0.005) -> None:
        self.ledger = ledger
        self.delay = delay_seconds
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
        while not self._stop.is_set():
            self._wake.wait()
            if self._stop.wait(self.delay):
                break
            self._wake.clear()
            try:
                self.ledger.sign_pending()
            except Exception as exc:  # a failed round is retried on the next append
                log.warning("signing a tree head failed: %s", type(exc).__name__)
        try:
            self.ledger.sign_pending()  # leave nothing unsigned on a clean stop
        except Exception as exc:
            log.warning("signing the last tree head failed: %s", type(exc).__name__)
