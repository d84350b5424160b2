"""Real scikit-learn pipelines over mixed column types, registered through the registry as
skops files, for the serving tests of nulls, types and probabilities.

`penguins`: a synthetic penguin table (float, integer, string, boolean and datetime columns,
with missing values in the float and string ones) whose species follow the measurements. The
pipelines are what a data scientist writes: a ColumnTransformer imputing numbers (median)
and categories (most frequent) and one-hot encoding the categories with
`handle_unknown="ignore"`; the datetime column is in the signature but dropped by the
transformer. `iris`: scikit-learn's own iris data (load_iris) with its class names.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_iris
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from meshops.client import Platform

NUMBERS = ["bill_length_mm", "flipper_length_mm"]
CATEGORIES = ["island", "male"]
PENGUIN_COLUMNS = [*NUMBERS, *CATEGORIES, "observed"]
IRIS_COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def penguins(n: int = 300, seed: int = 0) -> tuple[pd.DataFrame, pd.Series, pd.Series]:
    """(features, species in {"Adelie", "Gentoo"}, body mass in g)."""
    rng = np.random.default_rng(seed)
    gentoo = rng.random(n) < 0.5
    frame = pd.DataFrame(
        {
            "bill_length_mm": np.where(gentoo, 47.5, 38.8) + rng.normal(0, 2.5, n),
            "flipper_length_mm": np.where(gentoo, 217, 190) + rng.integers(-8, 9, n),
            "island": np.where(gentoo, "Biscoe", rng.choice(["Dream", "Torgersen"], n)),
            "male": rng.random(n) < 0.5,
            "observed": pd.to_datetime("2023-01-01")
            + pd.to_timedelta(rng.integers(0, 365, n), "D"),
        }
    )
    frame["island"] = frame["island"].astype(object)
    frame.loc[frame.index[3::11], "bill_length_mm"] = np.nan
    frame.loc[frame.index[5::13], "island"] = None
    species = pd.Series(np.where(gentoo, "Gentoo", "Adelie"), name="species")
    mass = pd.Series(np.where(gentoo, 5000.0, 3700.0) + rng.normal(0, 150, n), name="mass")
    return frame, species, mass


def _preprocess() -> ColumnTransformer:
    return ColumnTransformer(
        [
            ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), NUMBERS),
            (
                "cat",
                make_pipeline(
                    SimpleImputer(strategy="most_frequent"),
                    OneHotEncoder(handle_unknown="ignore"),
                ),
                CATEGORIES,
            ),
        ]
    )


def penguin_classifier() -> Pipeline:
    frame, species, _ = penguins()
    return Pipeline([("pre", _preprocess()), ("clf", LogisticRegression())]).fit(frame, species)


def penguin_regressor() -> Pipeline:
    frame, _, mass = penguins()
    return Pipeline([("pre", _preprocess()), ("reg", Ridge())]).fit(frame, mass)


def iris() -> tuple[pd.DataFrame, np.ndarray]:
    data = load_iris()
    frame = pd.DataFrame(data.data, columns=IRIS_COLUMNS)
    return frame, np.asarray(data.target_names)[data.target]


def iris_classifier() -> Pipeline:
    frame, species = iris()
    model = make_pipeline(SimpleImputer(strategy="median"), LogisticRegression(max_iter=1000))
    return model.fit(frame, species)


def register(platform: Platform, name: str, model: Any, example: pd.DataFrame) -> str:
    """Register `model` as version 1 of `name` (skops) and return its pinned reference."""
    platform.registry.create_model(name, domain="sales")
    version = platform.registry.log_model(name, model, input_example=example)
    assert version.flavor == "sklearn"
    return f"{name}/{version.version}"


def penguin_record(i: int = 0) -> dict[str, Any]:
    """Row `i` of the training table as a JSON record (None for a missing value)."""
    frame, _, _ = penguins()
    row = frame.iloc[i]
    bill = row["bill_length_mm"]
    island = row["island"]
    return {
        "bill_length_mm": None if pd.isna(bill) else float(bill),
        "flipper_length_mm": int(row["flipper_length_mm"]),
        "island": None if island is None or pd.isna(island) else str(island),
        "male": bool(row["male"]),
        "observed": row["observed"].isoformat(),
    }


def expected_frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    """The records as the pipeline's own training dtypes would hold them (computed here
    with pandas, independently of meshops): NaN/None for nulls."""
    return pd.DataFrame(
        {
            "bill_length_mm": pd.Series(
                [np.nan if r["bill_length_mm"] is None else r["bill_length_mm"] for r in records],
                dtype="float64",
            ),
            "flipper_length_mm": pd.Series(
                [
                    np.nan if r["flipper_length_mm"] is None else r["flipper_length_mm"]
                    for r in records
                ],
                dtype="float64",
            ),
            "island": pd.Series([r["island"] for r in records], dtype=object),
            "male": pd.Series([r["male"] for r in records], dtype=object),
            "observed": pd.to_datetime([r["observed"] for r in records]),
        }
    )
