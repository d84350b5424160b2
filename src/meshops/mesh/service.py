"""`MeshService`: the embedded implementation of `meshops.mesh.interface.Mesh`, composed of
the mesh's services, each usable alone with a context: publishing (`publish_service`),
reading (`read_service`), the catalog (`catalog_service`) and re-running the contract test
of a published version (`retest_service`)."""

from __future__ import annotations

from meshops.mesh.catalog_service import CatalogService
from meshops.mesh.publish_service import PublishService
from meshops.mesh.read_service import ReadService
from meshops.mesh.retest_service import RetestService


class MeshService(PublishService, ReadService, CatalogService, RetestService):
    """Domains, publish, versions, lifecycle, reads, catalog, SLOs and re-tests over one
    context."""
