"""Structured logs: one JSON object a line, and nothing personal in any of them.

Log records carry event names, route templates, codes and exception types. An
exception's message is left out (a database error can quote the values it was given);
its frames (file, line, function) are kept, which is what finding the fault needs.

Our own loggers (``dataauth.*``) log no request content. Libraries' loggers do: sqlglot
warns with the SQL it was given, literals included; uvicorn's error log and asyncio
print exception messages; httpx logs URLs. Rather than a list of such loggers, which
goes stale with every new library, one rule holds for every logger that is not ours:
below ERROR its records are dropped, and at ERROR and above only the logger's name, the
level and the exception's type and frames are written, never the message.
"""

from __future__ import annotations

import logging
import sys
import threading
import traceback
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import orjson

KEEP = ("method", "route", "status", "ms", "kind", "outcome", "code")
"""Extra fields a record may carry (``log.info("request", extra={...})``)."""

OURS = "dataauth"
WITHHELD = "message withheld: a library's log may quote request content"


def ours(name: str) -> bool:
    return name == OURS or name.startswith(OURS + ".")


class LibraryRedaction(logging.Filter):
    """Drops other loggers' records below ERROR; of the rest keeps no message text."""

    def filter(self, record: logging.LogRecord) -> bool:
        if ours(record.name):
            return True
        if record.levelno < logging.ERROR:
            return False
        record.msg, record.args = WITHHELD, None
        record.exc_text, record.stack_info = None, None
        for name in KEEP:  # a library's extras are not ours to trust
            record.__dict__.pop(name, None)
        return True


def frames(trace: TracebackType | None) -> list[str]:
    return [
        f"{frame.filename}:{frame.lineno} in {frame.name}"
        for frame in traceback.extract_tb(trace)[-8:]
    ]


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
            entry["frames"] = frames(trace)
        return orjson.dumps(entry).decode()


class TextFormatter(logging.Formatter):
    """One line for a person at a terminal: like logging's, but an exception is its type
    and frames, not its message (logging's own would print the message)."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = self.formatMessage(self._with_time(record))
        if record.exc_info and record.exc_info[0] is not None:
            kind, _, trace = record.exc_info
            line += f" error={kind.__name__} " + " < ".join(reversed(frames(trace)))
        return line

    def _with_time(self, record: logging.LogRecord) -> logging.LogRecord:
        record.message = record.getMessage()
        record.asctime = self.formatTime(record)
        return record


uncaught = logging.getLogger("dataauth.uncaught")


def _log_thread_exception(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is not SystemExit:
        exc_info = (args.exc_type, args.exc_value, args.exc_traceback)
        uncaught.error("uncaught exception in a thread", exc_info=exc_info)


def _log_unraisable(unraisable: Any) -> None:
    kind = type(unraisable.exc_value)
    uncaught.error("unraisable exception", exc_info=(
        kind, unraisable.exc_value, unraisable.exc_traceback))  # fmt: skip


def configure(form: str = "auto", level: str = "info") -> None:
    """Send every logger (uvicorn's included) to stderr in ``form``: json, text, or auto
    (text for a person at a terminal, JSON for a log collector), under one rule for
    libraries' loggers (``LibraryRedaction``)."""
    handler = logging.StreamHandler(sys.stderr)
    if form == "json" or (form == "auto" and not sys.stderr.isatty()):
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter())
    handler.addFilter(LibraryRedaction())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # a library logger with a handler of its own (uvicorn's) would write past the rule
    for logger in list(logging.Logger.manager.loggerDict.values()):
        if isinstance(logger, logging.Logger) and not ours(logger.name):
            logger.handlers[:] = []
            logger.propagate = True
    # the access log would print paths with their query strings: ours logs route templates
    logging.getLogger("uvicorn.access").disabled = True
    # Python warnings (a library's can quote its input) go through logging, and so are
    # dropped; uncaught exceptions in threads are logged by type and frames
    logging.captureWarnings(True)
    threading.excepthook = _log_thread_exception
    sys.unraisablehook = _log_unraisable
    quiet_native_libraries()


def quiet_native_libraries() -> None:
    """onnxruntime logs from C++ straight to stderr, past Python's logging: a model's
    node names and shapes, which an operator chooses, are in its messages."""
    import onnxruntime

    onnxruntime.set_default_logger_severity(4)  # FATAL only
