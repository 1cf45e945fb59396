"""Log lines: JSON for collectors, text for a person at a terminal; nothing personal."""

from __future__ import annotations

import json
import logging
import os
import sys

import pytest

from dataauth import logs


@pytest.fixture
def root_restored():
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


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
