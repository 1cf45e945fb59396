"""Log lines: JSON for collectors, text for a person at a terminal; nothing personal."""

from __future__ import annotations

import json
import logging
import os
import sys
import threading

import pytest

from dataauth import logs


@pytest.fixture
def root_restored():
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    hooks = threading.excepthook, sys.unraisablehook
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    threading.excepthook, sys.unraisablehook = hooks
    logging.captureWarnings(False)


@pytest.mark.parametrize(("terminal", "form", "json_lines"), [
    (True, "auto", False), (False, "auto", True), (True, "json", True), (False, "text", False),
])  # fmt: skip
def test_the_form_follows_the_setting_and_the_terminal(
    monkeypatch, root_restored, terminal, form, json_lines
):
    reader, writer = os.openpty() if terminal else os.pipe()
    stream = os.fdopen(writer, "w")
    monkeypatch.setattr(sys, "stderr", stream)
    logs.configure(form, "info")
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler.formatter, logs.JsonFormatter) is json_lines
    stream.close()
    os.close(reader)


def test_an_exception_is_logged_by_type_and_frames_not_its_message():
    try:
        raise ValueError("440115195011083222 陈丽")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", None, sys.exc_info())
    line = json.loads(logs.JsonFormatter().format(record))
    assert line["error"] == "ValueError" and line["frames"]
    assert "440115195011083222" not in json.dumps(line, ensure_ascii=False)


def test_the_text_form_gives_an_exception_by_type_and_frames_not_its_message():
    try:
        raise ValueError("440115195011083222 陈丽")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", None, sys.exc_info())
    line = logs.TextFormatter().format(record)
    assert "error=ValueError" in line and "test_logs.py" in line
    assert "440115195011083222" not in line and "陈丽" not in line


def captured(monkeypatch, form: str):
    """Lines written through ``logs.configure(form, "debug")``: a pipe read back."""
    reader, writer = os.pipe()
    stream = os.fdopen(writer, "w")
    monkeypatch.setattr(sys, "stderr", stream)
    logs.configure(form, "debug")
    lines: list[str] = []

    def read() -> list[str]:
        stream.close()
        with os.fdopen(reader) as pipe:
            lines.extend(pipe.read().splitlines())
        return lines

    return read


@pytest.mark.parametrize("form", ["json", "text"])
def test_a_librarys_records_keep_no_message_and_ours_are_kept(monkeypatch, root_restored, form):
    """The rule holds for any logger that is not ours, named in no list."""
    read = captured(monkeypatch, form)
    secret = "440115195011083222 陈丽 23456.78"
    logging.getLogger("sqlglot").warning("'%s' contains unsupported syntax", secret)
    logging.getLogger("some.future.library").info(secret)
    logging.getLogger("uvicorn.error").debug(secret)
    try:
        raise RuntimeError(secret)
    except RuntimeError:
        logging.getLogger("asyncio").exception("Task exception was never retrieved %s", secret)
    logging.getLogger("dataauth.gateway").warning("refused: %s", "sql_syntax")
    lines = read()
    whole = "\n".join(lines)
    assert "440115195011083222" not in whole and "陈丽" not in whole and "23456.78" not in whole
    assert len(lines) == 2, lines  # the library's error, withheld, and ours
    assert "asyncio" in lines[0] and logs.WITHHELD in lines[0] and "RuntimeError" in lines[0]
    assert "dataauth.gateway" in lines[1] and "refused: sql_syntax" in lines[1]


def test_an_uncaught_exception_in_a_thread_is_logged_without_its_message(
    monkeypatch, root_restored
):
    read = captured(monkeypatch, "json")

    def fail() -> None:
        raise KeyError("440115195011083222 陈丽")

    worker = threading.Thread(target=fail)
    worker.start()
    worker.join()
    [line] = read()
    record = json.loads(line)
    assert record["logger"] == "dataauth.uncaught" and record["error"] == "KeyError"
    assert "440115195011083222" not in line and "陈丽" not in line
