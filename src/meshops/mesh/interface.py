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
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from meshops.kernel.access import Interface
from meshops.mesh.models import (
    BuildReport,
    DataProduct,
    DataProductVersion,
    Domain,
    SchemaDiff,
    SearchResult,
    SloStatus,
    ValidationReport,
)

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from meshops.kernel.lineage import Edge
    from meshops.mesh.builds import OnStep


class Mesh(Protocol):
    # domains
    def create_domain(
        self,
        name: str,
        description: str = "",
        owners: list[str] | None = None,
        members: list[str] | None = None,
        team: str = "",
    ) -> Domain: ...

    def update_domain(
        self,
        name: str,
        description: str | None = None,
        owners: list[str] | None = None,
        members: list[str] | None = None,
        team: str | None = None,
    ) -> Domain: ...

    def list_domains(self) -> list[Domain]: ...

    def get_domain(self, name: str) -> Domain: ...

    # specs, builds, publish
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
    ) -> DataProductVersion: ...

    # products and versions
    def get_version(self, product: str, version: str | None = None) -> DataProductVersion: ...

    def list_versions(self, product: str) -> list[DataProductVersion]: ...

    def get_product(self, product: str) -> DataProduct: ...

    def list_products(
        self, domain: str | None = None, status: str | None = None
    ) -> list[DataProduct]: ...

    def export(self, product: str, version: str | None = None) -> dict[str, str]: ...

    def deprecate(
        self,
        product: str,
        sunset: date | str | None = None,
        replacement: str | None = None,
        reason: str = "",
    ) -> DataProduct: ...

    def retire(self, product: str) -> DataProduct: ...

    # reads (all through the one governed read path)
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
    ) -> SearchResult: ...

    def lineage(
        self, product: str, version: str | None = None, direction: str = "upstream", depth: int = 5
    ) -> list[Edge]: ...

    def slo(self, product: str) -> SloStatus: ...
