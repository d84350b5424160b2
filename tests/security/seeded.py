"""A served home with something in every area, for the adversarial tests that drive the
API over real HTTP (bounds, Schemathesis): a published product, a tracked run (with a NaN
metric), a registered model and the admin's token."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
from sklearn.linear_model import LogisticRegression

from meshops.client import Platform
from meshops.kernel.home import Home
from tests.conftest import LiveServer, make_settings
from tests.features.helpers import publish

PRODUCT = "shop.items"
MODEL = "churn"
EXPERIMENT = "bounds"


@dataclass
class Seeded:
    server: LiveServer
    home: Home
    run_id: str

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def headers(self) -> dict[str, str]:
        return self.server.headers


def seed(home: Home) -> str:
    """Fills `home` through the embedded platform; returns the run's id."""
    platform = Platform(home.settings, home=home)
    table = pa.table({"id": [1, 2, 3], "price": [1.5, 2.5, float("nan")], "name": ["a", "b", "c"]})
    publish(platform, PRODUCT, "1.0.0", table)
    run = platform.tracking.create_run(EXPERIMENT, name="seeded", capture_environment=False)
    platform.tracking.log_metric(run.id, "loss", float("nan"))
    platform.tracking.log_metric(run.id, "auc", 0.5)
    platform.tracking.end_run(run.id)
    x = np.array([[0.0], [1.0], [2.0], [3.0]])
    model = LogisticRegression().fit(x, [0, 0, 1, 1])
    platform.registry.log_model(MODEL, model, input_example=x[:2], run_id=run.id)
    return run.id


@contextmanager
def seeded_server(home_dir: Path) -> Iterator[Seeded]:
    home = Home(make_settings(home_dir))
    try:
        run_id = seed(home)
        with LiveServer(home) as server:
            yield Seeded(server, home, run_id)
    finally:
        home.close()
