"""Mesh use cases over a home: domains, publish, versions, lifecycle, reads, catalog, SLOs."""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from meshops.kernel import lineage, outbox
from meshops.kernel.access import Interface
from meshops.kernel.db import utcnow
from meshops.kernel.errors import Conflict, Forbidden, InvalidInput, NotFound
from meshops.kernel.home import Context
from meshops.kernel.urn import Urn, dataproduct_urn
from meshops.mesh import catalog, gate, store
from meshops.mesh.models import (
    BuildReport,
    ColumnProfile,
    ColumnSpec,
    ContractReport,
    DataProduct,
    DataProductVersion,
    Domain,
    OutputPortVersion,
    PolicyWarning,
    PortBuild,
    RuleResult,
    SchemaDiff,
    SearchResult,
    SemVer,
    SloPoint,
    SloStatus,
    ValidationReport,
    VersionRange,
    check_name,
    split_product_ref,
)
from meshops.mesh.schema_diff import bump_between, diff_schemas

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    from meshops.kernel.lineage import Edge
    from meshops.mesh import builds, contracts, reads, specs
else:
    # Imported on first use: searching the catalog or listing products needs none of them
    # (Arrow, DuckDB, the ODCS models), and `meshops catalog search` start time matters.
    from meshops.kernel.lazy import lazy_module

    pa = lazy_module("pyarrow")
    pq = lazy_module("pyarrow.parquet")
    builds = lazy_module("meshops.mesh.builds")
    contracts = lazy_module("meshops.mesh.contracts")
    reads = lazy_module("meshops.mesh.reads")
    specs = lazy_module("meshops.mesh.specs")

log = logging.getLogger(__name__)
INPUT_RELATION = "input_to"


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


class MeshService:
    """The embedded implementation of `meshops.mesh.interface.Mesh`."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

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
            self.ctx.audit(conn, "domain.create", _domain_urn(name), after=row)
        return _domain(row)

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
            self.ctx.audit(conn, "domain.update", _domain_urn(name), before=before, after=after)
        return _domain(after)

    def list_domains(self) -> list[Domain]:
        self.ctx.authorize("domain.read")
        with self.ctx.db.read() as conn:
            return [_domain(r) for r in store.list_domains(conn)]

    def get_domain(self, name: str) -> Domain:
        self.ctx.authorize("domain.read", name)
        with self.ctx.db.read() as conn:
            return _domain(self._domain_row(conn, name))

    def _domain_row(self, conn: Connection, name: str) -> dict[str, Any]:
        row = store.get_domain(conn, name)
        if row is None:
            raise NotFound(
                f"domain {name!r} does not exist",
                {"fix": f"create it: meshops domain create {name}"},
            )
        return row

    # --- specs, builds -------------------------------------------------------------------------

    def validate(self, folder: str | Path) -> ValidationReport:
        spec = specs.load_product(folder)
        self.ctx.authorize("dataproduct.read_metadata", spec.domain)
        return ValidationReport(
            product=spec.key,
            version=spec.version,
            ports=[p.port for p in spec.ports],
            warnings=spec.warnings,
        )

    def build(self, folder: str | Path, on_step: builds.OnStep | None = None) -> BuildReport:
        """Build and contract-test a product folder without publishing anything."""
        spec = specs.load_product(folder)
        self.ctx.authorize("dataproduct.read_metadata", spec.domain)
        result = builds.build(spec, self._product_reader(), on_step)
        reports = self._contract_tests(spec, result.tables, on_step)
        return _build_report(result, reports)

    def diff(self, folder: str | Path) -> SchemaDiff:
        """The schema diff of a product folder against its last published version; raises
        Conflict listing the breaking changes when the folder's version is not a major bump."""
        return self._diff_spec(specs.load_product(folder))

    def diff_documents(
        self, descriptor: dict[str, Any], contracts_by_port: dict[str, dict[str, Any]]
    ) -> SchemaDiff:
        return self._diff_spec(specs.spec_from_documents(descriptor, contracts_by_port))

    def _diff_spec(self, spec: specs.ProductSpec) -> SchemaDiff:
        self.ctx.authorize("dataproduct.read_metadata", spec.domain)
        with self.ctx.db.read() as conn:
            return self._schema_diff(conn, spec)

    def register(self, folder: str | Path) -> DataProduct:
        """Put a product in the catalog as a draft before its first publish."""
        return self._register_spec(specs.load_product(folder))

    def register_documents(
        self, descriptor: dict[str, Any], contracts_by_port: dict[str, dict[str, Any]]
    ) -> DataProduct:
        return self._register_spec(specs.spec_from_documents(descriptor, contracts_by_port))

    def _register_spec(self, spec: specs.ProductSpec) -> DataProduct:
        self.ctx.authorize("dataproduct.write", spec.domain)
        with self.ctx.db.begin() as conn:
            existing = store.get_product(conn, spec.key)
            if existing is not None:
                return _product(existing)
            self._ensure_domain(conn, spec)
            row = _product_row(spec, "draft", None)
            store.upsert_product(conn, row)
            catalog.index(conn, [self._catalog_entry(spec, "draft", None)])
            self.ctx.audit(
                conn, "dataproduct.register", _product_urn(spec.key), after=spec.descriptor
            )
        return _product(row)

    # --- publish -------------------------------------------------------------------------------

    def publish(
        self, folder: str | Path, on_step: builds.OnStep | None = None
    ) -> DataProductVersion:
        """Build, contract-test and publish a product folder as an immutable version."""
        spec = specs.load_product(folder)
        self.ctx.authorize("dataproduct.publish", spec.domain)
        result = builds.build(spec, self._product_reader(), on_step)
        version = self._publish(spec, result.tables, result.inputs, on_step)
        self._emit_openlineage(spec, result.inputs, version)
        return version

    def publish_arrow(
        self,
        descriptor: dict[str, Any],
        contracts_by_port: dict[str, dict[str, Any]],
        tables: dict[str, pa.Table],
        *,
        inputs: list[str] | None = None,
    ) -> DataProductVersion:
        """Publish Arrow tables (one per output port) as a version of the product the ODPS
        `descriptor` describes; `contracts_by_port` holds each port's ODCS contract and
        `inputs` the URNs this version derives from (lineage)."""
        spec = specs.spec_from_documents(descriptor, contracts_by_port)
        self.ctx.authorize("dataproduct.publish", spec.domain)
        upstream = [
            builds.InputData(urn, pa.table({}), urn, "meshops", urn) for urn in inputs or []
        ]
        for urn in inputs or []:
            Urn.parse(urn)
        version = self._publish(spec, tables, upstream, None)
        self._emit_openlineage(spec, upstream, version)
        return version

    def _contract_tests(
        self,
        spec: specs.ProductSpec,
        tables: dict[str, pa.Table],
        on_step: builds.OnStep | None,
    ) -> dict[str, ContractReport]:
        reports = {}
        for port in spec.ports:
            if on_step:
                on_step(f"contract test {port.port}")
            table = tables.get(port.port)
            if table is None:
                raise InvalidInput(
                    f"no table given for output port {port.port!r}",
                    {"field": "tables", "fix": f"pass tables={{{port.port!r}: <pyarrow.Table>}}"},
                )
            reports[port.port] = contracts.run_contract_test(
                table,
                port.port,
                port.columns,
                port.schema_object,
                port.document.get("slaProperties") or [],
            )
        return reports

    def publish_document(
        self, spec: specs.ProductSpec, diff: SchemaDiff, reports: dict[str, ContractReport]
    ) -> dict[str, Any]:
        """The `dataproduct.publish` input document the publish gate evaluates (descriptor,
        contract, ports, schema diff, test results; governance/documents.py: PublishInput)."""
        return gate.publish_document(spec, diff.previous_version, diff, reports)

    def _publish_gate(
        self, spec: specs.ProductSpec, reports: dict[str, ContractReport]
    ) -> tuple[str | None, list[PolicyWarning]]:
        """Evaluate the `dataproduct.publish` policies (global and the product's domain) and
        record the evaluations, before any blob or row is written; a blocking violation
        raises PolicyViolation. Returns the version the diff was taken against and the
        warnings. A version number already published is not a new publish (it is reused or
        refused as immutable by the write transaction) and is not evaluated again."""
        with self.ctx.db.read() as conn:
            product_row = store.get_product(conn, spec.key)
            if product_row is not None and (
                product_row["status"] == "retired"
                or store.get_version_row(conn, spec.key, spec.version) is not None
            ):
                return None, []
            diff = self._schema_diff(conn, spec)
        from meshops.governance.service import GovernanceService

        urn = dataproduct_urn(spec.domain, spec.name, spec.version)
        decision = GovernanceService(self.ctx).enforce(
            gate.TARGET, self.publish_document(spec, diff, reports), spec.domain, urn
        )
        warnings = [PolicyWarning(policy_id=w.policy_id, explanation=w.explanation)
                    for w in decision.warnings]  # fmt: skip
        return diff.previous_version, warnings

    def _check_owner_change(
        self, spec: specs.ProductSpec, product_row: dict[str, Any] | None
    ) -> None:
        """Owners are the server's state: a new version may name other owners only when its
        publisher is an owner already or may administer the domain (owners read every
        version in clear, so a publisher naming itself would read them all)."""
        if product_row is None or not spec.owners:
            return
        current = list(product_row["owners"])
        if set(spec.owners) == set(current) or self.ctx.actor.name in current:
            return
        try:
            self.ctx.authorize("domain.write", spec.domain)
        except Forbidden as exc:
            raise Forbidden(
                f"{self.ctx.actor.name} may not change the owners of {spec.key} "
                f"from {current} to {list(spec.owners)}",
                {
                    "field": "owners",
                    "owners": current,
                    "fix": "keep the product's owners in the descriptor, or ask an owner "
                    "or the domain's owner to change them",
                },
            ) from exc

    def _publish(
        self,
        spec: specs.ProductSpec,
        tables: dict[str, pa.Table],
        inputs: list[builds.InputData],
        on_step: builds.OnStep | None,
    ) -> DataProductVersion:
        tables = {
            p.port: builds.conform(tables[p.port], [c.name for c in p.columns])
            for p in spec.ports
            if p.port in tables
        }
        reports = self._contract_tests(spec, tables, on_step)
        failures = [f for r in reports.values() for f in r.failures]
        if failures:
            raise InvalidInput(
                f"contract test of {spec.key} {spec.version} failed "
                f"({len(failures)} rule(s)); nothing was published: "
                + "; ".join(f"{f.rule}: {f.message}" for f in failures[:10]),
                {
                    "failures": [f.model_dump(mode="json") for f in failures],
                    "fix": "fix the data or the contract, then publish again",
                },
            )
        # The policies decide before anything is written.
        evaluated_against, warnings = self._publish_gate(spec, reports)
        # Blobs first: an interrupted publish leaves only unreferenced, content-addressed blobs.
        snapshots: dict[str, tuple[str, int]] = {}
        for port in spec.ports:
            if on_step:
                on_step(f"snapshot {port.port}")
            snapshots[port.port] = self._write_snapshot(tables[port.port])
        profiles = {p.port: contracts.profile(tables[p.port], p.port) for p in spec.ports}
        digest = hashlib.sha256(
            _canonical([[p.port, snapshots[p.port][0], p.document] for p in spec.ports]).encode()
        ).hexdigest()
        if on_step:
            on_step("record version")
        with self.ctx.db.begin() as conn:
            product_row = store.get_product(conn, spec.key, for_update=True)
            reused = self._reuse(conn, spec, digest, product_row)
            if reused is not None:
                return reused
            if product_row is not None and product_row["status"] == "retired":
                raise Conflict(
                    f"{spec.key} is retired; a retired product takes no new versions",
                    {"fix": f"publish under a new name, e.g. {spec.key}_v2"},
                )
            diff = self._schema_diff(conn, spec)
            if diff.previous_version != evaluated_against:
                raise Conflict(
                    f"{spec.key} {diff.previous_version} was published while "
                    f"{spec.version} was being checked; nothing was published",
                    {"field": "version", "fix": "publish again"},
                )
            self._check_owner_change(spec, product_row)
            self._ensure_domain(conn, spec)
            status = (
                product_row["status"]
                if product_row and product_row["status"] == "deprecated"
                else "published"
            )
            store.upsert_product(conn, _product_row(spec, status, spec.version, product_row))
            urn = dataproduct_urn(spec.domain, spec.name, spec.version)
            now = utcnow()
            store.insert_version(
                conn,
                {
                    "product": spec.key,
                    "version": spec.version,
                    "urn": urn,
                    "digest": digest,
                    "row_count": sum(t.num_rows for t in tables.values()),
                    "created_at": now,
                    "created_by": self.ctx.actor.name,
                    "descriptor": spec.descriptor,
                    "inputs": [i.urn for i in inputs],
                    "schema_diff": diff.model_dump(mode="json"),
                },
                [
                    {
                        "position": i,
                        "name": p.port,
                        "contract_id": p.contract_id,
                        "snapshot_digest": snapshots[p.port][0],
                        "row_count": tables[p.port].num_rows,
                        "bytes": snapshots[p.port][1],
                        "columns": [c.model_dump() for c in p.columns],
                        "profile": [c.model_dump(mode="json") for c in profiles[p.port]],
                        "contract": p.document,
                    }
                    for i, p in enumerate(spec.ports)
                ],
                [
                    {**_quality_row(r), "port": port, "checked_at": now}
                    for port, report in reports.items()
                    for r in report.results
                ],
            )
            catalog.index(conn, [self._catalog_entry(spec, status, spec.version)])
            lineage.add_edges(conn, [(i.urn, urn, INPUT_RELATION) for i in inputs])
            self.ctx.audit(conn, "dataproduct.publish", urn, after={"digest": digest})
            outbox.emit(
                conn,
                outbox.DATAPRODUCT_PUBLISHED,
                urn,
                {"product": spec.key, "version": spec.version, "urn": urn, "digest": digest},
                self.ctx.actor.name,
            )
            version = self._version_model(conn, store.get_version_row(conn, spec.key, spec.version))
        return version.model_copy(update={"policy_warnings": warnings})

    def _reuse(
        self,
        conn: Connection,
        spec: specs.ProductSpec,
        digest: str,
        product_row: dict[str, Any] | None,
    ) -> DataProductVersion | None:
        """Identical content already published is recognised by digest and not stored again."""
        if product_row is None:
            return None
        same_version = store.get_version_row(conn, spec.key, spec.version)
        if same_version is not None:
            if same_version["digest"] == digest:
                return self._version_model(conn, same_version).model_copy(update={"reused": True})
            raise Conflict(
                f"{spec.key} {spec.version} is already published with other content; "
                "versions are immutable",
                {"field": "version", "fix": "bump the version in dataproduct.yaml"},
            )
        same_digest = store.find_version_by_digest(conn, spec.key, digest)
        if same_digest is not None:
            return self._version_model(conn, same_digest).model_copy(update={"reused": True})
        return None

    def _write_snapshot(self, table: pa.Table) -> tuple[str, int]:
        with self.ctx.blobs.writer() as (fh, digest):
            pq.write_table(table, fh, compression="zstd")
            size = fh.tell()
        return digest[0], size

    def _schema_diff(self, conn: Connection, spec: specs.ProductSpec) -> SchemaDiff:
        new_ports = {p.port: p.columns for p in spec.ports}
        latest = self._latest_row(conn, spec.key)
        if latest is None:
            return diff_schemas(None, spec.version, {}, new_ports)
        previous = self._version_model(conn, latest)
        diff = diff_schemas(
            previous.version, spec.version, {p.name: p.columns for p in previous.ports}, new_ports
        )
        bump = bump_between(previous.version, spec.version)
        if bump == "none":
            raise Conflict(
                f"{spec.key} {spec.version} is not newer than the published {previous.version}",
                {"field": "version", "fix": f"use a version above {previous.version}"},
            )
        breaking = diff.breaking
        if breaking and bump != "major":
            next_major = f"{SemVer.parse(previous.version).major + 1}.0.0"
            raise Conflict(
                f"{spec.key} {spec.version} has {len(breaking)} breaking change(s) against "
                f"{previous.version} and needs a major version: "
                + "; ".join(c.message for c in breaking),
                {
                    "breaking": [c.model_dump() for c in breaking],
                    "field": "version",
                    "fix": f"publish as {next_major}, or keep the schema compatible",
                },
            )
        if breaking:
            diff.affected = self._downstream_of_product(conn, spec.key)
        return diff

    def _downstream_of_product(self, conn: Connection, product: str) -> list[str]:
        affected: dict[str, None] = {}
        for row in store.version_rows(conn, product):
            for edge in lineage.walk(conn, row["urn"], "downstream", 10):
                affected.setdefault(edge.downstream)
        return list(affected)

    def _ensure_domain(self, conn: Connection, spec: specs.ProductSpec) -> None:
        if store.get_domain(conn, spec.domain) is None:
            now = utcnow()
            row = {
                "name": spec.domain,
                "description": "",
                "team": "",
                "owners": spec.owners or [self.ctx.actor.name],
                "members": [],
                "created_at": now,
                "updated_at": now,
            }
            store.insert_domain(conn, row)
            self.ctx.audit(conn, "domain.create", _domain_urn(spec.domain), after=row)

    def _catalog_entry(
        self, spec: specs.ProductSpec, status: str, version: str | None
    ) -> dict[str, Any]:
        columns = [c.model_dump() for p in spec.ports for c in p.columns]
        return catalog.entry(
            spec.key,
            domain=spec.domain,
            name=spec.name,
            status=status,
            description=spec.description,
            tags=spec.tags,
            owners=spec.owners or [self.ctx.actor.name],
            columns=columns,
            latest_version=version,
        )

    def _emit_openlineage(
        self, spec: specs.ProductSpec, inputs: list[builds.InputData], version: DataProductVersion
    ) -> None:
        section = self.ctx.home.settings.section("openlineage")
        if not section.get("transport") or version.reused:
            return
        # Inside a unit of work (`meshops apply`) the version exists only once it commits.
        self.ctx.db.after_commit(lambda: self._send_openlineage(section, spec, inputs, version))

    def _send_openlineage(
        self,
        section: dict[str, Any],
        spec: specs.ProductSpec,
        inputs: list[builds.InputData],
        version: DataProductVersion,
    ) -> None:
        from meshops.mesh import openlineage

        event = openlineage.run_event(
            spec.key,
            version.version,
            inputs,
            {p.name: (p.columns, p.row_count) for p in version.ports},
            namespace=str(section.get("namespace", "meshops")),
        )
        try:
            openlineage.emit(section, event)
        except Exception as exc:  # lineage export must never undo a committed publish
            log.warning("OpenLineage emit failed for %s: %s", version.urn, exc)

    # --- versions and products -----------------------------------------------------------------

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
                    quality=[_rule(q) for q in quality if q["port"] == port["name"]],
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
        )

    def get_version(self, product: str, version: str | None = None) -> DataProductVersion:
        domain, _, _ = split_product_ref(product)
        self.ctx.authorize("dataproduct.read_metadata", domain)
        with self.ctx.db.read() as conn:
            found = self._version_model(conn, self._resolve_row(conn, product, version))
        return self._visible_statistics(found)

    def list_versions(self, product: str) -> list[DataProductVersion]:
        domain, name, _ = split_product_ref(product)
        self.ctx.authorize("dataproduct.read_metadata", domain)
        with self.ctx.db.read() as conn:
            self._product_row(conn, product)
            rows = store.version_rows(conn, f"{domain}.{name}")
            versions = [self._version_model(conn, r) for r in rows]
        versions = [self._visible_statistics(v) for v in versions]
        return sorted(versions, key=lambda v: SemVer.parse(v.version))

    def _visible_statistics(self, version: DataProductVersion) -> DataProductVersion:
        """The version as metadata readers see it: value statistics of a column (profile
        min, max, histogram) only when the caller's read plan shows that column in clear
        (owners, read_any, a grant naming it or an unclassified column of a grant);
        otherwise they would leak the values a grant masks or refuses (a row-filtered grant
        sees none: the statistics cover the rows it may not read). Counts (nulls, distinct)
        stay."""
        ports = []
        for port in version.ports:
            clear = self._clear_columns(version, port)
            hidden = [c.name for c in port.profile if c.name not in clear]
            if not hidden:
                ports.append(port)
                continue
            profile = [
                c.model_copy(update={"min": None, "max": None, "histogram": []})
                if c.name in hidden
                else c
                for c in port.profile
            ]
            # An `sql` rule's observation is whatever number its query returned (say the
            # max of a hidden column): shown only to callers who read the port in clear.
            sql_rules = _sql_rule_ids(port)
            quality = [
                q.model_copy(update={"observed": None, "message": ""}) if q.rule in sql_rules else q
                for q in port.quality
            ]
            ports.append(port.model_copy(update={"profile": profile, "quality": quality}))
        return version.model_copy(update={"ports": ports})

    def _clear_columns(self, version: DataProductVersion, port: OutputPortVersion) -> set[str]:
        request = reads.build_request(version, port, None, "sdk")
        try:
            plan = self.ctx.home.read_guard.plan(self.ctx, request)
        except Forbidden:
            return set()
        if plan.row_filter:
            return set()  # the statistics cover every row, also those the filter hides
        return {c for c in plan.columns if c not in plan.masks}

    def get_product(self, product: str) -> DataProduct:
        domain, _, _ = split_product_ref(product)
        self.ctx.authorize("dataproduct.read_metadata", domain)
        with self.ctx.db.read() as conn:
            return _product(self._product_row(conn, product))

    def list_products(
        self, domain: str | None = None, status: str | None = None
    ) -> list[DataProduct]:
        self.ctx.authorize("dataproduct.read_metadata", domain)
        with self.ctx.db.read() as conn:
            return [_product(r) for r in store.list_products(conn, domain, status)]

    def export(self, product: str, version: str | None = None) -> dict[str, str]:
        """The ODPS descriptor and ODCS contracts of a version, as YAML files by name."""
        published = self.get_version(product, version)
        files = {specs.DESCRIPTOR_FILE: specs.export_descriptor(published.descriptor)}
        for port in published.ports:
            files[f"{port.name}.odcs.yaml"] = specs.export_contract(port.contract)
        return files

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
            catalog.set_status(conn, row["product"], "deprecated")
            self.ctx.audit(
                conn,
                "dataproduct.deprecate",
                _product_urn(row["product"]),
                before=row["status"],
                after={k: str(v) for k, v in values.items()},
            )
            return _product(self._product_row(conn, product))

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
            catalog.set_status(conn, row["product"], "retired")
            self.ctx.audit(
                conn,
                "dataproduct.retire",
                _product_urn(row["product"]),
                before="deprecated",
                after="retired",
            )
            return _product(self._product_row(conn, product))

    # --- reads ---------------------------------------------------------------------------------

    def read(
        self,
        product: str,
        version: str | None = None,
        port: str | None = None,
        columns: list[str] | None = None,
        *,
        interface: Interface = "sdk",
        purpose: str = "",
    ) -> pa.Table:
        table, _ = self.read_with_notes(
            product, version, port, columns, interface=interface, purpose=purpose
        )
        return table

    def read_with_notes(
        self,
        product: str,
        version: str | None = None,
        port: str | None = None,
        columns: list[str] | None = None,
        *,
        interface: Interface = "sdk",
        purpose: str = "",
    ) -> tuple[pa.Table, list[str]]:
        domain, _, _ = split_product_ref(product)
        self.ctx.authorize("dataproduct.read_data", domain)
        with self.ctx.db.read() as conn:
            product_model = _product(self._product_row(conn, product))
            reads.lifecycle_warnings(product_model)
            published = self._version_model(conn, self._resolve_row(conn, product, version))
        return reads.read_port(
            self.ctx,
            product_model,
            published,
            port_name=port,
            columns=columns,
            interface=interface,
            purpose=purpose,
        )

    def read_pandas(
        self,
        product: str,
        version: str | None = None,
        port: str | None = None,
        columns: list[str] | None = None,
    ) -> pd.DataFrame:
        frame: pd.DataFrame = self.read(product, version, port, columns).to_pandas()
        return frame

    def sql(self, query: str, *, interface: Interface = "sql") -> pa.Table:
        """Run one SELECT over products, each referenced as `domain.name` (latest version),
        in the kernel's sandbox: only the caller's governed (masked, row-filtered) views are
        there, and the text is refused unless it is a single read-only SELECT."""
        from meshops.kernel import sandbox

        parsed = sandbox.parse(query)  # refused constructs fail before anything is looked up
        resolved = []
        with self.ctx.db.read() as conn:
            # One view per product however its name is spelt (DuckDB ignores case).
            refs = {reads.product_ref(t).lower(): reads.product_ref(t) for t in parsed.tables}
            for ref in refs.values():
                domain, name, _ = split_product_ref(ref)
                row = store.get_product(conn, f"{domain}.{name}")
                if row is None:
                    raise NotFound(
                        f"no data product {ref}",
                        {"product": ref, "fix": "find products with `meshops catalog search`"},
                    )
                self.ctx.authorize("dataproduct.read_data", domain)
                published = self._version_model(conn, self._resolve_row(conn, ref, None))
                resolved.append((ref, _product(row), published))
        if not resolved:
            raise InvalidInput(
                "the query reads no data product",
                {"field": "query", "fix": "name products as <domain>.<name>, e.g. sales.orders"},
            )
        with reads.governed_sandbox(self.ctx, resolved, interface) as (box, views):
            table = box.run_user_sql(parsed)
            reads.record_views(self.ctx, views, table.num_rows)
        return table

    def _product_reader(self) -> builds.ProductReader:
        def read_input(ref: str, port: str | None) -> tuple[pa.Table, str]:
            version = self.get_version(ref)
            table = self.read(ref, version.version, port, interface="pipeline")
            return table, version.urn

        return read_input

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
            return catalog.search(
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
        published = self.get_version(product, version)
        self.ctx.authorize("lineage.read")
        with self.ctx.db.read() as conn:
            return lineage.walk(conn, published.urn, direction, depth)  # type: ignore[arg-type]

    def slo(self, product: str, now: datetime | None = None) -> SloStatus:
        latest = self.get_version(product)
        with self.ctx.db.read() as conn:
            history = store.quality_summary(conn, latest.product)
        limit = None
        for port in latest.ports:
            for prop in port.contract.get("slaProperties") or []:
                if prop.get("property") in ("freshness", "latency", "frequency") and prop.get(
                    "value"
                ):
                    seconds = contracts._freshness_limit(prop)
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


# --- row <-> model ---


def _sql_rule_ids(port: OutputPortVersion) -> set[str]:
    """Ids of the port's `sql` quality rules, as the contract test names their results."""
    present = {c.name: None for c in port.columns}
    found = set()
    for schema_object in port.contract.get("schema") or []:
        if isinstance(schema_object, dict) and schema_object.get("name") == port.name:
            rules = contracts._collect_quality(port.name, schema_object, present)
            found |= {rule_id for rule_id, _, rule in rules if rule.get("type") == "sql"}
    return found


def _domain_urn(name: str) -> str:
    return str(Urn.of("domain", name))


def _product_urn(product: str) -> str:
    return str(Urn.of("dataproduct", product))


def _domain(row: dict[str, Any]) -> Domain:
    return Domain(
        name=row["name"],
        description=row["description"],
        owners=list(row["owners"]),
        members=list(row["members"]),
        team=row["team"],
        created_at=row.get("created_at"),
        urn=_domain_urn(row["name"]),
    )


def _product(row: dict[str, Any]) -> DataProduct:
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


def _product_row(
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


def _quality_row(result: RuleResult) -> dict[str, Any]:
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


def _rule(row: dict[str, Any]) -> RuleResult:
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


def _build_report(result: builds.BuildResult, reports: dict[str, ContractReport]) -> BuildReport:
    return BuildReport(
        product=result.product,
        version=result.version,
        seconds=result.seconds,
        inputs=[i.urn for i in result.inputs],
        ports=[
            PortBuild(port=port, rows=t.num_rows, columns=t.column_names, report=reports[port])
            for port, t in result.tables.items()
            if port in reports
        ],
        steps=result.steps,
    )
