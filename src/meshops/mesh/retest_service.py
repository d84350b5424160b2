"""Re-running the contract test of a published version (`Mesh.test_version`, #21).

A version is immutable, its data and its contract with it; the world around it is not: a
freshness SLA ages, an end-of-life date passes, and a platform team wants proof that what
is stored still holds. The test reads what the version stored, as the platform (no grant,
no masking: a masked value would fail rules it passes; no usage event, like the publish's
own test and compaction), and judges it by the contract stored WITH the version:

  Parquet port   the version's snapshot file (the contract test's footer-statistics paths)
  Iceberg port   the version's tagged snapshot (`iceberg_stats.run_snapshot_test`): the
                 manifests answer the row count, null counts and the ranges their bounds
                 prove, and the report marks those rules `from_metadata`

Nothing about the version changes: its stored quality results are those of its publish.
The re-test is recorded as one audit event (who, when, the verdicts), written after every
port is tested, so a failure midway records nothing.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Literal

from meshops.kernel.db import utcnow
from meshops.mesh.models import (
    ContractReport,
    DataProductVersion,
    OutputPortVersion,
    split_product_ref,
)
from meshops.mesh.read_service import ReadService
from meshops.mesh.records import MeshArea, sql_rule_ids
from meshops.mesh.retest_models import PortTestReport, RuleVerdict, VersionTestReport

if TYPE_CHECKING:
    from meshops.mesh import contracts, iceberg, iceberg_stats, reads, specs
else:
    # Imported on first use: searching the catalog or listing products needs none of them.
    from meshops.kernel.lazy import lazy_module

    contracts = lazy_module("meshops.mesh.contracts")
    iceberg = lazy_module("meshops.mesh.iceberg")
    iceberg_stats = lazy_module("meshops.mesh.iceberg_stats")
    reads = lazy_module("meshops.mesh.reads")
    specs = lazy_module("meshops.mesh.specs")

AUDIT_ACTION = "dataproduct.test"


class RetestService(MeshArea):
    """Contract tests of published versions, again."""

    def test_version(
        self, product: str, version: str | None = None, port: str | None = None
    ) -> VersionTestReport:
        """Run the contract test of a published version (the latest, or `version`: exact or
        a range) on each of its output ports (or `port`), with the contract stored with it."""
        domain, _, _ = split_product_ref(product)
        self.ctx.authorize("dataproduct.publish", domain)
        with self.ctx.db.read() as conn:
            self._product_row(conn, product)  # an unknown product is named as such
            published = self._version_model(conn, self._resolve_row(conn, product, version))
        chosen = [published.port(port)] if port is not None else published.ports
        contracts_by_port = self._stored_contracts(published)
        tested = [
            self._visible(published, p, self._test_port(published, p, contracts_by_port[p.name]))
            for p in chosen
        ]
        report = VersionTestReport(
            product=published.product,
            version=published.version,
            urn=published.urn,
            tested_at=utcnow(),
            tested_by=self.ctx.actor.name,
            passed=all(p.passed for p in tested),
            ports=tested,
        )
        with self.ctx.db.begin() as conn:
            self.ctx.audit(conn, AUDIT_ACTION, published.urn, detail=_audit_detail(report))
        return report

    @staticmethod
    def _stored_contracts(published: DataProductVersion) -> dict[str, specs.PortContract]:
        """The ports' contracts as the version's publish read them (its descriptor binds
        each port to its schema object)."""
        spec = specs.spec_from_documents(
            published.descriptor, {p.name: p.contract for p in published.ports}
        )
        return {p.port: p for p in spec.ports}

    def _test_port(
        self, published: DataProductVersion, port: OutputPortVersion, contract: specs.PortContract
    ) -> PortTestReport:
        started = time.perf_counter()
        tested = self._run_port_test(published, port, contract)
        return tested.model_copy(update={"seconds": time.perf_counter() - started})

    def _run_port_test(
        self, published: DataProductVersion, port: OutputPortVersion, contract: specs.PortContract
    ) -> PortTestReport:
        if iceberg.is_iceberg_ref(port.snapshot_digest):
            table, snapshot_id = iceberg.resolve_snapshot(
                self.ctx.home.settings, published.product, port.name, published.version,
                port.snapshot_digest,
            )  # fmt: skip
            done = iceberg_stats.run_snapshot_test(table, snapshot_id, contract)
            return _port_report(port, "iceberg", done.report, done.from_metadata)
        with reads.snapshot_path(self.ctx, port.snapshot_digest) as path:
            report = contracts.run_port_contract_test(path, contract)
        return _port_report(port, "parquet", report, frozenset())

    def _visible(
        self, published: DataProductVersion, port: OutputPortVersion, tested: PortTestReport
    ) -> PortTestReport:
        """What `get_version` shows of the port's quality results, the re-test shows: an
        `sql` rule's observation is whatever its query returned (say the max of a masked
        column), shown only to a caller who reads every column of the port in clear."""
        clear = ReadService(self.ctx)._clear_columns(published, port)
        if all(c.name in clear for c in port.columns):
            return tested
        hidden = sql_rule_ids(port)
        results = [
            r.model_copy(update={"observed": None, "message": ""}) if r.rule in hidden else r
            for r in tested.results
        ]
        return tested.model_copy(update={"results": results})


def _port_report(
    port: OutputPortVersion,
    storage: Literal["parquet", "iceberg"],
    report: ContractReport,
    from_metadata: frozenset[str],
) -> PortTestReport:
    at_publish = {r.rule: r.passed for r in port.quality}
    results = [
        RuleVerdict(
            **r.model_dump(exclude={"status"}),
            from_metadata=r.rule in from_metadata,
            passed_at_publish=at_publish.get(r.rule),
        )
        for r in report.results
    ]
    return PortTestReport(
        port=port.name,
        format=storage,
        rows=report.rows,
        passed=report.passed,
        results=results,
    )


def _audit_detail(report: VersionTestReport) -> dict[str, Any]:
    """The verdicts, kept readable in the audit log; not the observations (an `sql` rule's
    may be a value of the data)."""
    return {
        "version": report.version,
        "passed": report.passed,
        "ports": {
            p.port: {
                "format": p.format,
                "rows": p.rows,
                "passed": p.passed,
                "rules": len(p.results),
                "failed": [r.rule for r in p.failures],
            }
            for p in report.ports
        },
    }
