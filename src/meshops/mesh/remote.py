"""`platform.mesh` over HTTP. Builds run on the client (they read the user's files) and
publish their tables with `publish_arrow`; data comes back as Arrow IPC streams."""

from __future__ import annotations

import json
import warnings
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import pyarrow as pa

from meshops.kernel.access import Interface
from meshops.kernel.http import HttpTransport
from meshops.kernel.lineage import Edge
from meshops.mesh import builds, contracts, specs
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
from meshops.mesh.reads import DeprecatedProductWarning

if TYPE_CHECKING:
    import pandas as pd

ARROW_STREAM = "application/vnd.apache.arrow.stream"
WARNINGS_HEADER = "x-meshops-warnings"


def table_to_ipc(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


def ipc_to_table(data: bytes) -> pa.Table:
    with pa.ipc.open_stream(pa.py_buffer(data)) as reader:
        return reader.read_all()


def _p(product: str) -> str:
    return quote(product, safe="")


def _documents(spec: specs.ProductSpec) -> dict[str, Any]:
    return {"descriptor": spec.descriptor, "contracts": {p.port: p.document for p in spec.ports}}


class RemoteMesh:
    def __init__(self, http: HttpTransport) -> None:
        self.http = http

    # --- domains -------------------------------------------------------------------------------

    def create_domain(
        self,
        name: str,
        description: str = "",
        owners: list[str] | None = None,
        members: list[str] | None = None,
        team: str = "",
    ) -> Domain:
        body = {
            "name": name,
            "description": description,
            "owners": owners,
            "members": members,
            "team": team,
        }
        return Domain.model_validate(self.http.post("/v1/mesh/domains", body))

    def update_domain(
        self,
        name: str,
        description: str | None = None,
        owners: list[str] | None = None,
        members: list[str] | None = None,
        team: str | None = None,
    ) -> Domain:
        body = {"description": description, "owners": owners, "members": members, "team": team}
        return Domain.model_validate(self.http.put(f"/v1/mesh/domains/{_p(name)}", body))

    def list_domains(self) -> list[Domain]:
        return [Domain.model_validate(d) for d in self.http.get("/v1/mesh/domains")]

    def get_domain(self, name: str) -> Domain:
        return Domain.model_validate(self.http.get(f"/v1/mesh/domains/{_p(name)}"))

    # --- specs, builds, publish ----------------------------------------------------------------

    def validate(self, folder: str | Path) -> ValidationReport:
        spec = specs.load_product(folder)
        return ValidationReport(
            product=spec.key,
            version=spec.version,
            ports=[p.port for p in spec.ports],
            warnings=spec.warnings,
        )

    def _reader(self) -> builds.ProductReader:
        def read_input(ref: str, port: str | None) -> tuple[pa.Table, str]:
            version = self.get_version(ref)
            return self.read(ref, version.version, port, interface="pipeline"), version.urn

        return read_input

    def build(self, folder: str | Path, on_step: builds.OnStep | None = None) -> BuildReport:
        spec = specs.load_product(folder)
        result = builds.build(spec, self._reader(), on_step)
        reports = {
            p.port: contracts.run_contract_test(
                result.tables[p.port],
                p.port,
                p.columns,
                p.schema_object,
                p.document.get("slaProperties") or [],
            )
            for p in spec.ports
        }
        return builds.build_report(result, reports)

    def diff(self, folder: str | Path) -> SchemaDiff:
        spec = specs.load_product(folder)
        return SchemaDiff.model_validate(self.http.post("/v1/mesh/diff", _documents(spec)))

    def register(self, folder: str | Path) -> DataProduct:
        spec = specs.load_product(folder)
        return DataProduct.model_validate(self.http.post("/v1/mesh/register", _documents(spec)))

    def publish(
        self, folder: str | Path, on_step: builds.OnStep | None = None
    ) -> DataProductVersion:
        spec = specs.load_product(folder)
        result = builds.build(spec, self._reader(), on_step)
        if on_step:
            on_step("upload and publish")
        docs = _documents(spec)
        return self.publish_arrow(
            docs["descriptor"],
            docs["contracts"],
            result.tables,
            inputs=[i.urn for i in result.inputs],
        )

    def publish_arrow(
        self,
        descriptor: dict[str, Any],
        contracts_by_port: dict[str, dict[str, Any]],
        tables: dict[str, pa.Table],
        *,
        inputs: list[str] | None = None,
    ) -> DataProductVersion:
        meta = {"descriptor": descriptor, "contracts": contracts_by_port, "inputs": inputs or []}
        files = [
            ("meta", ("meta.json", json.dumps(meta, default=str).encode(), "application/json"))
        ]
        files += [
            ("tables", (port, table_to_ipc(table), ARROW_STREAM)) for port, table in tables.items()
        ]
        response = self.http.client.post("/v1/mesh/publish", files=files)
        return DataProductVersion.model_validate(self._json(response))

    def _json(self, response: Any) -> Any:
        from meshops.kernel.errors import error_from_json

        if response.status_code >= 400:
            try:
                body = response.json()
            except ValueError:
                body = response.text
            raise error_from_json(response.status_code, body)
        return response.json()

    # --- products and versions -----------------------------------------------------------------

    def get_version(self, product: str, version: str | None = None) -> DataProductVersion:
        body = self.http.get(f"/v1/mesh/products/{_p(product)}/version", version=version)
        return DataProductVersion.model_validate(body)

    def list_versions(self, product: str) -> list[DataProductVersion]:
        body = self.http.get(f"/v1/mesh/products/{_p(product)}/versions")
        return [DataProductVersion.model_validate(v) for v in body]

    def get_product(self, product: str) -> DataProduct:
        return DataProduct.model_validate(self.http.get(f"/v1/mesh/products/{_p(product)}"))

    def list_products(
        self, domain: str | None = None, status: str | None = None
    ) -> list[DataProduct]:
        body = self.http.get("/v1/mesh/products", domain=domain, status=status)
        return [DataProduct.model_validate(p) for p in body]

    def export(self, product: str, version: str | None = None) -> dict[str, str]:
        body: dict[str, str] = self.http.get(
            f"/v1/mesh/products/{_p(product)}/export", version=version
        )
        return body

    def deprecate(
        self,
        product: str,
        sunset: date | str | None = None,
        replacement: str | None = None,
        reason: str = "",
    ) -> DataProduct:
        body = {
            "sunset": str(sunset) if sunset else None,
            "replacement": replacement,
            "reason": reason,
        }
        return DataProduct.model_validate(
            self.http.post(f"/v1/mesh/products/{_p(product)}/deprecate", body)
        )

    def retire(self, product: str) -> DataProduct:
        return DataProduct.model_validate(self.http.post(f"/v1/mesh/products/{_p(product)}/retire"))

    # --- reads ---------------------------------------------------------------------------------

    def _arrow(self, path: str, params: dict[str, Any], body: Any = None) -> pa.Table:
        clean = {k: v for k, v in params.items() if v is not None}
        if body is None:
            response = self.http.client.get(path, params=clean)
        else:
            response = self.http.client.post(path, params=clean, json=body)
        if response.status_code >= 400:
            self._json(response)
        notes = response.headers.get(WARNINGS_HEADER)
        if notes:
            for note in json.loads(notes):
                warnings.warn(note, DeprecatedProductWarning, stacklevel=3)
        return ipc_to_table(response.content)

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
        params = {
            "version": version,
            "port": port,
            "purpose": purpose or None,
            "columns": ",".join(columns) if columns else None,
            "interface": None if interface == "sdk" else interface,
        }
        return self._arrow(f"/v1/mesh/products/{_p(product)}/data", params)

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
        return self._arrow("/v1/mesh/sql", {}, {"query": query})

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
        body = self.http.get(
            "/v1/catalog/search",
            q=text,
            domain=domain,
            status=status,
            classification=classification,
            tag=tag,
            limit=limit,
            offset=offset,
        )
        return SearchResult.model_validate(body)

    def lineage(
        self, product: str, version: str | None = None, direction: str = "upstream", depth: int = 5
    ) -> list[Edge]:
        body = self.http.get(
            f"/v1/mesh/products/{_p(product)}/lineage",
            version=version,
            direction=direction,
            depth=depth,
        )
        return [Edge(e["upstream"], e["downstream"], e["relation"], e["depth"]) for e in body]

    def slo(self, product: str) -> SloStatus:
        return SloStatus.model_validate(self.http.get(f"/v1/mesh/products/{_p(product)}/slo"))
