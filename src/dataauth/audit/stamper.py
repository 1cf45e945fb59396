"""Time-stamping the log as it grows, off the append path, and failing closed when it lags.

A thread beside the head signer wakes every ``interval`` seconds and, if the newest
signed head is not stamped yet, asks the TSA for a token over it (one token covers
every head before it too: each head names the one before). The rule it keeps: no
signed head waits longer than ``max_age`` for a stamp of it or of a later head. Where
one has (the TSA down, unreachable or answering badly), the gateway is *stale*: it
refuses new operations (``503 timestamping_stale``, each refusal an entry) until a
fresh stamp lands, which it then does by itself. An idle log has nothing waiting, so
it is never stale for want of traffic.

The appends never wait on the TSA: they only read this module's ``Freshness``, an
in-memory answer the thread keeps up to date.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

from cryptography import x509
from sqlalchemy import Engine, text

from dataauth.audit.heads import TreeHead
from dataauth.audit.ledger import Ledger
from dataauth.audit.timestamps import Stamp, TimestampError, request_stamp
from dataauth.canonical import rfc3339, utc_now
from dataauth.errors import Problem, unavailable

log = logging.getLogger(__name__)


class Stamps:
    """The stored tokens (``audit_timestamp``)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def add(self, stamp: Stamp) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                text("INSERT INTO audit_timestamp (size, token, gen_time) VALUES (:s, :t, :g)"),
                {"s": stamp.size, "t": stamp.token, "g": rfc3339(stamp.gen_time)},
            )

    def _rows(self, where: str, values: dict[str, Any], tail: str = "") -> list[Stamp]:
        with self.engine.connect() as connection:
            rows = connection.execute(
                text(f"SELECT size, token, gen_time FROM audit_timestamp {where} {tail}"), values
            ).all()
        return [Stamp(int(s), bytes(t), datetime.fromisoformat(g)) for s, t, g in rows]

    def between(self, start: int, end: int) -> list[Stamp]:
        """Stamps of heads with ``start <= size <= end``, by size then time."""
        return self._rows(
            "WHERE size >= :a AND size <= :b", {"a": start, "b": end}, "ORDER BY size, seq"
        )

    def newest(self) -> Stamp | None:
        """The stamp of the largest head stamped (its latest token)."""
        rows = self._rows("", {}, "ORDER BY size DESC, seq DESC LIMIT 1")
        return rows[0] if rows else None

    def waiting_since(self, stamped: int) -> datetime | None:
        """The time of the first head larger than ``stamped``: how long the log has
        had a head no stamp covers; None if it has none."""
        with self.engine.connect() as connection:
            row = connection.execute(
                text("SELECT time FROM signed_tree_head WHERE size > :s ORDER BY size LIMIT 1"),
                {"s": stamped},
            ).first()
        return datetime.fromisoformat(row[0]) if row else None


class Freshness:
    """Whether the log's stamps keep up: what the spine and /healthz read."""

    def __init__(self, max_age: float, clock: Callable[[], datetime] = utc_now) -> None:
        self.max_age = max_age
        self.clock = clock
        self.newest: Stamp | None = None
        self.waiting: datetime | None = None
        self.checked: datetime = clock()
        self.error: str | None = None

    def update(self, newest: Stamp | None, waiting: datetime | None, error: str | None) -> None:
        self.newest, self.waiting, self.error = newest, waiting, error
        self.checked = self.clock()

    def stale(self) -> bool:
        now = self.clock()
        if (now - self.checked).total_seconds() > self.max_age:
            return True  # the stamper itself has not looked for that long: fail closed
        return self.waiting is not None and (now - self.waiting).total_seconds() > self.max_age

    def status(self) -> dict[str, Any]:
        now = self.clock()
        newest = self.newest
        return {
            "stale": self.stale(),
            "max_age_seconds": self.max_age,
            "newest_stamp": None
            if newest is None
            else {
                "size": newest.size,
                "gen_time": rfc3339(newest.gen_time),
                "age_seconds": round((now - newest.gen_time).total_seconds(), 1),
            },
            "unstamped_since": None if self.waiting is None else rfc3339(self.waiting),
            "last_error": self.error,
        }

    def refusal(self) -> Problem | None:
        """503 timestamping_stale while stale, else None."""
        if not self.stale():
            return None
        problem = unavailable(
            "timestamping_stale",
            f"the audit log has had a tree head without a time-stamp for more than "
            f"{self.max_age:g} s (the time-stamping authority is not answering), so no "
            "new operation is taken; try again later",
        )
        problem.headers["Retry-After"] = "30"
        return problem


class Stamper:
    """Stamps the newest head every ``interval`` seconds; keeps ``freshness`` current."""

    def __init__(
        self,
        ledger: Ledger,
        freshness: Freshness,
        url: str,
        roots: list[x509.Certificate],
        interval: float,
        timeout: float = 10.0,
    ) -> None:
        self.ledger = ledger
        self.stamps = Stamps(ledger.engine)
        self.freshness = freshness
        self.url = url
        self.roots = roots
        self.interval = interval
        self.timeout = timeout
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tsa-stamper", daemon=True)

    def start(self) -> None:
        # what the database says now, before any request is taken: heads left waiting
        # by an earlier run count from their own time, not from this start
        newest = self.stamps.newest()
        self.freshness.update(newest, self.stamps.waiting_since(newest.size if newest else 0), None)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self.timeout + 5)

    def _due(self, newest: Stamp | None, head: TreeHead | None) -> bool:
        if head is None or (newest is not None and newest.size >= head.size):
            return False
        if newest is not None:
            # another worker stamped a moment ago: its next round covers this head
            age = (self.freshness.clock() - newest.gen_time).total_seconds()
            return not 0 <= age < self.interval * 0.9
        return True

    def tick(self) -> Stamp | None:
        """One round: stamp the newest head if no stamp covers it. Never raises."""
        error, stamp = None, None
        try:
            newest = self.stamps.newest()
            head = self.ledger.latest_head()
            if self._due(newest, head):
                assert head is not None
                try:
                    stamp = request_stamp(self.url, head, self.roots, self.timeout)
                except TimestampError as exc:
                    error = str(exc)
                    log.warning("time-stamping the head at size %d failed: %s", head.size, exc)
                else:
                    self.stamps.add(stamp)
                    newest = stamp
            waiting = self.stamps.waiting_since(newest.size if newest else 0)
        except Exception as exc:  # the database: retried next round, freshness unchanged
            log.warning("time-stamping could not read the log: %s", type(exc).__name__)
            return None
        self.freshness.update(newest, waiting, error)
        return stamp

    def _run(self) -> None:
        while True:
            self.tick()
            if self._stop.wait(self.interval):
                return
