"""`meshops apply` is atomic across areas: a write that fails after others succeeded, or a
process killed in the middle of the writes, leaves nothing of the apply on the platform."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from meshops.client import Platform
from meshops.features.service import FeatureStoreService
from meshops.kernel import outbox
from meshops.kernel.errors import Conflict, NotFound
from tests.conftest import open_platform
from tests.support.git import new_project


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return new_project(tmp_path / "shop")


@pytest.fixture(params=["embedded", "embedded-postgres"])
def embedded(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Platform]:
    with open_platform(request.param, tmp_path / "home") as p:
        yield p


def assert_nothing_applied(platform: Platform) -> None:
    assert platform.project.applied("shop") == []
    with pytest.raises(NotFound):
        platform.mesh.get_product("sales.orders")
    assert "sales" not in {d.name for d in platform.mesh.list_domains()}
    assert "sales-products-are-tagged" not in {p.id for p in platform.governance.list_policies()}
    assert platform.features.list_definitions() == []
    assert platform.pipelines.list_schedules() == []
    home = platform.home
    assert home is not None
    with home.db.read() as conn:
        assert outbox.recent(conn, outbox.DATAPRODUCT_PUBLISHED) == []


def test_a_failing_write_rolls_back_every_area(
    embedded: Platform, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Feature definitions are written after the policies, the domain and both products.
    def refuse(*_args: object, **_kwargs: object) -> None:
        raise Conflict("feature registry unavailable (injected)")

    monkeypatch.setattr(FeatureStoreService, "apply", refuse)
    with pytest.raises(Conflict) as failed:
        embedded.project.apply(project)
    assert "rolled back, nothing was applied" in failed.value.message
    assert "dataproduct sales.orders" in failed.value.detail["rolled_back"]
    assert_nothing_applied(embedded)

    monkeypatch.undo()
    result = embedded.project.apply(project)
    assert {c.name for c in result.applied} >= {"sales.orders", "sales.order_stats"}
    assert embedded.mesh.get_product("sales.order_stats").latest_version == "1.0.0"
    assert embedded.features.list_definitions() != []
    assert not embedded.project.plan(project).has_changes


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
        assert_nothing_applied(platform)
        assert platform.project.apply(project).applied
