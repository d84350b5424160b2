"""A small organisation seeded through the SDK (embedded services), for the UI tests and the
README screenshots: three domains, the retail products (an aggregate over two sources, PII
columns), a product with two versions, experiment runs with metric histories, a registered
model with aliases and a card, an endpoint with predictions, a drift monitor with an alert,
and a pipeline run. Two people: alice (owner, platform admin) and bob (a consumer)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from sklearn.linear_model import LogisticRegression

from meshops.client import Platform
from meshops.kernel.home import Home
from meshops.monitoring.models import AlertRuleSpec, MonitorSpec
from meshops.pipelines import pipeline, step
from meshops.tracking.models import DatasetInput, Metric
from tests.mesh.conftest import generate_example
from tests.support.products import data_contract, data_product

FEATURES = ["tenure", "spend", "calls", "age"]
MODEL_CARD = """# Churn classifier

Predicts whether a **customer** churns within 90 days.

| metric | value |
| --- | --- |
| accuracy | 0.91 |

## Intended use
Retention campaigns of the marketing domain. <script>alert('x')</script>

[unsafe link](javascript:alert(1)) · [docs](https://example.org/churn)
"""


@dataclass
class Demo:
    owner_token: str
    consumer_token: str
    runs: list[str]
    endpoint: str = "churn-api"
    model: str = "churn"


def frame(seed: int, n: int = 400, shift: float = 0.0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    data = pd.DataFrame({name: rng.normal(size=n) for name in FEATURES})
    data["tenure"] += shift
    data["age"] = 40 + 12 * data["age"] + 15 * shift
    target = (data["tenure"] + 0.5 * data["spend"] > 0).astype(int).to_numpy()
    return data, target


@step
def load_customers(n: int) -> pd.DataFrame:
    data, target = frame(7, n)
    data["churned"] = target
    print(f"loaded {len(data)} customers")
    return data


@step
def split_sets(data: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    half = len(data) * 3 // 4
    print(f"train {half} rows, test {len(data) - half} rows")
    return data.iloc[:half], data.iloc[half:]


@step
def fit_model(train: pd.DataFrame, c: float) -> LogisticRegression:
    print(f"fitting LogisticRegression(C={c})")
    return LogisticRegression(C=c).fit(train[FEATURES], train["churned"])


@step
def score_model(model: LogisticRegression, test: pd.DataFrame) -> dict[str, float]:
    accuracy = float(model.score(test[FEATURES], test["churned"]))
    print(f"accuracy {accuracy:.3f}")
    return {"accuracy": accuracy}


@pipeline
def churn_training(n: int = 400, c: float = 1.0) -> object:
    train, test = split_sets(load_customers(n))
    return score_model(fit_model(train, c), test)


def _campaigns(version: str, with_channel: bool) -> tuple[dict[str, Any], dict[str, Any], pa.Table]:
    columns: list[dict[str, Any]] = [
        {"name": "campaign_id", "logicalType": "integer", "required": True, "primaryKey": True},
        {"name": "name", "logicalType": "string", "description": "Campaign name."},
        {"name": "budget", "logicalType": "number", "description": "Budget in EUR."},
    ]
    data: dict[str, list[Any]] = {
        "campaign_id": [1, 2, 3],
        "name": ["spring", "summer", "winback"],
        "budget": [1200.0, 800.0, 450.0],
    }
    if with_channel:
        columns.append({"name": "channel", "logicalType": "string", "description": "Channel."})
        data["channel"] = ["email", "social", "email"]
    descriptor = data_product(
        "marketing.campaigns",
        "mkt-campaigns",
        version=version,
        purpose="Marketing campaigns with their budgets and channels.",
        tags=["campaigns", "marketing"],
    )
    contract = data_contract("mkt-campaigns", "campaigns", columns, version=version)
    return descriptor, contract, pa.table(data)


def seed(home: Home, workdir: Path) -> Demo:
    p = Platform(home.settings, home=home)
    try:
        return _seed(p, workdir)
    finally:
        p.close()


def _seed(p: Platform, workdir: Path) -> Demo:
    owner = p.governance.create_token("ui-owner").token
    p.governance.create_user("bob", display_name="Bob Consumer")
    consumer = p.governance.create_token("ui-consumer", principal="bob").token

    for name, text in (
        ("sales", "Orders, revenue and everything sold."),
        ("customers", "Customer master data and profiles (PII)."),
        ("marketing", "Campaigns and their performance."),
    ):
        p.mesh.create_domain(name, text, owners=["alice"])
    retail = generate_example(workdir / "retail", rows=600)
    for folder in ("sales_orders", "customers_profiles", "sales_customer_revenue"):
        p.mesh.publish(retail / folder)
    for version, channel in (("1.0.0", False), ("1.1.0", True)):
        descriptor, contract, table = _campaigns(version, channel)
        p.mesh.publish_arrow(descriptor, {"campaigns": contract}, {"campaigns": table})
    p.mesh.read("customers.profiles", columns=["customer_id", "segment"], purpose="ui demo")
    p.mesh.read("sales.customer_revenue", purpose="ui demo")
    profiles = p.mesh.get_version("customers.profiles")

    # experiments: three runs with histories over 30 steps
    runs = []
    for i, (c, lr) in enumerate(((0.1, 0.05), (1.0, 0.1), (10.0, 0.2))):
        run = p.tracking.create_run("churn", name=f"logreg-C{c}", capture_environment=False)
        p.tracking.log_params(run.id, {"C": c, "lr": lr, "model": "logreg"})
        p.tracking.set_tags(run.id, {"team": "retention"})
        p.tracking.log_input(
            run.id, DatasetInput(urn=profiles.urn, digest=profiles.digest, name=profiles.product)
        )
        metrics = []
        for s in range(30):
            loss = 0.7 * math.exp(-lr * s * (1 + i * 0.3)) + 0.05 * (3 - i) + 0.01 * math.sin(s)
            metrics.append(Metric(key="loss", value=loss, step=s, timestamp=1.7e9 + s))
            metrics.append(
                Metric(key="accuracy", value=0.95 - loss * 0.6, step=s, timestamp=1.7e9 + s)
            )
        p.tracking.log_metrics(run.id, metrics)
        p.tracking.end_run(run.id)
        runs.append(run.id)

    # registry: two versions from runs, aliases moved, a model card
    p.registry.create_model(
        "churn", description="Churn risk per customer", domain="customers", owner="alice"
    )
    data, target = frame(0)
    for run_id, flip in ((runs[1], False), (runs[2], True)):
        y = 1 - target if flip else target
        model = LogisticRegression().fit(data, y)
        p.registry.log_model("churn", model, input_example=data.head(5), run_id=run_id)
    p.registry.set_alias("churn", "champion", 1, reason="first release")
    p.registry.set_alias("churn", "challenger", 2, reason="try the new run")
    # The labels turned (v2 learnt the new behaviour): both scored on the same fresh rows.
    fresh, target = frame(5)
    evaluation = pa.Table.from_pandas(fresh.assign(churned=1 - target))
    p.registry.compare("churn", 2, data=evaluation, label="churned")
    p.registry.set_alias("churn", "champion", 2, reason="better accuracy offline")
    p.registry.set_model_card("churn", 2, MODEL_CARD)

    # serving: an endpoint with predictions
    p.serving.create_endpoint(
        "churn-api", "churn@champion", domain="customers", description="Churn scores online"
    )
    live, _ = frame(3, n=60, shift=1.5)
    for k in range(0, 60, 5):
        p.serving.predict("churn-api", live.iloc[k : k + 5].to_dict("records"))
    p.serving.flush()

    # monitoring: drift of the live inputs against the training data, with an alert
    spec = MonitorSpec(
        name="churn-drift",
        kind="data_drift",
        domain="customers",
        endpoint="churn-api",
        model="churn",
        numerical=FEATURES,
    )
    p.monitoring.create_monitor(spec, reference=pa.Table.from_pandas(data, preserve_index=False))
    p.monitoring.add_rule(
        "churn-drift",
        AlertRuleSpec(name="dataset-drift", metric="dataset_drift", op=">=", value=1),
    )
    for seed_, shift in ((4, 0.0), (5, 0.8), (6, 1.5)):
        current, _ = frame(seed_, shift=shift)
        p.monitoring.run_monitor(
            "churn-drift", current=pa.Table.from_pandas(current, preserve_index=False)
        )

    # pipelines: one inline run, and a trigger retraining on drift alerts
    p.pipelines.run(churn_training, {"n": 300, "c": 0.5}, track=False)
    p.pipelines.create_trigger(
        "retrain-on-drift", "monitor.alert", "tests.ui.demo:churn_training", max_concurrent=2
    )
    return Demo(owner_token=owner, consumer_token=consumer, runs=runs)
