"""Publishing: semver and breaking changes, failing contracts, atomicity, lifecycle, the read
guard's plan applied on every read path - on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from meshops.kernel.access import ReadPlan, ReadRequest, ReadUsage
from meshops.kernel.errors import Conflict, Forbidden, InvalidInput, NotFound
from meshops.kernel.home import Context, Home
from meshops.mesh.models import DeprecatedProductWarning
from meshops.mesh.service import MeshService
from tests.mesh.conftest import contract, descriptor

COLUMNS: list[dict[str, Any]] = [
    {"name": "id", "logicalType": "integer", "required": True, "primaryKey": True},
    {"name": "email", "logicalType": "string", "classification": "confidential"},
    {"name": "amount", "logicalType": "number"},
]
TABLE = pa.table({"id": [1, 2, 3], "email": ["a@x", "b@x", None], "amount": [1.5, 2.5, 3.5]})


def _publish(
    mesh: MeshService,
    version: str,
    *,
    columns: list[dict[str, Any]] | None = None,
    table: pa.Table = TABLE,
    quality: list[dict[str, Any]] | None = None,
    inputs: list[str] | None = None,
    name: str = "items",
) -> Any:
    return mesh.publish_arrow(
        descriptor(version, name=name),
        {name: contract(columns or COLUMNS, quality, name=name)},
        {name: table},
        inputs=inputs,
    )


def test_breaking_change_needs_major_and_lists_consumers(home: Home) -> None:
    mesh = MeshService(home.context())
    v1 = _publish(mesh, "1.0.0")
    _publish(
        mesh,
        "1.0.0",
        name="report",
        inputs=[v1.urn],
        columns=[COLUMNS[0]],
        table=TABLE.select(["id"]),
    )
    renamed = [COLUMNS[0], dict(COLUMNS[1], name="mail"), COLUMNS[2]]
    with pytest.raises(Conflict) as info:
        _publish(
            mesh, "1.1.0", columns=renamed, table=TABLE.rename_columns(["id", "mail", "amount"])
        )
    assert "needs a major version" in info.value.message
    assert [b["kind"] for b in info.value.detail["breaking"]] == ["column_renamed"]
    assert info.value.detail["fix"].startswith("publish as 2.0.0")
    with pytest.raises(Conflict, match="not newer"):
        _publish(
            mesh,
            "0.9.0",
            columns=[*COLUMNS, {"name": "note", "logicalType": "string"}],
            table=TABLE.append_column("note", pa.array(["x", "y", "z"])),
        )
    v2 = _publish(
        mesh, "2.0.0", columns=renamed, table=TABLE.rename_columns(["id", "mail", "amount"])
    )
    with home.db.read() as conn:
        from meshops.mesh import store

        diff = store.get_version_row(conn, "shop.items", "2.0.0")["schema_diff"]  # type: ignore[index]
    assert diff["required_bump"] == "major"
    assert diff["affected"] == ["meshops:dataproduct:shop.report:1.0.0"]
    assert mesh.get_version("shop.items@^1").version == "1.0.0"
    assert mesh.get_version("shop.items").version == v2.version == "2.0.0"
    minor = _publish(
        mesh,
        "2.1.0",
        columns=[*renamed, {"name": "note", "logicalType": "string"}],
        table=TABLE.rename_columns(["id", "mail", "amount"]).append_column(
            "note", pa.array(["x", "y", "z"])
        ),
    )
    assert minor.version == "2.1.0"
    with pytest.raises(Conflict, match="immutable"):
        _publish(
            mesh,
            "2.1.0",
            columns=renamed,
            table=TABLE.rename_columns(["id", "mail", "amount"]).slice(0, 1),
        )


def test_failing_contract_publishes_nothing(home: Home) -> None:
    mesh = MeshService(home.context())
    with pytest.raises(InvalidInput) as info:
        _publish(mesh, "1.0.0", quality=[{"metric": "rowCount", "mustBeGreaterThan": 10}])
    assert "nothing was published" in info.value.message
    assert info.value.detail["failures"][0]["rule"].startswith("quality.items.*.rowCount")
    duplicate_keys = pa.table(
        {"id": [1, 1, 2], "email": ["a", "b", "c"], "amount": [1.0, 2.0, 3.0]}
    )
    with pytest.raises(InvalidInput, match=r"schema\.items\.id\.unique"):
        _publish(mesh, "1.0.0", table=duplicate_keys)
    assert mesh.list_products() == []
    with pytest.raises(NotFound):
        mesh.get_version("shop.items")


_CRASHER = """
import os, sys, time
from pathlib import Path
import pyarrow as pa
from meshops.kernel import outbox
from meshops.kernel.config import load_settings
from meshops.kernel.home import Home
from meshops.mesh.service import MeshService
from tests.mesh.conftest import contract, descriptor

def stall(*args, **kwargs):  # inside the publish transaction, after the version rows
    Path(sys.argv[1]).write_text("in transaction")
    time.sleep(60)

outbox.emit = stall
home = Home(load_settings())
cols = [{"name": "id", "logicalType": "integer", "required": True}]
MeshService(home.context()).publish_arrow(
    descriptor("1.0.0"), {"items": contract(cols)}, {"items": pa.table({"id": [1, 2]})})
"""


def test_killed_publish_leaves_nothing_visible(home: Home, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    env = {
        **os.environ,
        "MESHOPS_HOME": str(home.settings.home),
        "MESHOPS_DATABASE_URL": home.settings.database_url,
        "MESHOPS_USER": "alice",
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
    }
    proc = subprocess.Popen(
        [sys.executable, "-c", _CRASHER, str(marker)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert proc.poll() is None, proc.stderr.read().decode()  # type: ignore[union-attr]
        assert time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    mesh = MeshService(home.context())
    assert mesh.list_products() == []
    assert mesh.search("items").total == 0
    blobs = list(Path(home.settings.blob_url, "sha256").rglob("*"))
    assert any(p.is_file() for p in blobs)  # the snapshot blob was written first...
    version = _publish(
        mesh,
        "1.0.0",
        columns=[{"name": "id", "logicalType": "integer"}],
        table=pa.table({"id": [1, 2]}),
    )
    assert version.version == "1.0.0" and not version.reused  # ...and the publish can be redone


def test_lifecycle_deprecated_warns_retired_fails(home: Home) -> None:
    mesh = MeshService(home.context())
    _publish(mesh, "1.0.0")
    with pytest.raises(Conflict, match="deprecate it"):
        mesh.retire("shop.items")
    product = mesh.deprecate("shop.items", "2030-01-01", "shop.items_v2", "moved")
    assert product.status == "deprecated" and str(product.sunset) == "2030-01-01"
    with pytest.warns(DeprecatedProductWarning, match="shop.items_v2"):
        assert mesh.read("shop.items").num_rows == 3
    assert mesh.search("items", status="deprecated").total == 1
    mesh.retire("shop.items")
    with pytest.raises(NotFound, match=r"Use shop\.items_v2 instead") as info:
        mesh.read("shop.items")
    assert info.value.detail["replacement"] == "shop.items_v2"
    with pytest.raises(NotFound, match="retired"):
        mesh.sql("select * from shop.items")


class MaskingGuard:
    """A guard like governance's: masks, a row filter, and usage recorded."""

    def __init__(self) -> None:
        self.requests: list[ReadRequest] = []
        self.usage: list[ReadUsage] = []

    def plan(self, ctx: Context, request: ReadRequest) -> ReadPlan:
        self.requests.append(request)
        if ctx.actor.name == "mallory":
            raise Forbidden("no grant")
        return ReadPlan(
            columns=tuple(c for c in request.columns if c != "amount"),
            masks={"email": "hash"}
            if request.classification.get("email") == "confidential"
            else {},
            row_filter="id >= 2",
        )

    def record(self, ctx: Context, usage: ReadUsage) -> None:
        self.usage.append(usage)


def test_every_read_goes_through_the_guard(home: Home) -> None:
    import hashlib
    import hmac

    from meshops.kernel.auth import Actor
    from meshops.kernel.secrets import derived_key

    mesh = MeshService(home.context())
    _publish(mesh, "1.0.0")
    guard = MaskingGuard()
    home.read_guard = guard
    table = mesh.read("shop.items", columns=["id", "email", "amount"])
    assert table.column_names == ["id", "email"]
    assert table.column("id").to_pylist() == [2, 3]
    # `hash` masking is HMAC-SHA256 keyed with the home's masking key (not a bare sha256).
    hashed = hmac.new(derived_key(home.settings, "masking"), b"b@x", hashlib.sha256).hexdigest()
    assert table.column("email").to_pylist() == [hashed, None]
    request = guard.requests[0]
    assert request.classification == {"id": "", "email": "confidential", "amount": ""}
    assert request.owners == ("alice",) and request.interface == "sdk"
    result = mesh.sql("select count(*) as n, min(email) as e from shop.items")
    assert result.to_pylist() == [{"n": 2, "e": hashed}]
    with pytest.raises(InvalidInput, match="amount"):
        mesh.sql("select amount from shop.items")
    assert [u.request.interface for u in guard.usage] == ["sdk", "sql"]
    assert guard.usage[0].rows == 2
    with pytest.raises(Forbidden):
        MeshService(home.context(Actor("mallory"))).read("shop.items")


def test_http_reads_record_the_interface_the_sdk_names(sqlite_home: Home) -> None:
    """Over HTTP, `read` and `sql` send their `interface`: a pipeline's reads count as such,
    the others as the HTTP read and SQL they are."""
    from meshops.kernel.http import HttpTransport
    from meshops.kernel.rpc import remote
    from meshops.mesh.interface import Mesh
    from meshops.mesh.remote import RemoteMeshBase
    from tests.conftest import LiveServer

    _publish(MeshService(sqlite_home.context()), "1.0.0")
    guard = MaskingGuard()
    sqlite_home.read_guard = guard
    with LiveServer(sqlite_home, governed=False) as server:
        mesh = remote(Mesh, HttpTransport(server.url), RemoteMeshBase)
        query = "select count(*) as n from shop.items"
        assert mesh.sql(query).to_pylist() == [{"n": 2}]
        mesh.sql(query, interface="pipeline")
        assert mesh.read("shop.items", columns=["id"]).column("id").to_pylist() == [2, 3]
        mesh.read("shop.items", columns=["id"], interface="pipeline")
    assert [u.request.interface for u in guard.usage] == ["sql", "pipeline", "http", "pipeline"]


def test_default_guard_lets_owners_read_and_refuses_others(home: Home) -> None:
    from meshops.kernel.access import OwnerOnlyReadGuard
    from meshops.kernel.auth import Actor

    mesh = MeshService(home.context())
    _publish(mesh, "1.0.0")
    guard = OwnerOnlyReadGuard(home)
    ctx = home.context(Actor("bob"))
    from meshops.mesh import reads

    version = mesh.get_version("shop.items")
    with pytest.raises(Forbidden, match="no access"):
        reads.plan_read(ctx, reads.build_request(version, version.port(), None, "sdk"))
    assert guard.plan(
        home.context(), reads.build_request(version, version.port(), ["id"], "sdk")
    ).columns == ("id",)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert mesh.read_pandas("shop.items")["id"].tolist() == [1, 2, 3]
