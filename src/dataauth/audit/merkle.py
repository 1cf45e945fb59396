"""The Merkle tree of RFC 6962 / RFC 9162 (Certificate Transparency), over SHA-256.

leaf hash = SHA-256(0x00 || data), node hash = SHA-256(0x01 || left || right), and the
empty tree's root is SHA-256 of nothing. Indexes are 0-based; proofs are lists of
32-byte hashes in RFC 9162 order, so a Certificate Transparency verifier accepts them.

``MerkleTree`` keeps the hash of every complete, aligned subtree as the log grows, so
a root, an inclusion proof or a consistency proof for any size it has held costs
O(log n) stored hashes plus O(log n) hashing along the ragged right edge: well under a
millisecond at a million entries. The verifiers are pure and never raise.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than ``n`` (n > 1): RFC 6962's k."""
    return 1 << ((n - 1).bit_length() - 1)


class MerkleTree:
    """An append-only tree over leaf hashes, keeping every complete aligned subtree."""

    def __init__(self, leaf_hashes: Iterable[bytes] = ()) -> None:
        # levels[k] holds, back to back, the roots of the aligned subtrees of 2**k leaves
        self._levels: list[bytearray] = [bytearray()]
        self._size = 0
        self.extend(leaf_hashes)

    @property
    def size(self) -> int:
        return self._size

    def append(self, leaf_hash: bytes) -> int:
        """Add a leaf hash; return its index."""
        if len(leaf_hash) != HASH_SIZE:
            raise ValueError("a leaf hash is 32 bytes")
        index = self._size
        self._levels[0] += leaf_hash
        self._size += 1
        # each completed pair of subtrees makes one subtree on the level above
        level, count = 0, self._size
        while count % 2 == 0:
            nodes = self._levels[level]
            parent = node_hash(nodes[-2 * HASH_SIZE : -HASH_SIZE], nodes[-HASH_SIZE:])
            level, count = level + 1, count // 2
            if level == len(self._levels):
                self._levels.append(bytearray())
            self._levels[level] += parent
        return index

    def extend(self, leaf_hashes: Iterable[bytes]) -> None:
        for leaf in leaf_hashes:
            self.append(leaf)

    def leaf(self, index: int) -> bytes:
        self._check(index + 1)
        return bytes(self._levels[0][index * HASH_SIZE : (index + 1) * HASH_SIZE])

    def subtrees(self, level: int, start: int, end: int) -> bytes:
        """The roots of aligned subtrees ``start`` to ``end`` of 2**level leaves each, back
        to back: a tlog tile, straight from what is stored."""
        self._check(end << level)
        if level >= len(self._levels):
            return b""
        return bytes(self._levels[level][start * HASH_SIZE : end * HASH_SIZE])

    def _subtree(self, start: int, end: int) -> bytes:
        """MTH(D[start:end]) for ``start`` aligned as RFC 6962's recursion leaves it."""
        n = end - start
        if n & (n - 1) == 0:  # complete: stored
            level = n.bit_length() - 1
            offset = (start >> level) * HASH_SIZE
            return bytes(self._levels[level][offset : offset + HASH_SIZE])
        k = _split(n)
        return node_hash(self._subtree(start, start + k), self._subtree(start + k, end))

    def _check(self, size: int) -> None:
        if not 0 <= size <= self._size:
            raise ValueError(f"the tree holds {self._size} leaves, not {size}")

    def root(self, size: int | None = None) -> bytes:
        """The root of the first ``size`` leaves (all of them by default)."""
        size = self._size if size is None else size
        self._check(size)
        return EMPTY_ROOT if size == 0 else self._subtree(0, size)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """PATH(index, D[0:size]) of RFC 6962 section 2.1.1."""
        size = self._size if size is None else size
        self._check(size)
        if not 0 <= index < size:
            raise ValueError(f"no leaf {index} in a tree of {size}")
        proof: list[bytes] = []
        start, end, m = 0, size, index
        while end - start > 1:
            k = _split(end - start)
            if m < k:
                proof.append(self._subtree(start + k, end))
                end = start + k
            else:
                proof.append(self._subtree(start, start + k))
                start, m = start + k, m - k
        proof.reverse()
        return proof

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """PROOF(old_size, D[0:new_size]) of RFC 6962 section 2.1.2."""
        new_size = self._size if new_size is None else new_size
        self._check(new_size)
        if not 0 <= old_size <= new_size:
            raise ValueError(f"cannot prove {old_size} consistent with {new_size}")
        if old_size in (0, new_size):
            return []
        proof: list[bytes] = []
        start, end, m, complete = 0, new_size, old_size, True
        while m != end - start:
            k = _split(end - start)
            if m <= k:
                proof.append(self._subtree(start + k, end))
                end = start + k
            else:
                proof.append(self._subtree(start, start + k))
                start, m, complete = start + k, m - k, False
        if not complete:
            proof.append(self._subtree(start, end))
        proof.reverse()
        return proof

    def frontier(self, size: int | None = None) -> list[bytes]:
        """The roots of the perfect subtrees that make up the first ``size`` leaves."""
        size = self._size if size is None else size
        self._check(size)
        roots, start = [], 0
        for bit in reversed(range(size.bit_length())):
            if size >> bit & 1:
                roots.append(self._subtree(start, start + (1 << bit)))
                start += 1 << bit
        return roots


class Frontier:
    """A streaming tree: only the roots of its perfect subtrees, O(log n) memory.

    What an offline verifier needs to recompute the root of every signed size while it
    reads a million entries once, from the start or from a frontier it was handed.
    """

    def __init__(self, size: int = 0, roots: Sequence[bytes] = ()) -> None:
        sizes = [1 << bit for bit in reversed(range(size.bit_length())) if size >> bit & 1]
        if len(sizes) != len(roots) or not _hashes(roots):
            raise ValueError(f"a frontier of {size} leaves has {len(sizes)} 32-byte roots")
        self._stack = list(zip(sizes, (bytes(r) for r in roots), strict=True))
        self.size = size

    def append(self, leaf_hash: bytes) -> None:
        self._stack.append((1, leaf_hash))
        self.size += 1
        while len(self._stack) > 1 and self._stack[-1][0] == self._stack[-2][0]:
            (n, right), (_, left) = self._stack.pop(), self._stack.pop()
            self._stack.append((2 * n, node_hash(left, right)))

    def root(self) -> bytes:
        if not self._stack:
            return EMPTY_ROOT
        root = self._stack[-1][1]
        for _, left in reversed(self._stack[:-1]):
            root = node_hash(left, root)
        return root


def root_hash(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH over already-hashed leaves."""
    return MerkleTree(leaf_hashes).root()


def inclusion_proof(index: int, size: int, leaves: Sequence[bytes]) -> list[bytes]:
    return MerkleTree(leaves[:size]).inclusion_proof(index, size)


def consistency_proof(old_size: int, new_size: int, leaves: Sequence[bytes]) -> list[bytes]:
    return MerkleTree(leaves[:new_size]).consistency_proof(old_size, new_size)


def _hashes(items: Sequence[bytes]) -> bool:
    return all(isinstance(h, bytes | bytearray) and len(h) == HASH_SIZE for h in items)


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """RFC 9162 section 2.1.3.2: is ``leaf_hash`` at ``index`` of the tree with ``root``?"""
    if not (isinstance(index, int) and isinstance(size, int) and 0 <= index < size):
        return False
    if not _hashes([leaf_hash, root, *proof]):
        return False
    fn, sn, r = index, size - 1, bytes(leaf_hash)
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and r == root


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """RFC 9162 section 2.1.4.2: is the tree of ``new_root`` an extension of ``old_root``?"""
    if not (isinstance(old_size, int) and isinstance(new_size, int)):
        return False
    if not 0 <= old_size <= new_size or not _hashes([old_root, new_root, *proof]):
        return False
    if old_size == new_size:
        return not proof and old_root == new_root
    if old_size == 0:
        return not proof
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # a power of two: the old root is the first node
        path.insert(0, bytes(old_root))
    if not path:
        return False
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and fr == old_root and sr == new_root
