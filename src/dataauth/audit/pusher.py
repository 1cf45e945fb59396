"""Pushing the newest checkpoint to the log's witnesses (c2sp.org/tlog-witness), off the
append path: a background thread, woken when a head is signed, posts the newest
checkpoint to each witness with the consistency proof from the size that witness last
cosigned, and stores the cosignatures it gets back. A 409 tells the witness's size: the
push is retried once from there. A witness that is down is retried every
``retry_seconds``; no append ever waits on one.

Pushes are spaced ``interval_seconds`` apart: the heads signed in between go out as the
one newest checkpoint, which the consistency proof ties to every head before it. A
witness thus does a bounded amount of work (a proof checked, a cosignature signed, its
state written durably) however busy the log is, and so does the box it runs on. The
size a witness has cosigned is read from the database, so a worker does not offer a
witness what another worker already had cosigned.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

import httpx
from sqlalchemy import text

from dataauth.audit.ledger import Ledger
from dataauth.audit.note import COSIGNATURE_V1, Checkpoint, Note, NoteError, Verifier
from dataauth.audit.witnesses import add_checkpoint_body, cosignatures
from dataauth.store.statements import Rows, Writer, relaxed

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WitnessEndpoint:
    url: str
    """The witness's submission prefix: ``<url>/add-checkpoint``."""
    verifier: Verifier

    @classmethod
    def parse(cls, setting: str) -> WitnessEndpoint:
        """``<url> <vkey>``, as DATAAUTH_WITNESSES lists them."""
        url, _, vkey = setting.strip().partition(" ")
        try:
            verifier = Verifier.from_vkey(vkey.strip())
        except NoteError as exc:
            raise ValueError(f"witness {url}: {exc}") from None
        if verifier.key_type != COSIGNATURE_V1 or not url.startswith(("http://", "https://")):
            raise ValueError(f"witness {url}: expected '<http(s) url> <cosignature vkey>'")
        return cls(url.rstrip("/"), verifier)


class WitnessPusher:
    def __init__(
        self,
        ledger: Ledger,
        witnesses: Sequence[WitnessEndpoint],
        retry_seconds: float = 5.0,
        interval_seconds: float = 1.0,
    ) -> None:
        self.ledger = ledger
        self.witnesses = list(witnesses)
        self.retry = retry_seconds
        self.interval = interval_seconds
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="witness-pusher", daemon=True)
        self._client = httpx.Client(timeout=5.0)
        # A cosignature lost in a crash is asked for again (the witness cosigns its own
        # size again), so it needs no fsync of its own: the log's next FULL commit on
        # the same write-ahead log makes it durable, and the appends do not wait on it.
        self._writer = Writer(ledger.engine, "witness_cosignature", on_connect=relaxed)
        self._insert = Rows(
            ledger.engine,
            "INSERT INTO witness_cosignature (size, witness, line)",
            3,
            "ON CONFLICT DO NOTHING",
        )

    def start(self) -> None:
        if self.witnesses:
            self._wake.set()
            self._thread.start()

    def notify(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self._client.close()

    def _run(self) -> None:
        not_before = 0.0  # monotonic: no push round before then
        while not self._stop.is_set():
            self._wake.wait(self.retry)
            if self._stop.wait(max(0.0, not_before - time.monotonic())):
                break
            self._wake.clear()
            not_before = time.monotonic() + self.interval
            try:
                self.push_all()
            except Exception as exc:  # retried on the next head or interval
                log.warning("pushing to witnesses failed: %s", type(exc).__name__)

    def push_all(self) -> None:
        """Offer the newest checkpoint to every witness that has not cosigned it."""
        note_bytes = self.ledger.checkpoint()
        if note_bytes is None:
            return
        note = Note.parse(note_bytes)
        # only the log's own signature goes to a witness, not others' cosignatures
        note = Note(note.text, note.signatures[:1])
        size = Checkpoint.parse(note.text).size
        for witness in self.witnesses:
            cosigned = self._cosigned_size(witness.verifier.vkey())
            if cosigned >= size:
                continue
            try:
                self._push(witness, note, size, cosigned)
            except (httpx.HTTPError, ValueError) as exc:
                log.warning("witness %s: %s", witness.url, type(exc).__name__)

    def _push(self, witness: WitnessEndpoint, note: Note, size: int, old: int) -> None:
        vkey = witness.verifier.vkey()
        for _ in range(2):
            if old > size:
                log.warning("witness %s is at %d, past this log's %d", witness.url, old, size)
                return
            self.ledger.sync(upto=size)
            proof = self.ledger.tree.consistency_proof(old, size) if old else []
            answer = self._client.post(
                f"{witness.url}/add-checkpoint", content=add_checkpoint_body(old, proof, note)
            )
            if answer.status_code == 409 and answer.text.strip().isdigit():
                old = int(answer.text.strip())
                continue
            if answer.status_code != 200:
                log.warning("witness %s refused size %d: %d", witness.url, size, answer.status_code)
                return
            lines = [
                s
                for s in cosignatures(answer.content)
                if (s.name, s.id) == (witness.verifier.name, witness.verifier.id)
                and witness.verifier.verify(note.text.encode(), s.signature)
            ]
            if not lines:
                log.warning("witness %s answered without a cosignature of its key", witness.url)
                return
            with self._writer.transaction() as cursor:
                self._insert.insert(cursor, [(size, vkey, lines[0].line())])
            return

    def _cosigned_size(self, vkey: str) -> int:
        with self.ledger.engine.connect() as connection:
            found = connection.execute(
                text("SELECT MAX(size) FROM witness_cosignature WHERE witness = :w"), {"w": vkey}
            ).scalar()
        return int(found or 0)
