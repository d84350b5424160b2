"""Builds on Ray Data (`engine: ray`) against a local Ray started once for this module: the
published output equals the local build's (checksums of the sorted tables), a block that
fails once is retried and reported, a block that fails for good publishes nothing, and SQL
that needs rows of other blocks is refused before anything runs."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from meshops.client import Platform
from meshops.kernel.errors import Forbidden, InvalidInput, NotFound
from meshops.mesh import builds, specs
from tests.conftest import open_platform
from tests.mesh.conftest import contract, descriptor
from tests.mesh.iceberg.conftest import iceberg_port
from tests.support.cli import run_main

ray = pytest.importorskip("ray")

EVENT_FILES, EVENT_ROWS = 3, 3000
MARKER = 4242  # the event_id of the block the flaky transform fails on
OUTPUT_COLUMNS: list[dict[str, Any]] = [
    {"name": "event_id", "logicalType": "integer", "required": True, "primaryKey": True},
    {"name": "customer_id", "logicalType": "integer"},
    {"name": "amount", "logicalType": "number"},
    {"name": "segment", "logicalType": "string"},
    {"name": "amount_cents", "logicalType": "integer"},
]
JOIN_SQL = """
SELECT e.event_id, e.customer_id, e.amount, c.segment,
       CAST(round(e.amount * 100) AS BIGINT) AS amount_cents
FROM events e JOIN customers c USING (customer_id)
WHERE e.amount > 1
"""
TRANSFORM_PY = """
from pathlib import Path
import pyarrow as pa
import pyarrow.compute as pc

FLAG = Path({flag!r})
ALWAYS = {always!r}


def transform(inputs):
    events = inputs["events"]
    if {marker} in events.column("event_id").to_pylist() and (ALWAYS or not FLAG.exists()):
        FLAG.write_text("failed once")
        raise RuntimeError("the marker block")
    segments = dict(zip(inputs["customers"].column("customer_id").to_pylist(),
                        inputs["customers"].column("segment").to_pylist()))
    kept = events.filter(pc.greater(events.column("amount"), 1))
    return pa.table({{
        "event_id": kept.column("event_id"),
        "customer_id": kept.column("customer_id"),
        "amount": kept.column("amount"),
        "segment": [segments[c] for c in kept.column("customer_id").to_pylist()],
        "amount_cents": pc.cast(pc.round(pc.multiply(kept.column("amount"), 100)), pa.int64()),
    }})
"""


@pytest.fixture(scope="module", autouse=True)
def local_ray() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """Over HTTP: the client builds (on Ray), the server publishes what it is sent."""
    with open_platform("http", tmp_path_factory.mktemp("ray") / "home") as p:
        customers = pa.table(
            {"customer_id": list(range(50)), "segment": [f"s{i % 4}" for i in range(50)]}
        )
        columns = [
            {"name": "customer_id", "logicalType": "integer", "primaryKey": True},
            {"name": "segment", "logicalType": "string"},
        ]
        p.mesh.publish_arrow(
            descriptor(name="customers", owner="alice"),
            {"customers": contract(columns, name="customers")},
            {"customers": customers},
        )
        yield p


@pytest.fixture(scope="module")
def events(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("events")
    for part in range(EVENT_FILES):
        ids = range(part * EVENT_ROWS, (part + 1) * EVENT_ROWS)
        table = pa.table(
            {
                "event_id": pa.array(ids, pa.int64()),
                "customer_id": pa.array([i % 50 for i in ids], pa.int64()),
                "amount": pa.array([(i * 37 % 1000) / 10 for i in ids], pa.float64()),
            }
        )
        pq.write_table(table, folder / f"events-{part}.parquet")
    return folder


def product_folder(root: Path, name: str, owner: str, events: Path, build: dict[str, Any]) -> Path:
    folder = root / name
    folder.mkdir()
    doc = descriptor(name=name, owner=owner)
    (folder / "dataproduct.yaml").write_text(yaml.safe_dump(doc))
    (folder / f"{name}.odcs.yaml").write_text(yaml.safe_dump(contract(OUTPUT_COLUMNS, name=name)))
    recipe = {
        "inputs": {
            "events": {"path": str(events / "*.parquet")},
            "customers": {"product": "shop.customers@^1"},
        },
        **build,
    }
    (folder / "build.yaml").write_text(yaml.safe_dump(recipe, sort_keys=False))
    return folder


def checksum(table: pa.Table) -> str:
    rows = table.sort_by("event_id").to_pylist()
    return hashlib.sha256(json.dumps(rows, sort_keys=True).encode()).hexdigest()


def python_transform(folder: Path, flag: Path, *, always: bool) -> dict[str, Any]:
    (folder / "transform.py").write_text(
        TRANSFORM_PY.format(flag=str(flag), always=always, marker=MARKER)
    )
    return {"transform": {"python": "transform.py:transform"}}


def test_sql_build_on_ray_equals_the_local_build(
    platform: Platform, events: Path, tmp_path: Path
) -> None:
    sql = {"transform": {"sql": JOIN_SQL}}
    local = product_folder(tmp_path, "joined_local", "alice", events, sql)
    on_ray = product_folder(
        tmp_path, "joined_ray", "alice", events, {**sql, "engine": "ray", "block_rows": 1000}
    )
    steps: list[str] = []
    platform.mesh.publish(local)
    version = platform.mesh.publish(on_ray, steps.append)
    assert version.row_count > 0
    expected = platform.mesh.read("shop.joined_local", "1.0.0")
    got = platform.mesh.read("shop.joined_ray", "1.0.0")
    assert got.schema == expected.schema
    assert checksum(got) == checksum(expected)
    # Progress as the CLI shows it: blocks done and rows of the blocked input.
    progress = [s for s in steps if s.startswith("ray joined_ray: ")]
    assert progress[-1] == "ray joined_ray: 9 blocks done, 9,000/9,000 rows", steps


def test_an_iceberg_port_as_the_blocked_input(
    platform: Platform, events: Path, tmp_path: Path
) -> None:
    """A product stored as Iceberg is read through the governed read path, like any product,
    then split into blocks."""
    rows = pa.concat_tables([pq.read_table(f) for f in sorted(events.glob("*.parquet"))])
    columns = [{"name": n, "logicalType": "integer" if n != "amount" else "number"}
               for n in rows.column_names]  # fmt: skip
    doc = iceberg_port(descriptor(name="ice_events", owner="alice"))
    platform.mesh.publish_arrow(doc, {"ice_events": contract(columns, name="ice_events")},
                                {"ice_events": rows})  # fmt: skip
    recipe: dict[str, Any] = {"transform": {"sql": JOIN_SQL}}
    local = product_folder(tmp_path, "ice_local", "alice", events, recipe)
    on_ray = product_folder(tmp_path, "ice_ray", "alice", events, {**recipe, "engine": "ray"})
    for folder in (local, on_ray):
        build = yaml.safe_load((folder / "build.yaml").read_text())
        build["inputs"]["events"] = {"product": "shop.ice_events@^1"}
        (folder / "build.yaml").write_text(yaml.safe_dump(build, sort_keys=False))
        platform.mesh.publish(folder)
    got = platform.mesh.read("shop.ice_ray", "1.0.0")
    assert got.num_rows > 0
    assert checksum(got) == checksum(platform.mesh.read("shop.ice_local", "1.0.0"))


def test_a_block_failing_once_is_retried_and_reported(
    platform: Platform, events: Path, tmp_path: Path
) -> None:
    flag = tmp_path / "failed-once"
    on_ray = product_folder(tmp_path, "flaky_ray", "alice", events, {"engine": "ray", "blocks": 6})
    recipe = yaml.safe_load((on_ray / "build.yaml").read_text())
    recipe.update(python_transform(on_ray, flag, always=False))
    (on_ray / "build.yaml").write_text(yaml.safe_dump(recipe, sort_keys=False))
    report = platform.mesh.build(on_ray)
    assert flag.exists()  # the marker block did fail, on its first attempt
    retried = [s for s in report.steps if "failed" in s]
    assert (
        len(retried) == 1
        and "attempt 1 failed (RuntimeError: the marker block); retried" in (retried[0])
    )
    assert report.passed

    # The same transform in this process (the flag is set: it does not fail) gives the same.
    local = product_folder(tmp_path, "flaky_local", "alice", events, {})
    recipe.pop("engine"), recipe.pop("blocks")
    (local / "build.yaml").write_text(yaml.safe_dump(recipe, sort_keys=False))
    (local / "transform.py").write_text((on_ray / "transform.py").read_text())
    assert report.build is not None and report.build.retried_blocks == 1
    flag.unlink()  # it fails once more in the publish's build: that retry is stored
    platform.mesh.publish(on_ray)
    platform.mesh.publish(local)
    got = platform.mesh.read("shop.flaky_ray", "1.0.0")
    assert checksum(got) == checksum(platform.mesh.read("shop.flaky_local", "1.0.0"))

    # The build report is stored with the version and read back with it (over HTTP).
    stored = platform.mesh.get_version("shop.flaky_ray", "1.0.0").build
    assert stored is not None and stored.engine == "ray"
    assert [(r.port, r.attempt, r.error) for r in stored.retries] == [
        ("flaky_ray", 1, "RuntimeError: the marker block")
    ]
    assert stored.retried_blocks == 1 and stored.seconds > 0
    [blocks] = stored.blocks
    assert blocks.port == "flaky_ray" and blocks.rows == blocks.total_rows == 9000
    assert blocks.blocks >= 1  # Ray Data bundles small Parquet blocks as it sees fit
    local_build = platform.mesh.get_version("shop.flaky_local", "1.0.0").build
    assert local_build is not None and local_build.engine == "local" and not local_build.blocks


def test_a_block_failing_for_good_publishes_nothing(
    platform: Platform, events: Path, tmp_path: Path
) -> None:
    folder = product_folder(
        tmp_path, "broken_ray", "alice", events, {"engine": "ray", "block_retries": 1}
    )
    recipe = yaml.safe_load((folder / "build.yaml").read_text())
    recipe.update(python_transform(folder, tmp_path / "flag", always=True))
    (folder / "build.yaml").write_text(yaml.safe_dump(recipe, sort_keys=False))
    with pytest.raises(InvalidInput, match="nothing is published") as info:
        platform.mesh.publish(folder)
    assert "failed on attempt 2: RuntimeError: the marker block" in info.value.message
    assert len(info.value.detail["failures"]) == 2
    with pytest.raises(NotFound):
        platform.mesh.get_version("shop.broken_ray")


def test_sql_needing_other_blocks_is_refused_before_running(
    platform: Platform, events: Path, tmp_path: Path
) -> None:
    sql = "SELECT customer_id, sum(amount) AS amount FROM events GROUP BY customer_id"
    folder = product_folder(
        tmp_path, "totals_ray", "alice", events, {"engine": "ray", "transform": {"sql": sql}}
    )
    with pytest.raises(InvalidInput, match="runs per block") as info:
        platform.mesh.build(folder)
    assert info.value.detail["field"] == "transform.sql"
    assert "Hash Group By" in info.value.message


def test_the_api_server_does_not_run_ray_builds(events: Path, tmp_path: Path) -> None:
    folder = product_folder(tmp_path, "server_ray", "alice", events, {"engine": "ray"})
    spec = specs.load_product(folder)

    def no_products(ref: str, port: str | None) -> tuple[pa.Table, str]:
        raise AssertionError("nothing is read before the refusal")

    with pytest.raises(Forbidden) as info:
        builds.build(spec, no_products, limits=builds.BuildLimits(tmp_path))
    assert info.value.detail["field"] == "engine"


FLAKY_PASS_THROUGH = """
from pathlib import Path

FLAG = Path({flag!r})


def transform(inputs):
    events = inputs["events"]
    if {marker} in events.column("event_id").to_pylist() and not FLAG.exists():
        FLAG.write_text("failed once")
        raise RuntimeError("the marker block")
    return events.select(["event_id", "customer_id", "amount"])
"""


def test_cli_shows_a_retried_block(
    events: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder = product_folder(tmp_path, "cli_ray", "alice", events, {"engine": "ray"})
    recipe = yaml.safe_load((folder / "build.yaml").read_text())
    del recipe["inputs"]["customers"]
    recipe["transform"] = {"python": "transform.py:transform"}
    (folder / "build.yaml").write_text(yaml.safe_dump(recipe, sort_keys=False))
    flag = tmp_path / "cli-flag"
    (folder / "transform.py").write_text(FLAKY_PASS_THROUGH.format(flag=str(flag), marker=MARKER))
    columns = [c for c in OUTPUT_COLUMNS if c["name"] in ("event_id", "customer_id", "amount")]
    (folder / "cli_ray.odcs.yaml").write_text(yaml.safe_dump(contract(columns, name="cli_ray")))
    monkeypatch.setenv("MESHOPS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MESHOPS_USER", "alice")
    done = run_main(["product", "build", str(folder)], monkeypatch, capsys)
    assert done.returncode == 0, done.stderr
    shown = " ".join(done.stderr.split())  # the console wraps long lines
    assert "attempt 1 failed (RuntimeError: the marker block); retried" in shown
    assert flag.exists()

    # Published from the CLI (the block fails once more), then shown with its build report.
    flag.unlink()
    done = run_main(["product", "publish", str(folder)], monkeypatch, capsys)
    assert done.returncode == 0, done.stderr
    assert "built on ray in" in done.stdout and "1 block failure(s) retried" in done.stdout
    done = run_main(["product", "show", "shop.cli_ray"], monkeypatch, capsys)
    assert done.returncode == 0, done.stderr
    shown = " ".join(done.stdout.split())
    assert "built on ray in" in shown and "port cli_ray: " in shown and "9,000/9,000 rows" in shown
    assert "the marker block" in shown


def test_the_cli_draws_a_progress_bar_from_the_rows_done(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On a terminal, a step that measures progress (rows done of the total) fills the bar."""
    from rich.console import Console

    from meshops.cli import products

    screen = io.StringIO()
    terminal = Console(file=screen, force_terminal=True, width=120)
    monkeypatch.setattr(products, "err_console", terminal)

    def run(step: Callable[[str], None]) -> str:
        step("read input events (ray)")
        step(builds.ProgressStep("ray p: 3 blocks done, 4,500/9,000 rows", 4500, 9000))
        return "built"

    assert products._progress_build("build", Path("p"), run) == "built"
    drawn = screen.getvalue()
    assert "ray p: 3 blocks done, 4,500/9,000 rows" in drawn and "50%" in drawn
    assert "━" in drawn  # the bar itself
