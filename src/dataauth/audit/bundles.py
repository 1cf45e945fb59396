"""Policy bundles by digest, kept in the gateway database so replay can find any of them."""

from __future__ import annotations

from sqlalchemy import Engine, text

from dataauth.audit.ledger import utc_stamp
from dataauth.canonical import canonical
from dataauth.policy.bundle import Bundle
from dataauth.statements import insert_once


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
