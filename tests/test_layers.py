"""The layers of ``docs/architecture.md``, read from the imports: every arrow points down.

A module may import its own package, and any package on a lower floor; never one on its
own floor or above. Three rules more: an operation kind imports no other kind (only the
contract in ``operations/base.py``); the SDK talks HTTP and imports nothing of the
gateway but the formats both sides share; the spine names no kind. Imports inside
functions count too: a lazy import is still an arrow.
"""

from __future__ import annotations

import ast
from pathlib import Path

SOURCE = Path(__file__).resolve().parent.parent / "src" / "dataauth"

FLOORS: list[tuple[str, ...]] = [
    ("cli",),
    ("sdk",),
    ("app",),
    ("api", "console", "witness"),
    ("admin", "demo"),
    ("gateway",),
    ("operations", "metrics"),
    ("audit",),
    ("identity", "policy", "accounts"),
    ("catalog", "domain"),
    ("store",),
    ("ckks", "config", "files", "logs"),
    ("canonical", "errors", "__init__"),
]
"""Top to bottom: each room (a package, or a module at the top of ``dataauth``) and its floor."""

FLOOR = {room: level for level, rooms in enumerate(FLOORS) for room in rooms}

SDK_MAY_IMPORT = {"canonical", "ckks", "errors", "__init__"}
"""What the client shares with the gateway: canonical JSON and the CKKS parameters."""

KIND_CONTRACT = "dataauth.operations.base"


def module_name(path: Path, source: Path = SOURCE) -> str:
    parts = path.relative_to(source.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def room(module: str) -> str:
    """The room a module lives in: ``dataauth.audit.log`` -> ``audit``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def imports(path: Path, source: Path = SOURCE) -> list[tuple[int, str]]:
    """(line, module) for every ``dataauth`` module the file imports, anywhere in it."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("dataauth")]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "dataauth":  # from dataauth import logs, __version__
                found += [
                    (node.lineno, f"dataauth.{a.name}" if is_module(source, a.name) else "dataauth")
                    for a in node.names
                ]
            elif node.module.startswith("dataauth."):
                found.append((node.lineno, node.module))
    return found


def is_module(source: Path, name: str) -> bool:
    return (source / f"{name}.py").exists() or (source / name).is_dir()


def arrows(source: Path = SOURCE) -> list[tuple[str, int, str, str]]:
    """Every import as (file, line, importing module, imported module)."""
    found = []
    for path in sorted(source.rglob("*.py")):
        importer = module_name(path, source)
        for line, imported in imports(path, source):
            found.append((str(path.relative_to(source.parent)), line, importer, imported))
    return found


def against_the_design(source: Path = SOURCE) -> list[str]:
    """Every arrow that runs against the layers, as ``file:line: a -> b (why)``."""
    wrong = []
    for where, line, importer, imported in arrows(source):
        a, b = room(importer), room(imported)
        if a == "__init__" and importer == "dataauth":
            continue
        why = None
        if a not in FLOOR or b not in FLOOR:
            why = f"{a if a not in FLOOR else b} is on no floor"
        elif a == b:
            if a == "operations" and importer != KIND_CONTRACT and imported != KIND_CONTRACT:
                why = "a kind imports another kind's module"
        elif a == "sdk" and b not in SDK_MAY_IMPORT:
            why = "the SDK imports the gateway"
        elif FLOOR[b] <= FLOOR[a]:
            why = "same floor" if FLOOR[b] == FLOOR[a] else "runs up"
        if why:
            wrong.append(f"{where}:{line}: {importer} -> {imported} ({why})")
    return wrong


def test_every_arrow_points_down() -> None:
    assert against_the_design() == []


def test_every_room_is_on_a_floor() -> None:
    """A new package or top-level module must be given its floor here and in the docs."""
    rooms = {room(module_name(p)) for p in SOURCE.rglob("*.py")}
    assert rooms - set(FLOOR) == set()


def test_the_spine_names_no_kind() -> None:
    spine = SOURCE / "gateway.py"
    named = [m for _, m in imports(spine) if room(m) == "operations" and m != KIND_CONTRACT]
    assert named == []
    text = spine.read_text(encoding="utf-8")
    for kind in ("verify", "aggregate", "model", "he-score", "encrypted"):
        assert f'"{kind}"' not in text


def test_the_layer_check_catches_an_arrow_up(tmp_path: Path) -> None:
    """The check itself: a catalog module reaching up into the spine is caught."""
    package = tmp_path / "dataauth"
    (package / "catalog").mkdir(parents=True)
    (package / "catalog" / "bad.py").write_text("from dataauth.gateway import Gateway\n")
    (package / "operations").mkdir()
    (package / "operations" / "one.py").write_text("from dataauth.operations import two\n")
    (package / "sdk").mkdir()
    (package / "sdk" / "client.py").write_text("import dataauth.catalog.store\n")
    found = against_the_design(package)
    assert [f.split(" (")[1] for f in found] == [
        "runs up)",
        "a kind imports another kind's module)",
        "the SDK imports the gateway)",
    ]
