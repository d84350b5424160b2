"""Drift monitors alert on any drifted feature by default (built-in rule `feature-drift`),
with `drift_share` as a dataset-level rule beside it (`dataset-drift`) when configured;
rules you add replace the built-in ones. Embedded, over HTTP and on PostgreSQL."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from meshops.client import Platform
from meshops.monitoring.models import AlertRuleSpec, MonitorSpec

FEATURES = ["f1", "f2", "f3", "f4", "f5"]
ROWS = 500


def table(shifted: tuple[str, ...] = (), seed: int = 7) -> pa.Table:
    """Five numeric features; the `shifted` ones moved by two standard deviations. The
    unshifted columns are the reference's own values, so only the shifted ones can drift."""
    rng = np.random.default_rng(seed)
    columns = {name: rng.normal(0.0, 1.0, ROWS) for name in FEATURES}
    return pa.table({n: v + (2.0 if n in shifted else 0.0) for n, v in columns.items()})


def create(platform: Platform, name: str, **options: object) -> None:
    spec = MonitorSpec.model_validate({"name": name, "kind": "data_drift", **options})
    platform.monitoring.create_monitor(spec, reference=table())


def active(platform: Platform, name: str) -> dict[str, int]:
    return {
        a.rule_name: a.occurrences
        for a in platform.monitoring.list_alerts(monitor=name, state="active")
    }


def test_one_drifted_feature_of_five_alerts_by_default(shared_platform: Platform) -> None:
    p = shared_platform
    create(p, "default-any")
    (rule,) = p.monitoring.list_rules("default-any")
    assert (rule.name, rule.metric, rule.op, rule.value) == (
        "feature-drift",
        "drifted_columns",
        ">=",
        1,
    )
    assert rule.builtin and rule.id < 0
    calm = p.monitoring.run_monitor("default-any", current=table())
    assert calm.status == "ok" and calm.metrics["drifted_columns"] == 0
    one = p.monitoring.run_monitor("default-any", current=table(("f3",)))
    assert one.status == "alert", one.summary
    assert one.metrics["drifted_columns"] == 1 and one.metrics["share_drifted"] == 0.2
    # Without drift_share, `dataset_drift` (the metric rules of older tutorials use) is
    # "any feature drifted" too.
    assert one.metrics["dataset_drift"] == 1
    assert one.summary == "1 of 5 features drifted (f3)"
    (alert,) = p.monitoring.list_alerts(monitor="default-any")
    assert alert.rule_name == "feature-drift" and alert.state == "open"
    assert alert.metric == "drifted_columns" and alert.value == 1
    recovered = p.monitoring.run_monitor("default-any", current=table())
    assert recovered.status == "ok" and active(p, "default-any") == {}


def test_drift_share_is_a_dataset_level_rule_beside_it(shared_platform: Platform) -> None:
    p = shared_platform
    create(p, "default-share", drift_share=0.4)
    rules = {r.name: (r.metric, r.value) for r in p.monitoring.list_rules("default-share")}
    assert rules == {
        "feature-drift": ("drifted_columns", 1),
        "dataset-drift": ("share_drifted", 0.4),
    }
    one = p.monitoring.run_monitor("default-share", current=table(("f1",)))
    assert one.status == "alert" and one.metrics["dataset_drift"] == 0
    assert active(p, "default-share") == {"feature-drift": 1}
    two = p.monitoring.run_monitor("default-share", current=table(("f1", "f4")))
    assert two.metrics["share_drifted"] == 0.4 and two.metrics["dataset_drift"] == 1
    assert two.summary == "2 of 5 features drifted (f1, f4); dataset drift (share 0.4 >= 0.4)"
    assert active(p, "default-share") == {"feature-drift": 2, "dataset-drift": 1}
    dataset = next(
        a
        for a in p.monitoring.list_alerts(monitor="default-share")
        if a.rule_name == "dataset-drift"
    )
    assert dataset.metric == "share_drifted" and dataset.value == 0.4
    p.monitoring.run_monitor("default-share", current=table(("f1",)))
    assert active(p, "default-share") == {"feature-drift": 3}


def test_added_rules_replace_the_built_in_ones(shared_platform: Platform) -> None:
    p = shared_platform
    create(p, "default-replaced")
    p.monitoring.run_monitor("default-replaced", current=table(("f2",)))
    assert active(p, "default-replaced") == {"feature-drift": 1}
    own = AlertRuleSpec(
        name="most", metric="share_drifted", op=">=", value=0.6, severity="critical"
    )
    p.monitoring.add_rule("default-replaced", own)
    (rule,) = p.monitoring.list_rules("default-replaced")
    assert rule.name == "most" and not rule.builtin
    # The built-in rule's alert resolves; the added rule does not fire on one feature.
    again = p.monitoring.run_monitor("default-replaced", current=table(("f2",)))
    assert again.status == "ok" and active(p, "default-replaced") == {}
    many = p.monitoring.run_monitor("default-replaced", current=table(("f1", "f2", "f3")))
    assert many.status == "alert" and active(p, "default-replaced") == {"most": 1}


def test_built_in_rules_can_be_turned_off(shared_platform: Platform) -> None:
    p = shared_platform
    create(p, "default-off", builtin_rules=False)
    assert p.monitoring.list_rules("default-off") == []
    result = p.monitoring.run_monitor("default-off", current=table(("f5",)))
    assert result.metrics["drifted_columns"] == 1
    assert result.status == "ok" and active(p, "default-off") == {}


def test_a_prediction_drift_monitor_alerts_by_default(shared_platform: Platform) -> None:
    p = shared_platform
    spec = MonitorSpec(name="default-prediction", kind="prediction_drift", prediction_column="f1")
    p.monitoring.create_monitor(spec, reference=table())
    assert [r.name for r in p.monitoring.list_rules("default-prediction")] == ["prediction-drift"]
    assert p.monitoring.run_monitor("default-prediction", current=table()).status == "ok"
    shifted = p.monitoring.run_monitor("default-prediction", current=table(("f1",)))
    assert shifted.status == "alert" and active(p, "default-prediction") == {"prediction-drift": 1}
