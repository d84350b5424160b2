"""Small deterministic models shared by the registry tests."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression


def frame(rows: int = 40, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    data = pd.DataFrame(rng.normal(size=(rows, 3)), columns=["age", "spend", "visits"])
    data["visits"] = rng.integers(0, 10, size=rows)
    return data


def labels(data: pd.DataFrame) -> np.ndarray:
    return (data["age"] + data["spend"] > 0).astype(int).to_numpy()


def fitted_classifier(seed: int = 0) -> tuple[LogisticRegression, pd.DataFrame]:
    data = frame(seed=seed)
    return LogisticRegression().fit(data, labels(data)), data


class Doubler:
    """An object with predict(); cloudpickle saves it by value since tests are not
    installed packages on a server."""

    def predict(self, data: pd.DataFrame) -> np.ndarray:
        return data["x"].to_numpy() * 2
