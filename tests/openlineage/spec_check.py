"""Validation of emitted events: against the official OpenLineage JSON schemas when
`MESHOPS_OPENLINEAGE_SPEC` names a folder of them (OpenLineage.json and facets/*.json; they
are not in this repository), else against meshops's own schema of the 2-0-2 rules
(src/meshops/kernel/openlineage_event.schema.json).

The core schema checks the event; with the official files each facet is also checked against
the facet schema that declares its key (as OpenLineage's own tests do), with `format`
checked (uuid, uri, ...).
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from meshops.kernel.openlineage_ingest import OWN_SCHEMA, official_spec

SPEC = official_spec()


@cache
def _schemas() -> tuple[Registry, dict[str, Any], dict[str, dict[str, Any]]]:
    core = json.loads((SPEC / "OpenLineage.json" if SPEC else OWN_SCHEMA).read_text())
    resources = [(core["$id"], Resource.from_contents(core))]
    by_key: dict[str, dict[str, Any]] = {}
    for path in sorted((SPEC / "facets").glob("*.json")) if SPEC else []:
        schema = json.loads(path.read_text())
        resources.append((schema["$id"], Resource.from_contents(schema)))
        for key in schema.get("properties", {}):
            by_key[key] = schema
    return Registry().with_resources(resources), core, by_key


def _validator(schema: dict[str, Any]) -> Draft202012Validator:
    registry, _, _ = _schemas()
    return Draft202012Validator(
        schema, registry=registry, format_checker=Draft202012Validator.FORMAT_CHECKER
    )


def facet_containers(event: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Every facets object of an event, with where it is."""
    found: list[tuple[str, dict[str, Any]]] = []
    for where in ("run", "job"):
        if isinstance(event.get(where), dict):
            found.append((f"{where}.facets", event[where].get("facets") or {}))
    for side, extra in (("inputs", "inputFacets"), ("outputs", "outputFacets")):
        for i, dataset in enumerate(event.get(side) or []):
            found.append((f"{side}[{i}].facets", dataset.get("facets") or {}))
            found.append((f"{side}[{i}].{extra}", dataset.get(extra) or {}))
    if isinstance(event.get("dataset"), dict):
        found.append(("dataset.facets", event["dataset"].get("facets") or {}))
    return found


def errors(event: dict[str, Any]) -> list[str]:
    """Every violation of the core schema and of the schemas of the facets used."""
    _, core, by_key = _schemas()
    problems = [
        f"{list(e.absolute_path)}: {e.message}" for e in _validator(core).iter_errors(event)
    ]
    for where, facets in facet_containers(event):
        for key, facet in facets.items():
            schema = by_key.get(key)
            if schema is None:
                if SPEC is not None:
                    problems.append(f"{where}.{key}: no official facet schema has this key")
                continue
            for e in _validator(schema).iter_errors({key: facet}):
                problems.append(f"{where}.{key}{list(e.absolute_path)}: {e.message}")
    return problems


def assert_valid(event: dict[str, Any]) -> None:
    found = errors(event)
    assert not found, (
        f"{event.get('eventType', 'event')} {event.get('job', {}).get('name')}: {found}"
    )
