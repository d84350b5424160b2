"""The `dataproduct.publish` input document (governance/documents.py: PublishInput).

Pure: built from a product spec, the version it follows, its schema diff and contract test
results. The mesh's publish path evaluates the policies over it (MeshService._publish) and
`meshops plan`/`check` dry-run the same document, so both judge the same facts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from meshops.mesh.models import ContractReport, SchemaDiff
    from meshops.mesh.specs import ProductSpec

TARGET = "dataproduct.publish"


def _masking(prop: dict[str, Any]) -> str:
    for custom in prop.get("customProperties") or []:
        if isinstance(custom, dict) and custom.get("property") == "masking":
            return str(custom.get("value", "default"))
    return "default"


def _freshness(document: dict[str, Any]) -> str:
    for prop in document.get("slaProperties") or []:
        if isinstance(prop, dict) and prop.get("property") == "freshness":
            return f"{prop.get('value', '')}{prop.get('unit', '')}"
    return ""


def _where(port: str, column: str | None) -> str:
    return f"{port}.{column}" if column else port


def publish_document(
    spec: ProductSpec,
    previous_version: str | None,
    diff: SchemaDiff | None,
    reports: dict[str, ContractReport] | None = None,
) -> dict[str, Any]:
    """The `dataproduct.publish` input document of `spec` following `previous_version`."""
    ports = []
    for port in spec.ports:
        props = {
            str(p.get("name")): p
            for p in port.schema_object.get("properties") or []
            if isinstance(p, dict)
        }
        ports.append(
            {
                "name": port.port,
                "freshness": _freshness(port.document),
                "columns": [
                    {
                        "name": c.name,
                        "type": c.logical_type,
                        "classification": c.classification or "public",
                        "masking": _masking(props.get(c.name, {})),
                    }
                    for c in port.columns
                ],
            }
        )
    changes = diff.changes if diff else []
    results = [
        {"rule": r.rule, "passed": r.passed, "status": r.status, "detail": r.message}
        for report in (reports or {}).values()
        for r in report.results
    ]
    return {
        "product": {
            "id": spec.key,
            "domain": spec.domain,
            "name": spec.name,
            "version": spec.version,
            "previous_version": previous_version or "",
            "status": str(spec.descriptor.get("status", "draft")),
            "description": spec.description,
            "owners": spec.owners,
            "tags": spec.tags,
        },
        "descriptor": spec.descriptor,
        "contract": spec.ports[0].document if spec.ports else {},
        "ports": ports,
        "schema_diff": {
            "breaking": any(c.breaking for c in changes),
            "added": [_where(c.port, c.column) for c in changes if "added" in c.kind],
            "removed": [_where(c.port, c.column) for c in changes if "removed" in c.kind],
            "changed": [
                _where(c.port, c.column)
                for c in changes
                if "added" not in c.kind and "removed" not in c.kind
            ],
        },
        "tests": {
            # judged rules only: custom / text rules and undeclared-data SLAs are counted apart
            "passed": sum(1 for r in results if r["status"] == "passed"),
            "failed": sum(1 for r in results if r["status"] == "failed"),
            "not_evaluated": sum(1 for r in results if r["status"] == "not evaluated"),
            "not_checked": sum(1 for r in results if r["status"] == "not checked"),
            "results": results,
        },
    }
