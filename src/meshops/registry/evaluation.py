"""Scoring a challenger and the alias's current holder on the same rows, in this process.

`compare_versions` is what `platform.registry.compare` runs on both transports: it loads the
two versions the way `load_model` does (skops type allow-list; pickled models only with
`trust=True`), so it runs in the SDK's process or a pipeline worker, never in the API
server. It measures every metric of the task for both models on one evaluation frame (the
given table, plus the labelled rows of a feedback window when one is passed) and records
the scores through the declared `record_comparison` operation, which decides the verdict.
"""

from __future__ import annotations

import hashlib
import math
from typing import TYPE_CHECKING, Any

from meshops.kernel.errors import InvalidInput
from meshops.registry.comparison import (
    CLASSIFICATION_METRICS,
    METRIC_TAG,
    METRICS,
    REGRESSION_METRICS,
    TASK_TAG,
    ComparisonScores,
    ModelComparison,
)
from meshops.registry.models import ModelVersion, check_alias, check_model_name, check_version

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    from meshops.registry.interface import Registry
    from meshops.registry.loaded import LoadedModel

# A float label with more distinct values than this is a regression target.
MAX_CLASSES = 50
FEEDBACK_LABEL = "label"  # the label column of a serving prediction window


def compare_versions(
    registry: Registry,
    name: str,
    version: int,
    *,
    alias: str = "champion",
    data: pa.Table,
    label: str,
    metric: str | None = None,
    feedback: pa.Table | None = None,
    data_urn: str | None = None,
    trust: bool = False,
    use_feedback: bool = True,
) -> ModelComparison:
    import pyarrow as pa

    check_model_name(name)
    check_version(version)
    check_alias(alias)
    if not isinstance(data, pa.Table):
        raise InvalidInput(
            f"data must be a pyarrow.Table, got {type(data).__name__}",
            {"field": "data", "fix": "pass pa.Table.from_pandas(frame) or a holdout table"},
        )
    if metric is not None and metric not in METRICS:
        raise InvalidInput(
            f"unknown comparison metric {metric!r}",
            {"field": "metric", "known": sorted(METRICS)},
        )
    challenger = registry.get_version(name, version)
    holder = registry.get_model(name).aliases.get(alias)
    if holder == version:
        raise InvalidInput(
            f"{name} v{version} already holds {alias!r}; there is nothing to compare it with",
            {"field": "version", "fix": "compare a newer version with the holder"},
        )
    champion = registry.get_version(name, holder) if holder is not None else None
    features = _features(challenger, champion, data, label)
    lenient = False
    if feedback is None and use_feedback and champion is not None:
        # The labelled rows the endpoints serving the model logged; skipped when they lack
        # a feature column (an endpoint of another signature).
        feedback, lenient = registry.feedback_window(name), True
    frame, holdout_rows, feedback_rows = evaluation_frame(
        data, feedback, label, features, lenient=lenient
    )
    task = _task(challenger, registry, name, frame[label])
    requested = metric or _declared(challenger, registry, name) or _default_metric(task)
    loaded = registry.load_model(f"models:/{name}/{version}", trust=trust)
    challenger_metrics = score(loaded, frame, features, label, task)
    champion_metrics: dict[str, float] = {}
    if champion is not None:
        held = registry.load_model(f"models:/{name}/{champion.version}", trust=trust)
        champion_metrics = score(held, frame, features, label, task)
        common = set(challenger_metrics) & set(champion_metrics)
        challenger_metrics = {k: v for k, v in challenger_metrics.items() if k in common}
        champion_metrics = {k: v for k, v in champion_metrics.items() if k in common}
    if requested not in challenger_metrics:
        fallback = _default_metric(task, with_scores=False)
        if metric is not None or fallback not in challenger_metrics:
            raise InvalidInput(
                f"metric {requested!r} could not be measured for both models on this data",
                {
                    "field": "metric",
                    "measured": sorted(challenger_metrics),
                    "fix": "pick one of the measured metrics (roc_auc and log_loss need "
                    "predict_proba and every class in the label)",
                },
            )
        requested = fallback
    scores = ComparisonScores(
        alias=alias,
        champion_version=champion.version if champion else None,
        metric=requested,
        challenger_score=challenger_metrics[requested],
        champion_score=champion_metrics.get(requested) if champion else None,
        challenger_metrics=challenger_metrics,
        champion_metrics=champion_metrics,
        task=task,
        label=label,
        evaluated_rows=len(frame),
        holdout_rows=holdout_rows,
        feedback_rows=feedback_rows,
        data_digest=table_digest(frame),
        data_urn=data_urn,
    )
    return registry.record_comparison(name, version, scores)


def evaluation_frame(
    data: pa.Table,
    feedback: pa.Table | None,
    label: str,
    features: list[str],
    *,
    lenient: bool = False,
) -> tuple[pd.DataFrame, int, int]:
    """The rows both models are scored on: `data`, then the labelled rows of `feedback`
    (a serving prediction window: its `label` column holds the feedback)."""
    import pandas as pd

    wanted = [*features, label]
    missing = [c for c in wanted if c not in data.column_names]
    if missing:
        raise InvalidInput(
            f"the evaluation data has no column(s) {missing}",
            {"field": "data", "columns": data.column_names, "fix": "pass the holdout table"},
        )
    frame = data.select(wanted).to_pandas()
    frame = frame[frame[label].notna()]
    holdout_rows = len(frame)
    feedback_rows = 0
    extra = _feedback_rows(feedback, label, features, lenient)
    if extra is not None and len(extra):
        extra[label] = extra[label].astype(frame[label].dtype, errors="ignore")
        feedback_rows = len(extra)
        frame = pd.concat([frame, extra], ignore_index=True)
    if frame.empty:
        raise InvalidInput(
            f"no labelled rows to evaluate on (column {label!r})",
            {"field": "data", "fix": "pass a holdout with labels"},
        )
    return frame.reset_index(drop=True), holdout_rows, feedback_rows


def _feedback_rows(
    feedback: pa.Table | None, label: str, features: list[str], lenient: bool
) -> pd.DataFrame | None:
    """The labelled rows of a feedback window, as features + `label`."""
    if feedback is None or not feedback.num_rows:
        return None
    source = label if label in feedback.column_names else FEEDBACK_LABEL
    absent = [c for c in [*features, source] if c not in feedback.column_names]
    if absent and lenient:
        return None
    if absent:
        raise InvalidInput(
            f"the feedback window has no column(s) {absent}",
            {"field": "feedback", "fix": "pass serving.prediction_window(endpoint)"},
        )
    extra: pd.DataFrame = feedback.select([*features, source]).to_pandas()
    labelled: pd.DataFrame = extra[extra[source].notna()].rename(columns={source: label})
    return labelled


def score(
    model: LoadedModel, frame: pd.DataFrame, features: list[str], label: str, task: str
) -> dict[str, float]:
    """Every metric of the task for one model on `frame` (those it cannot produce, e.g.
    ROC AUC without probabilities, are left out)."""
    import numpy as np

    inputs = frame[features]
    truth = frame[label].to_numpy()
    predicted = _column(model.predict(inputs))
    if task == "regression":
        return _regression(truth.astype(float), predicted.astype(float))
    metrics = _classification(truth, predicted)
    proba, classes = _probabilities(model, inputs)
    if proba is not None and classes is not None:
        metrics.update(_probabilistic(truth, np.asarray(proba, dtype=float), classes))
    return {k: float(v) for k, v in metrics.items() if math.isfinite(v)}


def table_digest(frame: pd.DataFrame) -> str:
    """sha256 of the evaluation rows (Arrow IPC of the frame, index dropped)."""
    import pyarrow as pa

    table = pa.Table.from_pandas(frame, preserve_index=False)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return hashlib.sha256(sink.getvalue().to_pybytes()).hexdigest()


# --- helpers ------------------------------------------------------------------------------


def _features(
    challenger: ModelVersion, champion: ModelVersion | None, data: pa.Table, label: str
) -> list[str]:
    names: list[str] = []
    for version in (challenger, champion):
        if version is not None and version.signature and version.signature.kind == "columns":
            names += [n for n in version.signature.input_names if n not in names]
    if label in names:
        names.remove(label)
    return names or [c for c in data.column_names if c != label]


def _declared(version: ModelVersion, registry: Registry, name: str) -> str | None:
    declared = version.tags.get(METRIC_TAG) or registry.get_model(name).tags.get(METRIC_TAG)
    return declared if declared in METRICS else None


def _task(version: ModelVersion, registry: Registry, name: str, labels: pd.Series) -> str:
    declared = version.tags.get(TASK_TAG) or registry.get_model(name).tags.get(TASK_TAG)
    if declared in ("binary", "multiclass", "classification"):
        return "classification"
    if declared == "regression":
        return "regression"
    import pandas as pd

    if pd.api.types.is_float_dtype(labels):
        values = labels.dropna()
        integral = bool(((values % 1) == 0).all())
        if not integral or values.nunique() > MAX_CLASSES:
            return "regression"
    elif pd.api.types.is_integer_dtype(labels) and labels.nunique() > MAX_CLASSES:
        return "regression"
    return "classification"


def _default_metric(task: str, *, with_scores: bool = True) -> str:
    if task == "regression":
        return "rmse"
    return "roc_auc" if with_scores else "accuracy"


def _column(output: Any) -> np.ndarray[Any, Any]:
    import numpy as np
    import pandas as pd

    if isinstance(output, pd.DataFrame):
        if output.shape[1] != 1:
            raise InvalidInput(
                f"the model returned {output.shape[1]} columns; a comparison needs one "
                "prediction per row",
                {"fix": "compare models whose predict returns one value per row"},
            )
        output = output.iloc[:, 0]
    array = np.asarray(output)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise InvalidInput(
            f"the model returned an array of shape {array.shape}; a comparison needs one "
            "prediction per row",
            {"fix": "compare models whose predict returns one value per row"},
        )
    return array


def _probabilities(model: LoadedModel, inputs: pd.DataFrame) -> tuple[Any, Any]:
    """(probabilities as an (n, classes) array, classes), or (None, None) for a model that
    gives none: through the loaded model's signature when it offers predict_proba (which
    answers (labels, probabilities, classes)), else the estimator's own."""
    import numpy as np

    raw = model.raw
    classes = getattr(raw, "classes_", None)
    try:
        through = getattr(model, "predict_proba", None)
        if through is not None:
            answer = through(inputs)
            if isinstance(answer, tuple) and len(answer) == 3:
                proba, classes = answer[1], answer[2]
            else:
                proba = answer
        elif hasattr(raw, "predict_proba") and classes is not None:
            proba = raw.predict_proba(inputs)
        else:
            return None, None
        proba = np.asarray(proba, dtype=float)
    except Exception:  # no probabilities from this model: no AUC, no log loss
        return None, None
    if classes is None or proba.ndim != 2 or proba.shape[1] != len(classes):
        return None, None
    return proba, np.asarray(classes)


def _classification(truth: Any, predicted: Any) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score

    truth, predicted = _aligned(truth, predicted)
    return {
        "accuracy": float(accuracy_score(truth, predicted)),
        "balanced_accuracy": float(balanced_accuracy_score(truth, predicted)),
        "f1_macro": float(f1_score(truth, predicted, average="macro", zero_division=0)),
    }


def _aligned(truth: Any, predicted: Any) -> tuple[Any, Any]:
    """Labels and predictions of one kind (a model may answer 1 for the label "1")."""
    import numpy as np

    if truth.dtype.kind in "OUSb" or predicted.dtype.kind in "OUSb":
        return np.asarray([str(v) for v in truth]), np.asarray([str(v) for v in predicted])
    return truth, predicted


def _probabilistic(truth: Any, proba: Any, classes: Any) -> dict[str, float]:
    """ROC AUC (one-vs-rest for several classes) and log loss; {} when the labels hold a
    class the model does not know, or only one class."""
    import numpy as np
    from sklearn.metrics import log_loss, roc_auc_score

    truth_s = np.asarray([str(v) for v in truth])
    names = [str(c) for c in classes]
    if not set(truth_s) <= set(names) or len(set(truth_s)) < 2 or len(set(names)) != len(names):
        return {}
    order = sorted(range(len(names)), key=lambda i: names[i])  # sklearn wants sorted labels
    names = [names[i] for i in order]
    proba = proba[:, order]
    metrics: dict[str, float] = {}
    try:
        if len(names) == 2:
            metrics["roc_auc"] = float(roc_auc_score(truth_s == names[1], proba[:, 1]))
        elif len(set(truth_s)) == len(names):
            metrics["roc_auc"] = float(
                roc_auc_score(truth_s, proba, multi_class="ovr", labels=names)
            )
        metrics["log_loss"] = float(log_loss(truth_s, np.clip(proba, 1e-15, 1.0), labels=names))
    except ValueError:  # e.g. probabilities that do not sum to one
        return {k: v for k, v in metrics.items() if k == "roc_auc"}
    return metrics


def _regression(truth: Any, predicted: Any) -> dict[str, float]:
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    return {
        "rmse": float(math.sqrt(mean_squared_error(truth, predicted))),
        "mae": float(mean_absolute_error(truth, predicted)),
        "r2": float(r2_score(truth, predicted)) if len(truth) > 1 else float("nan"),
    }


__all__ = [
    "CLASSIFICATION_METRICS",
    "REGRESSION_METRICS",
    "compare_versions",
    "evaluation_frame",
    "score",
    "table_digest",
]
