"""The automated training pipeline of the MLOps reference architecture (issues 6 and 16).

    training data: a data product's own columns, or point-in-time features from the
        feature store joined to a label product's rows
      -> data validation against the source products' contracts and column expectations
         (task, label, feature kinds, nulls, infinities)
      -> training: a scikit-learn Pipeline(ColumnTransformer(impute, one-hot encode,
         scale, datetime parts), estimator) with tracking (params, metrics, inputs, a
         confusion matrix or residual plot)
      -> evaluation against the current champion on the holdout of the training data
      -> registration of the model version (raw-column signature, model card; lineage:
         product versions -> training set -> run -> model version)
      -> promotion gate (the registry's gate: `model.promote` policies, metric comparison)
      -> alias move, then (optional) the serving endpoint and its drift monitor

Any tabular task: binary and multiclass classification and regression, detected from the
label (booleans, strings and integers with at most `max_classes` values are classes; other
numbers are a regression target) or declared with `task`. Numeric, categorical (string,
dictionary, boolean) and datetime features with missing values go through one scikit-learn
Pipeline that is saved WITH the model, so an endpoint receives the raw columns. The
estimator is any scikit-learn estimator by import path (`estimator = "sklearn.ensemble.
RandomForestClassifier"`, `estimator_params = {n_estimators = 50}`) or a short name
(`ALGORITHMS`).

Options come from, in order: the parameters of the run, the TOML file `config` (by default
`training.toml` next to this file, which `meshops init --template training-pipeline`
writes), and `DEFAULTS`. Run it here (`platform.pipelines.run(training_pipeline, params)`),
queue it for a worker (`meshops pipelines run pipelines/training.py:training_pipeline
--queue`), on a schedule, or from a trigger, e.g. retraining on drift:

    meshops triggers create retrain-on-drift --topic monitor.alert \\
        --ref pipelines/training.py:training_pipeline

`meshops init --template training-pipeline` copies this file into a repository, where it is
edited like any other code. Steps reach the platform through `meshops.connect()`, so they
run against whatever `MESHOPS_URI` / `MESHOPS_HOME` the executing process has (a worker's).
Steps that read platform state (`cache=False`) always run.
"""

from __future__ import annotations

import importlib
import io
import json
import math
import time
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from meshops.pipelines import pipeline, step
from meshops.tracking.metrics_direction import DEFAULT_DIRECTIONS

CLASSIFICATION_METRICS = ("accuracy", "balanced_accuracy", "f1_macro", "roc_auc", "log_loss")
BINARY_METRICS = ("f1", "brier")  # besides the above, for two classes
REGRESSION_METRICS = ("rmse", "mae", "r2")
METRICS = (*CLASSIFICATION_METRICS, *BINARY_METRICS, *REGRESSION_METRICS)
# Directions come from the platform's one table of metric directions.
LOWER_IS_BETTER = frozenset(m for m in METRICS if DEFAULT_DIRECTIONS.get(m) == "min")
DEFAULT_METRIC = {"classification": "roc_auc", "regression": "rmse"}
TASKS = ("auto", "classification", "regression")
# Short estimator names: (classifier, regressor) import paths.
ALGORITHMS: dict[str, tuple[str | None, str | None]] = {
    "hist_gradient_boosting": (
        "sklearn.ensemble.HistGradientBoostingClassifier",
        "sklearn.ensemble.HistGradientBoostingRegressor",
    ),
    "gradient_boosting": (
        "sklearn.ensemble.GradientBoostingClassifier",
        "sklearn.ensemble.GradientBoostingRegressor",
    ),
    "random_forest": (
        "sklearn.ensemble.RandomForestClassifier",
        "sklearn.ensemble.RandomForestRegressor",
    ),
    "logistic_regression": ("sklearn.linear_model.LogisticRegression", None),
    "linear": ("sklearn.linear_model.LogisticRegression", "sklearn.linear_model.Ridge"),
}
# Parameters the short names get unless `estimator_params` sets them.
_ALIAS_PARAMS: dict[str, dict[str, Any]] = {
    "sklearn.ensemble.HistGradientBoostingClassifier": {"max_iter": 150},
    "sklearn.ensemble.GradientBoostingClassifier": {"n_estimators": 100},
    "sklearn.linear_model.LogisticRegression": {"max_iter": 1000},
}

# Every option, with its default. `features` empty: the label product's own columns
# (all but the label, the timestamp and `exclude_columns`, or `feature_columns`) are the
# features; otherwise a feature service or list joined point in time to its rows.
DEFAULTS: dict[str, Any] = {
    "model": "churn",
    "label_product": "customers.churn_labels",
    "label_port": None,
    "label_column": "churned",
    "features": "churn_features",
    "feature_columns": [],
    "exclude_columns": [],
    "timestamp_column": "event_timestamp",
    "task": "auto",
    "max_classes": 50,
    "estimator": "hist_gradient_boosting",
    "estimator_params": {},
    "metric": "",
    "alias": "champion",
    "holdout_fraction": 0.2,
    "seed": 0,
    "min_rows": 200,
    "max_null_fraction": 0.05,
    "domain": None,
    "experiment": "",
    "description": "",
    "endpoint": "",
    "monitor": "",
}
CONFIG_FILE = "training.toml"

# Arrow types a contract's logical type may arrive as in a training set.
_COMPATIBLE = {
    "integer": ("int", "uint", "double", "float"),  # nulls after a PIT join widen ints
    "number": ("double", "float", "decimal", "int"),
    "boolean": ("bool",),
    "string": ("string", "large_string", "dictionary"),
    "timestamp": ("timestamp", "date"),
    "date": ("date", "timestamp"),
}


def _connect() -> Any:
    import meshops

    return meshops.connect()


def _feature_columns(info: dict[str, Any]) -> list[str]:
    return list(info["feature_columns"])


# --- options --------------------------------------------------------------------------------


def _invalid(message: str, **detail: Any) -> Exception:
    from meshops.kernel.errors import InvalidInput

    return InvalidInput(message, detail)


def load_options(params: dict[str, Any], config: str | None = None) -> dict[str, Any]:
    """The run's options: `params` (not None) over the TOML file `config` over `DEFAULTS`.
    Without `config`, `training.toml` beside this module is read when it exists."""
    path = Path(config) if config else Path(__file__).with_name(CONFIG_FILE)
    if config and not path.is_absolute() and not path.exists():
        path = Path(__file__).with_name(config)
    from_file: dict[str, Any] = {}
    if config and not path.is_file():
        raise _invalid(
            f"training config {config} does not exist",
            field="config",
            fix=f"give the path of a TOML file (e.g. pipelines/{CONFIG_FILE})",
        )
    if path.is_file():
        try:
            document = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise _invalid(
                f"{path}: not valid TOML: {exc}", file=str(path), fix="fix the syntax"
            ) from exc
        from_file = dict(document.get("training", document))
        unknown = sorted(set(from_file) - set(DEFAULTS))
        if unknown:
            raise _invalid(
                f"{path}: unknown option(s) {unknown}",
                file=str(path),
                known=sorted(DEFAULTS),
                fix="remove them or correct their spelling",
            )
    options = {**DEFAULTS, **from_file, **{k: v for k, v in params.items() if v is not None}}
    _check_options(options, str(path) if from_file else "parameters")
    return options


def _check_options(options: dict[str, Any], where: str) -> None:
    def bad(key: str, fix: str) -> Exception:
        return _invalid(f"{where}: {key}={options[key]!r} is not valid", field=key, fix=fix)

    if options["task"] not in TASKS:
        raise bad("task", f"use one of {', '.join(TASKS)}")
    if options["metric"] and options["metric"] not in METRICS:
        raise bad("metric", f"use one of {', '.join(METRICS)}")
    if not 0.05 <= float(options["holdout_fraction"]) <= 0.5:
        raise bad("holdout_fraction", "use a fraction between 0.05 and 0.5")
    if not 0 <= float(options["max_null_fraction"]) <= 1:
        raise bad("max_null_fraction", "use a fraction between 0 and 1")
    if not 2 <= int(options["max_classes"]) <= 10_000:
        raise bad("max_classes", "use a number between 2 and 10000")
    if int(options["min_rows"]) < 10:
        raise bad("min_rows", "use at least 10 rows")
    if not isinstance(options["estimator_params"], dict):
        raise bad("estimator_params", "give a table of parameters, e.g. {max_depth = 3}")
    for key in ("feature_columns", "exclude_columns"):
        if not isinstance(options[key], list):
            raise bad(key, "give a list of column names")
    estimator = str(options["estimator"])
    if estimator not in ALGORITHMS and "." not in estimator:
        raise bad(
            "estimator",
            f"use an import path (sklearn.ensemble.RandomForestClassifier) or one of "
            f"{', '.join(ALGORITHMS)}",
        )


# --- 1. training data -----------------------------------------------------------------------


@step(cache=False)
def build_training_set(
    *,
    features: list[str] | str,
    label_product: str,
    label_port: str | None,
    label_column: str,
    timestamp_column: str,
    name: str,
    feature_columns: list[str] | None = None,
    exclude_columns: list[str] | None = None,
) -> tuple[pa.Table, dict[str, Any]]:
    """The label product's rows with their features: point-in-time correct features from
    the feature store when `features` names some, else the product's own columns."""
    with _connect() as platform:
        labels_version = platform.mesh.get_version(label_product)
        labels = platform.mesh.read(
            label_product, port=label_port, interface="pipeline", purpose=f"training {name}"
        )
        if label_column not in labels.column_names:
            raise _invalid(
                f"{label_product} has no label column {label_column!r}",
                field="label_column",
                columns=labels.column_names,
                fix="set label_column to one of the product's columns",
            )
        if timestamp_column and timestamp_column not in labels.column_names:
            raise _invalid(
                f"{label_product} has no timestamp column {timestamp_column!r}",
                field="timestamp_column",
                columns=labels.column_names,
                fix='set timestamp_column to a column of the product, or to "" for a '
                "random holdout",
            )
        labels_info = {
            "product": labels_version.product,
            "version": labels_version.version,
            "urn": labels_version.urn,
            "digest": labels_version.digest,
            "port": label_port,
        }
        if features:
            if not timestamp_column:
                raise _invalid(
                    "features from the feature store need a timestamp column",
                    field="timestamp_column",
                    fix="name the column of the label rows that says when each label applies",
                )
            training = platform.features.training_set(
                labels, features, name=name, timestamp_column=timestamp_column
            )
            table = training.to_arrow()
            ts = training.info
            entity_columns = [c for c in labels.column_names if c != label_column]
            columns = [c for c in table.column_names if c not in labels.column_names]
            info: dict[str, Any] = {
                "id": ts.id,
                "urn": ts.urn,
                "digest": ts.digest,
                "name": ts.name,
                "entity_columns": [c for c in entity_columns if c != timestamp_column],
                "sources": [s.model_dump(mode="json") for s in ts.sources],
            }
            origin = ", ".join(f"{s.product}@{s.version}" for s in ts.sources)
        else:
            table = labels
            excluded = {label_column, timestamp_column, *(exclude_columns or [])}
            columns = list(feature_columns or [c for c in table.column_names if c not in excluded])
            missing = [c for c in columns if c not in table.column_names]
            if missing:
                raise _invalid(
                    f"{label_product} has no column(s) {missing}",
                    field="feature_columns",
                    columns=table.column_names,
                    fix="list columns of the product",
                )
            if label_column in columns:
                raise _invalid(
                    f"the label {label_column!r} cannot be a feature",
                    field="feature_columns",
                    fix="remove it from feature_columns",
                )
            info = {
                "id": None,
                "urn": labels_version.urn,
                "digest": labels_version.digest,
                "name": labels_version.product,
                "entity_columns": [],
                "sources": [],
            }
            origin = f"{labels_version.product}@{labels_version.version}"
        if not columns:
            raise _invalid(
                f"no feature columns in {label_product}",
                field="feature_columns",
                fix="list the feature columns, or name features of the feature store",
            )
        print(
            f"training data {info['name']} {info['digest'][:12]}: {table.num_rows} rows, "
            f"{len(columns)} features from {origin}"
        )
        return table, {
            **info,
            "rows": table.num_rows,
            "label_column": label_column,
            "timestamp_column": timestamp_column,
            "feature_columns": columns,
            "labels": labels_info,
        }


# --- 2. data validation ---------------------------------------------------------------------


def _type_matches(logical: str, arrow_type: pa.DataType) -> bool:
    prefixes = _COMPATIBLE.get(logical)
    return prefixes is None or str(arrow_type).startswith(prefixes)


def _kind(arrow_type: pa.DataType) -> str | None:
    """numeric | categorical | datetime for a feature column's Arrow type; None when the
    template cannot use it (lists, structs, binary ...)."""
    if pa.types.is_dictionary(arrow_type):
        return "categorical"
    if pa.types.is_boolean(arrow_type) or pa.types.is_string(arrow_type):
        return "categorical"
    if pa.types.is_large_string(arrow_type):
        return "categorical"
    if pa.types.is_integer(arrow_type) or pa.types.is_floating(arrow_type):
        return "numeric"
    if pa.types.is_decimal(arrow_type):
        return "numeric"
    if pa.types.is_timestamp(arrow_type) or pa.types.is_date(arrow_type):
        return "datetime"
    return None


def detect_task(labels: pa.ChunkedArray | pa.Array, declared: str, max_classes: int) -> str:
    """classification | regression: `declared` unless "auto"; booleans, strings and
    dictionaries are classes, numbers are classes when they are whole and at most
    `max_classes` distinct values, otherwise a regression target."""
    if declared != "auto":
        return declared
    kind = labels.type
    if pa.types.is_decimal(kind):
        labels, kind = pc.cast(labels, pa.float64()), pa.float64()
    if pa.types.is_floating(kind):
        values = pc.drop_null(labels)
        whole = bool(pc.all(pc.equal(pc.floor(values), values)).as_py() is not False)
        distinct = len(pc.unique(values))
        return "classification" if whole and distinct <= max_classes else "regression"
    if pa.types.is_integer(kind):
        distinct = len(pc.unique(pc.drop_null(labels)))
        return "classification" if distinct <= max_classes else "regression"
    return "classification"


def _classes(labels: pa.ChunkedArray) -> list[Any]:
    values = pc.unique(pc.drop_null(labels))
    if pa.types.is_dictionary(values.type):
        values = values.cast(values.type.value_type)
    return sorted(values.to_pylist(), key=lambda v: (str(type(v)), v))


@step(cache=False)
def validate_data(
    table: pa.Table,
    info: dict[str, Any],
    *,
    min_rows: int,
    max_null_fraction: float,
    task: str = "auto",
    max_classes: int = 50,
    holdout_fraction: float = 0.2,
) -> dict[str, Any]:
    """Check the training data against the contracts of the product versions it was read
    from (every feature is a contract column of a compatible type; the versions' quality
    rules passed) and against what training needs: enough rows, a label without nulls that
    fits the task (at least two classes, each with two rows, at most `max_classes`; or
    finite numbers), features of a usable type with few nulls and no infinities. Any
    failure stops the pipeline before training, listing every problem."""
    problems: list[str] = []
    checks = 0
    with _connect() as platform:
        contract_columns: list[tuple[str, str, Any, Any]] = []  # feature, column, port, where
        for source in info["sources"]:
            view = platform.features.get_view(source["view"])
            version = platform.mesh.get_version(source["product"], source["version"])
            port = version.port(view.source.port)
            where = f"{source['product']} {source['version']}"
            for feature in view.features:
                if feature.name in table.column_names:
                    contract_columns.append(
                        (feature.name, feature.column or feature.name, port, where)
                    )
            for rule in port.quality:
                checks += 1
                if not rule.passed and rule.severity == "error":
                    problems.append(f"{where}: quality rule {rule.rule!r} failed")
        if not info["sources"]:  # the product's own columns are the features
            labels = info["labels"]
            version = platform.mesh.get_version(labels["product"], labels["version"])
            port = version.port(labels.get("port"))  # mesh.read's port: the first if None
            if port is not None:
                where = f"{labels['product']} {labels['version']}"
                for name in _feature_columns(info):
                    contract_columns.append((name, name, port, where))
                for rule in port.quality:
                    checks += 1
                    if not rule.passed and rule.severity == "error":
                        problems.append(f"{where}: quality rule {rule.rule!r} failed")
        for name, column_name, port, where in contract_columns:
            checks += 1
            column = port.column(column_name)
            if column is None:
                problems.append(
                    f"feature {name}: column {column_name!r} is not in the contract of {where}"
                )
                continue
            arrow_type = table.schema.field(name).type
            if not _type_matches(column.logical_type, arrow_type):
                problems.append(
                    f"feature {name}: {arrow_type} does not match the contract's logical "
                    f"type {column.logical_type!r}"
                )
    rows = table.num_rows
    checks += 1
    if rows < min_rows:
        problems.append(f"{rows} rows, fewer than the minimum {min_rows} (min_rows)")
    label = info["label_column"]
    labels = table.column(label)
    checks += 1
    if labels.null_count:
        problems.append(
            f"label {label!r} has {labels.null_count} nulls: filter unlabelled rows out of "
            "the product (or its transform)"
        )
    resolved = detect_task(labels, task, max_classes)
    classes: list[Any] = []
    checks += 1
    if resolved == "classification":
        if _kind(labels.type) is None:
            problems.append(f"label {label!r}: a {labels.type} cannot be a class label")
        else:
            classes = _classes(labels)
            counts = dict(
                zip(
                    (str(c) for c in pc.value_counts(pc.drop_null(labels)).field("values")),
                    pc.value_counts(pc.drop_null(labels)).field("counts").to_pylist(),
                    strict=True,
                )
            )
            rare = sorted(c for c, n in counts.items() if n < 2)
            if len(classes) < 2:
                problems.append(f"label {label!r} has {len(classes)} class(es); needs two")
            elif len(classes) > max_classes:
                problems.append(
                    f"label {label!r} has {len(classes)} classes, more than max_classes="
                    f'{max_classes}: declare task = "regression" or raise max_classes'
                )
            elif rare:
                problems.append(
                    f"label {label!r}: class(es) {rare[:10]} have fewer than 2 rows; a holdout "
                    "needs at least two rows of every class"
                )
            elif not info["timestamp_column"] and (
                math.ceil(rows * holdout_fraction) < len(classes)
                or rows - math.ceil(rows * holdout_fraction) < len(classes)
            ):
                problems.append(
                    f"a stratified holdout of {holdout_fraction:.0%} of {rows} rows cannot hold "
                    f"each of the {len(classes)} classes: raise holdout_fraction or add rows"
                )
    elif not (
        pa.types.is_integer(labels.type)
        or pa.types.is_floating(labels.type)
        or pa.types.is_decimal(labels.type)
    ):
        problems.append(
            f"label {label!r} is {labels.type}; a regression needs numbers "
            '(declare task = "classification" for classes)'
        )
    elif pa.types.is_floating(labels.type):
        values = labels.to_numpy(zero_copy_only=False)
        if not np.isfinite(values[~np.isnan(values)]).all():
            problems.append(f"label {label!r} has infinite values")
    kinds: dict[str, str] = {}
    null_fractions: dict[str, float] = {}
    for name in _feature_columns(info):
        column = table.column(name)
        kind = _kind(column.type)
        checks += 1
        if kind is None:
            problems.append(
                f"feature {name}: a {column.type} column cannot be a feature (numbers, "
                "strings, booleans, dictionaries, dates and timestamps can); add it to "
                "exclude_columns"
            )
            continue
        kinds[name] = kind
        fraction = column.null_count / rows if rows else 0.0
        null_fractions[name] = round(fraction, 6)
        checks += 1
        if rows and column.null_count == rows:
            problems.append(f"feature {name}: every value is null")
        elif fraction > max_null_fraction:
            problems.append(
                f"feature {name}: {fraction:.1%} nulls, more than {max_null_fraction:.1%} "
                "(max_null_fraction)"
            )
        if pa.types.is_floating(column.type):
            values = column.to_numpy(zero_copy_only=False)
            checks += 1
            if np.isinf(values).any():
                problems.append(f"feature {name}: infinite values")
        if kind == "categorical" and rows >= 50 and not pa.types.is_boolean(column.type):
            distinct = len(pc.unique(column))
            if distinct > 0.9 * rows:
                print(
                    f"warning: feature {name} has {distinct} distinct values in {rows} rows; "
                    "an identifier? (exclude_columns)"
                )
    if problems:
        raise _invalid(
            f"data validation failed ({len(problems)}): " + "; ".join(problems),
            problems=problems,
            fix="fix the data or the options named in each problem",
        )
    result: dict[str, Any] = {
        "rows": rows,
        "checks": checks,
        "task": resolved,
        "kinds": kinds,
        "classes": classes,
        "nulls": null_fractions,
    }
    if resolved == "classification" and len(classes) == 2:
        positive = classes[1]
        result["positive_class"] = positive
        hits = pc.sum(pc.cast(pc.equal(labels, pa.scalar(positive)), pa.int64())).as_py()
        result["positive_rate"] = float(hits or 0) / rows
    summary = f"{len(classes)} classes" if resolved == "classification" else "a numeric target"
    print(f"data validation passed: {checks} checks, {rows} rows, {resolved} with {summary}")
    return result


# --- 3. training ----------------------------------------------------------------------------


def _split(
    table: pa.Table, info: dict[str, Any], validation: dict[str, Any], fraction: float, seed: int
) -> tuple[pa.Table, pa.Table]:
    """(train, holdout). With a timestamp column the latest `fraction` of rows is the
    holdout; without one a random, class-stratified `fraction` (seeded)."""
    rows = table.num_rows
    timestamp = info["timestamp_column"]
    if timestamp:
        order = pc.sort_indices(table, sort_keys=[(timestamp, "ascending")]).to_numpy()
        cut = int(rows * (1 - fraction))
        return table.take(order[:cut]), table.take(order[cut:])
    from sklearn.model_selection import train_test_split

    indices = np.arange(rows)
    stratify = None
    if validation["task"] == "classification":
        stratify = np.asarray([str(v) for v in table.column(info["label_column"]).to_pylist()])
    train_idx, hold_idx = train_test_split(
        indices, test_size=fraction, random_state=seed, stratify=stratify
    )
    return table.take(np.sort(train_idx)), table.take(np.sort(hold_idx))


def frame_of(table: pa.Table, columns: list[str]) -> Any:
    """A pandas frame of `columns` as the model receives them: dictionaries decoded."""
    selected = table.select(columns)
    for i, field in enumerate(selected.schema):
        if pa.types.is_dictionary(field.type):
            selected = selected.set_column(
                i, field.name, pc.cast(selected.column(i), field.type.value_type)
            )
    return selected.to_pandas()


def labels_of(table: pa.Table, label: str) -> Any:
    """The label as a NumPy array: numbers and booleans as such, anything else as strings
    in an object array (what scikit-learn takes as class names)."""
    column = table.column(label)
    if pa.types.is_dictionary(column.type):
        column = pc.cast(column, column.type.value_type)
    kind = column.type
    if pa.types.is_decimal(kind):
        column, kind = pc.cast(column, pa.float64()), pa.float64()
    if pa.types.is_boolean(kind) or pa.types.is_integer(kind) or pa.types.is_floating(kind):
        return column.to_numpy(zero_copy_only=False)
    return np.asarray([str(v) for v in column.to_pylist()], dtype=object)


def _import(path: str) -> Any:
    module_name, _, attribute = path.rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError, ValueError) as exc:
        raise _invalid(
            f"cannot import the estimator {path!r}: {exc}",
            field="estimator",
            fix="give module.Class of an installed estimator, e.g. "
            "sklearn.ensemble.RandomForestClassifier",
        ) from exc


def estimator_path(name: str, task: str) -> str:
    """The import path of `name`: a short name's variant for the task, or `name`."""
    if name not in ALGORITHMS:
        return name
    classifier, regressor = ALGORITHMS[name]
    chosen = classifier if task == "classification" else regressor
    if chosen is None:
        raise _invalid(
            f"estimator {name!r} has no {task} variant",
            field="estimator",
            fix="use hist_gradient_boosting, random_forest or linear",
        )
    return chosen


def make_estimator(name: str, params: dict[str, Any], task: str, seed: int) -> Any:
    """The estimator `name` (a short name or an import path) with `params`; refuses one
    that does not fit the task (a regressor for classes, a classifier for numbers)."""
    from sklearn.base import is_classifier, is_regressor

    path = estimator_path(name, task)
    defaults: dict[str, Any] = {}
    if name in ALGORITHMS:
        defaults = dict(_ALIAS_PARAMS.get(path, {}))
    cls = _import(path)
    try:
        estimator = cls()
    except TypeError as exc:
        message = f"{path} cannot be created without arguments: {exc}"
        raise _invalid(message, field="estimator") from exc
    if not (hasattr(estimator, "fit") and hasattr(estimator, "get_params")):
        raise _invalid(f"{path} is not a scikit-learn estimator", field="estimator")
    available = estimator.get_params(deep=False)
    if "random_state" in available:
        defaults["random_state"] = seed
    unknown = sorted(set(params) - set(available))
    if unknown:
        raise _invalid(
            f"{path} has no parameter(s) {unknown}",
            field="estimator_params",
            known=sorted(available),
            fix="use parameters of the estimator's constructor",
        )
    estimator.set_params(**{**defaults, **params})
    if task == "classification" and is_regressor(estimator):
        raise _invalid(
            f"{path} is a regressor and the task is classification",
            field="estimator",
            fix='pick a classifier, or declare task = "regression"',
        )
    if task == "regression" and is_classifier(estimator):
        raise _invalid(
            f"{path} is a classifier and the task is regression",
            field="estimator",
            fix='pick a regressor, or declare task = "classification"',
        )
    return estimator


def make_pipeline(kinds: dict[str, str], estimator: Any) -> Any:
    """Pipeline(ColumnTransformer(numbers: impute median + scale; categories: impute
    "(missing)" + one-hot, unknown ignored; datetimes: parts + impute + scale), estimator)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    from meshops.registry.flavors.tabular import AsCategories, AsNumbers, DatetimeParts

    def of(kind: str) -> list[str]:
        return [name for name, k in kinds.items() if k == kind]

    branches: list[tuple[str, Any, list[str]]] = []
    if of("numeric"):
        numeric = Pipeline(
            [
                ("as_numbers", AsNumbers()),
                ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
                ("scale", StandardScaler()),
            ]
        )
        branches.append(("numeric", numeric, of("numeric")))
    if of("categorical"):
        categorical = Pipeline(
            [
                ("as_categories", AsCategories()),
                ("impute", SimpleImputer(strategy="constant", fill_value="(missing)")),
                ("encode", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
            ]
        )
        branches.append(("categorical", categorical, of("categorical")))
    if of("datetime"):
        datetime = Pipeline(
            [
                ("parts", DatetimeParts()),
                ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
                ("scale", StandardScaler()),
            ]
        )
        branches.append(("datetime", datetime, of("datetime")))
    columns = ColumnTransformer(branches, remainder="drop", sparse_threshold=0.0)
    return Pipeline([("columns", columns), ("estimator", estimator)])


def _one_thread() -> Any:
    """OpenMP/BLAS at one thread: on a shared, loaded machine the gradient-boosting
    threads spin against each other (50x slower on 2 busy cores than one thread)."""
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

    return threadpool_limits(limits=1)


def predictions(model: Any, frame: Any) -> tuple[Any, Any, list[Any] | None]:
    """(predicted values, class probabilities or None, classes or None)."""
    with _one_thread():
        predicted = np.asarray(model.predict(frame))
        if hasattr(model, "predict_proba") and hasattr(model, "classes_"):
            try:
                return predicted, np.asarray(model.predict_proba(frame)), list(model.classes_)
            except (AttributeError, NotImplementedError):  # e.g. SVC(probability=False)
                pass
    return predicted, None, None


def evaluate(
    task: str, y_true: Any, predicted: Any, proba: Any = None, classes: list[Any] | None = None
) -> dict[str, float]:
    """Every metric of the task that can be measured (ROC AUC and log loss need class
    probabilities and, for ROC AUC, two classes in `y_true`; one-vs-rest for more)."""
    from sklearn import metrics as m

    y = np.asarray(y_true)
    if task == "regression":
        truth, guess = y.astype(float), np.asarray(predicted, dtype=float)
        return {
            "rmse": float(math.sqrt(m.mean_squared_error(truth, guess))),
            "mae": float(m.mean_absolute_error(truth, guess)),
            "r2": float(m.r2_score(truth, guess)) if len(truth) > 1 else 0.0,
        }
    truth_s = np.asarray([str(v) for v in y], dtype=object)
    guess_s = np.asarray([str(v) for v in np.asarray(predicted)], dtype=object)
    out = {
        "accuracy": float(m.accuracy_score(truth_s, guess_s)),
        "balanced_accuracy": float(m.balanced_accuracy_score(truth_s, guess_s)),
        "f1_macro": float(m.f1_score(truth_s, guess_s, average="macro", zero_division=0)),
    }
    if proba is None or classes is None:
        return out
    names = [str(c) for c in classes]
    p = np.clip(np.asarray(proba, dtype=float), 1e-15, 1.0)
    present = set(truth_s.tolist())
    if present <= set(names):
        out["log_loss"] = float(m.log_loss(truth_s, p, labels=names))
        if len(names) == 2:
            positive = truth_s == names[1]
            out["brier"] = float(m.brier_score_loss(positive, p[:, 1]))
            out["f1"] = float(m.f1_score(positive, guess_s == names[1], zero_division=0))
            if len(present) == 2:
                out["roc_auc"] = float(m.roc_auc_score(positive, p[:, 1]))
        elif len(present) == len(names):
            out["roc_auc"] = float(m.roc_auc_score(truth_s, p, multi_class="ovr", labels=names))
    return out


def score(metric: str, y_true: Any, probabilities: Any) -> float:
    """One metric of a binary classifier's positive-class probabilities (0/1 labels)."""
    p = np.clip(np.asarray(probabilities, dtype=float), 1e-6, 1 - 1e-6)
    y = np.asarray(y_true).astype(int)
    proba = np.column_stack([1 - p, p])
    values = evaluate("classification", y, (p >= 0.5).astype(int), proba, [0, 1])
    if metric == "roc_auc" and metric not in values:
        return 0.5
    if metric not in values:
        raise ValueError(f"unknown metric {metric!r}; use one of {', '.join(METRICS)}")
    return values[metric]


def _figure_png(draw: Any) -> bytes:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(5.5, 4.5), dpi=100)
    draw(figure, figure.add_subplot(1, 1, 1))
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def evaluation_plot(task: str, y_true: Any, predicted: Any, classes: list[Any]) -> bytes:
    """A confusion matrix (classification) or residuals against predictions (regression),
    as PNG bytes."""
    if task == "regression":
        truth, guess = np.asarray(y_true, dtype=float), np.asarray(predicted, dtype=float)

        def residuals(figure: Any, axes: Any) -> None:
            axes.scatter(guess, truth - guess, s=12, alpha=0.7)
            axes.axhline(0.0, color="grey", linewidth=1)
            axes.set_xlabel("predicted")
            axes.set_ylabel("actual - predicted")
            axes.set_title(f"Holdout residuals ({len(truth)} rows)")

        return _figure_png(residuals)
    from sklearn.metrics import confusion_matrix

    names = [str(c) for c in classes]
    matrix = confusion_matrix([str(v) for v in y_true], [str(v) for v in predicted], labels=names)

    def confusion(figure: Any, axes: Any) -> None:
        image = axes.imshow(matrix, cmap="Blues")
        figure.colorbar(image, ax=axes)
        axes.set_xticks(range(len(names)), names, rotation=45, ha="right")
        axes.set_yticks(range(len(names)), names)
        axes.set_xlabel("predicted")
        axes.set_ylabel("actual")
        axes.set_title(f"Holdout confusion matrix ({int(matrix.sum())} rows)")
        for i in range(len(names)):
            for j in range(len(names)):
                axes.text(j, i, str(matrix[i, j]), ha="center", va="center")

    return _figure_png(confusion)


@step(cache=False)
def train_model(
    table: pa.Table,
    info: dict[str, Any],
    validation: dict[str, Any],
    *,
    model_name: str,
    estimator: str,
    estimator_params: dict[str, Any],
    holdout_fraction: float,
    seed: int,
    experiment: str,
) -> tuple[Any, pa.Table, dict[str, Any]]:
    """Fit the pipeline on the training part, keep the holdout (the latest rows, or a
    stratified random part); track params, inputs and training metrics in a run of
    `experiment`. The holdout goes on with the label and the raw feature columns."""
    from sklearn.dummy import DummyClassifier, DummyRegressor

    from meshops.tracking.models import DatasetInput, Metric

    task = validation["task"]
    features, label = _feature_columns(info), info["label_column"]
    train, holdout = _split(table, info, validation, holdout_fraction, seed)
    fitted = make_pipeline(
        validation["kinds"], make_estimator(estimator, estimator_params, task, seed)
    )
    x_train, y_train = frame_of(train, features), labels_of(train, label)
    with _one_thread():
        fitted.fit(x_train, y_train)
    train_metrics = evaluate(task, y_train, *predictions(fitted, x_train))
    baseline = DummyClassifier() if task == "classification" else DummyRegressor()
    baseline.fit(np.zeros((len(y_train), 1)), y_train)
    y_hold = labels_of(holdout, label)
    zeros = np.zeros((len(y_hold), 1))
    baseline_metrics = evaluate(
        task,
        y_hold,
        baseline.predict(zeros),
        baseline.predict_proba(zeros) if task == "classification" else None,
        list(baseline.classes_) if task == "classification" else None,
    )
    chosen = type(fitted.steps[-1][1])
    path = estimator_path(estimator, task)
    with _connect() as platform:
        run = platform.tracking.create_run(
            experiment,
            name=f"{model_name}-{chosen.__name__}",
            tags={
                "meshops.model": model_name,
                "meshops.training_set": info["urn"],
                "meshops.task": task,
                "meshops.estimator": path,
                "meshops.algorithm": estimator,
            },
        )
        platform.tracking.log_params(
            run.id,
            {
                "task": task,
                "estimator": path,
                "estimator_params": json.dumps(estimator_params, sort_keys=True, default=str),
                "holdout_fraction": holdout_fraction,
                "holdout": "latest rows" if info["timestamp_column"] else "stratified random",
                "seed": seed,
                "features": ",".join(features),
                "label": label,
                "train_rows": train.num_rows,
                "holdout_rows": holdout.num_rows,
                **{
                    f"estimator.{k}": v
                    for k, v in fitted.steps[-1][1].get_params(deep=False).items()
                    if _scalar(v)
                },
            },
        )
        platform.tracking.log_input(
            run.id, DatasetInput(urn=info["urn"], digest=info["digest"], name=info["name"])
        )
        sources = [*info["sources"]] + ([info["labels"]] if info["sources"] else [])
        for source in sources:
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
        extra = (
            {"positive_rate": validation["positive_rate"]} if "positive_rate" in validation else {}
        )
        platform.tracking.log_metrics(
            run.id,
            [
                Metric(key=f"train_{name}", value=value, step=0, timestamp=now)
                for name, value in train_metrics.items()
            ]
            + [
                Metric(key=name, value=value, step=0, timestamp=now)
                for name, value in extra.items()
            ],
        )
        platform.tracking.flush()
    print(f"trained {path} ({task}) on {train.num_rows} rows (run {run.id})")
    holdout_table = holdout.select([*features, label])
    return (
        fitted,
        holdout_table,
        {
            "id": run.id,
            "experiment": experiment,
            "estimator": path,
            "estimator_params": estimator_params,
            "train_rows": train.num_rows,
            "train_metrics": train_metrics,
            "baseline": baseline_metrics,
        },
    )


def _scalar(value: Any) -> bool:
    return isinstance(value, str | int | float | bool) and not (
        isinstance(value, float) and not math.isfinite(value)
    )


# --- 4. evaluation against the champion -----------------------------------------------------


def primary_metric(task: str, declared: str) -> tuple[str, str]:
    """(metric, direction): the declared metric, else the task's default."""
    metric = declared or DEFAULT_METRIC[task]
    if task == "regression" and metric not in REGRESSION_METRICS:
        raise _invalid(
            f"metric {metric!r} does not measure a regression",
            field="metric",
            fix=f"use one of {', '.join(REGRESSION_METRICS)}",
        )
    if task == "classification" and metric in REGRESSION_METRICS:
        raise _invalid(
            f"metric {metric!r} does not measure a classification",
            field="metric",
            fix=f"use one of {', '.join(CLASSIFICATION_METRICS + BINARY_METRICS)}",
        )
    return metric, "min" if metric in LOWER_IS_BETTER else "max"


@step(cache=False)
def evaluate_against_champion(
    model: Any,
    holdout: pa.Table,
    info: dict[str, Any],
    validation: dict[str, Any],
    run: dict[str, Any],
    *,
    model_name: str,
    alias: str,
    metric: str,
) -> dict[str, Any]:
    """Score the candidate and the alias's current holder on the same holdout (of this
    training data) with every metric of the task; log the plot of the candidate's errors.
    Without a current holder the reference is a baseline fitted to the training labels
    (the prior class distribution, or the mean)."""
    from meshops.kernel.errors import NotFound
    from meshops.tracking.models import Metric

    task = validation["task"]
    metric, direction = primary_metric(task, metric)
    features, label = _feature_columns(info), info["label_column"]
    frame, truth = frame_of(holdout, features), labels_of(holdout, label)
    predicted, proba, classes = predictions(model, frame)
    candidate = evaluate(task, truth, predicted, proba, classes)
    if metric not in candidate:
        raise _invalid(
            f"metric {metric!r} cannot be measured for this model on the holdout",
            field="metric",
            measured=sorted(candidate),
            fix="pick one of the measured metrics (roc_auc and log_loss need predict_proba "
            "and every class in the holdout)",
        )
    plot = evaluation_plot(task, truth, predicted, classes or validation["classes"])
    plot_name = "residuals.png" if task == "regression" else "confusion_matrix.png"
    with _connect() as platform:
        champion_version: int | None = None
        try:
            champion = platform.registry.load_model(f"models:/{model_name}@{alias}")
        except NotFound:
            champion = None
        if champion is not None:
            champion_version = champion.version.version
            try:
                reference = evaluate(task, truth, *predictions(champion.raw, frame))
                against = f"{model_name} v{champion_version} ({alias})"
            except Exception as exc:  # the champion cannot read these columns
                print(f"the champion v{champion_version} cannot score this holdout: {exc}")
                reference = {}
                against = f"{model_name} v{champion_version}, which cannot score it"
        else:
            reference = dict(run["baseline"])
            against = "the baseline (no current champion)"
        if metric in reference:
            delta = candidate[metric] - reference[metric]
            lift = -delta if direction == "min" else delta
        else:
            lift = math.inf
        artifact = f"evaluation/{plot_name}"
        platform.tracking.log_artifact_bytes(run["id"], artifact, plot)
        now = time.time()
        platform.tracking.log_metrics(
            run["id"],
            [
                Metric(key=name, value=value, step=0, timestamp=now)
                for name, value in candidate.items()
            ]
            + [
                Metric(key=f"champion_{name}", value=value, step=0, timestamp=now)
                for name, value in reference.items()
                if name == metric
            ]
            + (
                [Metric(key=f"{metric}_lift", value=lift, step=0, timestamp=now)]
                if math.isfinite(lift)
                else []
            ),
        )
        platform.tracking.flush()
    better = lift > 0
    shown = f"{reference[metric]:.4f}" if metric in reference else "n/a"
    print(
        f"holdout {metric} ({direction}): candidate {candidate[metric]:.4f} vs {against} "
        f"{shown} -> {'better' if better else 'not better'}"
    )
    return {
        "task": task,
        "metric": metric,
        "direction": direction,
        "candidate": candidate,
        "champion": reference,
        "champion_version": champion_version,
        "lift": lift if math.isfinite(lift) else None,
        "better": better,
        "holdout_rows": holdout.num_rows,
        "plot": artifact,
    }


# --- 5. registration ------------------------------------------------------------------------

_SIGNATURE_TYPES = (
    (pa.types.is_boolean, "boolean"),
    (pa.types.is_integer, "integer"),
    (pa.types.is_floating, "float"),
    (pa.types.is_decimal, "float"),
    (pa.types.is_string, "string"),
    (pa.types.is_large_string, "string"),
    (pa.types.is_dictionary, "string"),
    (pa.types.is_timestamp, "datetime"),
    (pa.types.is_date, "datetime"),
)


def input_signature(table: pa.Table, columns: list[str]) -> Any:
    """The model's input signature: the raw feature columns with their types (every
    column accepts null: the pipeline imputes missing values)."""
    from meshops.registry.models import ColumnSpec, Signature

    specs = []
    for name in columns:
        field = table.schema.field(name)
        kind = next((k for test, k in _SIGNATURE_TYPES if test(field.type)), "object")
        specs.append(ColumnSpec(name=name, type=kind))
    return Signature(kind="columns", inputs=specs)


def model_card(
    *,
    model_name: str,
    version: int,
    info: dict[str, Any],
    validation: dict[str, Any],
    run: dict[str, Any],
    evaluation: dict[str, Any],
    description: str,
) -> str:
    """The model card (markdown) from what this run recorded."""
    task, metric = evaluation["task"], evaluation["metric"]
    labels = info["labels"]
    classes = validation.get("classes") or []
    kinds = validation["kinds"]
    if info["timestamp_column"]:
        split = f"the latest by `{info['timestamp_column']}`"
    else:
        split = "stratified random" if task == "classification" else "random"
    lines = [
        f"# {model_name} v{version}",
        "",
        description
        or f"A {task} model of `{info['label_column']}` trained by the training pipeline template.",
        "",
        "## Task",
        "",
        f"- task: {task}"
        + (f" ({len(classes)} classes: {', '.join(map(str, classes[:20]))})" if classes else ""),
        f"- label: `{info['label_column']}` of `{labels['product']}` {labels['version']}",
        f"- primary metric: {metric} ({'higher' if evaluation['direction'] == 'max' else 'lower'}"
        " is better)",
        "",
        "## Data",
        "",
        f"- training data: `{info['urn']}` (digest `{info['digest'][:16]}`), "
        f"{validation['rows']} rows",
        f"- split: {run['train_rows']} training rows, {evaluation['holdout_rows']} holdout rows "
        f"({split})",
    ]
    for source in info["sources"]:
        lines.append(f"- source: `{source['product']}` {source['version']}")
    lines += ["", "## Features", "", "| feature | kind | nulls in training |", "|---|---|---|"]
    for name, kind in kinds.items():
        lines.append(f"| {name} | {kind} | {validation['nulls'].get(name, 0.0):.1%} |")
    params = json.dumps(run["estimator_params"], sort_keys=True, default=str)
    lines += [
        "",
        "## Model",
        "",
        f"- estimator: `{run['estimator']}` with {params}",
        "- preprocessing (saved with the model): numbers imputed with the median and "
        'scaled; categories imputed as "(missing)" and one-hot encoded (unseen values '
        "encode as all zeros); datetimes as year, month, day, weekday, hour and days since "
        "1970, imputed and scaled",
        "",
        "## Evaluation on the holdout",
        "",
        "| metric | this version | reference | training |",
        "|---|---|---|---|",
    ]
    reference = evaluation["champion"]
    for name, value in evaluation["candidate"].items():
        ref = f"{reference[name]:.4f}" if name in reference else ""
        train = run["train_metrics"].get(name)
        lines.append(
            f"| {name} | {value:.4f} | {ref} | {'' if train is None else f'{train:.4f}'} |"
        )
    against = (
        f"v{evaluation['champion_version']}"
        if evaluation["champion_version"]
        else "a baseline fitted to the training labels"
    )
    lines += [
        "",
        f"Reference: {against}. Plot: run artifact `{evaluation['plot']}` of run `{run['id']}`.",
        "",
        "## Limits",
        "",
        "- Evaluated on one holdout of the training data; scores on later data may differ.",
        "- Categories not seen in training are encoded as all zeros; the estimator decides.",
    ]
    return "\n".join(lines) + "\n"


@step(cache=False)
def register_model(
    model: Any,
    holdout: pa.Table,
    info: dict[str, Any],
    run: dict[str, Any],
    evaluation: dict[str, Any],
    *,
    validation: dict[str, Any],
    model_name: str,
    domain: str | None,
    description: str,
) -> dict[str, Any]:
    """Register the candidate as the next version of `model_name` with its evaluation
    metrics, its raw-column signature and its model card; the run's input datasets
    become lineage edges into the version."""
    from meshops.kernel.errors import NotFound

    metric = evaluation["metric"]
    metrics = {
        **{name: float(value) for name, value in evaluation["candidate"].items()},
        "holdout_rows": float(evaluation["holdout_rows"]),
    }
    if metric in evaluation["champion"]:
        metrics[f"champion_{metric}"] = float(evaluation["champion"][metric])
    if evaluation["lift"] is not None:
        metrics[f"{metric}_lift"] = float(evaluation["lift"])
    features = _feature_columns(info)
    example = frame_of(holdout, features).head(5)
    signature = input_signature(holdout, features)
    with _one_thread():
        signature.outputs = _output_specs(model.predict(example))
    tags = {
        "meshops.task": evaluation["task"],
        "meshops.metric": metric,
        "meshops.training_set": info["urn"],
        "meshops.label": info["label_column"],
        "meshops.evaluated_against": str(evaluation["champion_version"] or "baseline"),
    }
    if info["id"]:
        tags["meshops.training_set_id"] = info["id"]
    with _connect() as platform:
        try:
            platform.registry.get_model(model_name)
        except NotFound:
            platform.registry.create_model(model_name, description=description, domain=domain)
        version = platform.registry.log_model(
            model_name,
            model,
            input_example=example,
            signature=signature,
            run_id=run["id"],
            metrics=metrics,
            description=description,
            tags=tags,
        )
        card = model_card(
            model_name=model_name,
            version=version.version,
            info=info,
            validation=validation,
            run=run,
            evaluation=evaluation,
            description=description,
        )
        platform.registry.set_model_card(model_name, version.version, card)
        platform.tracking.end_run(run["id"], "FINISHED")
    print(f"registered {version.uri}")
    return {"name": version.name, "version": version.version, "urn": version.urn}


def _output_specs(output: Any) -> list[Any]:
    from meshops.registry.signature import output_specs

    return list(output_specs(output))


# --- 6. promotion gate and alias move -------------------------------------------------------


@step(cache=False)
def promote(
    registered: dict[str, Any],
    evaluation: dict[str, Any],
    holdout: pa.Table,
    info: dict[str, Any],
    alias: str,
) -> dict[str, Any]:
    """Score the new version and the current holder of `alias` on the holdout with
    `platform.registry.compare` (in this process; recorded as a run, linked in lineage,
    read by the promotion gate) and move `alias` when the new version is better on the
    primary metric, or when there is no holder; the registry's promotion gate
    (`model.promote` policies, the comparison's tolerance, approvals) decides last."""
    from meshops.kernel.errors import Forbidden

    name, version = registered["name"], int(registered["version"])
    metric = evaluation["metric"]
    decision: dict[str, Any] = {"model": name, "version": version, "alias": alias}
    with _connect() as platform:
        comparison = platform.registry.compare(
            name,
            version,
            alias=alias,
            data=holdout,
            label=info["label_column"],
            metric=metric,
            data_urn=info["urn"],
        )
        decision["comparison"] = {
            "id": comparison.id,
            "run_id": comparison.run_id,
            "metric": comparison.metric,
            "challenger_score": comparison.challenger_score,
            "champion_score": comparison.champion_score,
            "champion_version": comparison.champion_version,
            "allowed": comparison.allowed,
        }
        held, champion = comparison.champion_score, comparison.champion_version
        if held is None:
            better = evaluation["better"]  # no holder: the candidate against the baseline
            over = "the baseline"
        else:
            delta = comparison.challenger_score - held
            better = (delta < 0) if comparison.direction == "min" else (delta > 0)
            over = f"v{champion}"
        reason = (
            f"automated training: {comparison.metric} {comparison.challenger_score:.4f} vs "
            + (f"{held:.4f} of {over}" if held is not None else over)
            + f" on {comparison.evaluated_rows} holdout rows (comparison {comparison.id})"
        )
        if not comparison.allowed or not better:
            why = "; ".join(comparison.reasons) or f"not better than {over}"
            decision.update(promoted=False, reason=why)
            print(f"kept {alias}: v{version} ({reason}): {why}")
            return decision
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


# --- 7. serving endpoint and drift monitor (optional) ---------------------------------------


@step(cache=False)
def deploy(
    table: pa.Table,
    info: dict[str, Any],
    validation: dict[str, Any],
    decision: dict[str, Any],
    *,
    endpoint: str,
    monitor: str,
    domain: str | None,
) -> dict[str, Any]:
    """Serve `model@alias` at `endpoint` (created once; it follows the alias) and watch its
    inputs with the data-drift monitor `monitor` against the training data's numeric and
    categorical features (created once; its reference moves to the new training data when
    the alias moved). Datetime features are not monitored."""
    from meshops.kernel.errors import NotFound
    from meshops.monitoring.models import MonitorSpec

    model, alias = decision["model"], decision["alias"]
    done: dict[str, Any] = {"endpoint": None, "monitor": None}
    with _connect() as platform:
        if endpoint:
            try:
                platform.serving.get_endpoint(endpoint)
            except NotFound:
                if not decision["promoted"] and not _holds(platform, model, alias):
                    print(f"no endpoint yet: {model}@{alias} does not exist")
                    return done
                platform.serving.create_endpoint(
                    endpoint,
                    f"{model}@{alias}",
                    domain=domain,
                    description=f"{model}@{alias}, from the training pipeline",
                )
                print(f"endpoint {endpoint} serves {model}@{alias}")
            done["endpoint"] = endpoint
        if monitor and endpoint:
            kinds = validation["kinds"]
            numerical = [n for n, k in kinds.items() if k == "numeric"]
            categorical = [n for n, k in kinds.items() if k == "categorical"]
            reference = frame_reference(table, [*numerical, *categorical])
            try:
                platform.monitoring.get_monitor(monitor)
                if decision["promoted"]:
                    platform.monitoring.set_reference(monitor, reference)
                    print(f"monitor {monitor}: reference is now this training data")
            except NotFound:
                platform.monitoring.create_monitor(
                    MonitorSpec(
                        name=monitor,
                        kind="data_drift",
                        domain=domain,
                        endpoint=endpoint,
                        model=model,
                        numerical=numerical,
                        categorical=categorical,
                    ),
                    reference=reference,
                )
                print(f"monitor {monitor} watches {endpoint}: {len(kinds)} features")
            done["monitor"] = monitor
    return done


def frame_reference(table: pa.Table, columns: list[str]) -> pa.Table:
    """The monitor's reference: `columns` of the training data, dictionaries decoded."""
    return pa.Table.from_pandas(frame_of(table, columns), preserve_index=False)


def _holds(platform: Any, model: str, alias: str) -> bool:
    from meshops.kernel.errors import NotFound

    try:
        return alias in platform.registry.get_model(model).aliases
    except NotFound:
        return False


@pipeline
def training_pipeline(
    *,
    config: str | None = None,
    model: str | None = None,
    label_product: str | None = None,
    label_port: str | None = None,
    label_column: str | None = None,
    features: list[str] | str | None = None,
    feature_columns: list[str] | None = None,
    exclude_columns: list[str] | None = None,
    timestamp_column: str | None = None,
    task: str | None = None,
    max_classes: int | None = None,
    estimator: str | None = None,
    estimator_params: dict[str, Any] | None = None,
    algorithm: str | None = None,
    metric: str | None = None,
    direction: str | None = None,
    alias: str | None = None,
    holdout_fraction: float | None = None,
    seed: int | None = None,
    min_rows: int | None = None,
    max_null_fraction: float | None = None,
    domain: str | None = None,
    experiment: str | None = None,
    description: str | None = None,
    endpoint: str | None = None,
    monitor: str | None = None,
) -> object:
    """Every parameter is an option (see `DEFAULTS`); None takes it from `config`, then
    the default. `algorithm` is the former name of `estimator`; `direction` is known from
    the metric and only checked."""
    given = dict(locals())
    given.pop("config")
    if given.pop("algorithm") is not None and estimator is None:
        given["estimator"] = algorithm
    declared_direction = given.pop("direction")
    o = load_options(given, config)
    if declared_direction and o["metric"]:
        expected = "min" if o["metric"] in LOWER_IS_BETTER else "max"
        if declared_direction != expected:
            raise _invalid(
                f"direction {declared_direction!r} contradicts {o['metric']!r}, whose "
                f"direction is {expected!r}",
                field="direction",
                fix="leave direction out: it is known from the metric",
            )
    table, info = build_training_set(
        features=o["features"],
        label_product=o["label_product"],
        label_port=o["label_port"],
        label_column=o["label_column"],
        timestamp_column=o["timestamp_column"],
        name=f"{o['model']}-training",
        feature_columns=o["feature_columns"],
        exclude_columns=o["exclude_columns"],
    )
    validation = validate_data(
        table,
        info,
        min_rows=o["min_rows"],
        max_null_fraction=o["max_null_fraction"],
        task=o["task"],
        max_classes=o["max_classes"],
        holdout_fraction=o["holdout_fraction"],
    )
    fitted, holdout, run = train_model(
        table,
        info,
        validation,
        model_name=o["model"],
        estimator=o["estimator"],
        estimator_params=o["estimator_params"],
        holdout_fraction=o["holdout_fraction"],
        seed=o["seed"],
        experiment=o["experiment"] or o["model"],
    )
    evaluation = evaluate_against_champion(
        fitted,
        holdout,
        info,
        validation,
        run,
        model_name=o["model"],
        alias=o["alias"],
        metric=o["metric"],
    )
    registered = register_model(
        fitted,
        holdout,
        info,
        run,
        evaluation,
        validation=validation,
        model_name=o["model"],
        domain=o["domain"],
        description=o["description"],
    )
    decision = promote(registered, evaluation, holdout, info, o["alias"])
    if o["endpoint"]:
        return decision, deploy(
            table,
            info,
            validation,
            decision,
            endpoint=o["endpoint"],
            monitor=o["monitor"],
            domain=o["domain"],
        )
    return decision


__all__ = [
    "DEFAULTS",
    "detect_task",
    "evaluate",
    "load_options",
    "make_estimator",
    "make_pipeline",
    "score",
    "training_pipeline",
]
