"""The home the server fault tests load: a run to write tags to, a served model and a
materialized feature view, on the given metadata database and online store."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from meshops.client import Platform
from meshops.kernel.config import load_settings
from meshops.kernel.home import Home
from tests.features.helpers import publish
from tests.features.test_end_to_end import hours, orders_v1, repo
from tests.serving.helpers import record, register_churn

LOOKUP = {
    "entity_rows": [{"customer_id": 1}],
    "features": ["customer_stats:orders_7d"],
    "now": hours(12).isoformat(),
}
PREDICT_RECORDS = [record(i) for i in range(16)]


@dataclass(frozen=True)
class Prepared:
    home: Path
    env: dict[str, str]  # what the server needs besides MESHOPS_HOME
    token: str
    run_id: str


def prepare(home: Path, database_url: str, online_store: dict[str, Any] | None) -> Prepared:
    home.mkdir(parents=True)
    config = home / "meshops.toml"
    if online_store:
        config.write_text(f"[features.online_store]\n{_toml(online_store)}")
    else:
        config.write_text("")
    env = {
        "MESHOPS_USER": "alice",
        "MESHOPS_CONFIG": str(config),
        "MESHOPS_DATABASE_URL": database_url,
    }
    settings = load_settings(home=home, env=env)
    home_db = Home(settings)
    try:
        with Platform(settings, home=home_db) as owner:
            register_churn(owner)
            owner.serving.create_endpoint("churn-api", "churn@champion")
            publish(owner, "sales.customer_stats", "1.0.0", orders_v1())
            owner.features.apply(repo())
            owner.features.materialize(end=hours(12))
            token = owner.governance.create_token("faults").token
            run = owner.tracking.create_run("faults", name="under-load")
    finally:
        home_db.close()
    return Prepared(home, env, token, run.id)


def _toml(values: dict[str, Any]) -> str:
    return "".join(f"{key} = {json.dumps(value)}\n" for key, value in values.items())


async def write_tag(http: httpx.AsyncClient, client: int, n: int, *, run_id: str) -> httpx.Response:
    return await http.post(f"/v1/runs/{run_id}/tags", json={"tags": {f"c{client}-{n}": "1"}})


async def predict(http: httpx.AsyncClient, client: int, n: int) -> httpx.Response:
    body = {"records": [PREDICT_RECORDS[(client + n) % len(PREDICT_RECORDS)]]}
    # The request id is the prediction log's key: each answered prediction is counted there.
    headers = {"x-request-id": f"c{client}-{n}"}
    return await http.post("/v1/endpoints/churn-api/predict", json=body, headers=headers)


async def lookup(http: httpx.AsyncClient, client: int, n: int) -> httpx.Response:
    return await http.post("/v1/features/online", json=LOOKUP)


def logged_predictions(prepared: Prepared) -> set[str]:
    """The request ids in the endpoint's prediction log (after the server stopped, which
    writes what it buffered)."""
    settings = load_settings(home=prepared.home, env=prepared.env)
    home = Home(settings, auto_upgrade=False)
    try:
        with Platform(settings, home=home) as platform:
            window = platform.serving.prediction_window("churn-api", with_labels=False)
    finally:
        home.close()
    return {str(v) for v in window.column("request_id").to_pylist()}
