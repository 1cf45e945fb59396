"""The shell examples of README.md and docs/*.md, run against a real demo gateway.

A doc's runnable examples are its fenced blocks marked ``console``: lines starting
``$ `` are commands (a line ending in ``\\`` goes on to the next), the lines after one
are its expected output (stdout and stderr, as a terminal shows them). Blocks marked
``sh`` (installing, ``serve``, settings of a deployment) are shown, not run. A block
marked ``python file=NAME`` is a script the examples after it run: it is written to
NAME in the working directory when the examples reach it.

Each doc is one test: its examples run in order, in one bash session (so a variable
one command sets is there for the next), in a fresh temporary directory holding a copy
of ``policies/`` and ``tests/data/`` (the examples read them as from the repository
root, and whatever they write stays there), against a fresh gateway of its own
(``dataauth serve --demo`` on a data directory and port of its own, so audit entry
numbers count from 0 in every doc). The session is given ``DATAAUTH_URL`` and
``DATAAUTH_DATA_DIR``, the names the examples use, and the package's scripts first on
``PATH``, as an activated virtual environment has them.

In expected output, ``...`` matches any run of text within a line, and a line that is
only ``...`` matches any number of lines (doctest's ELLIPSIS, line by line): for
digests, tokens, times and noise. Trailing spaces are ignored.

The gateway's department clock is set to about noon (``zone_at(12)``, as for the
suite's other gateways) so the demo insurer's allowed hours do not make a doc's output
depend on when the suite runs; the docs say what happens outside them.

A runner of our own rather than pytest-examples: that package checks Python code blocks
and their print output, while these examples are shell sessions whose state (variables,
files) carries from one block to the next against a live server; a bash process fed
one command at a time is fifty lines.
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import Running, start_beside, stop_gateway

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
COMMAND_SECONDS = 120


@dataclass
class Example:
    line: int
    command: str
    expected: str
    file: str | None = None
    """A ``python file=NAME`` block: NAME, and ``command`` is its content."""


def examples(path: Path) -> list[Example]:
    """Every ``$ `` command of the doc's ``console`` blocks, with its expected output."""
    found: list[Example] = []
    lines = path.read_text().splitlines()
    i = 0
    while i < len(lines):
        script = re.fullmatch(r"```python file=(\S+)", lines[i].strip())
        if script:
            end = lines.index("```", i + 1)
            found.append(Example(i + 1, "\n".join(lines[i + 1 : end]) + "\n", "", script[1]))
            i = end + 1
            continue
        if lines[i].strip() != "```console":
            i += 1
            continue
        i += 1
        while i < len(lines) and lines[i].strip() != "```":
            if not lines[i].startswith("$ "):
                raise ValueError(f"{path.name}:{i + 1}: a console block starts with '$ '")
            start, command = i + 1, [lines[i][2:]]
            while command[-1].endswith("\\") and i + 1 < len(lines):
                i += 1
                command.append(lines[i])
            i += 1
            output: list[str] = []
            while i < len(lines) and lines[i].strip() != "```" and not lines[i].startswith("$ "):
                output.append(lines[i])
                i += 1
            found.append(Example(start, "\n".join(command), "\n".join(output)))
        i += 1
    return found


def pattern(expected: str) -> re.Pattern[str]:
    """``...`` as any text within a line; a line of ``...`` alone as any lines."""
    parts = []
    for line in expected.splitlines():
        if line.strip() == "...":
            parts.append(r"(?:[^\n]*\n)*?")
        else:
            text = ".*?".join(re.escape(piece) for piece in line.rstrip().split("..."))
            parts.append(text.replace(".*?", r"[^\n]*?") + r"\n")
    return re.compile("".join(parts))


def matches(expected: str, actual: str) -> bool:
    normal = "".join(line.rstrip() + "\n" for line in actual.splitlines())
    return pattern(expected).fullmatch(normal) is not None


class Shell:
    """One bash session, fed a command at a time, its output read up to a marker."""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.marker = f"__done_{uuid.uuid4().hex}__"
        self.process = subprocess.Popen(
            ["bash", "--noprofile", "--norc"],
            cwd=cwd,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)

    def run(self, command: str) -> str:
        assert self.process.stdin is not None
        # stdin from /dev/null: a command must not read the session's own input
        self.process.stdin.write(f"{{\n{command}\n}} </dev/null 2>&1\necho; echo {self.marker}\n")
        self.process.stdin.flush()
        output: list[str] = []
        deadline = time.monotonic() + COMMAND_SECONDS
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise TimeoutError(f"no end after {COMMAND_SECONDS} s: {command}") from None
            if line.rstrip("\n") == self.marker:
                break
            output.append(line)
        text = "".join(output)
        # the marker's own blank line: one newline after output that ended in one
        return text[:-1] if text.endswith("\n") else text

    def close(self) -> None:
        self.process.kill()
        self.process.wait()


def workspace(where: Path) -> Path:
    """A directory shaped like the repository root, as far as the examples read it."""
    shutil.copytree(ROOT / "policies", where / "policies")
    shutil.copytree(ROOT / "tests" / "data", where / "tests" / "data")
    return where


RUN = [doc for doc in DOCS if examples(doc)]
"""The docs with shell examples; the others (architecture, privacy, benchmarks) show
code that tests of their own check, or none."""


def test_the_docs_that_run_are_the_ones_that_teach_commands() -> None:
    assert [doc.name for doc in RUN] == [
        "README.md",
        "departments.md",
        "deployment.md",
        "operators.md",
        "regulators.md",
    ]


def test_ci_runs_the_readmes_second_command() -> None:
    readme = (ROOT / "README.md").read_text()
    block = readme.split("```sh\n", 1)[1].split("```", 1)[0].splitlines()
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert ci[-1] == block[1]


@pytest.mark.parametrize("doc", RUN, ids=[path.name for path in RUN])
def test_doc_examples(doc: Path, gateway: Running, tmp_path: Path) -> None:
    found = examples(doc)
    cwd = workspace(tmp_path / "work")
    running = start_beside(gateway, tmp_path / "gateway",
                           env={"DATAAUTH_POLICY_DIR": str(cwd / "policies")})  # fmt: skip
    env = {**os.environ,
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "DATAAUTH_URL": running.url, "DATAAUTH_DATA_DIR": str(running.data_dir),
           "HOME": str(tmp_path), "COLUMNS": "100", "NO_COLOR": "1"}  # fmt: skip
    shell = Shell(cwd, env)
    failures = []
    try:
        for example in found:
            if example.file:
                (cwd / example.file).write_text(example.command)
                continue
            actual = shell.run(example.command)
            if not matches(example.expected, actual):
                failures.append(
                    f"{doc.name}:{example.line}: $ {example.command}\n"
                    f"--- expected\n{example.expected}\n--- got\n{actual}"
                )
    finally:
        shell.close()
        stop_gateway(running)
    assert not failures, f"{len(failures)} of {len(found)} examples differ:\n\n" + "\n\n".join(
        failures
    )
