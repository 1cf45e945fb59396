"""Verifying a log fetched as C2SP tlog-tiles, the way an export is verified.

The checkpoint is opened with the note keys the verifier was given (never with keys the
log hands out); then every entry bundle and every tile the checkpoint's tree is made of
is fetched, each entry gets the export's entry checks (``EntryChecks``), every leaf hash
is recomputed from its entry, every tile is recomputed from the level below, and the
root from the leaves must be the checkpoint's. Where it is not, the served level-0 tiles
tell whether an entry or a tile was altered, and which.

Given a checkpoint verified before (``since``), the log must extend it: the root of its
first ``since.size`` entries, recomputed, must be that checkpoint's, or the log was
rewritten or is showing this verifier another tree (a split view). Given a witness
policy, the checkpoint must carry the cosignatures it needs, as an export's last head.

``fetch`` maps a path (``checkpoint``, ``tile/0/x001/234``) to the bytes served there,
raising ``Unavailable`` for an error answer: the HTTP side is the caller's (the SDK's
``Client.fetch`` behind the command line), so this module stays pure.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from dataauth.audit.merkle import Frontier
from dataauth.audit.note import Note, Verifier
from dataauth.audit.tiles import WIDTH, Tile, encode_index, hashes, tile_root, tiles_of, unbundle
from dataauth.audit.verify import EntryChecks, Failed, open_checkpoint
from dataauth.audit.witnesses import PolicyError, WitnessPolicy

Fetch = Callable[[str], bytes]


class Unavailable(Exception):
    """The log answered a path with an error: its problem ``code``, if it gave one."""

    def __init__(self, path: str, code: str | None, detail: str) -> None:
        super().__init__(f"{path}: {detail}")
        self.path = path
        self.code = code


@dataclass
class TileReport:
    origin: str
    size: int
    root: str
    tiles: int = 0
    bundles: int = 0
    wide_bundles: int = 0
    note: bytes = b""
    """The checkpoint verified, as served: keep it for the next run's ``since``."""
    policy_bundles: list[str] = field(default_factory=list)
    """The policy bundles the entries name: not served with the tiles, so not checked."""
    extends: int | None = None
    """The size of the earlier checkpoint this log was shown to extend, if one was given."""
    witnessed: list[str] = field(default_factory=list)
    """The policy's witnesses that cosigned the checkpoint."""


def _get(fetch: Fetch, path: str) -> bytes:
    try:
        return fetch(path)
    except Unavailable as exc:
        raise Failed(f"cannot fetch {exc}") from None


def _entries(fetch: Fetch, bundle: Tile, report: TileReport) -> list[bytes]:
    try:
        data, wide = fetch(bundle.path()), False
    except Unavailable as exc:
        if exc.code != "entry_too_large":
            raise Failed(f"cannot fetch {exc}") from None
        # an entry over 65,535 bytes: the same bundle, uint32 length prefixes
        suffix = f".p/{bundle.width}" if bundle.partial else ""
        data, wide = _get(fetch, f"entries-wide/{encode_index(bundle.index)}{suffix}"), True
        report.wide_bundles += 1
    try:
        entries = unbundle(data, wide)
    except ValueError as exc:
        raise Failed(f"{bundle.path()}: {exc}") from None
    if len(entries) != bundle.width:
        raise Failed(f"{bundle.path()}: holds {len(entries)} entries, not {bundle.width}")
    return entries


class _Levels:
    """Hashes of levels 1 and up, recomputed from full tiles below, checked as each of
    their own tiles fills (or, at the end, against the partial tiles)."""

    def __init__(self, fetch: Fetch, report: TileReport) -> None:
        self.fetch, self.report = fetch, report
        self.pending: dict[int, list[bytes]] = {}
        self.full: dict[int, int] = {}
        self.mismatch: str | None = None

    def check(self, tile: Tile, expected: list[bytes]) -> None:
        served = _get(self.fetch, tile.path())
        self.report.tiles += 1
        if served != b"".join(expected) and self.mismatch is None:
            self.mismatch = f"{tile.path()}: does not hold the hashes its entries make"

    def carry(self, level: int, value: bytes) -> None:
        level_hashes = self.pending.setdefault(level, [])
        level_hashes.append(value)
        if len(level_hashes) == WIDTH:
            n = self.full.get(level, 0)
            self.check(Tile(level, n), level_hashes)
            self.full[level] = n + 1
            self.pending[level] = []
            self.carry(level + 1, tile_root(level_hashes))

    def finish(self) -> None:
        for level, level_hashes in sorted(self.pending.items()):
            if level_hashes:
                tile = Tile(level, self.full.get(level, 0), len(level_hashes))
                self.check(tile, level_hashes)


def verify_tiles(
    fetch: Fetch,
    verifiers: list[Verifier],
    progress: Callable[[int, int], None] | None = None,
    since: bytes | None = None,
    policy: WitnessPolicy | None = None,
) -> TileReport:
    """Verify the log behind ``fetch`` up to its checkpoint; raise Failed at a problem."""
    note = _get(fetch, "checkpoint")
    checkpoint = open_checkpoint(note, verifiers)
    size = checkpoint.size
    report = TileReport(checkpoint.origin, size, checkpoint.root.hex(), note=note)
    earlier = None
    if since is not None:
        try:
            earlier = open_checkpoint(since, verifiers)
        except Failed as exc:
            raise Failed(f"the earlier {exc}") from None
        if earlier.origin != checkpoint.origin:
            raise Failed(f"the earlier checkpoint is of another log ({earlier.origin})")
        if earlier.size > size:
            raise Failed(
                f"the log is at size {size}, below the earlier checkpoint's {earlier.size}: "
                "it was rolled back, or this is another view of it"
            )
    if policy is not None:
        parsed = Note.parse(note)
        try:
            report.witnessed = policy.check(parsed.text, parsed.signatures)
        except PolicyError as exc:
            raise Failed(f"checkpoint: the witness policy is not met: {exc}") from None
    earlier_root: bytes | None = None  # the root of the first earlier.size entries
    checks = EntryChecks(None)
    computed, served = Frontier(), Frontier()
    levels = _Levels(fetch, report)
    first_changed: int | None = None
    changed_tile = ""
    for bundle in tiles_of(size, None):
        start = bundle.index * WIDTH
        entries = _entries(fetch, bundle, report)
        report.bundles += 1
        leaves = [checks.leaf(start + i, entry) for i, entry in enumerate(entries)]
        level0 = Tile(0, bundle.index, bundle.width)
        try:
            listed = hashes(_get(fetch, level0.path()))
        except ValueError:
            raise Failed(f"{level0.path()}: not a whole number of hashes") from None
        report.tiles += 1
        if len(listed) != len(leaves):
            raise Failed(f"{level0.path()}: holds {len(listed)} hashes, not {len(leaves)}")
        for i, (leaf, hashed) in enumerate(zip(leaves, listed, strict=True)):
            computed.append(leaf)
            served.append(hashed)
            if earlier is not None and computed.size == earlier.size:
                earlier_root = computed.root()
            if leaf != hashed and first_changed is None:
                first_changed, changed_tile = start + i, level0.path()
        if not bundle.partial:
            levels.carry(1, tile_root(leaves))
        if progress:
            progress(start + len(entries), size)
    levels.finish()
    if computed.root() != checkpoint.root:
        if first_changed is not None and served.root() == checkpoint.root:
            raise Failed(f"entry {first_changed}: its content is not what the checkpoint signed")
        raise Failed(f"the root of the {size} entries served is not the checkpoint's")
    if first_changed is not None:
        raise Failed(f"{changed_tile}: the leaf hash of entry {first_changed} is not its entry's")
    if levels.mismatch is not None:
        raise Failed(levels.mismatch)
    if earlier is not None:
        if earlier.size and earlier_root != earlier.root:
            raise Failed(
                f"the log does not extend the earlier checkpoint: its first {earlier.size} "
                "entries make another root (the log was rewritten, or this is a split view)"
            )
        report.extends = earlier.size
    report.policy_bundles = sorted(checks.named)
    return report
