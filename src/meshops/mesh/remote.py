"""`platform.mesh` over HTTP: the methods the declarations cannot derive.

The client class is `kernel.rpc.remote(Mesh, http, RemoteMeshBase)`: every declared
operation is generated, these are written here. Builds run on the client (they read the
user's files) and then call the server (`MeshDocuments`, or the upload of `publish_arrow`);
reads answer an Arrow stream in the kernel's codec with the lifecycle warnings in a header.
Only client-side modules are imported: specs, builds and contract tests, never a service.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import quote

import httpx

from meshops.kernel import rpc, wire
from meshops.kernel.access import Interface
from meshops.kernel.errors import error_from_json
from meshops.kernel.http import HttpTransport
from meshops.mesh.interface import Mesh, MeshDocuments
from meshops.mesh.models import (
    BuildReport,
    BuildSummary,
    DataProduct,
    DataProductVersion,
    DeprecatedProductWarning,
    SchemaDiff,
    ValidationReport,
)

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from meshops.mesh import builds, specs
else:
    # Imported on first use: `meshops catalog search` over HTTP needs none of them.
    from meshops.kernel.lazy import lazy_module

    builds = lazy_module("meshops.mesh.builds")
    specs = lazy_module("meshops.mesh.specs")

WARNINGS_HEADER = "x-meshops-warnings"


class RemoteMeshBase(rpc.RemoteArea):
    """The hand-written half of the mesh's HTTP client."""

    def __init__(self, http: HttpTransport) -> None:
        super().__init__(http)
        self.documents: MeshDocuments = rpc.remote(MeshDocuments, http)

    # --- specs, builds, publish: the folder is read here ---------------------------------------

    def validate(self, folder: str | Path) -> ValidationReport:
        spec = specs.load_product(folder)
        return ValidationReport(
            product=spec.key,
            version=spec.version,
            ports=[p.port for p in spec.ports],
            warnings=spec.warnings,
        )

    def build(self, folder: str | Path, on_step: builds.OnStep | None = None) -> BuildReport:
        spec = specs.load_product(folder)
        result = builds.build(spec, self._reader(), on_step)
        return builds.build_report(result, builds.contract_reports(spec, result.tables, None))

    def diff(self, folder: str | Path) -> SchemaDiff:
        spec = specs.load_product(folder)
        return self.documents.diff_documents(spec.descriptor, _contracts(spec))

    def register(self, folder: str | Path) -> DataProduct:
        spec = specs.load_product(folder)
        return self.documents.register_documents(spec.descriptor, _contracts(spec))

    def publish(
        self, folder: str | Path, on_step: builds.OnStep | None = None
    ) -> DataProductVersion:
        spec = specs.load_product(folder)
        result = builds.build(spec, self._reader(), on_step)
        if on_step:
            on_step("upload and publish")
        return self.publish_arrow(
            spec.descriptor,
            _contracts(spec),
            result.tables,
            inputs=[i.urn for i in result.inputs],
            build=result.summary,
        )

    def publish_arrow(
        self,
        descriptor: dict[str, Any],
        contracts_by_port: dict[str, dict[str, Any]],
        tables: dict[str, pa.Table],
        *,
        inputs: list[str] | None = None,
        build: BuildSummary | None = None,
    ) -> DataProductVersion:
        # One file part per port, named by its filename: the RPC layer's table parameters
        # are single tables, this one is a mapping of them.
        meta = {
            "descriptor": descriptor,
            "contracts": contracts_by_port,
            "inputs": inputs or [],
            "build": build.model_dump(mode="json") if build else None,
        }
        files = [
            ("meta", ("meta.json", json.dumps(meta, default=str).encode(), "application/json"))
        ]
        files += [
            ("tables", (port, wire.encode_table(table), wire.ARROW_STREAM))
            for port, table in tables.items()
        ]
        encoded = httpx.Request("POST", self.http.base_url, files=files)
        body = self.http.request(
            "POST",
            "/v1/mesh/publish",
            content=encoded.read(),
            headers={"content-type": encoded.headers["content-type"]},
        )
        return DataProductVersion.model_validate(body)

    def _reader(self) -> builds.ProductReader:
        mesh = cast(Mesh, self)  # get_version is derived on the subclass

        def read_input(ref: str, port: str | None) -> tuple[pa.Table, str]:
            version = mesh.get_version(ref)
            return self.read(ref, version.version, port, interface="pipeline"), version.urn

        return read_input

    # --- reads: an Arrow stream and the warnings header ----------------------------------------

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
        path = f"/v1/mesh/products/{quote(product, safe='')}/data"
        return self._arrow("GET", path, params=params)

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
        return self._arrow("POST", "/v1/mesh/sql", body={"query": query, "interface": interface})

    def _arrow(
        self, method: str, path: str, *, params: dict[str, Any] | None = None, body: Any = None
    ) -> pa.Table:
        clean = {k: v for k, v in (params or {}).items() if v is not None}
        response = self.http.client.request(method, path, params=clean, json=body)
        if response.status_code >= 400:
            try:
                error: Any = response.json()
            except ValueError:
                error = response.text
            raise error_from_json(response.status_code, error)
        for note in json.loads(response.headers.get(WARNINGS_HEADER) or "[]"):
            warnings.warn(note, DeprecatedProductWarning, stacklevel=3)
        return wire.decode_table(response.content, "the answer")


def _contracts(spec: specs.ProductSpec) -> dict[str, dict[str, Any]]:
    return {p.port: p.document for p in spec.ports}
