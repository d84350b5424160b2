"""`platform.mesh`: the data mesh as the SDK exposes it, embedded or over HTTP.

Programmatic publishing (batch scoring, prediction logs, demos):

    platform.mesh.publish_arrow(
        descriptor,            # ODPS mapping: apiVersion, kind, id, name, domain, version,
                               # status, outputPorts [{name, version, contractId}], team ...
        {"scores": contract},  # ODCS mapping per output port (schema, quality, slaProperties)
        {"scores": table},     # pyarrow.Table per output port
        inputs=[urn, ...],     # what this version derives from (lineage edges)
    )

It contract-tests the tables, writes Parquet snapshots to the blob store, and records an
immutable version in one transaction (or nothing, if a rule fails). `publish(folder)` does
the same for a product folder (dataproduct.yaml, *.odcs.yaml, build.yaml) after building it.

Operations are declared once (`meshops.kernel.rpc`): the routes and the HTTP client derive
from the declarations. Undeclared methods are written by hand on both transports: the folder
methods read the user's files on the client (`meshops.mesh.remote`) and then call the
server's `MeshDocuments`; `publish_arrow` uploads one table per port, and `read`/`sql`
answer an Arrow stream with the lifecycle warnings in a header (`api/routers/mesh.py`).
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from meshops.kernel import rpc
from meshops.kernel.access import Interface
from meshops.kernel.bounds import JsonObject, LineageDepth, Offset, SearchLimit
from meshops.kernel.lineage import Edge
from meshops.mesh.iceberg_models import CompactionReport
from meshops.mesh.models import (
    BuildReport,
    BuildSummary,
    DataProduct,
    DataProductVersion,
    Domain,
    SchemaDiff,
    SearchResult,
    SloStatus,
    ValidationReport,
)
from meshops.mesh.retest_models import VersionTestReport

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from meshops.mesh.builds import OnStep


class Mesh(Protocol):
    # domains
    @rpc.post("/v1/mesh/domains", status=201)
    def create_domain(
        self,
        name: str,
        description: str = "",
        owners: list[str] | None = None,
        members: list[str] | None = None,
        team: str = "",
    ) -> Domain: ...

    @rpc.put("/v1/mesh/domains/{name}")
    def update_domain(
        self,
        name: str,
        description: str | None = None,
        owners: list[str] | None = None,
        members: list[str] | None = None,
        team: str | None = None,
    ) -> Domain: ...

    @rpc.get("/v1/mesh/domains")
    def list_domains(self) -> list[Domain]: ...

    @rpc.get("/v1/mesh/domains/{name}")
    def get_domain(self, name: str) -> Domain: ...

    # specs, builds, publish (client-side folder work, then MeshDocuments or an upload)
    def validate(self, folder: str | Path) -> ValidationReport: ...

    def build(self, folder: str | Path, on_step: OnStep | None = None) -> BuildReport: ...

    def diff(self, folder: str | Path) -> SchemaDiff: ...

    def register(self, folder: str | Path) -> DataProduct: ...

    def publish(self, folder: str | Path, on_step: OnStep | None = None) -> DataProductVersion: ...

    def publish_arrow(
        self,
        descriptor: dict[str, Any],
        contracts_by_port: dict[str, dict[str, Any]],
        tables: dict[str, pa.Table],
        *,
        inputs: list[str] | None = None,
        build: BuildSummary | None = None,  # how the tables were built, stored with the version
    ) -> DataProductVersion: ...

    # products and versions
    @rpc.get("/v1/mesh/products/{product}/version")
    def get_version(self, product: str, version: str | None = None) -> DataProductVersion: ...

    @rpc.get("/v1/mesh/products/{product}/versions")
    def list_versions(self, product: str) -> list[DataProductVersion]: ...

    @rpc.get("/v1/mesh/products/{product}")
    def get_product(self, product: str) -> DataProduct: ...

    @rpc.get("/v1/mesh/products")
    def list_products(
        self, domain: str | None = None, status: str | None = None
    ) -> list[DataProduct]: ...

    @rpc.get("/v1/mesh/products/{product}/export")
    def export(
        self, product: str, version: str | None = None, odcs_version: str | None = None
    ) -> dict[str, str]:
        """The ODPS descriptor and ODCS contracts of a version, as YAML files by name: each
        as written (its `status` following deprecate/retire), or the contracts in ODCS
        `odcs_version` ("v3.1.0")."""
        ...

    @rpc.post("/v1/mesh/products/{product}/deprecate")
    def deprecate(
        self,
        product: str,
        sunset: date | str | None = None,
        replacement: str | None = None,
        reason: str = "",
    ) -> DataProduct: ...

    @rpc.post("/v1/mesh/products/{product}/retire")
    def retire(self, product: str) -> DataProduct: ...

    @rpc.post("/v1/mesh/products/{product}/compact")
    def compact(self, product: str, port: str | None = None) -> CompactionReport:
        """Compact the product's Iceberg ports (all, or `port`) and expire their snapshots:
        versions within the contract's SLA `retention` (all, when none is declared) and the
        latest stay readable; the files only expired snapshots held are deleted."""
        ...

    @rpc.post("/v1/mesh/products/{product}/test")
    def test_version(
        self, product: str, version: str | None = None, port: str | None = None
    ) -> VersionTestReport:
        """Run the contract test of a published version (the latest, or `version`) again on
        its stored data, each port (or `port`) against the contract stored with the version:
        a Parquet port's snapshot, an Iceberg port's tagged snapshot, whose manifests answer
        row counts, null counts and proven ranges (`from_metadata`). Records an audit event;
        the version itself is unchanged."""
        ...

    # reads (all through the one governed read path; Arrow stream and warnings header)
    def read(
        self,
        product: str,
        version: str | None = None,
        port: str | None = None,
        columns: list[str] | None = None,
        *,
        interface: Interface = "sdk",
        purpose: str = "",
    ) -> pa.Table: ...

    def read_pandas(
        self,
        product: str,
        version: str | None = None,
        port: str | None = None,
        columns: list[str] | None = None,
    ) -> pd.DataFrame: ...

    def sql(self, query: str, *, interface: Interface = "sql") -> pa.Table: ...

    # catalog, lineage, SLOs
    @rpc.get("/v1/catalog/search", tags=("catalog",))
    def search(
        self,
        text: str = "",
        *,
        domain: str | None = None,
        status: str | None = None,
        classification: str | None = None,
        tag: str | None = None,
        limit: SearchLimit = 20,
        offset: Offset = 0,
    ) -> SearchResult: ...

    @rpc.get("/v1/mesh/products/{product}/lineage")
    def lineage(
        self,
        product: str,
        version: str | None = None,
        direction: str = "upstream",
        depth: LineageDepth = 5,
    ) -> list[Edge]: ...

    @rpc.get("/v1/mesh/products/{product}/slo")
    def slo(self, product: str) -> SloStatus: ...


class MeshDocuments(Protocol):
    """What the SDK's folder methods ask of the server once they have read a product
    folder on the client: not part of `platform.mesh` (MeshService serves both)."""

    @rpc.post("/v1/mesh/diff")
    def diff_documents(
        self, descriptor: JsonObject, contracts: dict[str, JsonObject]
    ) -> SchemaDiff:
        """The schema diff of the ODPS descriptor and ODCS contracts (per port) against the
        product's last published version."""
        ...

    @rpc.post("/v1/mesh/register", status=201)
    def register_documents(
        self, descriptor: JsonObject, contracts: dict[str, JsonObject]
    ) -> DataProduct:
        """Put the product the documents describe in the catalog as a draft."""
        ...
