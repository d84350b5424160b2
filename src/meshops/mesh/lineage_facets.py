"""What an OpenLineage event says of how a product port's version is stored: for an Apache
Iceberg port, the table the version is a snapshot of (kernel.openlineage.iceberg_facets:
`symlinks`, `storage`, `catalog`); nothing for a Parquet port.

The mesh's own events (publish) call `storage_facets` directly; other areas' events (a
batch scoring's input and output ports, built in the kernel) reach it through the kernel's
LINEAGE_FACETS port, bound by `meshops.assembly`, so every event naming an Iceberg port
names its table the same way.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from meshops.kernel.home import Context

log = logging.getLogger(__name__)


class MeshLineageFacets:
    """The kernel's LINEAGE_FACETS port."""

    def port_facets(self, ctx: Context, product: str, port: str, version: str) -> dict[str, Any]:
        return storage_facets(ctx, product, port, version)


def storage_facets(
    ctx: Context, product: str, port: str, version: str, snapshot_digest: str | None = None
) -> dict[str, Any]:
    """The facets naming the Iceberg table of `port` of the version (none for Parquet).
    `snapshot_digest`: the port's, when the caller has it (a publish), else the version is
    read as `ctx.actor`. Lineage never fails the operation it reports: on an error the event
    goes out without them."""
    # Imported on use: the publish service imports this module, and listing or searching
    # products should not pay for Arrow (iceberg imports it).
    from meshops.mesh import iceberg
    from meshops.mesh.read_service import ReadService

    try:
        if snapshot_digest is None:
            found = ReadService(ctx).get_version(product, version)
            snapshot_digest = found.port(port).snapshot_digest
        if not iceberg.is_iceberg_ref(snapshot_digest):
            return {}
        return iceberg.lineage_facets(ctx.home.settings, product, port, version)
    except Exception as exc:
        log.warning("OpenLineage: no Iceberg facets for %s %s %s: %s", product, port, version, exc)
        return {}
