"""The disk filled under a home (a 20 MiB tmpfs) during a publish and during logging, over
the API and in the CLI: the caller gets a clear error naming "no space left" (HTTP 507,
CLI exit 9), nothing half-written is visible (no product version, no artifact, no metric
value, no partial blob), and the same calls succeed once space is back."""

from __future__ import annotations

import errno
import hashlib
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import httpx
import numpy as np
import pyarrow as pa
import pytest

from meshops.client import Platform
from meshops.kernel.errors import NoSpace, NotFound
from meshops.kernel.home import Home
from meshops.kernel.http import HttpTransport
from tests.conftest import LiveServer, make_settings
from tests.features.helpers import publish
from tests.mesh.conftest import generate_example
from tests.support.cli import run_cli

DISK_MIB = 20
CHUNK = 1 << 16
CLI_ROOM_BYTES = 256 << 10


@contextmanager
def small_disk(mountpoint: Path) -> Iterator[Path]:
    """A size-limited folder: a tmpfs of DISK_MIB MiB (root only)."""
    if os.geteuid() != 0:
        pytest.skip("the disk-full test mounts a small tmpfs: it needs root")
    mountpoint.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK_MIB}m", "tmpfs", str(mountpoint)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"the disk-full test needs `mount -t tmpfs` to work: {mounted.stderr}")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)


@contextmanager
def filled(disk: Path, leave: int = 0) -> Iterator[None]:
    """Every free byte of `disk` but `leave` taken by one file, given back at the end."""
    filler = disk / "filler"
    with open(filler, "wb") as fh:
        try:
            while True:
                fh.write(b"\0" * CHUNK)
                fh.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    os.truncate(filler, max(0, filler.stat().st_size - leave))
    try:
        yield
    finally:
        filler.unlink()


def big_table(rows: int = 200_000) -> pa.Table:
    rng = np.random.default_rng(7)
    return pa.table({"id": np.arange(rows, dtype=np.int64), "x": rng.random(rows)})


def test_disk_full_during_publish_and_logging_over_the_api(tmp_path: Path) -> None:
    with small_disk(tmp_path / "disk") as disk:
        home = Home(make_settings(disk / "home"))
        try:
            with LiveServer(home) as server:
                remote = replace(home.settings, uri=server.url, token=server.token)
                with Platform(remote, http=HttpTransport(server.url, server.token)) as platform:
                    _publish_and_log(platform, home, server)
        finally:
            home.close()


def _publish_and_log(platform: Platform, home: Home, server: LiveServer) -> None:
    run = platform.tracking.create_run("faults", name="disk-full")
    table = big_table()
    artifact = np.random.default_rng(3).bytes(2 << 20)
    artifacts_before = platform.tracking.list_artifacts(run.id)  # the run's environment
    with filled(Path(home.settings.home).parent):
        with pytest.raises(NoSpace) as refused:
            publish(platform, "sales.big", "1.0.0", table)
        assert "no space left" in refused.value.message
        raw = httpx.post(
            f"{server.url}/v1/metrics/batch",
            headers=server.headers,
            json={"rows": [[run.id, "loss", float(i), i, 0.0] for i in range(2000)]},
            timeout=30,
        )
        with pytest.raises(NoSpace):
            platform.tracking.log_artifact_bytes(run.id, "model.bin", artifact)
        print(f"\nfull disk: publish -> NoSpace; metrics batch -> {raw.status_code} {raw.text}")
        assert raw.status_code == 507, raw.text
        assert raw.json()["error"] == "no_space" and "no space left" in raw.json()["message"]
        with pytest.raises(NotFound):  # nothing half-written is visible
            platform.mesh.get_version("sales.big")
        assert platform.tracking.list_artifacts(run.id) == artifacts_before
        assert platform.tracking.metric_history(run.id, "loss") == []
        _assert_blobs_whole(home)
    # Space is back: the same calls succeed.
    version = publish(platform, "sales.big", "1.0.0", table)
    assert version.row_count == table.num_rows
    platform.tracking.log_artifact_bytes(run.id, "model.bin", artifact)
    assert platform.tracking.read_artifact(run.id, "model.bin") == artifact
    again = httpx.post(
        f"{server.url}/v1/metrics/batch",
        headers=server.headers,
        json={"rows": [[run.id, "loss", float(i), i, 0.0] for i in range(2000)]},
        timeout=30,
    )
    assert again.status_code == 204, again.text
    assert len(platform.tracking.metric_history(run.id, "loss")) == 2000
    _assert_blobs_whole(home)


def test_disk_full_during_embedded_logging(tmp_path: Path) -> None:
    with small_disk(tmp_path / "disk") as disk:
        home = Home(make_settings(disk / "home"))
        try:
            with Platform(home.settings, home=home) as platform:
                run = platform.tracking.create_run("faults", name="disk-full")
                rows = [(run.id, "loss", float(i), i, 0.0) for i in range(5000)]
                with filled(disk), pytest.raises(NoSpace) as refused:
                    platform.tracking.log_metric_rows(rows)
                assert "no space left" in refused.value.message
                assert platform.tracking.metric_history(run.id, "loss") == []
                platform.tracking.log_metric_rows(rows)
                assert len(platform.tracking.metric_history(run.id, "loss")) == len(rows)
        finally:
            home.close()


def test_disk_full_during_cli_publish(tmp_path: Path) -> None:
    example = generate_example(tmp_path / "retail", rows=60_000)
    with small_disk(tmp_path / "disk") as disk:
        home = disk / "home"
        assert run_cli("domain", "create", "sales", home=home).returncode == 0
        # Room to open the database, not to write the product's data.
        with filled(disk, leave=CLI_ROOM_BYTES):
            failed = run_cli("product", "publish", "sales_orders", home=home, cwd=example)
        print(f"\nfull disk: meshops product publish -> exit {failed.returncode}")
        print(failed.stderr.strip())
        assert failed.returncode == NoSpace.exit_code, failed.stderr
        assert "no space left" in failed.stderr and "Traceback" not in failed.stderr
        listed = run_cli("product", "list", "--json", home=home)
        assert listed.returncode == 0 and "sales.orders" not in listed.stdout, listed.stderr
        _assert_blobs_whole_at(home / "blobs")
        published = run_cli("product", "publish", "sales_orders", home=home, cwd=example)
        assert published.returncode == 0, published.stderr
        _assert_blobs_whole_at(home / "blobs")
        # A full disk at start: the database cannot even be opened; said as clearly.
        with filled(disk):
            unopened = run_cli("product", "list", home=home)
        assert unopened.returncode == NoSpace.exit_code, unopened.stderr
        assert "no space left" in unopened.stderr and "Traceback" not in unopened.stderr


def _assert_blobs_whole(home: Home) -> None:
    _assert_blobs_whole_at(Path(home.settings.blob_url))


def _assert_blobs_whole_at(blobs: Path) -> None:
    """Every blob visible has the bytes its name says; no temp file of a failed write stays."""
    assert not list((blobs / "tmp").iterdir())
    root = blobs / "sha256"
    for path in root.rglob("*") if root.exists() else []:
        if path.is_file():
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            assert digest == path.parent.name + path.name, f"half-written blob {path}"
