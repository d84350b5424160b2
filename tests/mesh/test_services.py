"""The mesh's services each stand alone with a context, and together are `MeshService`."""

from __future__ import annotations

import pyarrow as pa

from meshops.kernel.home import Home
from meshops.kernel.rpc import protocol_methods
from meshops.mesh.catalog_service import CatalogService
from meshops.mesh.interface import Mesh, MeshDocuments
from meshops.mesh.publish_service import PublishService
from meshops.mesh.read_service import ReadService
from meshops.mesh.retest_service import RetestService
from meshops.mesh.service import MeshService
from tests.mesh.conftest import contract, descriptor

PARTS = (PublishService, ReadService, CatalogService, RetestService)
COLUMNS = [{"name": "id", "logicalType": "integer", "required": True}]


def test_mesh_service_is_its_parts_and_nothing_else() -> None:
    assert set(MeshService.__bases__) == set(PARTS)
    assert not {n for n in vars(MeshService) if not n.startswith("__")}
    public = set().union(*({n for n in dir(p) if not n.startswith("_")} for p in PARTS))
    assert public == protocol_methods(Mesh) | protocol_methods(MeshDocuments) | {
        "publish_document",  # the publish gate's input document (policy tests build it)
        "read_with_notes",  # the HTTP read: the table and the warnings of its header
    }


def test_services_work_alone(sqlite_home: Home) -> None:
    ctx = sqlite_home.context()
    CatalogService(ctx).create_domain("shop", "things we sell")
    version = PublishService(ctx).publish_arrow(
        descriptor("1.0.0", name="items"),
        {"items": contract(COLUMNS, name="items")},
        {"items": pa.table({"id": [1, 2]})},
    )
    assert version.product == "shop.items"
    assert ReadService(ctx).read("shop.items").column("id").to_pylist() == [1, 2]
    assert CatalogService(ctx).search("items").hits[0].product == "shop.items"
    assert CatalogService(ctx).slo("shop.items").product == "shop.items"
    assert RetestService(ctx).test_version("shop.items").passed
