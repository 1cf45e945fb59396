"""The one audit writer of several worker processes: their entries share commits, stay
gap-free and verify; a worker whose writer is gone writes itself or fails closed; a
worker killed under load loses no acknowledged entry."""

from __future__ import annotations

import hashlib
import multiprocessing as mp
import os
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, text

from conftest import DATABASES, cluster, on_each_database, start_beside, stop_gateway
from dataauth.audit.log import LEAF_PREFIX, AuditLog
from dataauth.audit.writer import EntryNotAcknowledged, WriterClient, WriterServer
from dataauth.store.engine import gateway_engine
from test_audit_append_with import STEPS, action, step
from test_crash import assert_every_receipt_kept

PROCESSES = 3
THREADS = 8
EACH = 25


@pytest.fixture(params=DATABASES)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'gateway.sqlite'}"
    return cluster().new_database()


@pytest.fixture
def writer(url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WriterServer]:
    commits: list[int] = []
    engine = gateway_engine(url)
    # a short folder: a socket's path is limited to 107 bytes
    path = os.path.join(str(tmp_path_factory.mktemp("w")), "s")
    server = WriterServer(AuditLog(engine, on_commit=lambda: commits.append(1)), path)
    server.start()
    server.commits = commits  # type: ignore[attr-defined]
    yield server
    server.stop()
    engine.dispose()


def worker(url: str, path: str, n: int, out: mp.Queue) -> None:
    """A worker process: threads appending through the writer, some steps of its own."""
    engine = gateway_engine(url)
    log = AuditLog(engine, remote=WriterClient(path))

    def appends(thread: int) -> list[tuple[int, str]]:
        got = []
        for k in range(EACH):
            receipt = log.append(action((n * THREADS + thread) * EACH + k, "append"))
            got.append((receipt.entry, receipt.leaf_hash))
        return got

    with ThreadPoolExecutor(THREADS) as pool:
        results = list(pool.map(appends, range(THREADS)))
    out.put([receipt for got in results for receipt in got])
    engine.dispose()


def rows(engine: Engine) -> list:
    with engine.connect() as connection:
        sql = 'SELECT "index", canonical, leaf_hash FROM audit_entry ORDER BY "index"'
        return list(connection.execute(text(sql)))


def test_processes_share_the_writers_commits_gap_free(url, writer):
    queue: mp.Queue = mp.get_context("spawn").Queue()
    context = mp.get_context("spawn")
    processes = [
        context.Process(target=worker, args=(url, writer.path, n, queue)) for n in range(PROCESSES)
    ]
    for process in processes:
        process.start()
    # administrative steps beside them, on the same write lock, in this process
    engine = gateway_engine(url)
    STEPS.create(engine, checkfirst=True)
    local = AuditLog(engine)
    for n in range(1, 21):
        step(local, 10_000 + n)
    receipts = [receipt for _ in processes for receipt in queue.get(timeout=120)]
    for process in processes:
        process.join(timeout=30)
        assert process.exitcode == 0

    total = PROCESSES * THREADS * EACH
    assert len(receipts) == total
    written = rows(engine)
    assert [row[0] for row in written] == list(range(len(written)))  # no gap, no duplicate
    assert len(written) == total + 16  # and each step that was not refused
    by_index = {row[0]: row for row in written}
    for index, leaf in receipts:
        _, canonical, stored = by_index[index]
        stored, canonical = bytes(stored), bytes(canonical)
        assert stored.hex() == leaf
        assert hashlib.sha256(LEAF_PREFIX + canonical).digest() == stored
        assert canonical.endswith(b',"index":%d}' % index)
    assert len(writer.commits) < total  # entries of several threads and processes shared one
    engine.dispose()


def test_a_worker_without_a_writer_writes_its_own_entries(url, tmp_path):
    engine = gateway_engine(url)
    log = AuditLog(engine, remote=WriterClient(str(tmp_path / "none")))
    receipts = [log.append(action(n, "append")) for n in range(3)]
    assert [receipt.entry for receipt in receipts] == [0, 1, 2]
    engine.dispose()


def test_a_writer_gone_after_the_entry_was_sent_fails_the_append(tmp_path):
    path = str(tmp_path / "s")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(1)

    def vanish() -> None:  # takes the entry, and goes away before it answers
        connection, _ = listener.accept()
        connection.recv(1 << 16)
        connection.close()

    thread = threading.Thread(target=vanish)
    thread.start()
    client = WriterClient(path)
    row = {"time": "t", "operator_id": "o", "operation": "k", "allowed": True}
    with pytest.raises(EntryNotAcknowledged):
        client.write(row, b'{"entry":{},"index":')
    thread.join()
    listener.close()


@pytest.fixture(scope="module", params=DATABASES)
def gateway(request):
    return on_each_database(request)


@pytest.mark.slow
def test_a_worker_killed_under_load_loses_no_acknowledged_entry(gateway, tmp_path):
    running = start_beside(gateway, tmp_path, "--workers", "2")
    workers = [int(pid) for pid in _children(running.process.pid)]
    headers = {"Authorization": f"Bearer {running.token('demo-bank')}"}
    body = {"purpose": "credit", "subjects": [{"key": "1", "claims": {"threshold": 3000}}]}
    received: list[dict] = []
    stop = threading.Event()

    def send() -> None:
        while not stop.is_set():
            with httpx.Client(base_url=running.url, timeout=10) as http:
                while not stop.is_set():
                    try:
                        response = http.post(
                            "/v1/verify/income-at-least", json=body, headers=headers
                        )
                    except httpx.HTTPError:
                        break  # its worker was killed: connect again
                    if response.status_code == 200:
                        received.append(response.json()["audit"])

    clients = [threading.Thread(target=send) for _ in range(6)]
    for thread in clients:
        thread.start()
    time.sleep(1.5)
    os.kill(workers[-1], 9)  # SIGKILL one worker mid-request: the other goes on
    time.sleep(1.5)
    stop.set()
    for thread in clients:
        thread.join(timeout=20)
    stop_gateway(running)
    assert len(received) > 20

    assert_every_receipt_kept(running, received, tmp_path)


def _children(pid: int) -> list[str]:
    """The worker processes of ``dataauth serve`` (spawned by uvicorn's supervisor)."""
    found = []
    for task in os.listdir(f"/proc/{pid}/task"):
        found += Path(f"/proc/{pid}/task/{task}/children").read_text().split()
    workers = [c for c in found if "spawn_main" in Path(f"/proc/{c}/cmdline").read_text()]
    return [c for c in workers if "resource_tracker" not in Path(f"/proc/{c}/cmdline").read_text()]


def test_a_sender_of_garbage_is_dropped_and_the_writer_goes_on(url, writer):
    garbage = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    garbage.connect(writer.path)
    garbage.sendall(b"\x00\x00\x00\x03\x00\x00\x00\x00{x}")
    assert garbage.recv(64) == b""  # closed on it
    garbage.close()
    engine = gateway_engine(url)
    log = AuditLog(engine, remote=WriterClient(writer.path))
    assert log.append(action(1, "append")).entry == 0
    assert writer.commits == [1]  # written by the writer, not by this process
    engine.dispose()


def test_a_stopped_writer_leaves_its_workers_writing_their_own(url, writer):
    engine = gateway_engine(url)
    log = AuditLog(engine, remote=WriterClient(writer.path))
    assert log.append(action(1, "append")).entry == 0
    writer.stop()
    assert not os.path.exists(writer.path)
    # the connection is closed, so not even part of the entry goes: the worker writes it
    assert log.append(action(2, "append")).entry == 1
    assert writer.commits == [1]
    engine.dispose()
