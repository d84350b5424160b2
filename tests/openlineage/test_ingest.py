"""OpenLineage in (issue #15): events sent by the openlineage-python client's HTTP transport
(the real client, `api_key` = a meshops token) to a real server on loopback land in the one
lineage graph, where `platform.lineage` and `meshops lineage` find them; a dataset named
like a product port of this server joins that product version's node. Malformed events get
a 400 naming the field, a request without a token a 401, a principal without
`lineage.write` a 403."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pytest
from openlineage.client import OpenLineageClient
from openlineage.client.event_v2 import (
    InputDataset,
    Job,
    JobEvent,
    OutputDataset,
    Run,
    RunEvent,
    RunState,
)
from openlineage.client.facet_v2 import dataset_version_dataset, parent_run, schema_dataset
from openlineage.client.transport.http import ApiKeyTokenProvider, HttpConfig, HttpTransport

from meshops.client import Platform
from meshops.kernel.home import Home
from meshops.kernel.http import HttpTransport as MeshopsTransport
from meshops.kernel.openlineage_ingest import dataset_urn, job_urn, run_urn
from tests.conftest import LiveServer, make_settings
from tests.openlineage.conftest import NAMESPACE, write_config
from tests.support.cli import run_main
from tests.support.products import data_contract, data_product

PRODUCER = "https://github.com/OpenLineage/OpenLineage/tree/1.54.0/integration/airflow"
ORDERS = "meshops:dataproduct:sales.orders:1.0.0"


@contextmanager
def serving(
    tmp_path: Path, database_url: str | None
) -> Iterator[tuple[Home, LiveServer, Platform]]:
    """A server whose home is in namespace NAMESPACE, with sales.orders 1.0.0 published."""
    home_dir = tmp_path / "home"
    write_config(home_dir, tmp_path / "emitted.jsonl")
    home = Home(make_settings(home_dir, database_url))
    embedded = Platform(home.settings, home=home)
    embedded.mesh.publish_arrow(
        data_product("sales.orders", "orders-contract", port="orders"),
        {"orders": data_contract("orders-contract", "orders",
                                 [{"name": "order_id", "logicalType": "integer"}])},
        {"orders": pa.table({"order_id": [1, 2, 3]})},
    )  # fmt: skip
    try:
        with LiveServer(home) as server:
            settings = replace(home.settings, uri=server.url, token=server.token)
            remote = Platform(settings, http=MeshopsTransport(server.url, server.token))
            yield home, server, remote
            remote.close()
    finally:
        embedded.close()
        home.close()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Home, LiveServer, Platform]]:
    with serving(tmp_path, None) as setup:
        yield setup


@pytest.fixture(params=["sqlite", "postgres"])
def served_on_each_database(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[Home, LiveServer, Platform]]:
    url = request.getfixturevalue("postgres_url") if request.param == "postgres" else None
    with serving(tmp_path, url) as setup:
        yield setup


def client(server: LiveServer, token: str | None = None) -> OpenLineageClient:
    config = HttpConfig(url=server.url, endpoint="api/v1/lineage", timeout=10.0)
    config.auth = ApiKeyTokenProvider({"apiKey": token or server.token})
    return OpenLineageClient(transport=HttpTransport(config))


def now() -> str:
    return datetime.now(UTC).isoformat()


def run_event(
    state: str,
    run_id: str,
    job: str,
    inputs: list[InputDataset],
    outputs: list[OutputDataset],
    *,
    parent: tuple[str, str] | None = None,
) -> RunEvent:
    facets: dict[str, Any] = {}
    if parent is not None:
        facets["parent"] = parent_run.ParentRunFacet(
            run=parent_run.Run(runId=parent[1]), job=parent_run.Job(namespace="airflow",
                                                                    name=parent[0])
        )  # fmt: skip
    return RunEvent(
        eventType=RunState[state],
        eventTime=now(),
        producer=PRODUCER,
        run=Run(runId=run_id, facets=facets),
        job=Job(namespace="airflow", name=job),
        inputs=inputs,
        outputs=outputs,
    )


def edges(items: list[Any]) -> set[tuple[str, str, str]]:
    return {(e.upstream, e.relation, e.downstream) for e in items}


def test_events_from_the_openlineage_client_join_the_lineage_graph(
    served_on_each_database: tuple[Home, LiveServer, Platform],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, server, platform = served_on_each_database
    ol = client(server)
    dag_run = str(uuid.uuid4())
    load, report = str(uuid.uuid4()), str(uuid.uuid4())
    raw = InputDataset(namespace="postgres://shop-db:5432", name="shop.public.orders")
    lake = OutputDataset(namespace="s3://lake", name="raw/orders")
    # Airflow task 1: the shop database -> the lake.
    for state in ("START", "COMPLETE"):
        ol.emit(run_event(state, load, "etl.load_orders", [raw], [lake], parent=("etl", dag_run)))
    # Airflow task 2 reads the meshops product port (by the name meshops emits it under),
    # and writes a warehouse table.
    port = InputDataset(
        namespace=NAMESPACE,
        name="sales.orders.orders",
        facets={"version": dataset_version_dataset.DatasetVersionDatasetFacet(
            datasetVersion="1.0.0")},
    )  # fmt: skip
    revenue = OutputDataset(
        namespace="postgres://warehouse:5432",
        name="analytics.public.revenue",
        facets={"schema": schema_dataset.SchemaDatasetFacet(
            fields=[schema_dataset.SchemaDatasetFacetFields(name="revenue", type="numeric")])},
    )  # fmt: skip
    for state in ("START", "COMPLETE"):
        ol.emit(run_event(state, report, "etl.revenue_report", [port], [revenue],
                          parent=("etl", dag_run)))  # fmt: skip
    # A JobEvent (static lineage) is accepted too.
    ol.emit(JobEvent(eventTime=now(), producer=PRODUCER, job=Job(namespace="dbt", name="m.x"),
                     inputs=[InputDataset(namespace="s3://lake", name="raw/orders")],
                     outputs=[]))  # fmt: skip

    revenue_urn = dataset_urn("postgres://warehouse:5432", "analytics.public.revenue")
    lake_urn = dataset_urn("s3://lake", "raw/orders")
    # Downstream of the product version: the external run that read its port, its output.
    down = edges(platform.lineage.downstream(ORDERS, depth=3))
    assert (ORDERS, "input_to", run_urn(report)) in down
    assert (run_urn(report), "produced", revenue_urn) in down
    # Upstream of the warehouse table: the run, its job, its parent DAG run, the product.
    up = edges(platform.lineage.upstream(revenue_urn, depth=3))
    assert (job_urn("airflow", "etl.revenue_report"), "ran", run_urn(report)) in up
    assert (run_urn(dag_run), "parent_of", run_urn(report)) in up
    assert (ORDERS, "input_to", run_urn(report)) in up
    up_lake = edges(platform.lineage.upstream(lake_urn, depth=2))
    assert (dataset_urn("postgres://shop-db:5432", "shop.public.orders"), "input_to",
            run_urn(load)) in up_lake  # fmt: skip
    assert (lake_urn, "input_to", job_urn("dbt", "m.x")) in edges(
        platform.lineage.downstream(lake_urn, depth=1)
    )

    # The CLI finds them as well, over HTTP with the token.
    monkeypatch.setenv("MESHOPS_URI", server.url)
    monkeypatch.setenv("MESHOPS_TOKEN", server.token)
    shown = run_main(["lineage", "downstream", ORDERS, "--json"], monkeypatch, capsys)
    assert shown.returncode == 0, shown.stderr
    assert run_urn(report) in shown.stdout and revenue_urn in shown.stdout
    shown = run_main(["lineage", "upstream", revenue_urn, "--json"], monkeypatch, capsys)
    assert shown.returncode == 0, shown.stderr
    assert ORDERS in shown.stdout

    # The product's page draws them in its lineage graph, labelled by name and namespace.
    with httpx.Client(base_url=server.url, timeout=30) as browser:
        login = browser.post("/ui/login", data={"token": server.token, "next": "/ui"})
        assert login.status_code in (200, 303), login.text
        page = browser.get("/ui/products/sales.orders?version=1.0.0")
    assert page.status_code == 200
    assert f'data-urn="{revenue_urn}"' in page.text
    assert "analytics.public.revenue" in page.text and "OpenLineage run" in page.text
    assert "postgres://warehouse:5432" in page.text  # the dataset node names its namespace


def post(server: LiveServer, body: Any, token: str | None = "default") -> httpx.Response:
    headers = {} if token is None else {
        "authorization": f"Bearer {server.token if token == 'default' else token}"}  # fmt: skip
    return httpx.post(f"{server.url}/api/v1/lineage", json=body, headers=headers, timeout=30)


def valid_event() -> dict[str, Any]:
    return {
        "eventType": "START",
        "eventTime": now(),
        "producer": PRODUCER,
        "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
        "run": {"runId": str(uuid.uuid4())},
        "job": {"namespace": "airflow", "name": "etl.task"},
        "inputs": [],
        "outputs": [],
    }


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda e: e["run"].pop("runId"), "run.runId"),
        (lambda e: e["run"].__setitem__("runId", "not-a-uuid"), "run.runId"),
        (lambda e: e.__setitem__("eventType", "DONE"), "eventType"),
        (lambda e: e.pop("eventTime"), "eventTime"),
        (
            lambda e: e.__setitem__(
                "outputs",
                [
                    {
                        "namespace": "s3://x",
                        "name": "y",
                        "facets": {
                            "schema": {
                                "_producer": PRODUCER,
                                "_schemaURL": "https://x/y",
                                "fields": [{"type": "int"}],
                            }
                        },
                    }
                ],
            ),
            "outputs[0].facets.schema.fields[0].name",
        ),
        (
            lambda e: e["job"].__setitem__("facets", {"custom": {"a": 1}}),
            "job.facets.custom._producer",
        ),
    ],
)
def test_a_malformed_event_is_refused_naming_the_field(
    served: tuple[Home, LiveServer, Platform], change: Any, field: str
) -> None:
    _, server, _ = served
    event = valid_event()
    change(event)
    answer = post(server, event)
    assert answer.status_code == 400, answer.text
    body = answer.json()
    assert body["error"] == "invalid_input" and body["detail"]["field"] == field, body
    assert field in body["message"]


def test_bodies_that_are_not_events(served: tuple[Home, LiveServer, Platform]) -> None:
    _, server, _ = served
    headers = {"authorization": f"Bearer {server.token}", "content-type": "application/json"}
    url = f"{server.url}/api/v1/lineage"
    assert httpx.post(url, content=b"{not json", headers=headers).status_code == 400
    assert httpx.post(url, json=[1, 2], headers=headers).status_code == 400
    huge = b'{"x": "' + b"a" * (5 * 1024 * 1024 + 1) + b'"}'
    too_big = httpx.post(url, content=huge, headers=headers, timeout=30)
    assert too_big.status_code in (400, 413), too_big.text
    accepted = post(server, valid_event())
    assert accepted.status_code == 201 and accepted.json()["kind"] == "RunEvent"


def test_ingestion_needs_a_token_and_lineage_write(
    served: tuple[Home, LiveServer, Platform],
) -> None:
    home, server, _ = served
    assert post(server, valid_event(), token=None).status_code == 401
    assert post(server, valid_event(), token="not-a-token").status_code == 401
    from meshops.governance.service import GovernanceService

    gov = GovernanceService(home.context())
    gov.create_user("carol")  # a consumer only: may read lineage, not write it
    token = gov.create_token("carol-token", principal="carol").token
    refused = post(server, valid_event(), token=token)
    assert refused.status_code == 403, refused.text
    with pytest.raises(Exception, match="403"):
        client(server, token).emit(run_event("START", str(uuid.uuid4()), "etl.task", [], []))


def test_one_meshops_reports_to_another_over_the_http_transport(
    served: tuple[Home, LiveServer, Platform], tmp_path: Path
) -> None:
    """meshops out (the client's HttpTransport, `api_key` a token of the receiving server)
    into meshops in: a publish chain on one home appears in the other's lineage graph,
    connected by dataset names."""
    from tests.mesh.conftest import generate_example

    _, server, receiver = served
    home_dir = tmp_path / "sender"
    home_dir.mkdir()
    (home_dir / "meshops.toml").write_text(
        "[openlineage]\n"
        'transport = "http"\n'
        f'url = "{server.url}"\n'
        f'api_key = "{server.token}"\n'
        'namespace = "meshops://sender"\n'
    )
    sender_home = Home(make_settings(home_dir))
    sender = Platform(sender_home.settings, home=sender_home)
    try:
        retail = generate_example(tmp_path / "retail", rows=200)
        for folder in ("sales_orders", "customers_profiles", "sales_customer_revenue"):
            sender.mesh.publish(retail / folder)
    finally:
        sender.close()
        sender_home.close()

    orders = dataset_urn("meshops://sender", "sales.orders.orders")
    down = edges(receiver.lineage.downstream(orders, depth=2))
    build = job_urn("meshops://sender", "sales.customer_revenue.build")
    (revenue_run,) = {d for u, r, d in down if u == orders and r == "input_to"}
    assert (revenue_run, "produced",
            dataset_urn("meshops://sender", "sales.customer_revenue.revenue")) in down  # fmt: skip
    assert (build, "ran", revenue_run) in edges(receiver.lineage.upstream(revenue_run, depth=1))
    source = dataset_urn("file", str((retail / "data" / "orders*.csv").resolve()))
    assert orders in {d for _, _, d in edges(receiver.lineage.downstream(source, depth=2))}
