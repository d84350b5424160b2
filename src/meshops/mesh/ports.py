"""The mesh area's side of the kernel's ports (bound by `meshops.assembly`): the facts of a
published product (owners, a port's columns and classification) and the governed reads
other areas make of product data."""

from __future__ import annotations

from typing import TYPE_CHECKING

from meshops.kernel.errors import NotFound
from meshops.kernel.ports import PortColumn, PortFacts

if TYPE_CHECKING:
    import pyarrow as pa

    from meshops.kernel.access import Interface
    from meshops.kernel.home import Context


class MeshProductFacts:
    def port_facts(
        self, ctx: Context, product: str, port: str | None = None, version: str | None = None
    ) -> PortFacts:
        from meshops.mesh.read_service import ReadService

        found = ReadService(ctx).get_version(product, version=version)
        chosen = found.port(port)
        return PortFacts(
            product=found.product,
            domain=found.domain,
            version=found.version,
            urn=found.urn,
            digest=found.digest,
            port=chosen.name,
            rows=chosen.row_count,
            status=found.status,
            owners=tuple(found.owners),
            columns=tuple(
                PortColumn(c.name, c.logical_type, c.physical_type, c.classification)
                for c in chosen.columns
            ),
        )

    def owners(self, ctx: Context, product: str) -> list[str] | None:
        from meshops.mesh.read_service import ReadService

        try:
            return sorted(ReadService(ctx).get_product(product).owners)
        except NotFound:
            return None


class MeshGovernedReads:
    def read(
        self,
        ctx: Context,
        product: str,
        *,
        version: str,
        port: str,
        columns: list[str],
        interface: Interface,
    ) -> pa.Table:
        from meshops.mesh.read_service import ReadService

        return ReadService(ctx).read(
            product, version=version, port=port, columns=columns, interface=interface
        )

    def sql(self, ctx: Context, query: str, *, interface: Interface) -> pa.Table:
        from meshops.mesh.read_service import ReadService

        return ReadService(ctx).sql(query, interface=interface)
