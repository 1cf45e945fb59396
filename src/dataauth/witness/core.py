"""The witness's one decision (c2sp.org/tlog-witness add-checkpoint), in the spec's order.

1. the origin is one it follows (else 404);
2. a signature on the checkpoint verifies under that log's key (else 403; signatures
   by unknown keys are ignored);
3. the old size is not over the checkpoint's (else 400);
4. the old size is the size it last cosigned for the origin, 0 if none (else 409 with
   its size);
5. the consistency proof from its recorded root to the checkpoint's verifies (else 422);
6. at an unchanged size, the root is the one it recorded (else 409: a split view);
then the new size and root are on disk before the cosignature is made. Steps 4 to the
write run under the state's lock, so concurrent requests cannot roll it back.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence

from dataauth.audit.merkle import EMPTY_ROOT, verify_consistency
from dataauth.audit.note import NoteError, Signer, Verifier
from dataauth.audit.witnesses import BadRequest, parse_add_checkpoint
from dataauth.witness.state import Seen, State

log = logging.getLogger(__name__)


class Rejected(Exception):
    """A refused add-checkpoint: its status, a stable code and a readable detail."""

    def __init__(self, status: int, code: str, detail: str, size: int | None = None) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail
        self.size = size
        """For a 409: the size the witness last cosigned, which the body must carry."""


class Witness:
    def __init__(
        self,
        signer: Signer,
        logs: Mapping[str, Sequence[Verifier]],
        state: State,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.signer = signer
        self.logs = {origin: list(keys) for origin, keys in logs.items()}
        self.state = state
        self._clock = clock

    def add_checkpoint(self, body: bytes) -> bytes:
        """The cosignature line for the checkpoint in ``body``; raises Rejected."""
        try:
            request = parse_add_checkpoint(body)
        except BadRequest as exc:
            raise Rejected(400, "malformed_request", str(exc)) from None
        checkpoint = request.checkpoint
        keys = self.logs.get(checkpoint.origin)
        if keys is None:
            raise Rejected(404, "unknown_log", "this witness does not follow that origin")
        try:
            request.note.open(keys)
        except NoteError as exc:
            detail = f"the checkpoint is not the log's: {exc}"
            raise Rejected(403, "bad_signature", detail) from None
        if request.old > checkpoint.size:
            raise Rejected(
                400, "malformed_request", f"old size {request.old} is over {checkpoint.size}"
            )
        with self.state.locked() as logs:
            seen = logs.get(checkpoint.origin, Seen(0, EMPTY_ROOT))
            if request.old != seen.size:
                raise Rejected(
                    409, "old_size_mismatch", f"the witness is at size {seen.size}", seen.size
                )
            if not verify_consistency(
                seen.size, checkpoint.size, seen.root, checkpoint.root, request.proof
            ):
                if seen.size == checkpoint.size and not request.proof:
                    log.warning(
                        "split view: %s shows a second root at size %d",
                        checkpoint.origin,
                        checkpoint.size,
                    )
                    raise Rejected(
                        409,
                        "root_mismatch",
                        f"the witness cosigned another root at size {seen.size}",
                        seen.size,
                    )
                log.warning(
                    "inconsistent checkpoint: %s from %d to %d",
                    checkpoint.origin,
                    seen.size,
                    checkpoint.size,
                )
                raise Rejected(
                    422,
                    "inconsistent",
                    f"the proof does not show size {checkpoint.size} extends size {seen.size}",
                )
            logs[checkpoint.origin] = Seen(checkpoint.size, checkpoint.root)
        # persisted (on leaving the block) before anything is signed
        return self.signer.line(request.note.text.encode(), int(self._clock())).encode()
