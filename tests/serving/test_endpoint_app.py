"""The standalone data plane (`meshops serve`'s app) over HTTP in-process: answers, errors
and headers of the predict path it serves straight from ASGI; the record checks it relies
on; and the reload poll's cost."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import orjson
import pytest
from sqlalchemy import event
from starlette.testclient import TestClient

from meshops.client import Platform
from meshops.governance.authn import authenticate_token
from meshops.governance.service import GovernanceService
from meshops.kernel.errors import InvalidInput, MeshopsError
from meshops.kernel.home import Home
from meshops.serving import endpoint_app
from meshops.serving.endpoint_app import create_endpoint_app
from meshops.serving.models import SignatureRows
from meshops.serving.runtime import RequestIds, Runtime, runtime_for, score
from tests.serving.helpers import FEATURES, expected, justify_move, record, register_churn


@pytest.fixture
def churn_api(sqlite_home: Home) -> Platform:
    platform = Platform(sqlite_home.settings, home=sqlite_home)
    register_churn(platform, versions=2)
    platform.serving.create_endpoint("churn-api", "churn@champion")
    return platform


def test_standalone_app_predicts_and_refuses_with_clear_errors(
    sqlite_home: Home, churn_api: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = GovernanceService(sqlite_home.context()).create_token("serve").token
    app = create_endpoint_app(sqlite_home, ["churn-api"], authenticate_token)
    auth = {"authorization": f"Bearer {token}"}
    two = [record(0), record(1)]
    with TestClient(app) as http:
        path = "/v1/endpoints/churn-api/predict"
        answer = http.post(path, json={"records": two}, headers={**auth, "x-request-id": "r-1"})
        assert answer.status_code == 200, answer.text
        assert answer.headers["x-request-id"] == "r-1"
        assert answer.json() == {
            "request_id": "r-1",
            "endpoint": "churn-api",
            "model": "churn",
            "model_version": 1,
            "predictions": expected(two),
        }
        generated = http.post(path, json={"records": [record(2)]}, headers=auth)
        assert generated.headers["x-request-id"] == generated.json()["request_id"]
        assert len(generated.json()["request_id"]) == 32
        split = {"dataframe_split": {"columns": FEATURES, "data": [list(record(3).values())]}}
        mlflow = http.post("/invocations", json=split, headers=auth)
        assert mlflow.json()["predictions"] == expected([record(3)])

        def refused(body: Any, status: int, **headers: str) -> dict[str, Any]:
            raw = body if isinstance(body, bytes) else None
            response = http.post(
                path, content=raw, json=None if raw else body, headers={**auth, **headers}
            )
            assert response.status_code == status, response.text
            found: dict[str, Any] = response.json()
            return found

        assert refused(b"{nope", 422)["detail"]["field"] == "body"
        wrong = refused({"records": [record(0), {**record(1), "spend": True}]}, 422)
        assert (wrong["detail"]["record"], wrong["detail"]["field"]) == (1, "spend")
        missing = refused({"records": [{k: v for k, v in record(0).items() if k != "age"}]}, 422)
        assert (missing["detail"]["record"], missing["detail"]["field"]) == (0, "age")
        bad_id = refused({"records": [record(0)]}, 422, **{"x-request-id": "has space"})
        assert bad_id["detail"]["field"] == "request_id"
        assert http.post(path, json={"records": [record(0)]}).status_code == 401
        other = http.post("/v1/endpoints/other-api/predict", json={"records": [record(0)]})
        assert (other.status_code, other.json()["error"]) == (404, "not_found")
        monkeypatch.setattr(endpoint_app, "MAX_BODY_BYTES", 100)
        assert refused({"records": two}, 413)["error"] == "payload_too_large"
        assert http.get("/metrics").status_code == 401  # like every route but health
        metrics = http.get("/metrics", headers=auth).text
        assert 'meshops_serving_errors_total{endpoint="churn-api",error="invalid_input"}' in metrics
        assert http.get("/healthz").json() == {"status": "ok"}
    # Closing the app (lifespan) wrote the log: the 4 scored records, none of the refused.
    window = churn_api.serving.prediction_window("churn-api", with_labels=False)
    assert sorted(window.column("record").to_pylist()) == [0, 0, 0, 1]
    assert window.column("request_id").to_pylist().count("r-1") == 2


def test_an_anonymous_request_loads_no_model(sqlite_home: Home, churn_api: Platform) -> None:
    app = create_endpoint_app(sqlite_home, ["churn-api"], authenticate_token)
    http = TestClient(app)  # outside `with`: no lifespan, so nothing was loaded at start
    answer = http.post("/v1/endpoints/churn-api/predict", json={"records": [record(0)]})
    assert (answer.status_code, answer.json()["error"]) == (401, "unauthenticated")
    assert not runtime_for(sqlite_home).is_loaded("churn-api")


def test_signature_rows_fast_check_agrees_with_the_walk() -> None:
    columns = [("n", "integer"), ("x", "float"), ("flag", "boolean"), ("s", "string")]
    rows = SignatureRows(columns)
    good = [{"n": 1, "x": 2, "flag": True, "s": "a"}, {"n": None, "x": 0.5, "flag": False, "s": ""}]
    assert rows(good) == [[1, 2, True, "a"], [None, 0.5, False, ""]]
    # numpy scalars (an SDK caller's values) are not JSON types but fit: the walk accepts them.
    assert rows([{"n": np.int64(3), "x": np.float64(1.5), "flag": True, "s": "b"}]) == [
        [3, 1.5, True, "b"]
    ]
    for bad, field in [
        ({"n": True, "x": 1.0, "flag": True, "s": "a"}, "n"),  # a bool is no integer
        ({"n": 1, "x": "1.0", "flag": True, "s": "a"}, "x"),
        ({"n": 1, "x": 1.0, "flag": 1, "s": "a"}, "flag"),
        ({"n": 1, "x": 1.0, "flag": True}, "s"),
    ]:
        with pytest.raises(InvalidInput) as info:
            rows([good[0], bad])
        assert (info.value.detail["record"], info.value.detail["field"]) == (1, field)


def test_an_unchanged_platform_costs_the_watcher_one_read(
    sqlite_home: Home, churn_api: Platform
) -> None:
    runtime = Runtime(sqlite_home, watch=False)  # polled here, by the test only
    runtime.deployment("churn-api")
    statements: list[str] = []

    def count(*args: Any) -> None:
        statement = args[2]
        if not statement.upper().startswith(("BEGIN", "COMMIT")):  # SQLite's own BEGIN
            statements.append(statement)

    event.listen(sqlite_home.db.engine, "before_cursor_execute", count)
    try:
        assert runtime.poll() == 0
        assert len(statements) == 1 and "max" in statements[0].lower()
        statements.clear()
        justify_move(churn_api, 2)
        churn_api.registry.set_alias("churn", "champion", 2)
        statements.clear()
        assert runtime.poll() == 1  # the counter moved: checked, reloaded
        assert runtime.deployment("churn-api").primary.version == 2
        assert len(statements) > 1
        churn_api.serving.set_traffic("churn-api", canary="churn/1", canary_percent=50)
        assert runtime.poll() == 1  # traffic changes move the counter too
        assert runtime.deployment("churn-api").canary is not None
    finally:
        event.remove(sqlite_home.db.engine, "before_cursor_execute", count)
        runtime.close()


def test_predict_answers_carry_the_security_headers_on_both_ways_in(
    sqlite_home: Home, churn_api: Platform
) -> None:
    """A JSON body of a declared length is answered without `Edge`, any other body through
    it: both answers (and the refusals) carry the headers Edge puts on every response."""
    app = create_endpoint_app(sqlite_home, ["churn-api"])
    path = "/v1/endpoints/churn-api/predict"
    body = orjson.dumps({"records": [record(0)]})
    json_type = {"content-type": "application/json"}
    with TestClient(app) as http:
        declared = http.post(path, content=body, headers=json_type)
        chunked = http.post(path, content=iter([body[:10], body[10:]]), headers=json_type)
        refused = http.post(path, content=b"{nope", headers=json_type)
    assert declared.status_code == chunked.status_code == 200, (declared.text, chunked.text)
    assert declared.json()["predictions"] == chunked.json()["predictions"] == expected([record(0)])
    assert (refused.status_code, refused.json()["detail"]["field"]) == (422, "body")
    for answer in (declared, chunked, refused):
        assert answer.headers["x-frame-options"] == "DENY"
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
        assert list(answer.headers.keys()).count("x-frame-options") == 1


def test_request_ids_are_random_hex_and_a_forked_child_never_repeats_its_parent() -> None:
    ids = RequestIds()
    drawn = [ids() for _ in range(3 * RequestIds.BLOCK // 16)]  # over several blocks
    assert len(set(drawn)) == len(drawn)
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in drawn)
    ids()  # the parent holds a block it has used part of
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        os.write(write, ids().encode())
        os._exit(0)
    os.waitpid(child, 0)
    os.close(write)
    in_child = os.read(read, 64).decode()
    os.close(read)
    assert len(in_child) == 32 and in_child not in {*drawn, ids(), ids()}


def test_a_finite_input_skips_sklearns_repeat_check_and_a_null_still_meets_it(
    sqlite_home: Home, churn_api: Platform
) -> None:
    import sklearn

    runtime = Runtime(sqlite_home, watch=False)
    try:
        route = runtime.deployment("churn-api").primary
        assert route.numeric and route.sklearn
        two = [record(0), record(1)]
        assert score(route, two) == expected(two)
        assert sklearn.get_config()["assume_finite"] is False  # only for that call
        # LogisticRegression takes no NaN: a null reaches its own check and is refused.
        with pytest.raises(MeshopsError) as info:
            score(route, [record(0), {**record(1), "spend": None}])
        assert "NaN" in info.value.message
    finally:
        runtime.close()
