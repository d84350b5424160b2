"""Model performance once ground-truth labels arrive (scikit-learn metrics)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sklearn import metrics as skm

from meshops.monitoring.models import Task


def join_labels(
    current: pa.Table, labels: pa.Table | None, id_column: str, label_column: str
) -> pa.Table:
    """The window's predictions with their labels (inner join on the request id), or the
    window itself when it already carries a label column."""
    if labels is None:
        if label_column not in current.column_names:
            raise ValueError(
                f"no labels: pass a labels table ({id_column}, {label_column}) or include "
                f"a {label_column!r} column in the current data"
            )
        return current.filter(pc.is_valid(current.column(label_column)))
    for name in (id_column, label_column):
        if name not in labels.column_names:
            raise ValueError(f"the labels table needs a {name!r} column")
    if id_column not in current.column_names:
        raise ValueError(f"the current data needs a {id_column!r} column to join labels")
    base = current.drop_columns([label_column]) if label_column in current.column_names else current
    # Several labels for one request: the last one sent wins.
    last = _last_label_per_id(labels.select([id_column, label_column]), id_column)
    joined = base.join(last, keys=id_column, join_type="inner")
    return joined.filter(pc.is_valid(joined.column(label_column)))


def _last_label_per_id(labels: pa.Table, id_column: str) -> pa.Table:
    indexed = labels.append_column("__row", pa.array(np.arange(labels.num_rows)))
    keep = indexed.group_by(id_column).aggregate([("__row", "max")]).column("__row_max")
    return labels.take(keep)


def performance_metrics(
    table: pa.Table,
    task: Task,
    prediction_column: str,
    label_column: str,
    *,
    score_column: str | None = None,
    positive_label: str | None = None,
) -> tuple[dict[str, float], dict[str, Any]]:
    """Classification: accuracy, precision/recall/F1 (binary on the positive label, else
    macro), ROC AUC when scores are given; regression: RMSE, MAE, R²."""
    rows = table.num_rows
    metrics: dict[str, float] = {"labelled_rows": float(rows)}
    if rows == 0:
        return metrics, {"note": "no labelled rows in this window"}
    y_pred = table.column(prediction_column).to_numpy(zero_copy_only=False)
    y_true = table.column(label_column).to_numpy(zero_copy_only=False)
    if task == "regression":
        y_true_f = y_true.astype(np.float64)
        y_pred_f = y_pred.astype(np.float64)
        metrics["rmse"] = float(np.sqrt(skm.mean_squared_error(y_true_f, y_pred_f)))
        metrics["mae"] = float(skm.mean_absolute_error(y_true_f, y_pred_f))
        if rows > 1:
            metrics["r2"] = float(skm.r2_score(y_true_f, y_pred_f))
        return metrics, {}
    truth = np.array([_label(v) for v in y_true])
    predicted = np.array([_label(v) for v in y_pred])
    classes = sorted(set(truth) | set(predicted))
    metrics["accuracy"] = float(skm.accuracy_score(truth, predicted))
    binary = len(classes) <= 2
    positive = positive_label or (classes[-1] if classes else "1")
    average = "binary" if binary and positive in classes else "macro"
    kwargs: dict[str, Any] = {"average": average, "zero_division": 0}
    if average == "binary":
        kwargs["pos_label"] = positive
    metrics["precision"] = float(skm.precision_score(truth, predicted, **kwargs))
    metrics["recall"] = float(skm.recall_score(truth, predicted, **kwargs))
    metrics["f1"] = float(skm.f1_score(truth, predicted, **kwargs))
    if score_column and binary and len(set(truth)) == 2:
        scores = table.column(score_column).to_numpy(zero_copy_only=False).astype(np.float64)
        metrics["roc_auc"] = float(skm.roc_auc_score(truth == positive, scores))
    matrix = skm.confusion_matrix(truth, predicted, labels=classes)
    return metrics, {"classes": classes, "confusion_matrix": matrix.tolist(), "average": average}


def _label(value: object) -> str:
    # Predictions of integer classes often come back as floats (1.0); labels as "1".
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
