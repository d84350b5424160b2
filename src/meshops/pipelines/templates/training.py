"""The automated training pipeline of the MLOps reference architecture (issue 6).

    training set from the feature store (point in time)
      -> data validation against the source products' contracts and column expectations
      -> training (scikit-learn) with tracking (params, metrics, input datasets)
      -> evaluation against the current champion on a time-ordered holdout
      -> registration of the model version (lineage: product versions -> training set -> run
         -> model version)
      -> promotion gate (the registry's gate: `model.promote` policies, metric comparison)
      -> alias move

Run it here (`platform.pipelines.run(training_pipeline, params)`), queue it for a worker
(`meshops pipelines run meshops.pipelines.templates.training:training_pipeline --queue`),
on a schedule, or from a trigger, e.g. retraining on drift:

    meshops triggers create retrain-on-drift --topic monitor.alert \\
        --ref meshops.pipelines.templates.training:training_pipeline \\
        -p model=churn -p features=churn_features -p label_product=customers.churn_labels

`meshops init --template training-pipeline` copies this file into a repository, where it is
edited like any other code. Steps reach the platform through `meshops.connect()`, so they
run against whatever `MESHOPS_URI` / `MESHOPS_HOME` the executing process has (a worker's).
Steps that read platform state (`cache=False`) always run; the pure ones may be cached.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from meshops.pipelines import pipeline, step

METRICS = ("roc_auc", "accuracy", "f1", "log_loss", "brier")
LOWER_IS_BETTER = {"log_loss", "brier"}
ALGORITHMS = ("hist_gradient_boosting", "gradient_boosting", "logistic_regression")

# Arrow types a contract's logical type may arrive as in a training set.
_COMPATIBLE = {
    "integer": ("int", "uint", "double", "float"),  # nulls after a PIT join widen ints
    "number": ("double", "float", "decimal", "int"),
    "boolean": ("bool",),
    "string": ("string", "large_string"),
    "timestamp": ("timestamp",),
    "date": ("date",),
}


def _connect() -> Any:
    import meshops

    return meshops.connect()


def _link_to_pipeline_run(platform: Any, downstream: str, relation: str) -> None:
    """`pipeline run -relation-> downstream`, when executing inside a pipeline run."""
    from meshops.pipelines.context import current_step

    here = current_step()
    if here is not None and here.run_id:
        platform.lineage.add_edge(here.run_urn, downstream, relation)


def _feature_columns(info: dict[str, Any]) -> list[str]:
    return list(info["feature_columns"])


# --- 1. training set ------------------------------------------------------------------------


@step(cache=False)
def build_training_set(
    *,
    features: list[str] | str,
    label_product: str,
    label_port: str | None,
    label_column: str,
    timestamp_column: str,
    name: str,
) -> tuple[pa.Table, dict[str, Any]]:
    """Point-in-time correct features for every labelled entity row of `label_product`."""
    with _connect() as platform:
        labels_version = platform.mesh.get_version(label_product)
        labels = platform.mesh.read(
            label_product, port=label_port, interface="pipeline", purpose=f"training {name}"
        )
        if label_column not in labels.column_names:
            raise ValueError(f"{label_product} has no label column {label_column!r}")
        training = platform.features.training_set(
            labels, features, name=name, timestamp_column=timestamp_column
        )
        table = training.to_arrow()
        info = training.info
        entity_columns = [c for c in labels.column_names if c not in (label_column,)]
        feature_columns = [c for c in table.column_names if c not in labels.column_names]
        _link_to_pipeline_run(platform, info.urn, "produced")
        print(
            f"training set {info.name} {info.digest[:12]}: {table.num_rows} rows, "
            f"{len(feature_columns)} features from "
            + ", ".join(f"{s.product}@{s.version}" for s in info.sources)
        )
        return table, {
            "id": info.id,
            "urn": info.urn,
            "digest": info.digest,
            "name": info.name,
            "rows": table.num_rows,
            "label_column": label_column,
            "timestamp_column": timestamp_column,
            "entity_columns": [c for c in entity_columns if c != timestamp_column],
            "feature_columns": feature_columns,
            "labels": {
                "product": labels_version.product,
                "version": labels_version.version,
                "urn": labels_version.urn,
                "digest": labels_version.digest,
            },
            "sources": [s.model_dump(mode="json") for s in info.sources],
        }


# --- 2. data validation ---------------------------------------------------------------------


def _type_matches(logical: str, arrow_type: pa.DataType) -> bool:
    prefixes = _COMPATIBLE.get(logical)
    return prefixes is None or str(arrow_type).startswith(prefixes)


@step(cache=False)
def validate_data(
    table: pa.Table, info: dict[str, Any], min_rows: int, max_null_fraction: float
) -> dict[str, Any]:
    """Check the training set against the contracts of the product versions it was read
    from (every feature is a contract column of a compatible type; the versions' quality
    rules passed) and against column expectations (rows, nulls, finite values, a binary
    label with both classes). Any failure stops the pipeline before training."""
    problems: list[str] = []
    checks = 0
    with _connect() as platform:
        for source in info["sources"]:
            view = platform.features.get_view(source["view"])
            version = platform.mesh.get_version(source["product"], source["version"])
            port = version.port(view.source.port)
            for feature in view.features:
                if feature.name not in table.column_names:
                    continue
                checks += 1
                column = port.column(feature.column or feature.name)
                if column is None:
                    problems.append(
                        f"feature {feature.name}: column {feature.column or feature.name!r} "
                        f"is not in the contract of {source['product']} {source['version']}"
                    )
                    continue
                logical = column.logical_type
                if not _type_matches(logical, table.schema.field(feature.name).type):
                    problems.append(
                        f"feature {feature.name}: {table.schema.field(feature.name).type} does "
                        f"not match the contract's logical type {logical!r}"
                    )
            for rule in port.quality:
                checks += 1
                if not rule.passed and rule.severity == "error":
                    problems.append(
                        f"{source['product']} {source['version']}: quality rule "
                        f"{rule.rule!r} failed"
                    )
    rows = table.num_rows
    checks += 1
    if rows < min_rows:
        problems.append(f"{rows} rows, fewer than the minimum {min_rows}")
    label = info["label_column"]
    labels = table.column(label)
    checks += 1
    if labels.null_count:
        problems.append(f"label {label!r} has {labels.null_count} nulls")
    classes = sorted(v for v in pc.unique(labels).to_pylist() if v is not None)
    checks += 1
    if classes not in ([0, 1], [False, True]):
        problems.append(f"label {label!r} must be binary with both classes; has {classes}")
    null_fractions: dict[str, float] = {}
    for name in _feature_columns(info):
        column = table.column(name)
        fraction = column.null_count / rows if rows else 0.0
        null_fractions[name] = round(fraction, 6)
        checks += 1
        if fraction > max_null_fraction:
            problems.append(
                f"feature {name}: {fraction:.1%} nulls, more than {max_null_fraction:.1%}"
            )
        if pa.types.is_floating(column.type):
            values = column.to_numpy(zero_copy_only=False)
            checks += 1
            if np.isinf(values).any():
                problems.append(f"feature {name}: infinite values")
    if problems:
        raise ValueError("data validation failed:\n- " + "\n- ".join(problems))
    positive = float(pc.mean(pc.cast(labels, pa.float64())).as_py() or 0.0)
    print(f"data validation passed: {checks} checks, {rows} rows, positive rate {positive:.3f}")
    return {"rows": rows, "checks": checks, "positive_rate": positive, "nulls": null_fractions}


# --- 3. training ----------------------------------------------------------------------------


def _split(table: pa.Table, info: dict[str, Any], holdout_fraction: float) -> tuple[Any, Any]:
    """Time-ordered split: the latest `holdout_fraction` of rows is the holdout."""
    frame = table.to_pandas()
    frame = frame.sort_values(info["timestamp_column"], kind="stable").reset_index(drop=True)
    cut = int(len(frame) * (1 - holdout_fraction))
    return frame.iloc[:cut], frame.iloc[cut:]


def _estimator(algorithm: str, seed: int) -> Any:
    from sklearn.ensemble import GradientBoostingClassifier, HistGradientBoostingClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if algorithm == "hist_gradient_boosting":
        return HistGradientBoostingClassifier(max_iter=150, learning_rate=0.1, random_state=seed)
    if algorithm == "gradient_boosting":
        return make_pipeline(
            SimpleImputer(), GradientBoostingClassifier(n_estimators=100, random_state=seed)
        )
    if algorithm == "logistic_regression":
        return make_pipeline(SimpleImputer(), StandardScaler(), LogisticRegression(max_iter=500))
    raise ValueError(f"unknown algorithm {algorithm!r}; use one of {', '.join(ALGORITHMS)}")


def _one_thread() -> Any:
    """OpenMP/BLAS at one thread: on a shared, loaded machine the gradient-boosting
    threads spin against each other (50x slower on 2 busy cores than one thread)."""
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

    return threadpool_limits(limits=1)


def score(metric: str, y_true: Any, probabilities: Any) -> float:
    """One evaluation metric of positive-class probabilities."""
    from sklearn import metrics as m

    y = np.asarray(y_true).astype(int)
    p = np.clip(np.asarray(probabilities, dtype=float), 1e-6, 1 - 1e-6)
    if metric == "roc_auc":
        return float(m.roc_auc_score(y, p)) if len(set(y.tolist())) > 1 else 0.5
    if metric == "accuracy":
        return float(m.accuracy_score(y, p >= 0.5))
    if metric == "f1":
        return float(m.f1_score(y, p >= 0.5, zero_division=0))
    if metric == "log_loss":
        return float(m.log_loss(y, p, labels=[0, 1]))
    if metric == "brier":
        return float(m.brier_score_loss(y, p))
    raise ValueError(f"unknown metric {metric!r}; use one of {', '.join(METRICS)}")


@step(cache=False)
def train_model(
    table: pa.Table,
    info: dict[str, Any],
    validation: dict[str, Any],
    *,
    model_name: str,
    algorithm: str,
    holdout_fraction: float,
    seed: int,
    experiment: str,
) -> tuple[Any, pa.Table, dict[str, Any]]:
    """Fit on the older rows, keep the latest as the holdout; track params, inputs and
    training metrics in a run of `experiment`."""
    from meshops.tracking.models import DatasetInput, Metric

    train, holdout = _split(table, info, holdout_fraction)
    features, label = _feature_columns(info), info["label_column"]
    estimator = _estimator(algorithm, seed)
    with _one_thread():
        estimator.fit(train[features], train[label].astype(int))
        train_p = estimator.predict_proba(train[features])[:, 1]
    with _connect() as platform:
        run = platform.tracking.create_run(
            experiment,
            name=f"{model_name}-{algorithm}",
            tags={
                "meshops.model": model_name,
                "meshops.training_set": info["urn"],
                "meshops.algorithm": algorithm,
            },
        )
        _link_to_pipeline_run(platform, f"meshops:run:{run.id}", "ran")
        platform.tracking.log_params(
            run.id,
            {
                "algorithm": algorithm,
                "holdout_fraction": holdout_fraction,
                "seed": seed,
                "features": ",".join(features),
                "label": label,
                "train_rows": len(train),
                "holdout_rows": len(holdout),
                **{k: v for k, v in estimator.get_params().items() if _scalar(v)},
            },
        )
        platform.tracking.log_input(
            run.id,
            DatasetInput(urn=info["urn"], digest=info["digest"], name=info["name"]),
        )
        for source in [*info["sources"], info["labels"]]:
            platform.tracking.log_input(
                run.id,
                DatasetInput(
                    urn=source["urn"],
                    digest=source["digest"],
                    name=source["product"],
                    context="source",
                ),
            )
        now = time.time()
        platform.tracking.log_metrics(
            run.id,
            [
                Metric(
                    key=f"train_{name}",
                    value=score(name, train[label], train_p),
                    step=0,
                    timestamp=now,
                )
                for name in METRICS
            ]
            + [
                Metric(
                    key="positive_rate", value=validation["positive_rate"], step=0, timestamp=now
                )
            ],
        )
        platform.tracking.flush()
    print(f"trained {algorithm} on {len(train)} rows (run {run.id})")
    holdout_table = pa.Table.from_pandas(holdout[[*features, label]], preserve_index=False)
    return estimator, holdout_table, {"id": run.id, "experiment": experiment}


def _scalar(value: Any) -> bool:
    return isinstance(value, str | int | float | bool) and not (
        isinstance(value, float) and not math.isfinite(value)
    )


# --- 4. evaluation against the champion -----------------------------------------------------


@step(cache=False)
def evaluate_against_champion(
    model: Any,
    holdout: pa.Table,
    info: dict[str, Any],
    run: dict[str, Any],
    *,
    model_name: str,
    alias: str,
    metric: str,
    direction: str,
) -> dict[str, Any]:
    """Score the candidate and the alias's current holder on the same holdout. Without a
    current holder the baseline is a model that always predicts the training prior."""
    from meshops.kernel.errors import NotFound
    from meshops.tracking.models import Metric

    if direction not in ("max", "min"):
        raise ValueError("direction must be 'max' or 'min'")
    frame = holdout.to_pandas()
    features, label = _feature_columns(info), info["label_column"]
    with _one_thread():
        candidate_p = model.predict_proba(frame[features])[:, 1]
    candidate = {name: score(name, frame[label], candidate_p) for name in METRICS}
    with _connect() as platform:
        try:
            champion = platform.registry.load_model(f"models:/{model_name}@{alias}")
            with _one_thread():
                champion_p = champion.raw.predict_proba(frame[features])[:, 1]
            champion_version: int | None = champion.version.version
            against = f"{model_name} v{champion_version} ({alias})"
        except NotFound:
            prior = float(frame[label].astype(int).mean())
            champion_p = np.full(len(frame), prior)
            champion_version = None
            against = "the prior baseline (no current champion)"
        reference = {name: score(name, frame[label], champion_p) for name in METRICS}
        delta = candidate[metric] - reference[metric]
        lift = -delta if direction == "min" else delta
        now = time.time()
        platform.tracking.log_metrics(
            run["id"],
            [
                Metric(key=name, value=value, step=0, timestamp=now)
                for name, value in candidate.items()
            ]
            + [
                Metric(key=f"champion_{metric}", value=reference[metric], step=0, timestamp=now),
                Metric(key=f"{metric}_lift", value=lift, step=0, timestamp=now),
            ],
        )
        platform.tracking.flush()
    better = lift > 0
    print(
        f"holdout {metric}: candidate {candidate[metric]:.4f} vs {against} "
        f"{reference[metric]:.4f} -> {'better' if better else 'not better'}"
    )
    return {
        "metric": metric,
        "direction": direction,
        "candidate": candidate,
        "champion": reference,
        "champion_version": champion_version,
        "lift": lift,
        "better": better,
        "holdout_rows": len(frame),
    }


# --- 5. registration ------------------------------------------------------------------------


@step(cache=False)
def register_model(
    model: Any,
    holdout: pa.Table,
    info: dict[str, Any],
    run: dict[str, Any],
    evaluation: dict[str, Any],
    *,
    model_name: str,
    domain: str | None,
    description: str,
) -> dict[str, Any]:
    """Register the candidate as the next version of `model_name` with its evaluation
    metrics; the run's input datasets become lineage edges into the version."""
    from meshops.kernel.errors import NotFound

    metric = evaluation["metric"]
    metrics = {
        **{name: float(value) for name, value in evaluation["candidate"].items()},
        f"champion_{metric}": float(evaluation["champion"][metric]),
        f"{metric}_lift": float(evaluation["lift"]),
        "holdout_rows": float(evaluation["holdout_rows"]),
    }
    example = holdout.to_pandas()[_feature_columns(info)].head(5)
    with _connect() as platform:
        try:
            platform.registry.get_model(model_name)
        except NotFound:
            platform.registry.create_model(model_name, description=description, domain=domain)
        version = platform.registry.log_model(
            model_name,
            model,
            input_example=example,
            run_id=run["id"],
            metrics=metrics,
            description=description,
            tags={
                "meshops.training_set": info["urn"],
                "meshops.training_set_id": info["id"],
                "meshops.evaluated_against": str(evaluation["champion_version"] or "baseline"),
            },
        )
        platform.tracking.end_run(run["id"], "FINISHED")
        _link_to_pipeline_run(platform, version.urn, "produced")
    print(f"registered {version.uri}")
    return {"name": version.name, "version": version.version, "urn": version.urn}


# --- 6. promotion gate and alias move -------------------------------------------------------


@step(cache=False)
def promote(registered: dict[str, Any], evaluation: dict[str, Any], alias: str) -> dict[str, Any]:
    """Move `alias` to the new version when it beat the current holder; the registry's
    promotion gate (`model.promote` policies, metric comparison, approvals) decides last."""
    from meshops.kernel.errors import Forbidden

    name, version = registered["name"], int(registered["version"])
    decision: dict[str, Any] = {"model": name, "version": version, "alias": alias}
    if not evaluation["better"]:
        decision.update(promoted=False, reason="not better than the current holder")
        print(f"kept {alias}: v{version} is not better than the current holder")
        return decision
    metric = evaluation["metric"]
    reason = (
        f"automated training: {metric} {evaluation['candidate'][metric]:.4f}, lift"
        f" {evaluation['lift']:+.4f} over "
        + (f"v{evaluation['champion_version']}" if evaluation["champion_version"] else "baseline")
    )
    with _connect() as platform:
        try:
            move = platform.registry.set_alias(name, alias, version, reason=reason)
        except Forbidden as exc:  # PolicyViolation: the gate refused
            _tag(platform, name, version, "refused")
            decision.update(promoted=False, reason=str(exc))
            print(f"promotion gate refused {name} v{version} -> {alias}: {exc}")
            return decision
        _tag(platform, name, version, alias)
    decision.update(promoted=True, reason=reason, previous=move.from_version)
    print(f"{name}@{alias} -> v{version} ({reason})")
    return decision


def _tag(platform: Any, name: str, version: int, outcome: str) -> None:
    tags = {**platform.registry.get_version(name, version).tags, "meshops.promotion": outcome}
    platform.registry.update_version(name, version, tags=tags)


@pipeline
def training_pipeline(
    *,
    model: str = "churn",
    features: list[str] | str = "churn_features",
    label_product: str = "customers.churn_labels",
    label_port: str | None = None,
    label_column: str = "churned",
    timestamp_column: str = "event_timestamp",
    alias: str = "champion",
    metric: str = "roc_auc",
    direction: str = "max",
    algorithm: str = "hist_gradient_boosting",
    holdout_fraction: float = 0.2,
    seed: int = 0,
    min_rows: int = 200,
    max_null_fraction: float = 0.05,
    domain: str | None = None,
    experiment: str = "",
    description: str = "",
) -> object:
    table, info = build_training_set(
        features=features,
        label_product=label_product,
        label_port=label_port,
        label_column=label_column,
        timestamp_column=timestamp_column,
        name=f"{model}-training",
    )
    validation = validate_data(table, info, min_rows, max_null_fraction)
    fitted, holdout, run = train_model(
        table,
        info,
        validation,
        model_name=model,
        algorithm=algorithm,
        holdout_fraction=holdout_fraction,
        seed=seed,
        experiment=experiment or model,
    )
    evaluation = evaluate_against_champion(
        fitted,
        holdout,
        info,
        run,
        model_name=model,
        alias=alias,
        metric=metric,
        direction=direction,
    )
    registered = register_model(
        fitted,
        holdout,
        info,
        run,
        evaluation,
        model_name=model,
        domain=domain,
        description=description,
    )
    return promote(registered, evaluation, alias)


__all__ = ["score", "training_pipeline"]
