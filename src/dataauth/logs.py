"""Structured logs: one JSON object a line, and nothing personal in any of them.

Log records carry event names, route templates, codes and exception types. An
exception's message is left out (a database error can quote the values it was given);
its frames (file, line, function) are kept, which is what finding the fault needs.
"""

from __future__ import annotations

import logging
import sys
import traceback
from datetime import UTC, datetime
from typing import Any

import orjson

KEEP = ("method", "route", "status", "ms", "kind", "outcome", "code")
"""Extra fields a record may carry (``log.info("request", extra={...})``)."""


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        entry.update({k: getattr(record, k) for k in KEEP if hasattr(record, k)})
        if record.exc_info and record.exc_info[0] is not None:
            kind, _, trace = record.exc_info
            entry["error"] = kind.__name__
            entry["frames"] = [
                f"{frame.filename}:{frame.lineno} in {frame.name}"
                for frame in traceback.extract_tb(trace)[-8:]
            ]
        return orjson.dumps(entry).decode()


def configure(form: str = "auto", level: str = "info") -> None:
    """Send every logger (uvicorn's included) to stderr in ``form``: json, text, or auto
    (text for a person at a terminal, JSON for a log collector)."""
    handler = logging.StreamHandler(sys.stderr)
    if form == "json" or (form == "auto" and not sys.stderr.isatty()):
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    # the access log would print paths with their query strings: ours logs route templates
    logging.getLogger("uvicorn.access").disabled = True
