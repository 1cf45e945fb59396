"""The log as C2SP tlog-tiles: tile paths, tile contents and entry bundles.

c2sp.org/tlog-tiles serves the RFC 6962 tree as static "tiles" of height 8: tile N at
level L holds up to 256 consecutive hashes, hash i being the Merkle Tree Hash of
``D[(N*256 + i) * 256**L : (N*256 + i + 1) * 256**L]``; at level 0 those are the leaf
hashes. A partial tile (``.p/<W>``) holds the first W < 256 of them. Entry bundle N
holds the leaf data of level-0 tile N, each entry prefixed by its length as a
big-endian uint16.

An audit entry of a large batch can exceed the 65,535 bytes a uint16 can count. The spec
has no escape for that, and allows a log to serve entries in another format at another
URL; so a bundle holding such an entry is not served at ``tile/entries/``, and every
bundle is also served at ``entries-wide/<N>[.p/<W>]`` with uint32 length prefixes.

The tree's hashes are not recomputed here: ``MerkleTree`` keeps every complete aligned
subtree, and the hashes of a level-L tile are its subtrees of 2**(8L) leaves, stored
back to back, so a tile is one slice of that level.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from dataauth.audit.merkle import HASH_SIZE, MerkleTree, node_hash

HEIGHT = 8
WIDTH = 1 << HEIGHT
MAX_LEVEL = 63
MAX_ENTRY = 0xFFFF
"""The longest entry a standard bundle's uint16 prefix can count."""

_GROUP = re.compile(r"(?:x\d{3}/)*\d{3}")
_LEVEL = re.compile(r"0|[1-9]\d?")
_WIDTH = re.compile(r"[1-9]\d{0,2}")


class TilePathError(ValueError):
    """A tile path that is not of the spec's form."""


@dataclass(frozen=True)
class Tile:
    """Tile ``index`` of ``level`` (level None: an entry bundle), ``width`` hashes wide."""

    level: int | None
    index: int
    width: int = WIDTH

    @property
    def partial(self) -> bool:
        return self.width < WIDTH

    def path(self) -> str:
        """``tile/<L>/<N>[.p/<W>]``, or ``tile/entries/<N>[.p/<W>]`` for a bundle."""
        level = "entries" if self.level is None else str(self.level)
        return f"tile/{level}/{encode_index(self.index)}" + (
            f".p/{self.width}" if self.partial else ""
        )

    def span(self) -> tuple[int, int]:
        """The hashes' range at this tile's own level: [N*256, N*256 + W)."""
        return self.index * WIDTH, self.index * WIDTH + self.width

    def needs(self) -> int:
        """The smallest tree size that holds every hash of this tile."""
        return self.span()[1] << (HEIGHT * (self.level or 0))


def encode_index(index: int) -> str:
    """N as zero-padded 3-digit groups, all but the last x-prefixed: 1234067 is
    ``x001/x234/067``."""
    if index < 0:
        raise ValueError("a tile index is not negative")
    digits = str(index)
    digits = "0" * (-len(digits) % 3) + digits
    groups = [digits[i : i + 3] for i in range(0, len(digits), 3)]
    return "/".join([*("x" + g for g in groups[:-1]), groups[-1]])


def parse_index(text: str) -> tuple[int, int]:
    """Parse ``<N>[.p/<W>]``; returns (N, W) with W = 256 for a full tile. Only the one
    canonical spelling of each N is accepted (no leading ``x000/`` group)."""
    body, dot, width = text.partition(".p/")
    if not _GROUP.fullmatch(body) or (dot and not _WIDTH.fullmatch(width)):
        raise TilePathError(f"not a tile index: {text!r}")
    if body.startswith("x000/"):
        raise TilePathError(f"not the canonical form of a tile index: {text!r}")
    w = int(width) if dot else WIDTH
    if not 1 <= w < WIDTH and dot:
        raise TilePathError(f"a partial tile is 1 to 255 hashes wide, not {w}")
    return int(body.replace("x", "").replace("/", "")), w


def parse_level(text: str) -> int:
    if not _LEVEL.fullmatch(text) or int(text) > MAX_LEVEL:
        raise TilePathError(f"a tile level is 0 to {MAX_LEVEL}, not {text!r}")
    return int(text)


def parse_tile(path: str) -> Tile:
    """Parse ``tile/<L>/<N>[.p/<W>]`` or ``tile/entries/<N>[.p/<W>]``."""
    prefix, _, rest = path.partition("/")
    level, _, index = rest.partition("/")
    if prefix != "tile":
        raise TilePathError(f"not a tile path: {path!r}")
    n, w = parse_index(index)
    return Tile(None if level == "entries" else parse_level(level), n, w)


def tiles_of(size: int, level: int | None = 0) -> Iterator[Tile]:
    """The tiles of ``level`` (None: entry bundles) a tree of ``size`` is made of, full
    ones then the partial one (if any), as the spec counts them."""
    per = WIDTH ** (level or 0)
    count = size // per
    for n in range(count // WIDTH):
        yield Tile(level, n)
    if count % WIDTH:
        yield Tile(level, count // WIDTH, count % WIDTH)


def tile_data(tree: MerkleTree, tile: Tile) -> bytes:
    """The tile's hashes, back to back, from the tree's stored subtrees."""
    if tile.level is None:
        raise ValueError("an entry bundle is not in the tree")
    if tile.needs() > tree.size:
        raise ValueError(f"the tree of {tree.size} leaves has no {tile.path()}")
    start, end = tile.span()
    return tree.subtrees(HEIGHT * tile.level, start, end)


def hashes(data: bytes) -> list[bytes]:
    """A tile's bytes as its hashes."""
    if len(data) % HASH_SIZE:
        raise ValueError("a tile is a whole number of 32-byte hashes")
    return [data[i : i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)]


def tile_root(level_hashes: list[bytes]) -> bytes:
    """The Merkle Tree Hash over a full tile's 256 hashes: its hash on the level above."""
    nodes = level_hashes
    while len(nodes) > 1:
        nodes = [node_hash(nodes[i], nodes[i + 1]) for i in range(0, len(nodes), 2)]
    return nodes[0]


def bundle(entries: Iterable[bytes], wide: bool = False) -> bytes:
    """Entries as a bundle: each prefixed by its length (uint16, or uint32 when ``wide``)."""
    form, limit = (">I", 0xFFFFFFFF) if wide else (">H", MAX_ENTRY)
    parts = []
    for entry in entries:
        if len(entry) > limit:
            raise OverflowError(f"an entry of {len(entry)} bytes does not fit this bundle")
        parts += [struct.pack(form, len(entry)), entry]
    return b"".join(parts)


def unbundle(data: bytes, wide: bool = False) -> list[bytes]:
    """A bundle's entries; raises ValueError where the bytes are not a bundle."""
    prefix = 4 if wide else 2
    entries, at = [], 0
    while at < len(data):
        if at + prefix > len(data):
            raise ValueError("an entry bundle ends inside a length prefix")
        length = int.from_bytes(data[at : at + prefix], "big")
        at += prefix
        if at + length > len(data):
            raise ValueError("an entry bundle ends inside an entry")
        entries.append(data[at : at + length])
        at += length
    return entries
