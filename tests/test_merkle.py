"""The Merkle tree against RFC 6962 test vectors and a naive reference, over many sizes."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dataauth.audit.merkle import (
    EMPTY_ROOT,
    Frontier,
    MerkleTree,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_hash,
    verify_consistency,
    verify_inclusion,
)

# Certificate Transparency's reference data (certificate-transparency-go, merkle tests)
LEAVES = [bytes.fromhex(h) for h in (
    "", "00", "10", "2021", "3031", "40414243", "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
)]  # fmt: skip
ROOTS = [bytes.fromhex(h) for h in (
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
)]  # fmt: skip
H = {
    "96a2": "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
    "5f08": "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
    "6b47": "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    "bc1a": "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    "ca85": "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
    "d37e": "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "fac5": "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "6e34": "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "0ebc": "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
}
INCLUSION = [  # (0-based index, size, proof)
    (0, 8, ["96a2", "5f08", "6b47"]),
    (5, 8, ["bc1a", "ca85", "d37e"]),
    (2, 3, ["fac5"]),
    (1, 5, ["6e34", "5f08", "bc1a"]),
]
CONSISTENCY = [(1, 8, ["96a2", "5f08", "6b47"]), (6, 8, ["0ebc", "ca85", "d37e"]),
               (2, 5, ["5f08", "bc1a"])]  # fmt: skip

HASHED = [leaf_hash(leaf) for leaf in LEAVES]


def proof_of(names):
    return [bytes.fromhex(H[n]) for n in names]


def reference_root(leaves):
    """MTH straight from RFC 6962 section 2.1, recursively."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    return node_hash(reference_root(leaves[:k]), reference_root(leaves[k:]))


def reference_path(m, leaves):
    if len(leaves) <= 1:
        return []
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    if m < k:
        return [*reference_path(m, leaves[:k]), reference_root(leaves[k:])]
    return [*reference_path(m - k, leaves[k:]), reference_root(leaves[:k])]


def reference_subproof(m, leaves, complete):
    if m == len(leaves):
        return [] if complete else [reference_root(leaves)]
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    if m <= k:
        return [*reference_subproof(m, leaves[:k], complete), reference_root(leaves[k:])]
    return [*reference_subproof(m - k, leaves[k:], False), reference_root(leaves[:k])]


def test_published_roots():
    assert root_hash([]) == EMPTY_ROOT == hashlib.sha256(b"").digest()
    for size in range(1, 9):
        assert root_hash(HASHED[:size]) == ROOTS[size - 1]
    tree = MerkleTree(HASHED)
    assert [tree.root(size) for size in range(1, 9)] == ROOTS


@pytest.mark.parametrize(("index", "size", "names"), INCLUSION)
def test_published_inclusion_proofs(index, size, names):
    assert inclusion_proof(index, size, HASHED) == proof_of(names)
    assert verify_inclusion(HASHED[index], index, size, proof_of(names), ROOTS[size - 1])


@pytest.mark.parametrize(("old", "new", "names"), CONSISTENCY)
def test_published_consistency_proofs(old, new, names):
    assert consistency_proof(old, new, HASHED) == proof_of(names)
    assert verify_consistency(old, new, ROOTS[old - 1], ROOTS[new - 1], proof_of(names))


def test_trivial_consistency():
    assert verify_consistency(0, 5, EMPTY_ROOT, ROOTS[4], [])
    assert verify_consistency(3, 3, ROOTS[2], ROOTS[2], [])
    assert not verify_consistency(3, 3, ROOTS[2], ROOTS[3], [])
    assert not verify_consistency(2, 1, ROOTS[1], ROOTS[0], [])
    assert not verify_consistency(1, 2, ROOTS[0], ROOTS[1], [])  # a proof is needed


def leaves_of(size, seed=0):
    return [leaf_hash(f"{seed}:{i}".encode()) for i in range(size)]


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 300))
def test_against_the_reference_for_many_sizes(size):
    leaves = leaves_of(size)
    tree = MerkleTree(leaves)
    for n in {1, min(2, size), size // 3 or 1, size // 2 or 1, size - 1 or 1, size}:
        assert tree.root(n) == reference_root(leaves[:n])
        for m in {0, n // 2, n - 1}:
            proof = tree.inclusion_proof(m, n)
            assert proof == reference_path(m, leaves[:n])
            assert verify_inclusion(leaves[m], m, n, proof, tree.root(n))
        for old in {1, n // 3 or 1, n // 2 or 1, n}:
            proof = tree.consistency_proof(old, n)
            assert proof == ([] if old == n else reference_subproof(old, leaves[:n], True))
            assert verify_consistency(old, n, tree.root(old), tree.root(n), proof)


def test_every_pair_of_sizes_up_to_64():
    leaves = leaves_of(64, seed=1)
    tree = MerkleTree(leaves)
    for new in range(1, 65):
        for old in range(0, new + 1):
            proof = tree.consistency_proof(old, new)
            assert verify_consistency(old, new, tree.root(old), tree.root(new), proof)
        for index in range(new):
            proof = tree.inclusion_proof(index, new)
            assert verify_inclusion(leaves[index], index, new, proof, tree.root(new))


def flip(value: bytes, bit: int = 3) -> bytes:
    return bytes([value[0] ^ (1 << bit), *value[1:]])


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 200), st.data())
def test_tampering_fails(size, data):
    leaves = leaves_of(size, seed=2)
    tree = MerkleTree(leaves)
    index = data.draw(st.integers(0, size - 1))
    root, proof = tree.root(), tree.inclusion_proof(index)
    assert not verify_inclusion(flip(leaves[index]), index, size, proof, root)
    assert not verify_inclusion(leaves[index], index, size, proof, flip(root))
    assert not verify_inclusion(leaves[index], index ^ 1, size, proof, root)
    assert not verify_inclusion(leaves[index], index, size * 2, proof, root)
    if index < size // 2:
        assert not verify_inclusion(leaves[index], index, size // 2, proof, root)
    assert not verify_inclusion(leaves[index], index, size, [*proof, root], root)
    for i in range(len(proof)):
        wrong = [*proof[:i], flip(proof[i]), *proof[i + 1 :]]
        assert not verify_inclusion(leaves[index], index, size, wrong, root)

    old = data.draw(st.integers(1, size - 1))
    consistency = tree.consistency_proof(old)
    old_root = tree.root(old)
    assert verify_consistency(old, size, old_root, root, consistency)
    assert not verify_consistency(old, size, flip(old_root), root, consistency)
    assert not verify_consistency(old, size, old_root, flip(root), consistency)
    assert not verify_consistency(old, size, root, old_root, consistency)
    assert not verify_consistency(old, size, old_root, root, consistency[:-1])
    for i in range(len(consistency)):
        wrong = [*consistency[:i], flip(consistency[i], 4), *consistency[i + 1 :]]
        assert not verify_consistency(old, size, old_root, root, wrong)


@pytest.mark.parametrize(
    "args",
    [
        (b"x", 0, 1, [], ROOTS[0]),
        (HASHED[0], -1, 8, [], ROOTS[7]),
        (HASHED[0], 8, 8, [], ROOTS[7]),
        (HASHED[0], 0, 8, [b"short"], ROOTS[7]),
        (HASHED[0], 0, 8, ["text"], ROOTS[7]),
        (HASHED[0], 0, 8, None or [], b""),
        (HASHED[0], "0", 8, [], ROOTS[7]),
    ],
)
def test_malformed_inclusion_inputs_are_false(args):
    assert verify_inclusion(*args) is False


def test_malformed_consistency_inputs_are_false():
    assert verify_consistency(-1, 8, ROOTS[0], ROOTS[7], []) is False
    assert verify_consistency(1, 8, b"", ROOTS[7], []) is False
    assert verify_consistency(1, 8, ROOTS[0], ROOTS[7], [b"\x00" * 31]) is False
    assert verify_consistency(1.5, 8, ROOTS[0], ROOTS[7], []) is False


def test_the_tree_refuses_sizes_it_never_held():
    tree = MerkleTree(HASHED)
    with pytest.raises(ValueError):
        tree.root(9)
    with pytest.raises(ValueError):
        tree.inclusion_proof(8, 8)
    with pytest.raises(ValueError):
        tree.consistency_proof(5, 3)


def test_a_frontier_streams_the_same_roots():
    leaves = leaves_of(300, seed=3)
    tree = MerkleTree(leaves)
    for start in (0, 1, 7, 64, 100, 255):
        frontier = Frontier(start, tree.frontier(start))
        assert frontier.root() == tree.root(start)
        for n in range(start, 300):
            frontier.append(leaves[n])
            assert frontier.root() == tree.root(n + 1)
    with pytest.raises(ValueError):
        Frontier(5, [EMPTY_ROOT])  # 5 leaves are two perfect subtrees, not one
