"""`MeshService`: the embedded implementation of `meshops.mesh.interface.Mesh`, composed of
the mesh's three services, each usable alone with a context: publishing
(`publish_service`), reading (`read_service`) and the catalog (`catalog_service`)."""

from __future__ import annotations

from meshops.mesh.catalog_service import CatalogService
from meshops.mesh.publish_service import PublishService
from meshops.mesh.read_service import ReadService


class MeshService(PublishService, ReadService, CatalogService):
    """Domains, publish, versions, lifecycle, reads, catalog and SLOs over one context."""
