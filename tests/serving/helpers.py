"""A small scikit-learn model registered through the real registry, for serving tests."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from meshops.client import Platform

FEATURES = ["tenure", "spend", "calls", "age"]


def training_frame(seed: int = 0, n: int = 400) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({name: rng.normal(size=n) for name in FEATURES})
    target = (frame["tenure"] + 0.5 * frame["spend"] > 0).astype(int).to_numpy()
    return frame, target


def register_churn(platform: Platform, versions: int = 1, domain: str = "sales") -> None:
    """`churn` versions 1..n (version k predicts with its own coefficients) and
    champion -> 1."""
    platform.registry.create_model("churn", domain=domain)
    frame, target = training_frame()
    for k in range(versions):
        # Flip the labels for even versions so versions are told apart by their outputs.
        y = target if k % 2 == 0 else 1 - target
        model = LogisticRegression().fit(frame, y)
        platform.registry.log_model("churn", model, input_example=frame.head(5))
    platform.registry.set_alias("churn", "champion", 1)


def record(i: int = 0) -> dict[str, Any]:
    rng = np.random.default_rng(i)
    return {name: float(v) for name, v in zip(FEATURES, rng.normal(size=4), strict=True)}
