"""Serving takes what the model signature allows, per record, over HTTP on loopback: both
`meshops server`'s predict route and the standalone data plane of `meshops serve`.

The models are real scikit-learn Pipelines (ColumnTransformer: SimpleImputer + OneHotEncoder
with handle_unknown="ignore") registered as skops files (tests/serving/typed_models.py);
expected answers come from calling those pipelines directly on frames built here."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import uvicorn

from meshops.client import Platform
from meshops.governance.authn import authenticate_token
from meshops.kernel.errors import InvalidInput, NotFound
from meshops.kernel.home import Home
from meshops.kernel.http import HttpTransport
from meshops.serving import batch
from meshops.serving.endpoint_app import create_endpoint_app
from tests.conftest import LiveServer, free_port, make_settings
from tests.features.helpers import publish
from tests.serving import typed_models as tm
from tests.support.cli import run_main

PENGUINS, MASS, IRIS = "penguins-api", "mass-api", "iris-api"


class Models:
    def __init__(self) -> None:
        self.penguins = tm.penguin_classifier()
        self.mass = tm.penguin_regressor()
        self.iris = tm.iris_classifier()


class Served:
    """A platform with the three endpoints, and one HTTP server in front of it."""

    def __init__(self, platform: Platform, home: Home, models: Models, url: str, token: str):
        self.platform, self.home, self.models = platform, home, models
        self.url, self.token = url, token
        self.headers = {"authorization": f"Bearer {token}"}

    def post(self, endpoint: str, body: Any, query: str = "") -> httpx.Response:
        path = f"{self.url}/v1/endpoints/{endpoint}/predict{query}"
        return httpx.post(path, json=body, headers=self.headers, timeout=30)

    def predictions(self, endpoint: str, records: list[dict[str, Any]], **extra: Any) -> Any:
        answer = self.post(endpoint, {"records": records, **extra})
        assert answer.status_code == 200, answer.text
        return answer.json()["predictions"]

    def logged(self, endpoint: str) -> int:
        self.platform.serving.flush()
        window = self.platform.serving.prediction_window(endpoint, with_labels=False)
        return int(window.num_rows)


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Platform, Home, Models]]:
    home = Home(make_settings(tmp_path_factory.mktemp("typed") / "home"))
    platform = Platform(home.settings, home=home)
    models = Models()
    frame, _, _ = tm.penguins()
    iris, _ = tm.iris()
    for endpoint, name, model, example in (
        (PENGUINS, "penguins", models.penguins, frame.head(5)),
        (MASS, "mass", models.mass, frame.head(5)),
        (IRIS, "iris", models.iris, iris.head(5)),
    ):
        platform.serving.create_endpoint(endpoint, tm.register(platform, name, model, example))
    yield platform, home, models
    platform.close()
    home.close()


class Standalone:
    """`meshops serve`'s app (the DataPlane answering predict straight from ASGI) under
    uvicorn on a free loopback port, in a thread."""

    def __init__(self, home: Home) -> None:
        from meshops.governance.service import GovernanceService

        self.url = f"http://127.0.0.1:{free_port()}"
        self.token = GovernanceService(home.context()).create_token("serve-tests").token
        app = create_endpoint_app(home, [PENGUINS, MASS, IRIS], authenticate_token)
        port = int(self.url.rsplit(":", 1)[1])
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Standalone:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("standalone server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture(scope="module", params=["server", "standalone"])
def served(
    request: pytest.FixtureRequest, deployed: tuple[Platform, Home, Models]
) -> Iterator[Served]:
    platform, home, models = deployed
    live = LiveServer(home) if request.param == "server" else Standalone(home)
    with live:
        yield Served(platform, home, models, live.url, live.token)


def _local(models: Models, records: list[dict[str, Any]]) -> list[str]:
    return [str(v) for v in models.penguins.predict(tm.expected_frame(records))]


# --- nulls ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "column", ["bill_length_mm", "flipper_length_mm", "island", "male", "observed"]
)
def test_a_null_is_accepted_alone_and_in_any_batch(served: Served, column: str) -> None:
    """The issue's case for every column type: a single record with a null, the same record
    in a batch where the others have a value, and a batch of nulls only all give the same
    answer for it: what the pipeline itself predicts with NaN/None there."""
    record = {**tm.penguin_record(0), column: None}
    others = [tm.penguin_record(i) for i in (1, 2)]
    expected = _local(served.models, [record])[0]
    assert served.predictions(PENGUINS, [record]) == [expected]
    mixed = served.predictions(PENGUINS, [others[0], record, others[1]])
    assert mixed == _local(served.models, [others[0], record, others[1]])
    assert mixed[1] == expected
    nulls = [{**r, column: None} for r in others]
    assert served.predictions(PENGUINS, [record, *nulls]) == _local(served.models, [record, *nulls])


def test_every_column_null_and_numbers_of_either_kind(served: Served) -> None:
    blank = dict.fromkeys(tm.PENGUIN_COLUMNS)
    assert served.predictions(PENGUINS, [blank]) == _local(served.models, [blank])
    # An integer in the float column, 3.0 in the integer one: numbers either way in JSON.
    record = {**tm.penguin_record(4), "bill_length_mm": 45, "flipper_length_mm": 215.0}
    assert served.predictions(PENGUINS, [record]) == _local(served.models, [record])
    # A numeric-only model (the float fast path) takes nulls too: the imputer fills them.
    iris = {"sepal_length": None, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": None}
    local = served.models.iris.predict(
        pd.DataFrame([iris], columns=tm.IRIS_COLUMNS).astype("float64")
    )
    assert served.predictions(IRIS, [iris]) == [str(local[0])]


def test_regressor_with_nulls_in_a_mixed_batch(served: Served) -> None:
    records = [tm.penguin_record(i) for i in range(4)]
    records[2] = {**records[2], "island": None, "male": None, "flipper_length_mm": None}
    answer = served.predictions(MASS, records)
    local = served.models.mass.predict(tm.expected_frame(records))
    assert np.allclose(answer, local)


# --- errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        (
            "bill_length_mm",
            "abc",
            "record 3: column 'bill_length_mm' should be a number, got \"abc\"",
        ),
        (
            "flipper_length_mm",
            1.5,
            "record 3: column 'flipper_length_mm' should be an integer, got 1.5",
        ),
        ("male", "yes", "record 3: column 'male' should be true or false, got \"yes\""),
        ("island", 7, "record 3: column 'island' should be a string, got 7"),
        ("bill_length_mm", True, "record 3: column 'bill_length_mm' should be a number, got true"),
        ("observed", "last tuesday", "record 3: column 'observed' should be an ISO 8601"),
        (
            "island",
            {"name": "Dream"},
            "record 3: column 'island' should be a string, got an object",
        ),
    ],
)
def test_a_wrong_type_is_refused_naming_record_and_column(
    served: Served, column: str, value: Any, message: str
) -> None:
    before = served.logged(PENGUINS)
    records = [tm.penguin_record(i) for i in range(5)]
    records[3] = {**records[3], column: value}
    answer = served.post(PENGUINS, {"records": records})
    assert answer.status_code == 422, answer.text
    body = answer.json()
    assert body["error"] == "invalid_input"
    assert body["message"].startswith(message)
    assert (body["detail"]["record"], body["detail"]["field"]) == (3, column)
    assert column in body["detail"]["fix"]
    assert served.logged(PENGUINS) == before  # nothing of the refused request is logged


def test_a_missing_column_names_its_record(served: Served) -> None:
    records = [tm.penguin_record(0), {k: v for k, v in tm.penguin_record(1).items() if k != "male"}]
    answer = served.post(PENGUINS, {"records": records})
    assert answer.status_code == 422
    detail = answer.json()["detail"]
    assert (detail["record"], detail["field"]) == (1, "male")
    assert "null for a missing value" in detail["fix"]


# --- unseen categories ---------------------------------------------------------------------


def test_an_unseen_category_reaches_the_model(served: Served) -> None:
    """handle_unknown="ignore": the encoder gives an all-zero row; the model decides."""
    for island in ("Atlantis", "", "Île Crozet"):
        record = {**tm.penguin_record(6), "island": island}
        answer = served.predictions(PENGUINS, [record], proba=True)[0]
        local = served.models.penguins.predict_proba(tm.expected_frame([record]))[0]
        assert answer["proba_Adelie"] == pytest.approx(local[0])
        assert answer["prediction"] == _local(served.models, [record])[0]


# --- probabilities -------------------------------------------------------------------------


def test_binary_probabilities_with_named_columns(served: Served) -> None:
    records = [tm.penguin_record(i) for i in range(6)]
    records[1] = {**records[1], "bill_length_mm": None}
    before = served.logged(PENGUINS)
    answer = served.predictions(PENGUINS, records, proba=True)
    local = served.models.penguins.predict_proba(tm.expected_frame(records))
    labels = _local(served.models, records)
    assert list(served.models.penguins.classes_) == ["Adelie", "Gentoo"]
    for got, row, label in zip(answer, local, labels, strict=True):
        assert list(got) == ["prediction", "proba_Adelie", "proba_Gentoo"]
        assert got["prediction"] == label
        assert [got["proba_Adelie"], got["proba_Gentoo"]] == pytest.approx(list(row))
    # The query form asks the same; the log keeps the label (one `prediction` column).
    query = served.post(PENGUINS, {"records": records}, "?proba=true").json()["predictions"]
    assert query == answer
    window = served.platform.serving.prediction_window(PENGUINS, with_labels=False)
    assert served.logged(PENGUINS) == before + 2 * len(records)
    assert window.column("prediction").to_pylist()[-len(records) :] == labels


def test_multiclass_probabilities_of_iris(served: Served) -> None:
    frame, species = tm.iris()
    rows = frame.iloc[[0, 60, 120]]
    records = [{k: float(v) for k, v in r.items()} for r in rows.to_dict("records")]
    answer = served.predictions(IRIS, records, proba=True)
    local = served.models.iris.predict_proba(rows)
    names = ["proba_setosa", "proba_versicolor", "proba_virginica"]
    for got, row, truth in zip(answer, local, species[[0, 60, 120]], strict=True):
        assert list(got) == ["prediction", *names]
        assert [got[n] for n in names] == pytest.approx(list(row))
        assert sum(got[n] for n in names) == pytest.approx(1.0)
        assert got["prediction"] == truth  # iris is easy: these three are right
    # Without the option, the same labels as plain predictions.
    assert served.predictions(IRIS, records) == [a["prediction"] for a in answer]


def test_probabilities_of_a_regressor_are_a_clear_4xx(served: Served) -> None:
    answer = served.post(MASS, {"records": [tm.penguin_record(0)], "proba": True})
    assert answer.status_code == 422
    body = answer.json()
    assert body["detail"]["field"] == "proba"
    assert "no class probabilities" in body["message"] and "Pipeline" in body["message"]
    bad = served.post(PENGUINS, {"records": [tm.penguin_record(0)]}, "?proba=maybe")
    assert (bad.status_code, bad.json()["detail"]["field"]) == (422, "proba")
    bad = served.post(PENGUINS, {"records": [tm.penguin_record(0)], "proba": "yes"})
    assert (bad.status_code, bad.json()["detail"]["field"]) == (422, "proba")


def test_sdk_asks_for_probabilities(deployed: tuple[Platform, Home, Models]) -> None:
    platform, _, models = deployed
    record = {**tm.penguin_record(2), "island": None}
    got = platform.serving.predict(PENGUINS, [record], proba=True).predictions[0]
    local = models.penguins.predict_proba(tm.expected_frame([record]))[0]
    assert [got["proba_Adelie"], got["proba_Gentoo"]] == pytest.approx(list(local))


# --- batch scoring -------------------------------------------------------------------------


def test_batch_scoring_takes_nulls_and_names_the_bad_row(
    deployed: tuple[Platform, Home, Models], monkeypatch: pytest.MonkeyPatch
) -> None:
    platform, _, models = deployed
    records = [tm.penguin_record(i) for i in range(40)]
    records[7] = dict.fromkeys(tm.PENGUIN_COLUMNS)
    records[9] = {**records[9], "flipper_length_mm": None, "male": None}
    table = pa.table(
        {
            "bill_length_mm": pa.array([r["bill_length_mm"] for r in records], pa.float64()),
            "flipper_length_mm": pa.array([r["flipper_length_mm"] for r in records], pa.int64()),
            "island": pa.array([r["island"] for r in records], pa.string()),
            "male": pa.array([r["male"] for r in records], pa.bool_()),
            "observed": pa.array(
                [None if r["observed"] is None else pd.Timestamp(r["observed"]) for r in records],
                pa.timestamp("us"),
            ),
        }
    )
    publish(platform, "sales.penguin_rows", "1.0.0", table)
    platform.serving.batch_score("penguins/1", "sales.penguin_rows", output="sales.penguin_scores")
    scored = platform.mesh.read("sales.penguin_scores", "1.0.0")
    assert scored.column("prediction").to_pylist() == _local(models, records)

    # A string in the float column of row 23 (the third chunk of 10 rows): refused naming
    # the row of the input, nothing published.
    monkeypatch.setattr(batch, "CHUNK_ROWS", 10)
    strings = pa.array([None] * 23 + ["abc"] + [None] * 16, pa.string())
    publish(platform, "sales.penguin_bad", "1.0.0", table.set_column(0, "bill_length_mm", strings))
    with pytest.raises(InvalidInput, match="record 23: column 'bill_length_mm' should be a number"):
        platform.serving.batch_score("penguins/1", "sales.penguin_bad", output="sales.bad_scores")
    with pytest.raises(NotFound):
        platform.mesh.list_versions("sales.bad_scores")


def test_remote_sdk_and_cli_ask_for_probabilities(
    served: Served, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The HTTP client (`proba=True`) and `meshops predict --proba` against the live server."""
    record = {**tm.penguin_record(5), "bill_length_mm": None, "island": "Atlantis"}
    local = served.models.penguins.predict_proba(tm.expected_frame([record]))[0]
    settings = replace(served.home.settings, uri=served.url, token=served.token)
    remote = Platform(settings, http=HttpTransport(served.url, served.token))
    try:
        got = remote.serving.predict(PENGUINS, [record], proba=True).predictions[0]
    finally:
        remote.close()
    assert [got["proba_Adelie"], got["proba_Gentoo"]] == pytest.approx(list(local))
    monkeypatch.setenv("MESHOPS_URI", served.url)
    monkeypatch.setenv("MESHOPS_TOKEN", served.token)
    done = run_main(
        ["predict", PENGUINS, "--data", json.dumps([record]), "--proba"], monkeypatch, capsys
    )
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)["predictions"][0]
    assert printed["proba_Gentoo"] == pytest.approx(local[1])
    refused = run_main(
        ["predict", MASS, "--data", json.dumps([record]), "--proba"], monkeypatch, capsys
    )
    assert refused.returncode == 2
    assert "no class probabilities" in refused.stderr
