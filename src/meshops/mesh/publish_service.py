"""Publishing data products: validate and build folders, diff and register specs, and
publish versions (contract tests, the publish policies, snapshots, one transaction)."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from meshops.kernel import lineage, openlineage, outbox, ports
from meshops.kernel.db import utcnow
from meshops.kernel.errors import Conflict, Forbidden, InvalidInput
from meshops.kernel.urn import Urn, dataproduct_urn
from meshops.mesh import catalog, catalog_index, gate, lineage_facets, store
from meshops.mesh.events import DataProductPublished
from meshops.mesh.models import (
    BuildReport,
    BuildSummary,
    ContractReport,
    DataProduct,
    DataProductVersion,
    PolicyWarning,
    SchemaDiff,
    SemVer,
    ValidationReport,
)
from meshops.mesh.read_service import ReadService
from meshops.mesh.records import (
    MeshArea,
    canonical,
    domain_urn,
    product_model,
    product_urn,
    product_values,
    quality_values,
)
from meshops.mesh.schema_diff import bump_between, diff_schemas

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from meshops.mesh import builds, contracts, iceberg, profiling, specs
else:
    # Imported on first use: searching the catalog or listing products needs none of them
    # (Arrow, DuckDB, the ODCS models), and `meshops catalog search` start time matters.
    from meshops.kernel.lazy import lazy_module

    pa = lazy_module("pyarrow")
    pq = lazy_module("pyarrow.parquet")
    builds = lazy_module("meshops.mesh.builds")
    contracts = lazy_module("meshops.mesh.contracts")
    profiling = lazy_module("meshops.mesh.profiling")
    iceberg = lazy_module("meshops.mesh.iceberg")
    specs = lazy_module("meshops.mesh.specs")


log = logging.getLogger(__name__)
INPUT_RELATION = "input_to"


class PublishService(MeshArea):
    """Validate, build, diff, register and publish data products."""

    # --- specs, builds -------------------------------------------------------------------------

    def validate(self, folder: str | Path) -> ValidationReport:
        spec = specs.load_product(folder)
        self.ctx.authorize("dataproduct.read_metadata", spec.domain)
        for port in spec.ports:  # a port's storage settings (format, partitioning) too
            iceberg.layout_of(spec.descriptor, port)
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
        reports = builds.contract_reports(spec, result.tables, on_step)
        return builds.build_report(result, reports)

    def diff(self, folder: str | Path) -> SchemaDiff:
        """The schema diff of a product folder against its last published version; raises
        Conflict listing the breaking changes when the folder's version is not a major bump."""
        return self._diff_spec(specs.load_product(folder))

    def diff_documents(
        self, descriptor: dict[str, Any], contracts: dict[str, dict[str, Any]]
    ) -> SchemaDiff:
        return self._diff_spec(specs.spec_from_documents(descriptor, contracts))

    def _diff_spec(self, spec: specs.ProductSpec) -> SchemaDiff:
        self.ctx.authorize("dataproduct.read_metadata", spec.domain)
        with self.ctx.db.read() as conn:
            return self._schema_diff(conn, spec)

    def register(self, folder: str | Path) -> DataProduct:
        """Put a product in the catalog as a draft before its first publish."""
        return self._register_spec(specs.load_product(folder))

    def register_documents(
        self, descriptor: dict[str, Any], contracts: dict[str, dict[str, Any]]
    ) -> DataProduct:
        return self._register_spec(specs.spec_from_documents(descriptor, contracts))

    def _register_spec(self, spec: specs.ProductSpec) -> DataProduct:
        self.ctx.authorize("dataproduct.write", spec.domain)
        with self.ctx.db.begin() as conn:
            existing = store.get_product(conn, spec.key)
            if existing is not None:
                return product_model(existing)
            self._ensure_domain(conn, spec)
            row = product_values(spec, "draft", None)
            store.upsert_product(conn, row)
            catalog_index.index(conn, [self._catalog_entry(spec, "draft", None)])
            self.ctx.audit(
                conn, "dataproduct.register", product_urn(spec.key), after=spec.descriptor
            )
        return product_model(row)

    # --- publish -------------------------------------------------------------------------------

    def publish(
        self, folder: str | Path, on_step: builds.OnStep | None = None
    ) -> DataProductVersion:
        """Build, contract-test and publish a product folder as an immutable version."""
        spec = specs.load_product(folder)
        self.ctx.authorize("dataproduct.publish", spec.domain)
        with openlineage.reporting(self.ctx, f"{spec.key}.build", job_type="PUBLISH") as ol:
            result = builds.build(spec, self._product_reader(), on_step)
            if ol is not None:
                ol.inputs = self._ol_inputs(result.inputs)
            version = self._publish(spec, result.tables, result.inputs, on_step, result.summary)
            self._ol_outputs(ol, version)
        return version

    def publish_arrow(
        self,
        descriptor: dict[str, Any],
        contracts_by_port: dict[str, dict[str, Any]],
        tables: dict[str, pa.Table],
        *,
        inputs: list[str] | None = None,
        build: BuildSummary | None = None,
    ) -> DataProductVersion:
        """Publish Arrow tables (one per output port) as a version of the product the ODPS
        `descriptor` describes; `contracts_by_port` holds each port's ODCS contract,
        `inputs` the URNs this version derives from (lineage) and `build` how the tables
        were built (stored with the version)."""
        spec = specs.spec_from_documents(descriptor, contracts_by_port)
        self.ctx.authorize("dataproduct.publish", spec.domain)
        upstream = [
            builds.InputData(urn, pa.table({}), urn, "meshops", urn) for urn in inputs or []
        ]
        for urn in inputs or []:
            Urn.parse(urn)
        with openlineage.reporting(self.ctx, f"{spec.key}.build", job_type="PUBLISH") as ol:
            if ol is not None:
                ol.inputs = self._ol_inputs(upstream)
            version = self._publish(spec, tables, upstream, None, build)
            self._ol_outputs(ol, version)
        return version

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
        urn = dataproduct_urn(spec.domain, spec.name, spec.version)
        notes = ports.POLICY_ENFORCER.get().enforce(
            self.ctx, gate.TARGET, self.publish_document(spec, diff, reports), spec.domain, urn
        )
        warnings = [PolicyWarning(policy_id=w.policy_id, explanation=w.explanation)
                    for w in notes]  # fmt: skip
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
        build: BuildSummary | None = None,
    ) -> DataProductVersion:
        tables = {
            p.port: builds.conform(tables[p.port], [c.name for c in p.columns])
            for p in spec.ports
            if p.port in tables
        }
        reports = builds.contract_reports(spec, tables, on_step)
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
        iceberg_ports = [p for p in spec.ports if iceberg.layout_of(spec.descriptor, p).is_iceberg]
        self._check_format_change(spec, {p.port for p in iceberg_ports})
        # The policies decide before anything is written.
        evaluated_against, warnings = self._publish_gate(spec, reports)
        # Blobs first: an interrupted publish leaves only unreferenced, content-addressed blobs.
        snapshots: dict[str, tuple[str, int]] = {}
        contents: dict[str, str] = {}  # what the version digest covers for each port
        row_digests: dict[str, iceberg.RowsDigest] = {}
        for port in spec.ports:
            if on_step:
                on_step(f"snapshot {port.port}")
            if port in iceberg_ports:
                row_digests[port.port] = iceberg.RowsDigest(tables[port.port])
                contents[port.port] = row_digests[port.port].hex
            else:
                snapshots[port.port] = self._write_snapshot(tables[port.port])
                contents[port.port] = snapshots[port.port][0]
        profiles = {p.port: profiling.profile(tables[p.port], p.port) for p in spec.ports}
        digest = hashlib.sha256(
            canonical([[p.port, contents[p.port], p.document] for p in spec.ports]).encode()
        ).hexdigest()
        if iceberg_ports:
            reused = self._reused_before_iceberg(spec, digest)
            if reused is not None:
                return reused
            snapshots.update(
                self._write_iceberg(spec, iceberg_ports, tables, evaluated_against, row_digests)
            )
        if on_step:
            on_step("record version")
        try:
            return self._record_version(
                spec, tables=tables, inputs=inputs, reports=reports, snapshots=snapshots,
                profiles=profiles, digest=digest, evaluated_against=evaluated_against,
                warnings=warnings, build=build,
            )  # fmt: skip
        except BaseException:
            for port in iceberg_ports:  # the version was not recorded: neither is its tag
                iceberg.untag(self.ctx.home.settings, spec.key, port.port, spec.version)
            raise

    def _check_format_change(self, spec: specs.ProductSpec, iceberg_ports: set[str]) -> None:
        """A port moves between Parquet snapshots and an Iceberg table only in a major
        version (its readers' engines and the table's location change)."""
        with self.ctx.db.read() as conn:
            latest = self._latest_row(conn, spec.key)
            if latest is None:
                return
            previous = self._version_model(conn, latest)
        if bump_between(previous.version, spec.version) in ("major", "none"):
            return  # "none" is refused (or reused) by the diff with its own message
        for port in previous.ports:
            was = port.snapshot_digest.startswith("iceberg:")
            if port.name in {p.port for p in spec.ports} and was != (port.name in iceberg_ports):
                formats = ("iceberg", "parquet") if was else ("parquet", "iceberg")
                raise Conflict(
                    f"{spec.key} {spec.version} moves port {port.name!r} from {formats[0]} "
                    f"to {formats[1]}; a port changes format only in a major version",
                    {
                        "field": "meshops.format",
                        "fix": f"publish as {SemVer.parse(previous.version).major + 1}.0.0, "
                        f"or keep `meshops.format: {formats[0]}`",
                    },
                )

    def _reused_before_iceberg(
        self, spec: specs.ProductSpec, digest: str
    ) -> DataProductVersion | None:
        """A version already published with this content, found before an Iceberg table is
        committed to (a table commit is not content-addressed like a blob); a retired
        product is refused here too, before its table is touched."""
        with self.ctx.db.read() as conn:
            product_row = store.get_product(conn, spec.key)
            reused = self._reuse(conn, spec, digest, product_row)
        if reused is not None:
            with self.ctx.db.begin() as conn:
                self.ctx.link_to_step(conn, reused.urn)  # inside a pipeline step
            return reused
        _refuse_retired(spec, product_row)
        return None

    def _write_iceberg(
        self,
        spec: specs.ProductSpec,
        ports: list[specs.PortContract],
        tables: dict[str, pa.Table],
        previous_version: str | None,
        digests: dict[str, iceberg.RowsDigest],
    ) -> dict[str, tuple[str, int]]:
        """Commit each Iceberg port's rows as the version's tagged snapshot (mesh/iceberg.py)."""
        written: dict[str, tuple[str, int]] = {}
        settings = self.ctx.home.settings
        try:
            for port in ports:
                result = iceberg.write_version(
                    settings, spec, port, tables[port.port], previous_version,
                    digest=digests[port.port],
                )  # fmt: skip
                written[port.port] = (iceberg.snapshot_ref(result.snapshot_id), result.total_bytes)
                log.info("%s %s: %s to Iceberg (%d new files)", spec.key, port.port,
                         result.mode, len(result.added_files))  # fmt: skip
        except BaseException:
            for name in written:
                iceberg.untag(settings, spec.key, name, spec.version)
            raise
        return written

    def _record_version(
        self,
        spec: specs.ProductSpec,
        *,
        tables: dict[str, pa.Table],
        inputs: list[builds.InputData],
        reports: dict[str, ContractReport],
        snapshots: dict[str, tuple[str, int]],
        profiles: dict[str, Any],
        digest: str,
        evaluated_against: str | None,
        warnings: list[PolicyWarning],
        build: BuildSummary | None = None,
    ) -> DataProductVersion:
        with self.ctx.db.begin() as conn:
            product_row = store.get_product(conn, spec.key, for_update=True)
            reused = self._reuse(conn, spec, digest, product_row)
            if reused is not None:
                self.ctx.link_to_step(conn, reused.urn)  # inside a pipeline step
                return reused
            _refuse_retired(spec, product_row)
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
            store.upsert_product(conn, product_values(spec, status, spec.version, product_row))
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
                    "build": build.model_dump(mode="json") if build else None,
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
                    {**quality_values(r), "port": port, "checked_at": now}
                    for port, report in reports.items()
                    for r in report.results
                ],
            )
            catalog_index.index(conn, [self._catalog_entry(spec, status, spec.version)])
            lineage.add_edges(conn, [(i.urn, urn, INPUT_RELATION) for i in inputs])
            self.ctx.link_to_step(conn, urn)  # inside a pipeline step
            self.ctx.audit(conn, "dataproduct.publish", urn, after={"digest": digest})
            published = {"product": spec.key, "version": spec.version, "urn": urn, "digest": digest}
            outbox.emit(conn, urn, DataProductPublished(**published), self.ctx.actor.name)
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
            self.ctx.audit(conn, "domain.create", domain_urn(spec.domain), after=row)

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

    # --- OpenLineage (kernel.openlineage: naming and facets, docs/openlineage.md) ---------------

    def _ol_inputs(self, inputs: list[builds.InputData]) -> list[openlineage.Dataset]:
        """Inputs as OpenLineage datasets: files and databases as read, a product (port) as
        the port's dataset of this home, named exactly as the publish of that port named it."""
        settings = self.ctx.home.settings
        datasets = []
        for i in inputs:
            if i.namespace != "meshops":
                datasets.append(openlineage.Dataset(i.namespace, i.dataset))
                continue
            urn = Urn.parse(i.urn)
            if urn.kind != "dataproduct":  # e.g. a model version (batch scoring)
                datasets.append(
                    openlineage.Dataset(openlineage.namespace(settings), ".".join(urn.parts))
                )
                continue
            key, version = urn.parts[0], urn.parts[1]
            port = i.dataset[len(key) + 1 :] if i.dataset.startswith(f"{key}.") else None
            port = port or openlineage.default_port(self.ctx, key, version)
            if port is None:  # not readable here: the product's name
                datasets.append(openlineage.urn_dataset(self.ctx, i.urn))
                continue
            dataset = openlineage.port_dataset(settings, key, port, version)
            dataset.facets.update(lineage_facets.storage_facets(self.ctx, key, port, version))
            datasets.append(dataset)
        return datasets

    def _ol_outputs(self, ol: openlineage.Running | None, version: DataProductVersion) -> None:
        """Each output port with schema, version, row count and the contract test results."""
        if ol is None:
            return
        if version.reused:  # identical content was published before: nothing new written
            ol.abort()
            return
        settings = self.ctx.home.settings
        for port in version.ports:
            columns = [(c.name, c.physical_type or c.logical_type, c.description or None)
                       for c in port.columns]  # fmt: skip
            dataset = openlineage.port_dataset(
                settings, version.product, port.name, version.version, columns
            )
            if port.quality:
                dataset.facets["dataQualityAssertions"] = openlineage.quality_facet(
                    [
                        {
                            "assertion": r.rule,
                            "success": r.passed,
                            "column": r.column,
                            "severity": r.severity,
                            "description": r.message,
                            "expected": r.expected,
                            "actual": r.observed,
                        }
                        for r in port.quality
                    ]
                )
            dataset.io_facets["outputStatistics"] = openlineage.row_count_facet(port.row_count)
            dataset.facets.update(
                lineage_facets.storage_facets(self.ctx, version.product, port.name,
                                              version.version, port.snapshot_digest)
            )  # fmt: skip
            ol.outputs.append(dataset)

    def _product_reader(self) -> builds.ProductReader:
        reader = ReadService(self.ctx)

        def read_input(ref: str, port: str | None) -> tuple[pa.Table, str]:
            version = reader.get_version(ref)
            table = reader.read(ref, version.version, port, interface="pipeline")
            return table, version.urn

        return read_input


def _refuse_retired(spec: specs.ProductSpec, product_row: Any) -> None:
    if product_row is not None and product_row["status"] == "retired":
        raise Conflict(
            f"{spec.key} is retired; a retired product takes no new versions",
            {"fix": f"publish under a new name, e.g. {spec.key}_v2"},
        )
