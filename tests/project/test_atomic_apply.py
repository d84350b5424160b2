"""`meshops apply` is atomic across areas, over every transport: a write that fails after
others succeeded, or a process killed in the middle of the writes, leaves nothing of the
apply on the platform. Over HTTP the client prepares and the server writes, in one unit of
work (the test server runs in this process, so a patched service fails there)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from meshops.client import Platform
from meshops.features.service import FeatureStoreService
from meshops.kernel import outbox
from meshops.kernel.errors import Conflict, NotFound
from meshops.kernel.home import Home
from meshops.project.apply import MAX_OBJECTS
from meshops.project.service import ProjectService
from tests.conftest import LiveServer, make_settings, open_platform
from tests.support.git import new_project


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return new_project(tmp_path / "shop")


@pytest.fixture
def server_home(platform: Platform, tmp_path: Path) -> Iterator[Home]:
    """The home the platform writes to, read directly (over HTTP: the server's)."""
    if platform.home is not None:
        yield platform.home
        return
    home = Home(make_settings(tmp_path / "home"))
    yield home
    home.close()


def assert_nothing_applied(platform: Platform, home: Home) -> None:
    assert platform.project.applied("shop") == []
    with pytest.raises(NotFound):
        platform.mesh.get_product("sales.orders")
    assert "sales" not in {d.name for d in platform.mesh.list_domains()}
    assert "sales-products-are-tagged" not in {p.id for p in platform.governance.list_policies()}
    assert platform.features.list_definitions() == []
    assert platform.pipelines.list_schedules() == []
    with home.db.read() as conn:
        assert outbox.recent(conn, outbox.DATAPRODUCT_PUBLISHED) == []


def test_a_failing_write_rolls_back_every_area(
    platform: Platform, server_home: Home, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Feature definitions are written after the policies, the domain and both products.
    def refuse(*_args: object, **_kwargs: object) -> None:
        raise Conflict("feature registry unavailable (injected)")

    monkeypatch.setattr(FeatureStoreService, "apply", refuse)
    with pytest.raises(Conflict) as failed:
        platform.project.apply(project)
    assert "rolled back, nothing was applied" in failed.value.message
    assert "dataproduct sales.orders" in failed.value.detail["rolled_back"]
    assert_nothing_applied(platform, server_home)

    monkeypatch.undo()
    result = platform.project.apply(project)
    assert {c.name for c in result.applied} >= {"sales.orders", "sales.order_stats"}
    assert platform.mesh.get_product("sales.order_stats").latest_version == "1.0.0"
    assert platform.features.list_definitions() != []
    assert not platform.project.plan(project).has_changes


KILLED_APPLY = textwrap.dedent(
    """
    import sys, time
    import meshops
    from meshops.features.service import FeatureStoreService

    def hang(*args, **kwargs):
        print("writing features", flush=True)
        time.sleep(600)

    FeatureStoreService.apply = hang
    meshops.connect().project.apply(sys.argv[1])
    """
)


def test_a_process_killed_during_the_writes_leaves_nothing(tmp_path: Path, project: Path) -> None:
    env = {**os.environ, "MESHOPS_HOME": str(tmp_path / "home"), "MESHOPS_USER": "alice"}
    env.pop("MESHOPS_URI", None)
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_APPLY, str(project)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 120
        line = ""
        while time.monotonic() < deadline and "writing features" not in line:
            line = proc.stdout.readline()
            if not line and proc.poll() is not None:
                stderr = proc.stderr.read() if proc.stderr else ""
                raise AssertionError(f"apply ended early: {stderr}")
        assert "writing features" in line
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    with open_platform("embedded", tmp_path / "home") as platform:
        assert platform.home is not None
        assert_nothing_applied(platform, platform.home)
        assert platform.project.apply(project).applied


def test_over_http_the_last_write_failing_leaves_nothing_on_the_server(
    tmp_path: Path, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The applied records are written last, after every area's objects: before the writes
    # ran on the server, a client saw earlier calls committed one by one.
    def refuse(*_args: object, **_kwargs: object) -> None:
        raise Conflict("applied records unavailable (injected)")

    monkeypatch.setattr(ProjectService, "record_applied", refuse)
    with open_platform("http", tmp_path / "home") as platform:
        assert platform.is_remote
        with pytest.raises(Conflict) as failed:
            platform.project.apply(project)
        rolled_back = failed.value.detail["rolled_back"]
        assert {"policy sales-products-are-tagged", "domain sales"} <= set(rolled_back)
        assert {"dataproduct sales.orders", "dataproduct sales.order_stats"} <= set(rolled_back)
        home = Home(make_settings(tmp_path / "home"))
        try:
            assert_nothing_applied(platform, home)
        finally:
            home.close()


def test_the_writes_of_an_apply_are_bounded(live_server: LiveServer) -> None:
    change = {"kind": "domain", "name": "d", "urn": "u", "action": "create", "digest": "x"}
    too_many = {"project": "p", "git": {}, "changes": [change] * (MAX_OBJECTS + 1)}
    missing_table = {
        "project": "p",
        "git": {},
        "changes": [],
        "products": [{"key": "d.p", "descriptor": {}, "contracts": {}, "parts": {"x": "t0"}}],
    }
    with httpx.Client(base_url=live_server.url) as client:
        for writes, field in ((too_many, "writes"), (missing_table, "t0")):
            answer = client.post(
                "/v1/project/apply/prepared",
                data={"writes": json.dumps(writes)},
                files={"unused": ("t", b"", "application/octet-stream")},
            )
            assert answer.status_code == 422, answer.text
            assert answer.json()["detail"]["field"] == field
        nothing = client.post("/v1/project/apply/prepared", files={"t0": ("t", b"")})
        assert nothing.status_code == 422
