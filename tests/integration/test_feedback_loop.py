"""The loop (issue 7), end to end on one embedded home: serve a model trained by the automated
training pipeline, send traffic, shift the input distribution, the drift monitor alerts, the
alert triggers the training pipeline through an outbox trigger run by a real worker loop, the
new version is evaluated against the champion, passes the promotion gate, the alias moves and
the endpoint serves the new version -- and every hop is an edge in the lineage graph."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest

import meshops
from meshops.client import Platform
from meshops.demo import org
from meshops.governance.models import Policy
from meshops.kernel import outbox
from meshops.monitoring.models import AlertRuleSpec, MonitorSpec
from meshops.pipelines.models import RunStatus
from meshops.pipelines.service import PipelinesService
from meshops.pipelines.templates.training import training_pipeline
from meshops.pipelines.worker import Worker, WorkerOptions
from meshops.tracking.service import TrackingService

REF = "meshops.pipelines.templates.training:training_pipeline"
SEED = 11
GATE_TOML = """
[registry]
promotion_gate = "meshops.project.promotion:PromotionGate"

[promotion]
protected_aliases = ["champion"]
"""


@pytest.fixture
def platform(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Platform]:
    home = tmp_path / "home"
    home.mkdir()
    (home / "meshops.toml").write_text(GATE_TOML)
    monkeypatch.chdir(tmp_path)  # no meshops.toml of the working tree wins over the home's
    # Pipeline steps (in this process and in a worker's) open the platform from the env.
    monkeypatch.setenv("MESHOPS_HOME", str(home))
    monkeypatch.setenv("MESHOPS_USER", "alice")
    monkeypatch.delenv("MESHOPS_URI", raising=False)
    monkeypatch.delenv("MESHOPS_DATABASE_URL", raising=False)
    with meshops.connect() as opened:
        yield opened


def publish_period(p: Platform, customers: pa.Table, period: org.Period, version: str) -> dict:
    orders = org.publish(p, "sales.orders", version, period.orders)
    tickets = org.publish(p, "support.tickets", version, period.tickets)
    activity = org.customer_activity(
        customers, period.orders, period.tickets, period.start, period.end
    )
    aggregate = org.publish(
        p, "sales.customer_activity", version, activity, inputs=[orders.urn, tickets.urn]
    )
    labels = org.churn_labels(activity, customers, period.regime, SEED)
    label_version = org.publish(p, "customers.churn_labels", version, labels)
    return {
        "orders": orders,
        "tickets": tickets,
        "activity": aggregate,
        "labels": label_version,
        "table": activity,
    }


def downstream(p: Platform, urn: str, depth: int = 12) -> set[str]:
    return {e.downstream for e in p.lineage.downstream(urn, depth=depth)}


def test_drift_alert_retrains_promotes_and_serves_the_new_version(platform: Platform) -> None:
    p = platform
    scale = org.Scale.named("small")
    for name, (text, _owner) in org.DOMAINS.items():
        p.mesh.create_domain(name, text, owners=["alice"])
    customers = org.profiles(scale, SEED)
    profiles = org.publish(p, "customers.profiles", "1.0.0", customers)
    first = publish_period(p, customers, org.period(scale, SEED, 1), "1.0.0")
    p.features.apply(org.feature_repo(owner="alice"))
    # The ML domain's own promotion policy, evaluated by the registry's gate.
    p.governance.save_policy(
        Policy(
            id="retention-champion-must-beat-current",
            scope="retention",
            target="model.promote",
            expression='!("roc_auc_lift" in metrics) || metrics["roc_auc_lift"] > 0.0',
            rationale="a new champion beats the current one on the same holdout",
            owner="alice",
        )
    )
    params = {"model": "churn", "domain": "retention", "min_rows": 500, "seed": SEED}

    # 1. the first model, trained by the pipeline, becomes the champion
    detail = p.pipelines.run(training_pipeline, params)
    assert detail.run.status == RunStatus.SUCCEEDED, detail.run.error
    v1 = p.registry.get_version("churn", 1)
    assert p.registry.resolve("models:/churn@champion").version == 1
    assert v1.metrics["roc_auc"] > 0.7
    assert v1.tags["meshops.evaluated_against"] == "baseline"

    # 2. serve it and watch its inputs against the training set
    p.serving.create_endpoint("churn-api", "churn@champion", domain="retention")
    training = p.features.get_training_set(v1.tags["meshops.training_set_id"])
    reference = training.to_arrow().select(org.FEATURES)
    p.monitoring.create_monitor(
        MonitorSpec(
            name="churn-drift",
            kind="data_drift",
            domain="retention",
            endpoint="churn-api",
            model="churn",
            numerical=org.FEATURES,
        ),
        reference=reference,
    )
    p.monitoring.add_rule(
        "churn-drift", AlertRuleSpec(name="dataset-drift", metric="dataset_drift", op=">=", value=1)
    )
    p.pipelines.create_trigger(
        "retrain-on-drift",
        outbox.MONITOR_ALERT,
        REF,
        params,
        match={"monitor": "churn-drift"},
        executor="inline",
    )
    normal = org.traffic(first["table"], customers, 400, SEED)
    for k in range(0, len(normal), 20):
        served = p.serving.predict("churn-api", normal[k : k + 20])
        assert served.model_version == 1
    window = p.serving.prediction_window("churn-api")
    calm = p.monitoring.run_monitor("churn-drift", current=window.select(org.FEATURES))
    assert calm.status == "ok", calm.summary
    assert p.monitoring.list_alerts(monitor="churn-drift") == []

    # 3. the world changes: new source versions, and the traffic shifts
    second = publish_period(p, customers, org.period(scale, SEED, 2), "2.0.0")
    shifted = org.traffic(second["table"], customers, 400, SEED + 1)
    for k in range(0, len(shifted), 20):
        p.serving.predict("churn-api", shifted[k : k + 20])
    window = p.serving.prediction_window("churn-api")
    current = window.slice(len(normal)).select(org.FEATURES)
    drifted = p.monitoring.run_monitor("churn-drift", current=current)
    assert drifted.status == "alert", drifted.summary
    (alert,) = p.monitoring.list_alerts(monitor="churn-drift")
    assert alert.state == "open"

    # 4. a worker dispatches the alert event to the trigger and runs the pipeline
    assert p.context is not None
    worker = Worker(
        PipelinesService(p.context),
        tracking=TrackingService(p.context),
        options=WorkerOptions(poll_seconds=0.05, lease_seconds=30),
        name="loop-worker",
    )
    assert worker.serve(max_runs=1, idle_exit=True) == 1
    runs = p.pipelines.list_runs(pipeline="training_pipeline", limit=10)
    assert len(runs) == 2
    (retrain,) = [r for r in runs if r.origin.get("kind") == "trigger"]
    retrain_detail = p.pipelines.get_run(retrain.id)
    assert retrain_detail.run.status == RunStatus.SUCCEEDED, retrain_detail.run.error
    assert retrain.origin["trigger"] == "retrain-on-drift"
    assert retrain.origin["subject"] == f"meshops:alert:{alert.id}"

    # 5. evaluated against the champion on the new holdout, promoted through the gate
    v2 = p.registry.get_version("churn", 2)
    assert v2.tags["meshops.evaluated_against"] == "1"
    assert v2.metrics["roc_auc"] > v2.metrics["champion_roc_auc"]
    assert v2.metrics["roc_auc_lift"] > 0
    moves = p.registry.alias_history("churn", "champion")
    assert sorted((m.from_version or 0, m.to_version) for m in moves) == [(0, 1), (1, 2)]
    assert p.registry.resolve("models:/churn@champion").version == 2
    decisions = p.governance.evaluations(subject_urn=v2.urn)
    assert {d.policy_id for d in decisions} >= {
        "retention-champion-must-beat-current",
        "production-models-have-evaluation-metrics",
        "production-models-from-published-inputs",
    }
    assert {d.outcome for d in decisions} == {"pass"}

    # 6. the endpoint serves the new version: the alias move is picked up by the endpoint's
    # watcher (it polls the registry) and swapped in without failing a request meanwhile
    deadline = time.monotonic() + 30
    after = p.serving.predict("churn-api", shifted[:5])
    while after.model_version != 2 and time.monotonic() < deadline:
        time.sleep(0.2)
        after = p.serving.predict("churn-api", shifted[:5])
    assert after.model_version == 2

    # 7. the lineage graph: source version -> aggregate -> training set -> run -> model
    # version -> endpoint -> monitor -> result -> alert -> retraining run -> new version
    alert_urn = f"meshops:alert:{alert.id}"
    from_source = downstream(p, first["orders"].urn)
    assert second["activity"].urn in downstream(p, second["orders"].urn)
    assert v1.urn in from_source
    assert "meshops:endpoint:churn-api" in from_source
    assert alert_urn in from_source
    assert retrain.urn in downstream(p, alert_urn)
    assert v2.urn in downstream(p, alert_urn)
    assert v2.urn in downstream(p, second["orders"].urn)
    assert v2.urn in downstream(p, second["labels"].urn)
    assert profiles.urn in {e.upstream for e in p.lineage.upstream(v2.urn, depth=12)}
    tracking_run = f"meshops:run:{v2.run_id}"
    # pipeline run -contains-> step run -produced-> tracking run (kernel.steps links)
    assert tracking_run in downstream(p, retrain.urn, depth=2)
    assert v2.urn in downstream(p, tracking_run, depth=1)
