"""What the mesh's services share: the rows of the metadata database as models, and the
lookups of products and versions that publishing, reading and the catalog all make."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from meshops.kernel.db import utcnow
from meshops.kernel.errors import NotFound
from meshops.kernel.home import Context
from meshops.kernel.urn import Urn
from meshops.mesh import store
from meshops.mesh.models import (
    BuildSummary,
    ColumnProfile,
    ColumnSpec,
    DataProduct,
    DataProductVersion,
    Domain,
    OutputPortVersion,
    RuleResult,
    SemVer,
    VersionRange,
    split_product_ref,
)

if TYPE_CHECKING:
    from meshops.mesh import contracts, specs
else:
    # Imported on first use: searching the catalog or listing products needs none of them
    # (Arrow, DuckDB, the ODCS models), and `meshops catalog search` start time matters.
    from meshops.kernel.lazy import lazy_module

    contracts = lazy_module("meshops.mesh.contracts")
    specs = lazy_module("meshops.mesh.specs")


class MeshArea:
    """A mesh service over one caller's context (the base of publish, read and catalog)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def _latest_row(self, conn: Connection, product: str) -> dict[str, Any] | None:
        rows = store.version_rows(conn, product)
        if not rows:
            return None
        return max(rows, key=lambda r: SemVer.parse(r["version"]))

    def _resolve_row(self, conn: Connection, product: str, version: str | None) -> dict[str, Any]:
        domain, name, ref_range = split_product_ref(product)
        key = f"{domain}.{name}"
        wanted = version or ref_range
        numbers = store.version_numbers(conn, key)
        if not numbers:
            raise NotFound(
                f"{key} has no published version",
                {"fix": "publish it first: meshops product publish <folder>"},
            )
        if wanted is None:
            chosen = str(max(numbers, key=SemVer.parse))
        elif wanted in numbers:
            chosen = wanted
        else:
            best = VersionRange(wanted).best(numbers)
            if best is None:
                raise NotFound(
                    f"no version of {key} matches {wanted!r}",
                    {"versions": sorted(numbers, key=SemVer.parse), "fix": "use another range"},
                )
            chosen = best
        row = store.get_version_row(conn, key, chosen)
        assert row is not None
        return row

    def _product_row(self, conn: Connection, product: str) -> dict[str, Any]:
        domain, name, _ = split_product_ref(product)
        row = store.get_product(conn, f"{domain}.{name}")
        if row is None:
            raise NotFound(
                f"data product {domain}.{name} does not exist",
                {"fix": "search the catalog: meshops catalog search <words>"},
            )
        return row

    def _version_model(self, conn: Connection, row: dict[str, Any] | None) -> DataProductVersion:
        assert row is not None
        product = store.get_product(conn, row["product"])
        assert product is not None
        ports = []
        quality = store.quality_rows(conn, row["id"])
        for port in store.port_rows(conn, row["id"]):
            ports.append(
                OutputPortVersion(
                    name=port["name"],
                    contract_id=port["contract_id"],
                    columns=[ColumnSpec(**c) for c in port["columns"]],
                    snapshot_digest=port["snapshot_digest"],
                    row_count=int(port["row_count"]),
                    bytes=int(port["bytes"]),
                    profile=[ColumnProfile(**c) for c in port["profile"]],
                    quality=[rule_result(q) for q in quality if q["port"] == port["name"]],
                    contract=port["contract"],
                )
            )
        descriptor = row["descriptor"]
        return DataProductVersion(
            product=row["product"],
            domain=product["domain"],
            name=product["name"],
            version=row["version"],
            urn=row["urn"],
            status=product["status"],
            digest=row["digest"],
            row_count=int(row["row_count"]),
            created_at=row["created_at"],
            created_by=row["created_by"],
            description=specs.describe(descriptor.get("description")),
            tags=[str(t) for t in descriptor.get("tags") or []],
            owners=list(product["owners"]),
            ports=ports,
            inputs=list(row["inputs"]),
            descriptor=descriptor,
            build=BuildSummary.model_validate(row["build"]) if row.get("build") else None,
        )


# --- row <-> model ---


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def sql_rule_ids(port: OutputPortVersion) -> set[str]:
    """Ids of the port's `sql` quality rules, as the contract test names their results."""
    present = {c.name: None for c in port.columns}
    found = set()
    for schema_object in port.contract.get("schema") or []:
        if isinstance(schema_object, dict) and schema_object.get("name") == port.name:
            rules = contracts._collect_quality(port.name, schema_object, present)
            found |= {rule_id for rule_id, _, rule in rules if rule.get("type") == "sql"}
    return found


def domain_urn(name: str) -> str:
    return str(Urn.of("domain", name))


def product_urn(product: str) -> str:
    return str(Urn.of("dataproduct", product))


def domain_model(row: dict[str, Any]) -> Domain:
    return Domain(
        name=row["name"],
        description=row["description"],
        owners=list(row["owners"]),
        members=list(row["members"]),
        team=row["team"],
        created_at=row.get("created_at"),
        urn=domain_urn(row["name"]),
    )


def product_model(row: dict[str, Any]) -> DataProduct:
    return DataProduct(
        product=row["product"],
        domain=row["domain"],
        name=row["name"],
        status=row["status"],
        description=row["description"],
        tags=list(row["tags"]),
        owners=list(row["owners"]),
        latest_version=row["latest_version"],
        sunset=row["sunset"],
        replacement=row["replacement"],
        deprecation_reason=row["deprecation_reason"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def product_values(
    spec: specs.ProductSpec,
    status: str,
    latest_version: str | None,
    existing: dict[str, Any] | None = None,
) -> dict[str, Any]:
    now = utcnow()
    previous = existing.get("latest_version") if existing else None
    if previous and latest_version and SemVer.parse(previous) > SemVer.parse(latest_version):
        latest_version = previous
    return {
        "product": spec.key,
        "domain": spec.domain,
        "name": spec.name,
        "status": status,
        "description": spec.description,
        "tags": spec.tags,
        "owners": spec.owners or (list(existing["owners"]) if existing else []),
        "latest_version": latest_version,
        "sunset": existing["sunset"] if existing else None,
        "replacement": existing["replacement"] if existing else None,
        "deprecation_reason": existing["deprecation_reason"] if existing else "",
        "created_at": existing["created_at"] if existing else now,
        "updated_at": now,
    }


def quality_values(result: RuleResult) -> dict[str, Any]:
    return {
        "rule": result.rule,
        "kind": result.kind,
        "column_name": result.column,
        "passed": result.passed,
        "severity": result.severity,
        "observed": result.observed,
        "expected": result.expected,
        "message": result.message,
    }


def rule_result(row: dict[str, Any]) -> RuleResult:
    return RuleResult(
        rule=row["rule"],
        kind=row["kind"],
        column=row["column_name"],
        passed=bool(row["passed"]),
        observed=row["observed"],
        expected=row["expected"],
        message=row["message"],
        severity=row["severity"],
    )
