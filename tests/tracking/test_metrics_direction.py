"""The one table of metric directions: defaults, split prefixes, the home's overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from meshops.kernel.config import load_settings
from meshops.kernel.errors import InvalidInput
from meshops.registry import comparison
from meshops.tracking.metrics_direction import (
    best_index,
    configured_directions,
    direction_of,
)


def test_common_metrics_have_their_direction_and_others_none() -> None:
    for name in ("accuracy", "roc_auc", "f1", "precision", "recall", "r2", "ap"):
        assert direction_of(name) == "max", name
    for name in ("rmse", "mse", "mae", "log_loss", "brier", "brier_score", "mape", "loss"):
        assert direction_of(name) == "min", name
    assert direction_of("val_loss") == "min" and direction_of("holdout.rmse") == "min"
    assert direction_of("test/accuracy") == direction_of("ROC_AUC") == "max"
    assert direction_of("latency_ms") is None and direction_of("lossy_thing") is None


def test_the_comparison_table_reads_the_same_directions() -> None:
    assert all(direction_of(m) == d for m, d in comparison.METRICS.items())


def test_the_home_configures_directions(tmp_path: Path) -> None:
    (tmp_path / "meshops.toml").write_text(
        '[metrics]\ndirections = { latency_ms = "min", uplift = "higher", loss = "max" }\n'
    )
    configured = configured_directions(load_settings(home=tmp_path, env={}))
    assert configured == {"latency_ms": "min", "uplift": "max", "loss": "max"}
    assert direction_of("latency_ms", configured) == "min"
    assert direction_of("loss", configured) == "max"  # the home overrides a default
    assert configured_directions(load_settings(home=tmp_path / "none", env={})) == {}


def test_a_bad_direction_names_the_metric_and_the_fix(tmp_path: Path) -> None:
    (tmp_path / "meshops.toml").write_text('[metrics]\ndirections = { uplift = "up" }\n')
    with pytest.raises(InvalidInput) as caught:
        configured_directions(load_settings(home=tmp_path, env={}))
    assert caught.value.detail["field"] == "metrics.directions.uplift"
    assert "max" in caught.value.detail["fix"]


def test_best_needs_a_direction_and_a_difference() -> None:
    assert best_index([0.2, 0.1, 0.3], "max") == 2
    assert best_index([0.2, 0.1, 0.3], "min") == 1
    assert best_index([0.2, 0.1, 0.3], None) is None
    assert best_index([0.2, 0.2], "max") is None and best_index([0.2], "max") is None
    assert best_index([float("nan"), 0.1, 0.3], "min") == 1
