"""Champion/challenger comparison as the default promotion gate: both versions scored on the
same rows, recorded as a tracking run linked in lineage, read by the gate (server state),
shown on the UI's model page; an approval overrides a refusal and is audited.
Embedded, over HTTP and on PostgreSQL (the `platform` fixture)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from fastapi.testclient import TestClient
from sklearn.linear_model import LinearRegression, LogisticRegression

from meshops.api.app import create_app
from meshops.client import Platform
from meshops.governance.authn import authenticate_token
from meshops.kernel.auth import Actor
from meshops.kernel.errors import Conflict, InvalidInput, PolicyViolation
from meshops.kernel.home import Home
from meshops.registry.comparison import ComparisonScores
from meshops.serving.runtime import close_all_runtimes
from tests.conftest import make_settings

FEATURES = ["age", "spend", "visits"]


def _rows(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    data = pd.DataFrame(rng.normal(size=(rows, 3)), columns=FEATURES)
    data["churned"] = (data["age"] + data["spend"] - 0.5 * data["visits"] > 0).astype(int)
    return data


def _classifier(noise: float, seed: int) -> LogisticRegression:
    """Trained on labels of which a fraction `noise` are flipped: more noise, worse model."""
    data = _rows(300, seed)
    rng = np.random.default_rng(seed + 100)
    flip = rng.random(len(data)) < noise
    labels = np.where(flip, 1 - data["churned"], data["churned"])
    return LogisticRegression().fit(data[FEATURES], labels)


def _register(platform: Platform, model: object) -> int:
    example = _rows(5, 1)[FEATURES]
    # The default model.promote policies want recorded evaluation metrics.
    version = platform.registry.log_model(
        "churn", model, input_example=example, metrics={"accuracy": 0.5}
    )
    return version.version


def test_worse_challenger_refused_better_promoted_on_the_same_data(platform: Platform) -> None:
    reg = platform.registry
    holdout = pa.Table.from_pandas(_rows(400, 7), preserve_index=False)
    v1 = _register(platform, _classifier(noise=0.25, seed=1))
    first = reg.compare("churn", v1, data=holdout, label="churned")
    assert first.champion_version is None and first.allowed and first.champion_score is None
    reg.set_alias("churn", "champion", v1)  # no holder: the first version passes

    v2 = _register(platform, _classifier(noise=0.48, seed=2))  # nearly random labels
    with pytest.raises(PolicyViolation, match="no comparison of v2") as missing:
        reg.set_alias("churn", "champion", v2)
    assert "platform.registry.compare('churn', 2" in missing.value.detail["fix"]

    worse = reg.compare("churn", v2, data=holdout, label="churned")
    assert (worse.challenger_version, worse.champion_version, worse.alias) == (v2, v1, "champion")
    assert (worse.metric, worse.direction, worse.tolerance) == ("roc_auc", "max", 0.0)
    assert worse.champion_score is not None and worse.challenger_score < worse.champion_score
    assert not worse.allowed and "worse than" in worse.reasons[0]
    assert worse.evaluated_rows == 400 and len(worse.data_digest) == 64
    assert (
        set(worse.challenger_metrics)
        == set(worse.champion_metrics)
        >= {
            "accuracy",
            "balanced_accuracy",
            "f1_macro",
            "roc_auc",
            "log_loss",
        }
    )
    with pytest.raises(PolicyViolation, match="worse than") as refused:
        reg.set_alias("churn", "champion", v2)
    gate = refused.value.detail["gate"]
    assert gate["comparison"]["id"] == worse.id and gate["current_value"] == worse.champion_score
    assert reg.get_model("churn").aliases["champion"] == v1

    v3 = _register(platform, _classifier(noise=0.0, seed=3))
    better = reg.compare("churn", v3, data=holdout, label="churned")
    assert better.allowed and better.challenger_score > better.champion_score  # type: ignore[operator]
    # Same rows for both comparisons: the same data digest, the same holder's score.
    assert better.data_digest == worse.data_digest
    assert better.champion_score == worse.champion_score
    moved = reg.set_alias("churn", "champion", v3, reason="better on the holdout")
    assert (moved.from_version, moved.to_version) == (v1, v3)

    # The comparison is a tracking run with both scores ...
    run = platform.tracking.get_run(better.run_id)
    assert run.metrics["challenger_roc_auc"] == better.challenger_score
    assert run.metrics["champion_roc_auc"] == better.champion_score
    assert run.params["champion_version"] == str(v1)
    # ... linked in lineage: both versions and the evaluation data -> the run.
    v3_urn, v1_urn = "meshops:model:churn:3", "meshops:model:churn:1"
    upstream = {e.upstream for e in platform.lineage.upstream(better.run_urn, depth=1)}
    assert {v3_urn, v1_urn, better.data_urn} <= upstream
    downstream = {e.downstream for e in platform.lineage.downstream(v1_urn, depth=1)}
    assert {worse.run_urn, better.run_urn} <= downstream
    listed = reg.list_comparisons("churn", version=v3)
    assert [c.id for c in listed] == [better.id]
    gates = platform.governance.audit_events(obj=v3_urn)
    detail = next(e.detail for e in gates if e.action == "model.promotion_gate")
    assert detail["allowed"] and detail["comparison"]["run_id"] == better.run_id


def test_a_comparison_against_a_former_holder_does_not_count(platform: Platform) -> None:
    reg = platform.registry
    holdout = pa.Table.from_pandas(_rows(200, 8), preserve_index=False)
    v1 = _register(platform, _classifier(noise=0.3, seed=1))
    reg.set_alias("churn", "champion", v1)
    v2 = _register(platform, _classifier(noise=0.0, seed=2))
    v3 = _register(platform, _classifier(noise=0.1, seed=3))
    stale = reg.compare("churn", v3, data=holdout, label="churned")  # against v1
    assert stale.allowed
    reg.compare("churn", v2, data=holdout, label="churned")
    reg.set_alias("churn", "champion", v2)
    # v3's comparison named v1, no longer the holder: the gate wants a new one.
    with pytest.raises(PolicyViolation, match="no comparison of v3 with the current champion v2"):
        reg.set_alias("churn", "champion", v3)
    # Scores claiming the former holder are refused when recorded.
    claim = ComparisonScores(
        champion_version=v1,
        metric="roc_auc",
        challenger_score=0.99,
        champion_score=0.5,
        task="classification",
        label="churned",
        evaluated_rows=10,
        data_digest="0" * 64,
    )
    with pytest.raises(Conflict, match="is v2 now"):
        reg.record_comparison("churn", v3, claim)
    with pytest.raises(InvalidInput, match="unknown comparison metric"):
        reg.compare("churn", v3, data=holdout, label="churned", metric="auc")


def test_regression_compares_rmse_lower_is_better(platform: Platform) -> None:
    reg = platform.registry
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(300, 2)), columns=["x1", "x2"])
    frame["y"] = 3 * frame["x1"] - 2 * frame["x2"] + rng.normal(scale=0.1, size=300)
    good = LinearRegression().fit(frame[["x1", "x2"]], frame["y"])
    poor = LinearRegression().fit(frame[["x1"]].assign(x2=0.0), frame["y"])
    reg.log_model("churn", good, input_example=frame[["x1", "x2"]].head(3), metrics={"r2": 1.0})
    reg.log_model("churn", poor, input_example=frame[["x1", "x2"]].head(3), metrics={"r2": 1.0})
    reg.set_alias("churn", "production", 1)
    result = reg.compare(
        "churn", 2, alias="production", data=pa.Table.from_pandas(frame), label="y"
    )
    assert (result.metric, result.direction) == ("rmse", "min")
    assert result.challenger_score > result.champion_score and not result.allowed  # type: ignore[operator]
    assert set(result.challenger_metrics) == {"rmse", "mae", "r2"}


def _home(tmp_path: Path, promotion: dict[str, object]) -> Home:
    settings = make_settings(tmp_path / "home")
    return Home(replace(settings, extra={**settings.extra, "promotion": promotion}))


def test_an_approval_overrides_a_worse_comparison_and_is_audited(tmp_path: Path) -> None:
    home = _home(tmp_path, {"tolerance": 0.01})
    holdout = pa.Table.from_pandas(_rows(300, 9), preserve_index=False)
    with Platform(home.settings, home=home) as alice:
        alice.governance.create_user("bob")
        alice.governance.bind_role("bob", "business_stakeholder")
        v1 = _register(alice, _classifier(noise=0.0, seed=1))
        alice.registry.set_alias("churn", "champion", v1)
        v2 = _register(alice, _classifier(noise=0.45, seed=2))
        worse = alice.registry.compare("churn", v2, data=holdout, label="churned")
        assert worse.tolerance == 0.01 and not worse.allowed
        with pytest.raises(PolicyViolation, match="worse than"):
            alice.project.promote("churn", to="champion", version=v2)
    with Platform(home.settings, home=home, actor=Actor("bob")) as bob:
        bob.project.approve("churn", v2, "seasonal model, accepted for December")
    with Platform(home.settings, home=home) as alice:
        result = alice.project.promote("churn", to="champion", version=v2)
        assert result.gate.allowed and result.from_version == v1
        assert result.gate.override is not None and result.gate.override["approver"] == "bob"
        events = alice.governance.audit_events(obj=f"meshops:model:churn:{v2}")
        gates = [e.detail for e in events if e.action == "model.promotion_gate"]
        passed = [g for g in gates if g["allowed"]]
        assert len(passed) == 1 and len(gates) == 2
        override = passed[0]["override"]
        assert override["approver"] == "bob" and override["comparison_id"] == worse.id
        assert "worse than" in override["overridden"][0]
        assert override["comment"] == "seasonal model, accepted for December"
    home.close()


def test_the_model_page_shows_both_scores_the_verdict_and_the_run(tmp_path: Path) -> None:
    home = Home(make_settings(tmp_path / "home"))
    holdout = pa.Table.from_pandas(_rows(200, 5), preserve_index=False)
    with Platform(home.settings, home=home) as p:
        v1 = _register(p, _classifier(noise=0.0, seed=1))
        p.registry.set_alias("churn", "champion", v1)
        v2 = _register(p, _classifier(noise=0.45, seed=2))
        worse = p.registry.compare("churn", v2, data=holdout, label="churned")
        token = p.governance.create_token("ui").token
    with TestClient(create_app(home, authenticate=authenticate_token)) as client:
        login = client.post("/ui/login", data={"token": token, "next": "/ui"})
        assert login.status_code == 200
        page = client.get(f"/ui/models/churn?version={v2}").text
    section = page[page.index('id="comparisons"') :]
    section = section[: section.index("</section>")]
    assert "@champion" in section and "v1" in section and "roc_auc" in section
    assert f"{worse.challenger_score:.4f}"[:5] in section
    assert f"{worse.champion_score:.4f}"[:5] in section
    assert "worse" in section and worse.reasons[0].split(" of ")[0] in section
    assert f'href="/ui/runs/{worse.run_id}"' in section
    home.close()


def test_labelled_feedback_of_the_champions_endpoint_joins_the_evaluation_rows(
    platform: Platform,
) -> None:
    p = platform
    holdout = pa.Table.from_pandas(_rows(100, 4), preserve_index=False)
    served = _rows(30, 6)
    v1 = _register(p, _classifier(noise=0.2, seed=1))
    p.registry.set_alias("churn", "champion", v1)
    p.serving.create_endpoint("churn-api", "churn@champion", domain="sales")
    records = served[FEATURES].to_dict("records")
    answer = p.serving.predict("churn-api", records, request_id="batch-1")
    labelled = 20  # feedback for 20 of the 30 records; the rest stay unlabelled
    p.serving.feedback_bulk(
        "churn-api",
        [
            {"request_id": answer.request_id, "record": i, "label": int(served["churned"][i])}
            for i in range(labelled)
        ],
    )
    p.serving.flush()
    window = p.registry.feedback_window("churn")  # what the endpoints serving churn logged
    assert window.num_rows == labelled and "label" in window.column_names
    v2 = _register(p, _classifier(noise=0.0, seed=2))
    # By default compare adds that window to the holdout: the same rows for both models.
    result = p.registry.compare("churn", v2, data=holdout, label="churned")
    assert (result.holdout_rows, result.feedback_rows) == (100, labelled)
    assert result.evaluated_rows == 100 + labelled
    explicit = p.registry.compare(
        "churn",
        v2,
        data=holdout,
        label="churned",
        feedback=p.serving.prediction_window("churn-api"),
    )
    assert explicit.data_digest == result.data_digest
    holdout_only = p.registry.compare(
        "churn", v2, data=holdout, label="churned", use_feedback=False
    )
    assert holdout_only.feedback_rows == 0 and holdout_only.data_digest != result.data_digest
    run = p.tracking.get_run(result.run_id)
    assert run.metrics["feedback_rows"] == labelled
    close_all_runtimes()  # the endpoint's watcher stops before the database goes


def test_multiclass_string_labels_compare_on_one_vs_rest_auc(tmp_path: Path) -> None:
    from sklearn.datasets import load_iris
    from sklearn.tree import DecisionTreeClassifier

    iris = load_iris(as_frame=True)
    frame = iris.frame.rename(columns=lambda c: c.replace(" (cm)", "").replace(" ", "_"))
    frame["species"] = iris.target_names[iris.target]
    features = [c for c in frame.columns if c not in ("target", "species")]
    train, test = frame.iloc[::2], frame.iloc[1::2]
    home = Home(make_settings(tmp_path / "home"))
    with Platform(home.settings, home=home) as p:
        for model in (
            LogisticRegression(max_iter=500).fit(train[features], train["species"]),
            DecisionTreeClassifier(max_depth=1).fit(train[features], train["species"]),
        ):
            p.registry.log_model(
                "iris", model, input_example=train[features].head(3), metrics={"accuracy": 0.0}
            )
        p.registry.set_alias("iris", "champion", 1)
        data = pa.Table.from_pandas(test[[*features, "species"]], preserve_index=False)
        result = p.registry.compare("iris", 2, data=data, label="species")
        assert (result.task, result.metric) == ("classification", "roc_auc")
        assert {"accuracy", "f1_macro", "roc_auc", "log_loss"} <= set(result.champion_metrics)
        # a one-split tree tells at most two of the three species apart
        assert result.challenger_metrics["accuracy"] < result.champion_metrics["accuracy"]
        assert not result.allowed
        with pytest.raises(PolicyViolation, match="roc_auc"):
            p.registry.set_alias("iris", "champion", 2)
    home.close()


def test_the_gate_applies_the_homes_tolerance_and_metric_of_now(tmp_path: Path) -> None:
    """The scores are recorded once; the verdict follows the home's settings at the move."""
    holdout = pa.Table.from_pandas(_rows(300, 9), preserve_index=False)
    strict = _home(tmp_path, {})
    with Platform(strict.settings, home=strict) as p:
        v1 = _register(p, _classifier(noise=0.0, seed=1))
        p.registry.set_alias("churn", "champion", v1)
        v2 = _register(p, _classifier(noise=0.3, seed=2))
        worse = p.registry.compare("churn", v2, data=holdout, label="churned")
        assert not worse.allowed and worse.metric == "roc_auc"
        with pytest.raises(PolicyViolation, match="tolerance 0"):
            p.registry.set_alias("churn", "champion", v2)
    strict.close()
    declared = _home(tmp_path, {"tolerance": 1.0, "metric": "accuracy"})
    with (
        Platform(declared.settings, home=declared) as p,
        pytest.raises(PolicyViolation, match="the declared metric is accuracy"),
    ):
        p.registry.set_alias("churn", "champion", v2)
    declared.close()
    gap = worse.champion_score - worse.challenger_score  # type: ignore[operator]
    lenient = _home(tmp_path, {"tolerance": gap + 0.01})
    with Platform(lenient.settings, home=lenient) as p:
        assert p.registry.set_alias("churn", "champion", v2).to_version == v2
    lenient.close()
    declared = _home(tmp_path, {"metric": "accuracy"})
    with Platform(declared.settings, home=declared) as p:
        v3 = _register(p, _classifier(noise=0.0, seed=3))
        scored = p.registry.compare("churn", v3, data=holdout, label="churned", metric="roc_auc")
        assert scored.metric == "accuracy" and scored.allowed  # the home's declared metric
        assert p.registry.set_alias("churn", "champion", v3).to_version == v3
    declared.close()
