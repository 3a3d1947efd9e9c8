"""Checked-in JSON Schemas and the AsyncAPI document, rendered from the registry."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from smartid_events.asyncapi import build_asyncapi
from smartid_events.registry import Registry

LIB_ROOT = Path(__file__).resolve().parents[2]
SCHEMAS_DIR = LIB_ROOT / "schemas"
ASYNCAPI_FILE = LIB_ROOT / "asyncapi.json"


def _dump(document: Any) -> str:
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def render(registry: Registry) -> dict[str, str]:
    """File name (relative to the library root) → text, for every exported file."""
    files = {f"schemas/{spec.type}.json": _dump(spec.full_schema()) for spec in registry}
    files["asyncapi.json"] = _dump(build_asyncapi(registry))
    return files


def existing(root: Path = LIB_ROOT) -> dict[str, str]:
    files = {f"schemas/{p.name}": p.read_text() for p in sorted((root / "schemas").glob("*.json"))}
    asyncapi = root / "asyncapi.json"
    if asyncapi.exists():
        files["asyncapi.json"] = asyncapi.read_text()
    return files


def drift(registry: Registry, root: Path = LIB_ROOT) -> list[str]:
    """Files that differ from what the registry renders (missing, stale or extra)."""
    wanted, have = render(registry), existing(root)
    return sorted(
        name for name in wanted.keys() | have.keys() if wanted.get(name) != have.get(name)
    )


def export(registry: Registry, root: Path = LIB_ROOT) -> list[str]:
    """Rewrite the checked-in files; return the ones that changed."""
    changed = drift(registry, root)
    wanted = render(registry)
    (root / "schemas").mkdir(parents=True, exist_ok=True)
    for name in changed:
        path = root / name
        if name in wanted:
            path.write_text(wanted[name])
        else:
            path.unlink()
    return changed
