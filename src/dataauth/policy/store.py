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

from sqlalchemy import Engine, text

from dataauth.canonical import canonical, utc_stamp
from dataauth.policy.bundle import Bundle, bundle_digest
from dataauth.policy.decision import PolicyEngine
from dataauth.store.statements import insert_once

EngineFactory = Callable[[Bundle], PolicyEngine]


def record_bundle(engine: Engine, bundle: Bundle) -> None:
    """Keep ``bundle`` under its digest (once; the first use is remembered)."""
    insert_once(
        engine,
        "INSERT INTO policy_bundle VALUES (:d, :c, :t)",
        {"d": bundle.digest, "c": canonical(bundle.content()), "t": utc_stamp()},
    )


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
            return connection.execute(
                text("SELECT digest FROM policy_publication ORDER BY seq DESC LIMIT 1")
            ).scalar()

    def seed(self, bundle: Bundle) -> None:
        """Publish ``bundle`` if nothing has been published yet (the first start)."""
        if self.current_digest() is None:
            self.publish(bundle, "policies-folder")

    def publish(self, bundle: Bundle, by: str) -> str:
        """Record ``bundle`` and put it in force; return the digest it replaces ("" if none)."""
        record_bundle(self.db, bundle)
        with self.db.begin() as connection:
            previous = connection.execute(
                text("SELECT digest FROM policy_publication ORDER BY seq DESC LIMIT 1")
            ).scalar()
            connection.execute(
                text(
                    "INSERT INTO policy_publication (digest, previous, published_by, time) "
                    "VALUES (:d, :p, :b, :t)"
                ),
                {"d": bundle.digest, "p": previous or "", "b": by, "t": utc_stamp()},
            )
        with self._lock:
            self._engine, self._checked = self.make_engine(bundle), time.monotonic()
        return previous or ""

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
