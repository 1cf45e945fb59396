"""A policy bundle: the Rego modules and data files under one directory, and its digest.

Data files follow OPA's bundle layout: ``a/b/data.json`` is mounted at ``data.a.b``.
Rego test modules (``*_test.rego``) and the decision tables under ``tests/`` are not
part of what decides, and so not of the digest.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dataauth.canonical import canonical


class BundleError(ValueError):
    """The bundle cannot be read or compiled."""


@dataclass(frozen=True)
class Bundle:
    modules: dict[str, str]
    data: dict[str, Any]
    digest: str

    def content(self) -> dict[str, Any]:
        """What the digest covers, as stored with an audit export."""
        return {"modules": self.modules, "data": self.data}


def bundle_digest(modules: dict[str, str], data: dict[str, Any]) -> str:
    return "sha256:" + hashlib.sha256(canonical({"modules": modules, "data": data})).hexdigest()


def _mount(data: dict[str, Any], prefix: tuple[str, ...], value: Any, source: str) -> None:
    node = data
    for part in prefix:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise BundleError(f"{source}: data path {'.'.join(prefix)} collides with a value")
    if not isinstance(value, dict):
        raise BundleError(f"{source}: a data file must hold a JSON object")
    for key, item in value.items():
        if key in node:
            raise BundleError(f"{source}: data.{'.'.join((*prefix, key))} is defined twice")
        node[key] = item


def load_bundle(root: Path) -> Bundle:
    """Read the bundle under ``root``."""
    if not root.is_dir():
        raise BundleError(f"no policy bundle at {root}: set DATAAUTH_POLICY_DIR")
    modules: dict[str, str] = {}
    data: dict[str, Any] = {}
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root).as_posix()
        if path.suffix == ".rego" and not path.stem.endswith("_test"):
            modules[relative] = path.read_text(encoding="utf-8")
        elif path.name == "data.json":
            try:
                value = json.loads(path.read_text(encoding="utf-8"))
            except json.JSONDecodeError as exc:
                raise BundleError(f"{relative}: {exc}") from exc
            _mount(data, path.parent.relative_to(root).parts, value, relative)
    if not modules:
        raise BundleError(f"no Rego modules under {root}")
    return Bundle(modules, data, bundle_digest(modules, data))
