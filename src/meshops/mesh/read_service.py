"""Reading data products: their versions and metadata as each caller may see them, and
their data through the one governed read path (`meshops.mesh.reads`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from meshops.kernel.access import Interface
from meshops.kernel.errors import Forbidden, InvalidInput, NotFound
from meshops.mesh import store
from meshops.mesh.models import (
    DataProduct,
    DataProductVersion,
    OutputPortVersion,
    SemVer,
    split_product_ref,
)
from meshops.mesh.records import (
    MeshArea,
    product_model,
    sql_rule_ids,
)

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from meshops.mesh import reads, specs
else:
    # Imported on first use: searching the catalog or listing products needs none of them
    # (Arrow, DuckDB, the ODCS models), and `meshops catalog search` start time matters.
    from meshops.kernel.lazy import lazy_module

    pa = lazy_module("pyarrow")
    reads = lazy_module("meshops.mesh.reads")
    specs = lazy_module("meshops.mesh.specs")


class ReadService(MeshArea):
    """Products, versions and their data, governed for the caller."""

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
            sql_rules = sql_rule_ids(port)
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
            return product_model(self._product_row(conn, product))

    def list_products(
        self, domain: str | None = None, status: str | None = None
    ) -> list[DataProduct]:
        self.ctx.authorize("dataproduct.read_metadata", domain)
        with self.ctx.db.read() as conn:
            return [product_model(r) for r in store.list_products(conn, domain, status)]

    def export(
        self, product: str, version: str | None = None, odcs_version: str | None = None
    ) -> dict[str, str]:
        """The ODPS descriptor and ODCS contracts of a version, as YAML files by name."""
        published = self.get_version(product, version)
        lifecycle = self.get_product(product).status  # deprecate/retire show in `status`
        descriptor = published.descriptor
        snapshots = {p.name: p.snapshot_digest for p in published.ports}
        if any(d.startswith("iceberg:") for d in snapshots.values()):
            from meshops.mesh import iceberg

            descriptor = iceberg.with_table_locations(
                self.ctx.home.settings, descriptor, published.product, published.version,
                snapshots,
            )  # fmt: skip
        files = {specs.DESCRIPTOR_FILE: specs.export_descriptor(descriptor, lifecycle)}
        for port in published.ports:
            files[f"{port.name}.odcs.yaml"] = specs.export_contract(port.contract, odcs_version)
        return files

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
            found = product_model(self._product_row(conn, product))
            reads.lifecycle_warnings(found)
            published = self._version_model(conn, self._resolve_row(conn, product, version))
        return reads.read_port(
            self.ctx,
            found,
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
                resolved.append((ref, product_model(row), published))
        if not resolved:
            raise InvalidInput(
                "the query reads no data product",
                {"field": "query", "fix": "name products as <domain>.<name>, e.g. sales.orders"},
            )
        with reads.governed_sandbox(self.ctx, resolved, interface) as (box, views):
            table = box.run_user_sql(parsed)
            reads.record_views(self.ctx, views, table.num_rows)
        return table
