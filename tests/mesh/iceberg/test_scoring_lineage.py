"""OpenLineage events of work done outside the mesh over an Iceberg port, on both homes of
the conftest: a batch scoring (in this process and on Ray Data), a training run and a model
registration name the scored port's Iceberg table with the same facets as the port's
publish (symlinks, storage, catalog), the events valid against the OpenLineage schemas (the
official ones when MESHOPS_OPENLINEAGE_SPEC names them), sent through the file transport
and through the HTTP transport to a backend on loopback, which gets the same facets."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pyarrow as pa
import pytest

from meshops.client import Platform
from meshops.kernel import openlineage
from meshops.kernel.home import Home
from meshops.mesh.models import DataProductVersion
from tests.conftest import make_settings
from tests.mesh.iceberg.conftest import iceberg_port
from tests.openlineage.conftest import NAMESPACE, Events, write_config
from tests.openlineage.spec_check import assert_valid
from tests.serving.helpers import FEATURES, fitted, register_churn, training_frame
from tests.support.products import data_contract, data_product

ROWS = 300
STORAGE = ("symlinks", "storage", "catalog")
PORT = "shop.customers.customers"


class EventSource(Protocol):
    def all(self) -> list[dict[str, Any]]: ...


class Backend:
    """An OpenLineage backend on loopback: keeps every event POSTed to it, as sent."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.paths: set[str] = set()
        backend = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                backend.paths.add(self.path)
                backend.received.append(json.loads(body))
                self.send_response(201)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def all(self) -> list[dict[str, Any]]:
        return list(self.received)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def sink(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EventSource]:
    """Where the test home's events go: a JSON-lines file (default), or a backend over HTTP
    (the conftest's `home` is made in tmp_path/home, after this fixture wrote its
    meshops.toml)."""
    if getattr(request, "param", "file") == "file":
        path = tmp_path / "openlineage.jsonl"
        write_config(tmp_path / "home", path)
        yield Events(path)
        return
    backend = Backend()
    home_dir = tmp_path / "home"
    home_dir.mkdir(parents=True, exist_ok=True)
    (home_dir / "meshops.toml").write_text(
        f'[openlineage]\ntransport = "http"\nurl = "{backend.url}"\nnamespace = "{NAMESPACE}"\n'
    )
    yield backend
    backend.close()
    assert backend.paths == {"/api/v1/lineage"}


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture
def platform(sink: EventSource, home: Home) -> Iterator[Platform]:
    """The conftest's home (with `sink` configured), the churn model and an Iceberg port."""
    p = Platform(home.settings, home=home)
    register_churn(p, domain="shop")
    yield p
    p.close()


def publish_customers(platform: Platform) -> DataProductVersion:
    rng = np.random.default_rng(3)
    columns: dict[str, Any] = {"customer_id": pa.array(range(ROWS), pa.int64())}
    columns.update({f: rng.normal(size=ROWS) for f in FEATURES})
    properties = [{"name": "customer_id", "logicalType": "integer"}]
    properties += [{"name": f, "logicalType": "number"} for f in FEATURES]
    descriptor = iceberg_port(data_product("shop.customers", "customers-contract"))
    return platform.mesh.publish_arrow(
        descriptor,
        {"customers": data_contract("customers-contract", "customers", properties)},
        {"customers": pa.table(columns)},
    )


def of_job(events: list[dict[str, Any]], job: str) -> list[dict[str, Any]]:
    return [e for e in events if e["job"]["name"] == job]


def dataset(event: dict[str, Any], side: str, name: str) -> dict[str, Any]:
    [found] = [d for d in event[side] if d["name"] == name]
    assert found["namespace"] == NAMESPACE
    return found


def storage_of(facets: dict[str, Any]) -> dict[str, Any]:
    return {key: facets[key] for key in STORAGE if key in facets}


def published_storage(events: list[dict[str, Any]]) -> dict[str, Any]:
    """The storage facets the publish of shop.customers gave its Iceberg port."""
    [*_, complete] = of_job(events, "shop.customers.build")
    assert complete["eventType"] == "COMPLETE"
    facets = storage_of(dataset(complete, "outputs", PORT)["facets"])
    assert set(facets) == set(STORAGE)
    assert facets["storage"]["storageLayer"] == "iceberg"
    assert facets["catalog"]["framework"] == "iceberg"
    return facets


def assert_names_the_table(home: Home, facets: dict[str, Any]) -> None:
    from meshops.mesh import iceberg

    identifiers = {i["type"]: i for i in facets["symlinks"]["identifiers"]}
    assert identifiers["TABLE"]["name"] == "shop.customers__customers__v1"
    assert identifiers["TABLE"]["namespace"] == iceberg.warehouse_url(home.settings)
    location = iceberg.load_table(home.settings, "shop.customers__customers__v1").location()
    assert identifiers["LOCATION"]["name"] in location


@pytest.mark.parametrize(
    ("sink", "engine"), [("file", "local"), ("file", "ray"), ("http", "local")], indirect=["sink"]
)
def test_batch_scoring_names_the_iceberg_table_it_scores(
    request: pytest.FixtureRequest,
    engine: str,
    sink: EventSource,
    home: Home,
    platform: Platform,
) -> None:
    if engine == "ray":
        request.getfixturevalue("local_ray")
    source = publish_customers(platform)
    scored = platform.serving.batch_score(
        "churn@champion", "shop.customers", output="shop.scores", engine=engine, workers=2
    )
    assert scored.row_count == ROWS

    events = sink.all()
    for event in events:
        assert_valid(event)
    expected = published_storage(events)
    assert_names_the_table(home, expected)
    scoring = of_job(events, "shop.scores.batch_score")
    assert [e["eventType"] for e in scoring] == ["START", "COMPLETE"]
    read = dataset(scoring[-1], "inputs", PORT)
    assert read["facets"]["version"]["datasetVersion"] == source.version
    assert storage_of(read["facets"]) == expected  # the same table, named the same way
    # The predictions are a Parquet port: no table to name, in the scoring or its publish.
    predictions = f"shop.scores.{scored.ports[0].name}"
    assert not storage_of(dataset(scoring[-1], "outputs", predictions)["facets"])
    [*_, publish] = of_job(events, "shop.scores.build")
    assert storage_of(dataset(publish, "inputs", PORT)["facets"]) == expected
    assert not storage_of(dataset(publish, "outputs", predictions)["facets"])


def test_training_and_registration_name_the_iceberg_table(
    sink: EventSource, home: Home, platform: Platform
) -> None:
    source = publish_customers(platform)
    frame, _ = training_frame()
    with platform.tracking.start_run("churn-training", capture_environment=False) as run:
        run.log_input(source.urn)
    platform.registry.log_model("churn", fitted(1), input_example=frame.head(3), run_id=run.id)

    events = sink.all()
    for event in events:
        assert_valid(event)
    expected = published_storage(events)
    [*_, training] = of_job(events, "tracking.churn-training")
    [*_, registration] = of_job(events, "registry.churn")
    for event in (training, registration):
        assert event["eventType"] == "COMPLETE"
        assert storage_of(dataset(event, "inputs", PORT)["facets"]) == expected


def test_an_iceberg_output_port_is_named_like_its_publish(
    sink: EventSource, home: Home, platform: Platform
) -> None:
    """What a batch scoring says of an output port (kernel.openlineage.stored_port_dataset,
    through the LINEAGE_FACETS port): for an Iceberg port, what its publish says."""
    source = publish_customers(platform)
    expected = published_storage(sink.all())
    out = openlineage.stored_port_dataset(
        home.context(), source.product, "customers", source.version
    )
    sent = json.loads(openlineage.to_json(openlineage.run_event(
        "COMPLETE", NAMESPACE, "check", openlineage.run_id_of("check"), job_type="SCORING",
        outputs=[out],
    )))  # fmt: skip
    assert_valid(sent)
    assert storage_of(dataset(sent, "outputs", PORT)["facets"]) == expected


def test_a_parquet_port_or_an_unreadable_version_adds_no_facets(tmp_path: Path) -> None:
    home = Home(make_settings(tmp_path / "plain"))
    platform = Platform(home.settings, home=home)
    try:
        ctx = home.context()
        rows = pa.table({"customer_id": pa.array([1, 2], pa.int64())})
        platform.mesh.publish_arrow(
            data_product("shop.plain", "plain-contract"),
            {"plain": data_contract("plain-contract", "plain",
                                    [{"name": "customer_id", "logicalType": "integer"}])},
            {"plain": rows},
        )  # fmt: skip
        assert openlineage.storage_facets(ctx, "shop.plain", "plain", "1.0.0") == {}
        assert openlineage.storage_facets(ctx, "shop.absent", "main", "1.0.0") == {}
    finally:
        platform.close()
        home.close()
