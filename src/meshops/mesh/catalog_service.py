"""The catalog of the mesh: domains, the lifecycle of products (deprecate, retire),
search, lineage and service levels."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from meshops.kernel import lineage
from meshops.kernel.db import utcnow
from meshops.kernel.errors import Conflict, InvalidInput, NotFound
from meshops.mesh import catalog_index, catalog_search, store
from meshops.mesh.iceberg_models import CompactionReport, TableMaintenance
from meshops.mesh.models import (
    DataProduct,
    DataProductVersion,
    Domain,
    OutputPortVersion,
    SearchResult,
    SemVer,
    SloPoint,
    SloStatus,
    check_name,
    split_product_ref,
)
from meshops.mesh.read_service import ReadService
from meshops.mesh.records import (
    MeshArea,
    domain_model,
    domain_urn,
    product_model,
    product_urn,
)

if TYPE_CHECKING:
    from meshops.kernel.lineage import Edge
    from meshops.mesh import contract_sla
else:
    # Imported on first use: searching the catalog or listing products needs none of them
    # (Arrow, DuckDB, the ODCS models), and `meshops catalog search` start time matters.
    from meshops.kernel.lazy import lazy_module

    contract_sla = lazy_module("meshops.mesh.contract_sla")


class CatalogService(MeshArea):
    """Domains, lifecycle, search, lineage and SLOs."""

    # --- domains -------------------------------------------------------------------------------

    def create_domain(
        self,
        name: str,
        description: str = "",
        owners: list[str] | None = None,
        members: list[str] | None = None,
        team: str = "",
    ) -> Domain:
        check_name(name, "domain", "name")
        self.ctx.authorize("domain.write", name)
        now = utcnow()
        row = {
            "name": name,
            "description": description,
            "team": team,
            "owners": owners or [self.ctx.actor.name],
            "members": members or [],
            "created_at": now,
            "updated_at": now,
        }
        with self.ctx.db.begin() as conn:
            if store.get_domain(conn, name) is not None:
                raise Conflict(f"domain {name!r} already exists", {"fix": "pick another name"})
            store.insert_domain(conn, row)
            self.ctx.audit(conn, "domain.create", domain_urn(name), after=row)
        return domain_model(row)

    def update_domain(
        self,
        name: str,
        description: str | None = None,
        owners: list[str] | None = None,
        members: list[str] | None = None,
        team: str | None = None,
    ) -> Domain:
        self.ctx.authorize("domain.write", name)
        with self.ctx.db.begin() as conn:
            before = self._domain_row(conn, name)
            values = {
                k: v
                for k, v in (
                    ("description", description),
                    ("owners", owners),
                    ("members", members),
                    ("team", team),
                )
                if v is not None
            }
            store.update_domain(conn, name, {**values, "updated_at": utcnow()})
            after = {**before, **values}
            self.ctx.audit(conn, "domain.update", domain_urn(name), before=before, after=after)
        return domain_model(after)

    def list_domains(self) -> list[Domain]:
        self.ctx.authorize("domain.read")
        with self.ctx.db.read() as conn:
            return [domain_model(r) for r in store.list_domains(conn)]

    def get_domain(self, name: str) -> Domain:
        self.ctx.authorize("domain.read", name)
        with self.ctx.db.read() as conn:
            return domain_model(self._domain_row(conn, name))

    def _domain_row(self, conn: Connection, name: str) -> dict[str, Any]:
        row = store.get_domain(conn, name)
        if row is None:
            raise NotFound(
                f"domain {name!r} does not exist",
                {"fix": f"create it: meshops domain create {name}"},
            )
        return row

    # --- lifecycle -----------------------------------------------------------------------------

    def deprecate(
        self,
        product: str,
        sunset: date | str | None = None,
        replacement: str | None = None,
        reason: str = "",
    ) -> DataProduct:
        domain, _, _ = split_product_ref(product)
        self.ctx.authorize("dataproduct.lifecycle", domain)
        if replacement:
            split_product_ref(replacement)
        with self.ctx.db.begin() as conn:
            row = self._product_row(conn, product)
            if row["status"] not in ("published", "deprecated"):
                raise Conflict(
                    f"{row['product']} is {row['status']}; only a published product can be "
                    "deprecated",
                    {"fix": "publish a version first" if row["status"] == "draft" else ""},
                )
            values = {
                "status": "deprecated",
                "sunset": store.as_date(sunset),
                "replacement": replacement,
                "deprecation_reason": reason,
            }
            store.update_product(conn, row["product"], values)
            catalog_index.set_status(conn, row["product"], "deprecated")
            self.ctx.audit(
                conn,
                "dataproduct.deprecate",
                product_urn(row["product"]),
                before=row["status"],
                after={k: str(v) for k, v in values.items()},
            )
            return product_model(self._product_row(conn, product))

    def retire(self, product: str) -> DataProduct:
        domain, _, _ = split_product_ref(product)
        self.ctx.authorize("dataproduct.lifecycle", domain)
        with self.ctx.db.begin() as conn:
            row = self._product_row(conn, product)
            if row["status"] != "deprecated":
                raise Conflict(
                    f"{row['product']} is {row['status']}; deprecate it (with a sunset date and "
                    "replacement) before retiring it",
                    {"fix": f"meshops product deprecate {row['product']} --sunset YYYY-MM-DD"},
                )
            store.update_product(conn, row["product"], {"status": "retired"})
            catalog_index.set_status(conn, row["product"], "retired")
            self.ctx.audit(
                conn,
                "dataproduct.retire",
                product_urn(row["product"]),
                before="deprecated",
                after="retired",
            )
            return product_model(self._product_row(conn, product))

    # --- Iceberg ports: compaction and snapshot expiry (mesh/iceberg.py) ----------------------

    def compact(self, product: str, port: str | None = None) -> CompactionReport:
        """Compact and expire the product's Iceberg tables; see `Mesh.compact`."""
        from meshops.mesh import iceberg

        domain, _, _ = split_product_ref(product)
        self.ctx.authorize("dataproduct.lifecycle", domain)
        with self.ctx.db.read() as conn:
            key = self._product_row(conn, product)["product"]
            versions = [self._version_model(conn, r) for r in store.version_rows(conn, key)]
        if not versions:
            raise Conflict(f"{key} has no published version", {"fix": "publish one first"})
        versions.sort(key=lambda v: SemVer.parse(v.version))
        latest = versions[-1]
        ports = [p for p in latest.ports if iceberg.is_iceberg_ref(p.snapshot_digest)]
        if port is not None:
            ports = [p for p in ports if p.name == port]
        if not ports:
            raise InvalidInput(
                f"{key} {latest.version} has no Iceberg port" + (f" {port!r}" if port else ""),
                {"field": "port", "fix": "name a port stored with `meshops.format: iceberg`"},
            )
        retention = self._retention(ports)
        kept = self._kept_versions(versions, retention)
        report = CompactionReport(product=key, retention_seconds=retention, kept_versions=kept)
        tables = {
            (p.name, iceberg.table_identifier(key, p.name, v.version))
            for v in versions
            for p in v.ports
            if p.name in {q.name for q in ports} and iceberg.is_iceberg_ref(p.snapshot_digest)
        }
        for port_name, identifier in sorted(tables):
            done = iceberg.compact(self.ctx.home.settings, identifier, keep_versions=kept)
            report.tables.append(TableMaintenance(port=port_name, **vars(done)))
        with self.ctx.db.begin() as conn:
            self.ctx.audit(conn, "dataproduct.compact", product_urn(key),
                           after=report.model_dump(mode="json"))  # fmt: skip
        return report

    @staticmethod
    def _retention(ports: list[OutputPortVersion]) -> float | None:
        """The shortest SLA `retention` the latest contracts of these ports declare."""
        from meshops.mesh import iceberg, specs

        found = []
        for port in ports:
            contract = specs.contract_model(port.contract)
            seconds = iceberg.retention_of(contract)
            if seconds is not None:
                found.append(seconds)
        return min(found) if found else None

    @staticmethod
    def _kept_versions(versions: list[DataProductVersion], retention: float | None) -> list[str]:
        """Versions still readable: the latest, and those published within the retention."""
        if retention is None:
            return [v.version for v in versions]
        cutoff = datetime.now(UTC) - timedelta(seconds=retention)
        kept = [v.version for v in versions[:-1] if _aware(v.created_at) >= cutoff]
        return [*kept, versions[-1].version]

    # --- catalog, lineage, SLOs ----------------------------------------------------------------

    def search(
        self,
        text: str = "",
        *,
        domain: str | None = None,
        status: str | None = None,
        classification: str | None = None,
        tag: str | None = None,
        limit: int = 20,
        offset: int = 0,
    ) -> SearchResult:
        self.ctx.authorize("dataproduct.read_metadata", domain)
        if not 1 <= limit <= 1000:
            raise InvalidInput("limit must be between 1 and 1000", {"field": "limit"})
        with self.ctx.db.read() as conn:
            return catalog_search.search(
                conn,
                text,
                domain=domain,
                status=status,
                classification=classification,
                tag=tag,
                limit=limit,
                offset=offset,
            )

    def lineage(
        self, product: str, version: str | None = None, direction: str = "upstream", depth: int = 5
    ) -> list[Edge]:
        if direction not in ("upstream", "downstream"):
            raise InvalidInput("direction is upstream or downstream", {"field": "direction"})
        published = ReadService(self.ctx).get_version(product, version)
        self.ctx.authorize("lineage.read")
        with self.ctx.db.read() as conn:
            return lineage.walk(conn, published.urn, direction, depth)  # type: ignore[arg-type]

    def slo(self, product: str, now: datetime | None = None) -> SloStatus:
        latest = ReadService(self.ctx).get_version(product)
        with self.ctx.db.read() as conn:
            history = store.quality_summary(conn, latest.product)
        limit = None
        for port in latest.ports:
            for prop in port.contract.get("slaProperties") or []:
                name = contract_sla.sla_property_name(prop)  # case and synonyms (ly, fy)
                if name in ("freshness", "latency", "frequency") and prop.get("value"):
                    seconds = contract_sla.freshness_limit(prop)
                    limit = seconds if limit is None else min(limit, seconds)
        age = ((now or datetime.now(UTC)) - latest.created_at).total_seconds()
        passed = sum(h["passed"] for h in history)
        total = sum(h["total"] for h in history)
        return SloStatus(
            product=latest.product,
            freshness_ok=None if limit is None else age <= limit,
            freshness_limit_seconds=limit,
            age_seconds=age,
            quality_compliance=passed / total if total else 1.0,
            history=[
                SloPoint(
                    version=h["version"],
                    at=h["at"],
                    fresh=h["sla_ok"],
                    quality_passed=h["passed"],
                    quality_total=h["total"],
                )
                for h in history
            ],
        )


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
