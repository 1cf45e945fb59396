"""The witness over HTTP: ``POST /add-checkpoint`` (c2sp.org/tlog-witness), and ``GET /``
with its verifier key and the logs it follows.

A witness's directory holds its key (``witness.ed25519.pem``, 0600, made on first use),
its settings (``witness.json``: its name and the logs it follows, each a log's vkey whose
name is the log's origin) and its state (``state.json``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from fastapi import FastAPI, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, PlainTextResponse, Response

from dataauth.audit.note import COSIGNATURE_V1, ED25519, NoteError, Signer, Verifier
from dataauth.audit.witnesses import MAX_BODY, SIZE_TYPE
from dataauth.errors import Problem
from dataauth.identity.keys import load_or_create_ed25519
from dataauth.witness.core import Rejected, Witness
from dataauth.witness.state import State

KEY_FILE = "witness.ed25519.pem"
SETTINGS_FILE = "witness.json"
STATE_FILE = "state.json"
NOTE_TYPE = "text/plain; charset=utf-8"


class WitnessSetupError(ValueError):
    """The witness's directory or its logs cannot be used as given."""


def witness_signer(directory: Path, name: str | None = None) -> Signer:
    """The witness's cosigning key, made the first time; its name is kept with it, since
    the key ID (and so every verifier's policy) depends on it."""
    settings = _settings(directory)
    kept = settings.get("name")
    if name is not None and kept is not None and name != kept:
        raise WitnessSetupError(f"this witness is named {kept!r}; its key ID depends on it")
    chosen = name or kept or "witness"
    if kept is None:
        _save(directory, {**settings, "name": chosen})
    try:
        return Signer(chosen, load_or_create_ed25519(directory / KEY_FILE), COSIGNATURE_V1)
    except NoteError as exc:
        raise WitnessSetupError(str(exc)) from None


def log_keys(vkeys: Sequence[str]) -> dict[str, list[Verifier]]:
    """Logs by origin: each vkey is a log's note key (type 0x01) named by its origin."""
    logs: dict[str, list[Verifier]] = {}
    for vkey in vkeys:
        try:
            verifier = Verifier.from_vkey(vkey)
        except NoteError as exc:
            raise WitnessSetupError(f"a log key: {exc}") from None
        if verifier.key_type != ED25519:
            raise WitnessSetupError(f"the key of {verifier.name} is not a log's note key")
        logs.setdefault(verifier.name, []).append(verifier)
    return logs


def load_witness(directory: Path, name: str | None, logs: Sequence[str]) -> Witness:
    """The witness of ``directory``; the logs given are kept, else the kept ones serve."""
    signer = witness_signer(directory, name)
    settings = _settings(directory)
    if logs:
        _save(directory, {**settings, "logs": list(logs)})
    else:
        logs = settings.get("logs", [])
    if not logs:
        raise WitnessSetupError("no log to witness: give each log's key with --log")
    return Witness(signer, log_keys(logs), State(directory / STATE_FILE))


def _settings(directory: Path) -> dict:
    try:
        return json.loads((directory / SETTINGS_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise WitnessSetupError(f"{SETTINGS_FILE} is not JSON: {exc}") from None


def _save(directory: Path, settings: dict) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / SETTINGS_FILE).write_text(json.dumps(settings, indent=1) + "\n")


def _problem(status: int, code: str, detail: str) -> JSONResponse:
    return JSONResponse(
        Problem(status, code, detail).body(),
        status_code=status,
        media_type="application/problem+json",
    )


def create_app(witness: Witness) -> FastAPI:
    app = FastAPI(title="dataauth witness", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/")
    def about() -> Response:
        """The witness's verifier key, then the origins it follows, one a line."""
        lines = [witness.signer.verifier.vkey(), *sorted(witness.logs)]
        return PlainTextResponse("\n".join(lines) + "\n")

    @app.post("/add-checkpoint")
    async def add_checkpoint(request: Request) -> Response:
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_BODY:
            return _problem(413, "too_large", f"an add-checkpoint body is at most {MAX_BODY}")
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY:
                return _problem(413, "too_large", f"an add-checkpoint body is at most {MAX_BODY}")
        try:
            # the state's lock and fsync block: off the event loop
            line = await run_in_threadpool(witness.add_checkpoint, body)
        except Rejected as exc:
            if exc.status == 409:
                # exactly this type: Starlette would add a charset to a text/ media type
                return Response(
                    f"{exc.size}\n".encode(), status_code=409, headers={"content-type": SIZE_TYPE}
                )
            return _problem(exc.status, exc.code, exc.detail)
        return Response(line, media_type=NOTE_TYPE)

    return app
