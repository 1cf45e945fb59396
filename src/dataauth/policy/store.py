"""The bundle in force: the latest publication in the gateway database.

The ``policies/`` folder seeds the first publication; after that a department changes
policy only by publishing (``dataauth policy publish``, which the gateway audits), and
every gateway process takes the new bundle within ``ttl_seconds``. Every bundle stays
in the database by digest, so replay and what-if find any of them.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, Engine, text

from dataauth.canonical import canonical, utc_stamp
from dataauth.policy.bundle import Bundle, bundle_digest
from dataauth.policy.decision import PolicyEngine
from dataauth.store.statements import insert_once

EngineFactory = Callable[[Bundle], PolicyEngine]


KEEP_BUNDLE = "INSERT INTO policy_bundle VALUES (:d, :c, :t)"
LATEST = "SELECT digest FROM policy_publication ORDER BY seq DESC LIMIT 1"


def _bundle_row(bundle: Bundle) -> dict[str, Any]:
    return {"d": bundle.digest, "c": canonical(bundle.content()), "t": utc_stamp()}


def record_bundle(engine: Engine, bundle: Bundle) -> None:
    """Keep ``bundle`` under its digest (once; the first use is remembered)."""
    insert_once(engine, KEEP_BUNDLE, _bundle_row(bundle))


def stored_bundles(engine: Engine, digests: set[str]) -> dict[str, bytes]:
    """The canonical content of each bundle in ``digests`` that the database holds."""
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT digest, content FROM policy_bundle")).all()
    return {digest: bytes(content) for digest, content in rows if digest in digests}


def load_stored_bundle(engine: Engine, digest: str) -> Bundle:
    content = stored_bundles(engine, {digest}).get(digest)
    if content is None:
        raise LookupError(f"no policy bundle {digest} on record")
    value = json.loads(content)
    return Bundle(value["modules"], value["data"], bundle_digest(value["modules"], value["data"]))


class PolicyStore:
    """Publications, and the engine for the one in force (refreshed every TTL)."""

    def __init__(
        self, engine: Engine, make_engine: EngineFactory, ttl_seconds: float = 2.0
    ) -> None:
        self.db = engine
        self.make_engine = make_engine
        self.ttl_seconds = ttl_seconds
        self._lock = threading.Lock()
        self._engine: PolicyEngine | None = None
        self._checked = 0.0

    def current_digest(self) -> str | None:
        with self.db.connect() as connection:
            return connection.execute(text(LATEST)).scalar()

    def seed(self, bundle: Bundle) -> None:
        """Publish ``bundle`` if nothing has been published yet (the first start)."""
        if self.current_digest() is None:
            self.publish(bundle, "policies-folder")

    def publish(self, bundle: Bundle, by: str) -> str:
        """Record ``bundle`` and put it in force, with no entry of its own (the seed, and
        tests); a department's publication is ``admin/policy.py``'s, with its entry."""
        record_bundle(self.db, bundle)
        with self.db.begin() as connection:
            previous = self.record_publication(connection, bundle, by)
        self.adopt(self.make_engine(bundle))
        return previous

    def record_publication(self, connection: Connection, bundle: Bundle, by: str) -> str:
        """Keep ``bundle`` and publish it, in ``connection``'s transaction; return the
        digest it replaces ("" if none). It is in force once that transaction commits:
        this process's engine changes only with ``adopt``."""
        held = connection.execute(
            text("SELECT 1 FROM policy_bundle WHERE digest = :d"), {"d": bundle.digest}
        ).first()
        if held is None:
            connection.execute(text(KEEP_BUNDLE), _bundle_row(bundle))
        previous = connection.execute(text(LATEST)).scalar()
        connection.execute(
            text(
                "INSERT INTO policy_publication (digest, previous, published_by, time) "
                "VALUES (:d, :p, :b, :t)"
            ),
            {"d": bundle.digest, "p": previous or "", "b": by, "t": utc_stamp()},
        )
        return previous or ""

    def adopt(self, engine: PolicyEngine) -> None:
        """Decide with ``engine`` in this process from now on (its bundle's publication
        committed); the other processes read the publication within one TTL."""
        with self._lock:
            self._engine, self._checked = engine, time.monotonic()

    def engine(self) -> PolicyEngine:
        """The engine of the bundle in force, checked against the database every TTL."""
        current = self._engine
        if current is not None and time.monotonic() - self._checked < self.ttl_seconds:
            return current
        with self._lock:
            digest = self.current_digest()
            if digest is None:
                raise LookupError("no policy bundle is published")
            if self._engine is None or self._engine.digest != digest:
                self._engine = self.make_engine(load_stored_bundle(self.db, digest))
            self._checked = time.monotonic()
            return self._engine
