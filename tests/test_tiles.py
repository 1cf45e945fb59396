"""The log as C2SP tlog-tiles and checkpoints: paths, tiles, bundles, and a served log
verified over HTTP by our verifier and by Go's sumdb/tlog and sumdb/note."""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import text

from conftest import Running, start_beside, stop_gateway
from dataauth.audit.checkpoints import note_key
from dataauth.audit.merkle import MerkleTree, leaf_hash
from dataauth.audit.note import Checkpoint, Note, Signer, Verifier
from dataauth.audit.signing import Ed25519Signer
from dataauth.audit.tiles import (
    Tile,
    TilePathError,
    bundle,
    encode_index,
    hashes,
    parse_index,
    parse_tile,
    tile_data,
    tile_root,
    tiles_of,
    unbundle,
)

GO_SOURCE = Path(__file__).parent / "go" / "tlogcheck"
GO_TLOG = Path("/usr/share/gocode/src/golang.org/x/mod/sumdb/tlog")
"""Debian's golang-golang-x-mod-dev: Go's own note and tlog packages, for GOPATH builds."""


# -- paths, as c2sp.org/tlog-tiles writes them -------------------------------------


@pytest.mark.parametrize(
    ("index", "path"),
    [(0, "000"), (1, "001"), (999, "999"), (1000, "x001/000"), (1234067, "x001/x234/067")],
)
def test_tile_indexes_are_written_in_x_prefixed_groups_of_three(index: int, path: str) -> None:
    assert encode_index(index) == path  # 1234067 is the spec's own example
    assert parse_index(path) == (index, 256)
    assert Tile(0, index).path() == f"tile/0/{path}"
    assert Tile(None, index, 7).path() == f"tile/entries/{path}.p/7"


@pytest.mark.parametrize(
    "path",
    [
        "x001/234/067",  # an inner group without its x
        "1234",
        "01",
        "x000/001",  # not the one spelling of 1
        "001.p/0",
        "001.p/256",
        "001.p/01",
        "001.p/",
        "001/",
        "",
        "x001",
    ],
)
def test_other_spellings_of_an_index_are_refused(path: str) -> None:
    with pytest.raises(TilePathError):
        parse_index(path)


@pytest.mark.parametrize("path", ["tile/01/000", "tile/64/000", "tile/-1/000", "tiles/0/000"])
def test_levels_are_0_to_63_without_leading_zeroes(path: str) -> None:
    with pytest.raises(TilePathError):
        parse_tile(path)
    assert parse_tile("tile/63/000") == Tile(63, 0)


def _spec_tiles(size: int) -> list[tuple[int, int, int]]:
    return [(t.level or 0, t.index, t.width) for level in range(4) for t in tiles_of(size, level)]


def test_a_tree_is_made_of_the_tiles_the_spec_counts() -> None:
    """The spec's examples: 70,000 entries are 273 full level-0 tiles and one of 112, a
    full level-1 tile and one of 17, and a level-2 tile of 1; 256 entries are a full
    level-0 tile and a level-1 tile of width 1."""
    tiles = _spec_tiles(70_000)
    assert [t for t in tiles if t[0] == 0] == [(0, n, 256) for n in range(273)] + [(0, 273, 112)]
    assert [t for t in tiles if t[0] > 0] == [(1, 0, 256), (1, 1, 17), (2, 0, 1)]
    assert _spec_tiles(256) == [(0, 0, 256), (1, 0, 1)]
    assert _spec_tiles(0) == []
    assert [(b.index, b.width) for b in tiles_of(70_000, None)][-1] == (273, 112)


# -- tile contents: slices of the stored tree, checked against merkle.py's MTH -------


@pytest.fixture(scope="module")
def leaves() -> list[bytes]:
    return [leaf_hash(b"entry %d" % i) for i in range(70_000)]


@pytest.fixture(scope="module")
def tree(leaves: list[bytes]) -> MerkleTree:
    return MerkleTree(leaves)


def _mth(leaves: list[bytes], start: int, end: int) -> bytes:
    """MTH(D[start:end]) the long way: a tree of only those leaves."""
    return MerkleTree(leaves[start:end]).root()


def test_each_tile_holds_the_merkle_tree_hashes_the_spec_defines(
    tree: MerkleTree, leaves: list[bytes]
) -> None:
    for level, index, width in _spec_tiles(70_000):
        got = hashes(tile_data(tree, Tile(level, index, width)))
        assert len(got) == width
        span = 256**level
        for i in [0, width // 2, width - 1]:
            start = (index * 256 + i) * span
            assert got[i] == _mth(leaves, start, start + span), (level, index, i)


def test_a_tile_above_holds_the_hashes_of_the_full_tiles_below(tree: MerkleTree) -> None:
    upper = hashes(tile_data(tree, Tile(1, 0)))
    for n in (0, 1, 255):
        assert upper[n] == tile_root(hashes(tile_data(tree, Tile(0, n))))
    # the root of the tree from its tiles alone: MTH(D[0:65536]) then the rest
    assert hashes(tile_data(tree, Tile(2, 0, 1)))[0] == tree.root(65_536)


def test_partial_tiles_are_prefixes_and_no_tile_past_the_tree_is_made(tree: MerkleTree) -> None:
    full = tile_data(tree, Tile(0, 10))
    assert tile_data(tree, Tile(0, 10, 5)) == full[: 5 * 32]
    with pytest.raises(ValueError):
        tile_data(tree, Tile(0, 273))  # only 112 wide
    with pytest.raises(ValueError):
        tile_data(tree, Tile(1, 1, 18))
    assert tile_data(tree, Tile(0, 273, 112))


def test_an_entry_bundle_is_uint16_length_prefixed_and_wide_ones_uint32() -> None:
    entries = [b"", b"a", b"x" * 300, "中文".encode()]
    data = bundle(entries)
    assert data[:2] == b"\x00\x00" and data[2:5] == b"\x00\x01a"
    assert data[5:7] == (300).to_bytes(2, "big")
    assert unbundle(data) == entries
    big = [b"y" * 70_000]
    with pytest.raises(OverflowError):
        bundle(big)
    wide = bundle(big, wide=True)
    assert wide[:4] == (70_000).to_bytes(4, "big") and unbundle(wide, wide=True) == big
    for broken in (data[:-1], data + b"\x00", b"\x00\x05abc"):
        with pytest.raises(ValueError):
            unbundle(broken)


# -- Go's own tile paths (golang.org/x/mod/sumdb/tlog), where Go is here ------------


@pytest.fixture(scope="module")
def go_tlogcheck(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("go") is None or not GO_TLOG.is_dir():
        if os.environ.get("DATAAUTH_TEST_REQUIRE_GO") == "1":
            pytest.fail("go and golang-golang-x-mod-dev are required (DATAAUTH_TEST_REQUIRE_GO)")
        pytest.skip("Go and Debian's golang-golang-x-mod-dev are not installed")
    where = tmp_path_factory.mktemp("go")
    binary = where / "tlogcheck"
    env = {**os.environ, "GO111MODULE": "off", "GOPATH": "/usr/share/gocode",
           "GOCACHE": str(where / "cache"), "GOFLAGS": ""}  # fmt: skip
    subprocess.run(["go", "build", "-o", str(binary), "."], cwd=GO_SOURCE, env=env, check=True,
                   timeout=300)  # fmt: skip
    return binary


def _go(binary: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(binary), *args], capture_output=True, text=True, timeout=300)


def test_go_writes_the_same_tile_paths(go_tlogcheck: Path) -> None:
    indexes = [0, 1, 999, 1000, 65_535, 1_234_067, 10**9 + 7]
    out = _go(go_tlogcheck, "paths", *map(str, indexes)).stdout.split()
    assert out == [Tile(0, n).path() for n in indexes]


@pytest.mark.parametrize("size", [1, 255, 256, 257, 65_536, 70_000, 16_777_217])
def test_go_makes_a_tree_of_the_same_tiles(go_tlogcheck: Path, size: int) -> None:
    out = _go(go_tlogcheck, "tiles", str(size)).stdout.splitlines()
    go = sorted(tuple(map(int, line.split())) for line in out)
    assert go == sorted(_spec_tiles(size) + [(4, t.index, t.width) for t in tiles_of(size, 4)])


# -- a served gateway's log ------------------------------------------------------------


@pytest.fixture(scope="module")
def served(sqlite_gateway: Running, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """A gateway of its own (its rows are altered here) with 300 entries over a level-1
    tile, one of them over 65,535 bytes."""
    running = start_beside(sqlite_gateway, tmp_path_factory.mktemp("tiles"))
    headers = {"Authorization": f"Bearer {running.token()}"}
    with httpx.Client(base_url=running.url, headers=headers, timeout=60) as http:
        # a batch's entry: every subject's keyed hash, past a uint16's count
        subjects = [{"key": f"4401061990010{i:05d}", "claims": {"name": "张三"}}
                    for i in range(1000)]  # fmt: skip
        big = http.post("/v1/verify/identity-match", json={"purpose": "credit",
                        "subjects": subjects})  # fmt: skip
        assert big.status_code == 200, big.text
        for _ in range(299):  # refused before a decision, and logged
            assert http.post("/v1/verify/identity-match", json={}).status_code == 422
        deadline = time.monotonic() + 30
        while _size(http) < 300 and time.monotonic() < deadline:
            time.sleep(0.1)
    yield running
    stop_gateway(running)


def _size(http: httpx.Client) -> int:
    response = http.get("/checkpoint")
    if response.status_code != 200:
        return 0
    return Checkpoint.parse(Note.parse(response.content).text).size


def vkey_of(running: Running) -> str:
    listed = running.cli("audit", "vkey")
    assert listed.returncode == 0, listed.stderr
    (vkey,) = listed.stdout.split()
    return vkey


def regulator(running: Running) -> str:
    return running.token("cac-regulator", roles=("regulator",))


def test_the_checkpoint_is_a_signed_note_under_the_published_vkey(served: Running) -> None:
    response = httpx.get(f"{served.url}/checkpoint")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert "max-age=2" in response.headers["cache-control"]
    vkey = vkey_of(served)
    verifier = Verifier.from_vkey(vkey)
    assert verifier.vkey() == vkey and verifier.key_type == 0x01  # an Ed25519 note key
    note = Note.parse(response.content)
    assert note.open([verifier]) == [verifier]
    checkpoint = Checkpoint.parse(note.text)
    assert checkpoint.origin == verifier.name and checkpoint.size >= 300
    keys = httpx.get(f"{served.url}/v1/audit/keys").json()
    assert keys["vkeys"] == [vkey]
    # the note key is the head signer's own Ed25519 key
    (head_key,) = keys["keys"]
    assert verifier.name == f"dataauth/{head_key['key_id'][:16]}"
    head = httpx.get(f"{served.url}/v1/audit/tree-head").json()
    assert (head["size"], head["root"]) == (checkpoint.size, checkpoint.root.hex())


def test_tiles_are_served_with_their_caching(served: Running) -> None:
    full = httpx.get(f"{served.url}/tile/0/000")
    assert full.status_code == 200 and len(full.content) == 8192
    assert full.headers["content-type"] == "application/octet-stream"
    assert full.headers["cache-control"] == "public, max-age=31536000, immutable"
    partial = httpx.get(f"{served.url}/tile/0/001.p/3")
    assert partial.status_code == 200 and len(partial.content) == 96
    assert partial.headers["cache-control"] == "public, max-age=60"
    upper = httpx.get(f"{served.url}/tile/1/000.p/1")
    assert upper.content == tile_root(hashes(full.content))


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("tile/0/x001/000", 404, "tile_not_found"),
        ("tile/0/001", 404, "tile_not_found"),  # 300 entries: tile 1 is partial
        ("tile/0/001.p/255", 404, "tile_not_found"),
        ("tile/2/000.p/1", 404, "tile_not_found"),
        ("tile/63/000", 404, "tile_not_found"),
        ("tile/64/000", 400, "malformed_tile_path"),
        ("tile/01/000", 400, "malformed_tile_path"),
        ("tile/abc/000", 400, "malformed_tile_path"),
        ("tile/0/0001", 400, "malformed_tile_path"),
        ("tile/0/x000/001", 400, "malformed_tile_path"),
        ("tile/0/000.p/0", 400, "malformed_tile_path"),
        ("tile/0/000.p/256", 400, "malformed_tile_path"),
        ("tile/0/000/", 400, "malformed_tile_path"),
        ("tile/0/%2e%2e/000", 400, "malformed_tile_path"),
        ("tile/0/" + "x999/" * 400 + "999", 400, "malformed_tile_path"),
    ],
)
def test_out_of_range_and_malformed_tile_paths_are_problems(
    served: Running, path: str, status: int, code: str
) -> None:
    response = httpx.get(f"{served.url}/{path}")
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == code


def test_entry_bundles_are_a_regulators_and_a_large_entry_has_its_wide_bundle(
    served: Running,
) -> None:
    assert httpx.get(f"{served.url}/tile/entries/000").status_code == 401
    operator = {"Authorization": f"Bearer {served.token()}"}
    assert httpx.get(f"{served.url}/tile/entries/000", headers=operator).status_code == 403
    headers = {"Authorization": f"Bearer {regulator(served)}"}
    refused = httpx.get(f"{served.url}/tile/entries/000", headers=headers)
    assert refused.status_code == 404 and refused.json()["code"] == "entry_too_large"
    assert refused.headers["link"] == '</entries-wide/000>; rel="alternate"'
    wide = httpx.get(f"{served.url}/entries-wide/000", headers=headers)
    assert wide.status_code == 200 and "private" in wide.headers["cache-control"]
    entries = unbundle(wide.content, wide=True)
    assert len(entries) == 256 and len(entries[0]) > 65_535
    tile = hashes(httpx.get(f"{served.url}/tile/0/000").content)
    assert [hashlib.sha256(b"\x00" + e).digest() for e in entries] == tile
    small = httpx.get(f"{served.url}/tile/entries/001.p/44", headers=headers)
    assert small.status_code == 200 and small.headers.get("content-encoding") == "gzip"
    assert [json.loads(e)["index"] for e in unbundle(small.content)] == list(range(256, 300))
    assert httpx.get(f"{served.url}/tile/entries/002", headers=headers).status_code == 404


def verify_url(running: Running, url: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return running.cli("audit", "verify", "--url", url, "--vkey", vkey_of(running),
                       "--token", regulator(running), *extra)  # fmt: skip


def test_the_served_log_verifies_as_tiles(served: Running) -> None:
    done = verify_url(served, served.url)
    assert done.returncode == 0, done.stderr
    assert "verified: " in done.stdout and " entries of dataauth/" in done.stdout
    assert "2 entry bundles, 3 tiles" in done.stdout  # 0/000, 0/001.p/44, 1/000.p/1


def test_go_verifies_the_served_log_with_its_own_note_and_tlog(
    served: Running, go_tlogcheck: Path
) -> None:
    done = _go(go_tlogcheck, "verify", served.url, vkey_of(served), regulator(served))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("verified ") and " entries of dataauth/" in done.stdout


def test_a_wrong_vkey_is_refused(served: Running, tmp_path: Path) -> None:
    vkey = vkey_of(served)
    name = vkey.split("+")[0]
    other = Verifier(name, 0x01, bytes(32)).vkey()  # same name, another key
    done = served.cli("audit", "verify", "--url", served.url, "--vkey", other,
                      "--token", regulator(served))  # fmt: skip
    assert done.returncode == 1 and "no signature from a known key" in done.stderr
    assert served.cli("audit", "verify", "--url", served.url).returncode == 2  # no --vkey


@pytest.fixture
def altering(served: Running) -> Iterator[Callable[[str, Callable[[bytes], bytes]], str]]:
    """A proxy in front of the gateway that rewrites the body of one path."""
    rules: dict[str, Callable[[bytes], bytes]] = {}

    class Proxy(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            headers = {k: v for k, v in self.headers.items() if k.lower() == "authorization"}
            upstream = httpx.get(served.url + self.path, headers=headers)
            body = upstream.content
            if self.path.lstrip("/") in rules:
                body = rules[self.path.lstrip("/")](body)
            self.send_response(upstream.status_code)
            self.send_header("Content-Type", upstream.headers["content-type"])
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    def alter(path: str, change: Callable[[bytes], bytes]) -> str:
        rules[path] = change
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield alter
    server.shutdown()


def _flip(at: int) -> Callable[[bytes], bytes]:
    return lambda body: body[:at] + bytes([body[at] ^ 1]) + body[at + 1 :]


@pytest.mark.parametrize(
    ("path", "change", "named"),
    [
        ("tile/0/001.p/44", _flip(32 * 5), "tile/0/001.p/44: the leaf hash of entry 261"),
        ("tile/1/000.p/1", _flip(0), "tile/1/000.p/1: does not hold the hashes"),
        ("checkpoint", lambda b: b.replace(b"\n300\n", b"\n299\n", 1), "does not verify"),
        ("tile/entries/001.p/44", lambda b: b[:-1] + b"!", "entry 299: the line is not entry"),
    ],
)
def test_an_altered_tile_entry_or_checkpoint_fails_and_is_named(
    served: Running, altering, path: str, change, named: str
) -> None:
    # the bundle is altered as the gateway sends it: uncompressed, for the proxy to edit
    url = altering(path, change)
    done = verify_url(served, url)
    assert done.returncode == 1 and named in done.stderr, done.stderr


def test_an_entry_altered_in_the_database_is_named(served: Running) -> None:
    """As someone with the database's keys could: drop the append-only trigger, rewrite
    an entry's bytes (not its stored leaf hash), and put the trigger back."""
    select = text('SELECT canonical FROM audit_entry WHERE "index" = 270')
    update = text('UPDATE audit_entry SET canonical = :c WHERE "index" = 270')
    trigger = text("SELECT sql FROM sqlite_master WHERE name = 'audit_entry_no_update'")
    with served.gateway_db() as db:
        original = bytes(db.execute(select).scalar())
        changed = original.replace(b'"outcome":"rejected"', b'"outcome":"released"')
        assert changed != original
        guard = db.execute(trigger).scalar()
        db.execute(text("DROP TRIGGER audit_entry_no_update"))
        db.execute(update, {"c": changed})
        db.commit()
        try:
            done = verify_url(served, served.url)
        finally:
            db.execute(update, {"c": original})
            db.execute(text(guard))
            db.commit()
    assert done.returncode == 1
    assert "entry 270: its content is not what the checkpoint signed" in done.stderr


def test_an_export_carries_the_checkpoints_and_verify_checks_them(
    served: Running, tmp_path: Path
) -> None:
    out = tmp_path / "export"
    assert served.cli("audit", "export", str(out)).returncode == 0
    heads = json.loads((out / "heads.json").read_text())
    assert heads and all("checkpoint" in h for h in heads)
    assert json.loads((out / "keys.json").read_text())["vkeys"] == [vkey_of(served)]
    done = served.cli("audit", "verify", str(out), "--vkey", vkey_of(served))
    assert done.returncode == 0, done.stderr
    assert f"{len(heads)} checkpoints of {len(heads)} signed" in done.stdout
    # a checkpoint of another tree, signed with the right key, is still refused: its root
    first = Note.parse(heads[0]["checkpoint"].encode())
    heads[-1]["checkpoint"] = heads[0]["checkpoint"]
    (out / "heads.json").write_text(json.dumps(heads))
    done = served.cli("audit", "verify", str(out))
    assert done.returncode == 1 and "its checkpoint is of another tree" in done.stderr
    assert Checkpoint.parse(first.text).size == heads[0]["size"]


def _log_signer(running: Running, origin: str) -> Signer:
    """The log's own note key, as someone holding the gateway's keys has it."""
    keys = running.data_dir / "keys"
    return Signer(origin, note_key(Ed25519Signer.from_keys_dir(keys), keys))


def test_a_kept_checkpoint_is_extended_and_a_split_view_or_rollback_is_refused(
    served: Running, tmp_path: Path
) -> None:
    kept = tmp_path / "checkpoint"
    first = verify_url(served, served.url, "--keep", str(kept))
    assert first.returncode == 0, first.stderr
    note = Note.parse(kept.read_bytes())
    now = Checkpoint.parse(note.text)
    assert now.size >= 300 and note.open([Verifier.from_vkey(vkey_of(served))])
    again = verify_url(served, served.url, "--since", str(kept))
    assert again.returncode == 0, again.stderr
    assert f"it extends the earlier checkpoint of size {now.size}" in again.stdout
    # the same key signed another tree of 100 entries, shown to someone else: a split view
    signer = _log_signer(served, now.origin)
    other = tmp_path / "other"
    other.write_bytes(Checkpoint(now.origin, 100, bytes(32)).sign(signer).serialise())
    split = verify_url(served, served.url, "--since", str(other))
    assert split.returncode == 1
    assert "does not extend the earlier checkpoint: its first 100 entries" in split.stderr
    # a checkpoint larger than the log's: it was rolled back (or this is a fork)
    ahead = tmp_path / "ahead"
    ahead.write_bytes(Checkpoint(now.origin, now.size + 5, bytes(32)).sign(signer).serialise())
    rolled = verify_url(served, served.url, "--since", str(ahead))
    assert rolled.returncode == 1 and "below the earlier checkpoint's" in rolled.stderr
    # one not signed by the log's key proves nothing
    stranger = Signer(now.origin, Ed25519PrivateKey.generate())
    forged = tmp_path / "forged"
    forged.write_bytes(Checkpoint(now.origin, 100, bytes(32)).sign(stranger).serialise())
    refused = verify_url(served, served.url, "--since", str(forged))
    assert refused.returncode == 1 and "the earlier checkpoint" in refused.stderr
    assert served.cli("audit", "verify", str(tmp_path), "--since", str(kept)).returncode == 2


def test_a_witness_policy_applies_to_the_served_checkpoint(served: Running, tmp_path: Path) -> None:
    """This gateway has no witnesses: its checkpoint carries no cosignature, so a policy
    needing one fails, naming the witness that is missing."""
    name = "witness.example.test/w1"
    key = [sys.executable, "-m", "dataauth.cli", "witness", "key", "--dir", str(tmp_path)]
    made = subprocess.run([*key, "--name", name], capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    done = verify_url(served, served.url, "--witness", made.stdout.strip())
    assert done.returncode == 1
    assert "the witness policy is not met" in done.stderr and name in done.stderr
