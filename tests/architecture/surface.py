"""The public surface that the one-declaration RPC layer must keep: the HTTP routes (method
and path, with path parameters' names left out: they are not part of the URL) and the
signatures of the SDK's area objects. `python -m tests.architecture.surface` rewrites the
snapshot; the test compares against it."""

from __future__ import annotations

import inspect
import json
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

SNAPSHOT = Path(__file__).with_name("surface.json")
AREAS = {
    "features": ("meshops.features.interface", "FeatureStore"),
    "governance": ("meshops.governance.interface", "Governance"),
    "mesh": ("meshops.mesh.interface", "Mesh"),
    "monitoring": ("meshops.monitoring.interface", "Monitoring"),
    "pipelines": ("meshops.pipelines.interface", "Pipelines"),
    "project": ("meshops.project.interface", "Project"),
    "registry": ("meshops.registry.interface", "Registry"),
    "serving": ("meshops.serving.interface", "Serving"),
    "tracking": ("meshops.tracking.interface", "Tracking"),
}


def http_routes() -> list[str]:
    from meshops.api.app import create_app
    from meshops.kernel.config import load_settings
    from meshops.kernel.home import Home

    with tempfile.TemporaryDirectory() as tmp:
        home = Home(load_settings(home=tmp))
        spec: dict[str, Any] = create_app(home).openapi()
    routes = []
    for path, item in spec["paths"].items():
        for method in item:
            routes.append(f"{method.upper()} {re.sub(r'{[^}]+}', '{}', path)}")
    return sorted(routes)


def sdk_signatures() -> dict[str, dict[str, str]]:
    import importlib

    out: dict[str, dict[str, str]] = {}
    for area, (module, name) in AREAS.items():
        protocol = getattr(importlib.import_module(module), name)
        members: dict[str, Any] = {}
        for klass in reversed(protocol.__mro__):  # an area Protocol may extend smaller ones
            members.update(vars(klass))
        methods = {}
        for attr, fn in sorted(members.items()):
            if attr.startswith("_") or not callable(fn):
                continue
            methods[attr] = _unaliased(str(inspect.signature(fn)))
        out[area] = methods
    return out


def _unaliased(signature: str) -> str:
    """The bounded aliases of `meshops.kernel.bounds` (`Limit`, `RowId` ...) written as the
    types they bound: a declaration may carry its bounds without changing the SDK."""
    import typing

    from meshops.kernel import bounds

    for name, value in vars(bounds).items():
        if typing.get_origin(value) is typing.Annotated:
            base = typing.get_args(value)[0]
            text = (
                base.__name__ if isinstance(base, type) and not typing.get_args(base) else str(base)
            )
            text = text.replace("typing.", "")
            signature = re.sub(rf"\b{name}\b", text, signature)
    return signature


def surface() -> dict[str, Any]:
    return {"http": http_routes(), "sdk": sdk_signatures()}


if __name__ == "__main__":
    SNAPSHOT.write_text(json.dumps(surface(), indent=1, sort_keys=True) + "\n")
    print(f"wrote {SNAPSHOT}", file=sys.stderr)
