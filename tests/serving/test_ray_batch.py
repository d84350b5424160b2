"""Batch scoring on Ray Data (`engine="ray"`) against a local Ray started once for this
module: the published predictions equal a single-process scoring's (checksums of the sorted
tables), a block whose scoring fails once is retried in its actor, and a block that fails
for good publishes nothing."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from meshops.client import Platform
from meshops.kernel.errors import Forbidden, InvalidInput, NotFound
from tests.conftest import open_platform
from tests.features.helpers import publish
from tests.serving.helpers import FEATURES, register_churn
from tests.support.cli import run_main

ray = pytest.importorskip("ray")

ROWS = 6000
MARKER = 4321  # the customer whose block the flaky model fails on


@pytest.fixture(scope="module", autouse=True)
def local_ray() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def home_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ray") / "home"


@pytest.fixture(scope="module")
def platform(home_dir: Path) -> Iterator[Platform]:
    with open_platform("embedded", home_dir) as p:
        register_churn(p, name="churn")
        rng = np.random.default_rng(7)
        columns: dict[str, Any] = {"customer_id": pa.array(range(ROWS), pa.int64())}
        columns.update({f: rng.normal(size=ROWS) for f in FEATURES})
        publish(p, "sales.customers", "1.0.0", pa.table(columns))
        yield p


def checksum(table: pa.Table) -> str:
    rows = table.sort_by("customer_id").to_pylist()
    return hashlib.sha256(json.dumps(rows, sort_keys=True).encode()).hexdigest()


def flaky_model(flag: Path, *, always: bool) -> Any:
    """A python-flavor model that fails on the block holding MARKER: once (leaving `flag`),
    or every time. Defined here so cloudpickle ships it by value to the Ray actors."""

    class Flaky:
        def predict(self, frame: pd.DataFrame) -> list[int]:
            if MARKER in set(frame["customer_id"]) and (always or not flag.exists()):
                flag.write_text("failed once")
                raise RuntimeError("the marker block")
            return [int(v > 0) for v in frame["tenure"]]

    return Flaky()


def test_ray_scoring_equals_the_single_process_scoring(platform: Platform) -> None:
    local = platform.serving.batch_score("churn@champion", "sales.customers", output="sales.local")
    on_ray = platform.serving.batch_score(
        "churn@champion",
        "sales.customers",
        output="sales.on_ray",
        engine="ray",
        block_rows=1000,
        workers=2,
    )
    expected = platform.mesh.read("sales.local", local.version)
    got = platform.mesh.read("sales.on_ray", on_ray.version)
    assert got.num_rows == ROWS and got.schema == expected.schema
    assert checksum(got) == checksum(expected)
    assert got.column("customer_id").to_pylist() == list(range(ROWS))  # the input's order
    assert len(set(got.column("prediction").to_pylist())) == 2  # a real classifier's output


def test_a_block_failing_once_is_retried_in_its_actor(
    platform: Platform, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    flag = tmp_path / "failed-once"
    platform.registry.create_model("flaky", domain="sales")
    example = pd.DataFrame({"customer_id": [1, 2], "tenure": [0.5, -0.5]})
    platform.registry.log_model(
        "flaky", flaky_model(flag, always=False), flavor="python", input_example=example
    )
    with caplog.at_level(logging.WARNING, logger="meshops.serving"):
        on_ray = platform.serving.batch_score(
            "flaky/1",
            "sales.customers",
            output="sales.flaky_ray",
            keep_columns=["customer_id"],
            trust_model_code=True,
            engine="ray",
            block_rows=1500,
            workers=2,
        )
    assert flag.exists()  # the marker block did fail once
    retried = [r.getMessage() for r in caplog.records if "retried" in r.getMessage()]
    assert len(retried) == 1
    assert "attempt 1 failed (RuntimeError: the marker block)" in retried[0]
    local = platform.serving.batch_score(
        "flaky/1",
        "sales.customers",
        output="sales.flaky_local",
        keep_columns=["customer_id"],
        trust_model_code=True,
    )
    got = platform.mesh.read("sales.flaky_ray", on_ray.version)
    assert checksum(got) == checksum(platform.mesh.read("sales.flaky_local", local.version))


def test_a_block_failing_for_good_publishes_nothing(platform: Platform, tmp_path: Path) -> None:
    platform.registry.create_model("broken", domain="sales")
    example = pd.DataFrame({"customer_id": [1, 2], "tenure": [0.5, -0.5]})
    model = flaky_model(tmp_path / "flag", always=True)
    platform.registry.log_model("broken", model, flavor="python", input_example=example)
    with pytest.raises(InvalidInput, match="nothing is published") as info:
        platform.serving.batch_score(
            "broken/1",
            "sales.customers",
            output="sales.broken_ray",
            trust_model_code=True,
            engine="ray",
            block_rows=2000,
            workers=1,  # one actor's start is enough to show it
        )
    assert "RuntimeError: the marker block" in info.value.message
    assert len(info.value.detail["failures"]) == 3  # the first attempt and 2 retries
    with pytest.raises(NotFound):
        platform.mesh.get_version("sales.broken_ray")


def test_cli_scores_on_ray_and_refuses_an_unknown_engine(
    platform: Platform,
    home_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("MESHOPS_HOME", str(home_dir))
    monkeypatch.setenv("MESHOPS_USER", "alice")
    args = ["endpoints", "batch-score", "churn@champion", "sales.customers", "--output"]
    done = run_main([*args, "sales.cli_ray", "--engine", "ray", "--block-rows", "3000",
                     "--workers", "1", "--json"],
                    monkeypatch, capsys)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["row_count"] == ROWS
    refused = run_main([*args, "sales.cli_spark", "--engine", "spark"], monkeypatch, capsys)
    assert refused.returncode != 0 and "engine" in refused.stderr
    with pytest.raises(NotFound):
        platform.mesh.get_version("sales.cli_spark")


def test_the_api_server_scores_on_ray_only_on_its_admins_cluster(tmp_path: Path) -> None:
    with open_platform("http", tmp_path / "home") as remote:
        with pytest.raises(Forbidden) as unset:
            remote.serving.batch_score("churn/1", "sales.customers", output="sales.x", engine="ray")
        assert unset.value.detail["field"] == "engine"
        assert "[serving] ray_address" in unset.value.detail["fix"]
        with pytest.raises(Forbidden) as chosen:
            remote.serving.batch_score(
                "churn/1", "sales.customers", output="sales.x", engine="ray", ray_address="x:1"
            )
        assert chosen.value.detail["field"] == "ray_address"
        with pytest.raises(InvalidInput):  # bounded on the wire
            remote.serving.batch_score(
                "churn/1", "sales.customers", output="sales.x", engine="ray", workers=10_000
            )
