"""A small scikit-learn model registered through the real registry, for serving tests."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from sklearn.linear_model import LogisticRegression

from meshops.client import Platform

FEATURES = ["tenure", "spend", "calls", "age"]


def training_frame(seed: int = 0, n: int = 400) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({name: rng.normal(size=n) for name in FEATURES})
    target = (frame["tenure"] + 0.5 * frame["spend"] > 0).astype(int).to_numpy()
    return frame, target


@functools.cache
def fitted(version: int = 1) -> LogisticRegression:
    """The model `register_churn` logs as `version` (fitting is deterministic)."""
    frame, target = training_frame()
    y = target if (version - 1) % 2 == 0 else 1 - target
    return LogisticRegression().fit(frame, y)


def register_churn(
    platform: Platform, versions: int = 1, domain: str = "sales", name: str = "churn"
) -> None:
    """`name` versions 1..n (version k predicts with its own coefficients) and
    champion -> 1."""
    platform.registry.create_model(name, domain=domain)
    frame, _ = training_frame()
    for k in range(1, versions + 1):
        # Labels flip for even versions so versions are told apart by their outputs.
        # Evaluation metrics: the default promotion gate wants them for `champion`.
        platform.registry.log_model(
            name, fitted(k), input_example=frame.head(5), metrics={"accuracy": 0.9}
        )
    platform.registry.set_alias(name, "champion", 1)


def justify_move(
    platform: Platform, version: int, name: str = "churn", trust: bool = False
) -> None:
    """Record v`version` scored against the current champion on rows labelled the way it
    predicts (odd versions the target, even ones its opposite): the default promotion gate
    wants a comparison on the same data before champion moves; these tests are about
    serving the move, not about which model is better."""
    frame, target = training_frame(seed=1)
    labels = target if (version - 1) % 2 == 0 else 1 - target
    data = pa.Table.from_pandas(frame.assign(label=labels))
    assert platform.registry.compare(name, version, data=data, label="label", trust=trust).allowed


def record(i: int = 0) -> dict[str, Any]:
    rng = np.random.default_rng(i)
    return {name: float(v) for name, v in zip(FEATURES, rng.normal(size=4), strict=True)}


def expected(records: list[dict[str, Any]], version: int = 1) -> list[int]:
    """What `fitted(version)` predicts for `records` (computed here, not by meshops)."""
    frame = pd.DataFrame([{f: r[f] for f in FEATURES} for r in records])
    return [int(v) for v in fitted(version).predict(frame)]
