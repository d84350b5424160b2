"""Versions that come from tracking runs: artifacts by digest, metrics, inputs, lineage."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import skops.io

from meshops.client import Platform
from meshops.kernel.errors import NotFound
from meshops.tracking.models import DatasetInput, Metric
from tests.registry.helpers import fitted_classifier

# PostgreSQL is covered by the first test; the rest is transport behaviour.
TWO_TRANSPORTS = pytest.mark.parametrize("platform", ["embedded", "http"], indirect=True)
DATASET = "meshops:dataproduct:sales.customers:1.0.0"


def _training_run(platform: Platform, tmp_path: Path) -> tuple[str, object, object]:
    model, data = fitted_classifier()
    run = platform.tracking.create_run("churn", capture_environment=False)
    now = time.time()
    platform.tracking.log_metrics(
        run.id,
        [
            Metric(key="auc", value=0.80, step=0, timestamp=now),
            Metric(key="auc", value=0.88, step=1, timestamp=now),
        ],
    )
    platform.tracking.log_input(run.id, DatasetInput(urn=DATASET, digest="d" * 64))
    folder = tmp_path / "model"
    folder.mkdir()
    skops.io.dump(model, folder / "model.skops")
    platform.tracking.log_artifact(run.id, folder, "model")
    platform.tracking.end_run(run.id)
    if hasattr(platform.tracking, "flush"):
        platform.tracking.flush()
    return run.id, model, data


def test_create_version_from_run_artifact(platform: Platform, tmp_path: Path) -> None:
    run_id, model, data = _training_run(platform, tmp_path)
    artifacts = platform.tracking.list_artifacts(run_id)
    version = platform.registry.create_version(
        "churn", run_id=run_id, artifact_path="model", metrics={"holdout_auc": 0.9}
    )
    assert version.flavor == "sklearn"
    assert version.run_id == run_id
    assert version.files[0].path == "model.skops"
    assert version.files[0].digest == next(a.digest for a in artifacts if a.path.endswith(".skops"))
    assert version.metrics == {"auc": 0.88, "holdout_auc": 0.9}
    assert [d.urn for d in version.input_datasets] == [DATASET]
    upstream = platform.lineage.upstream(version.urn)
    assert {(e.upstream, e.relation) for e in upstream} >= {
        (f"meshops:run:{run_id}", "produced"),
        (DATASET, "trained_on"),
    }
    loaded = platform.registry.load_model("models:/churn/1")
    assert np.array_equal(loaded.predict(data), model.predict(data))  # type: ignore[attr-defined]


@TWO_TRANSPORTS
def test_log_model_with_run_copies_metrics_and_inputs(platform: Platform, tmp_path: Path) -> None:
    run_id, model, _ = _training_run(platform, tmp_path)
    version = platform.registry.log_model("churn", model, run_id=run_id, metrics={"auc": 0.95})
    assert version.metrics == {"auc": 0.95}  # explicit evaluation metrics win
    assert version.input_datasets[0].urn == DATASET
    downstream = platform.lineage.downstream(f"meshops:run:{run_id}")
    assert (version.urn, "produced") in {(e.downstream, e.relation) for e in downstream}


@TWO_TRANSPORTS
def test_unknown_run_and_missing_artifacts(platform: Platform, tmp_path: Path) -> None:
    run_id, model, _ = _training_run(platform, tmp_path)
    with pytest.raises(NotFound, match="no artifacts under 'nothing'"):
        platform.registry.create_version("churn", run_id=run_id, artifact_path="nothing")
    with pytest.raises(NotFound):
        platform.registry.log_model("churn", model, run_id="0" * 32)
    with pytest.raises(NotFound):
        platform.registry.get_model("churn")  # nothing half-written
