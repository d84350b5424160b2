# ruff: noqa: E501 -- CASES is a table: one request per line reads better than wrapped calls
"""Finding 13 of issue #14: inputs that answered 500 now answer 4xx in the error shape.

Each case is one request to a real server (loopback, admin token, a home with a product,
a finished run and a model): integers out of range (`limit`, `offset`, `days`, `version`,
`expires_in_days`, ids), `lease_seconds=1e300`, a run-search filter nested 1,500
parentheses deep (and its other ways to grow: conditions, IN values, order keys), JSON
documents nested 900 levels deep in every request that carries one, and what Schemathesis
found besides (a sunset that is not a date). Each must be a 400/422 whose body is
`{"error", "message", "detail"}` and names the field at fault.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.security.seeded import MODEL, PRODUCT, Seeded, seeded_server

HUGE = 10**30
INT64_OVER = 2**63


def nested(levels: int, inner: str = "{}") -> str:
    """JSON text of a mapping `levels` deep (built as text: json.dumps would recurse)."""
    return '{"a":' * levels + inner + "}" * levels


def nested_list(levels: int) -> str:
    return "[" * levels + "]" * levels


DESCRIPTOR = json.dumps({
    "apiVersion": "v1.0.0", "kind": "DataProduct", "id": "shop.deep", "name": "deep",
    "domain": "shop", "version": "1.0.0", "status": "active",
})  # fmt: skip


def with_extra(document: str, key: str, value: str) -> str:
    return document[:-1] + f',"{key}":{value}}}'


@dataclass
class Case:
    name: str
    method: str
    path: str
    params: dict[str, Any] = field(default_factory=dict)
    body: str | None = None  # raw JSON text
    field: str = ""  # what the message or detail must name
    statuses: tuple[int, ...] = (422,)
    files: dict[str, Any] | None = None

    def send(self, client: httpx.Client, run_id: str) -> httpx.Response:
        path = self.path.replace("{run}", run_id)
        if self.files is not None:
            return client.request(self.method, path, params=self.params, files=self.files)
        headers = {"content-type": "application/json"} if self.body is not None else {}
        return client.request(
            self.method, path, params=self.params, content=self.body, headers=headers
        )


def body(**values: Any) -> str:
    return json.dumps(values)


CASES = [
    # integers and floats out of range --------------------------------------------------
    Case("catalog-offset", "GET", "/v1/catalog/search", {"offset": HUGE}, field="offset"),
    Case("catalog-offset-int64", "GET", "/v1/catalog/search", {"offset": INT64_OVER}, field="offset"),
    Case("catalog-limit", "GET", "/v1/catalog/search", {"limit": HUGE}, field="limit"),
    Case("compliance-days", "GET", "/v1/governance/compliance", {"days": HUGE}, field="days"),
    Case("compliance-days-1e7", "GET", "/v1/governance/compliance", {"days": 10**7}, field="days"),
    Case("usage-days", "GET", f"/v1/governance/usage/products/{PRODUCT}", {"days": HUGE}, field="days"),
    Case("idle-days", "POST", "/v1/governance/usage/idle", body=body(days=HUGE), field="days"),
    Case("impact-days", "POST", "/v1/governance/usage/impact", body=body(product=PRODUCT, days=HUGE), field="days"),
    Case("evaluations-limit", "GET", "/v1/governance/evaluations", {"limit": HUGE}, field="limit"),
    Case("audit-limit", "GET", "/v1/governance/audit/events", {"limit": HUGE}, field="limit"),
    Case("usage-events-limit", "GET", "/v1/governance/usage/events", {"limit": -1}, field="limit"),
    Case("model-version", "GET", f"/v1/models/{MODEL}/versions/{HUGE}", field="version"),
    Case("model-version-int64", "GET", f"/v1/models/{MODEL}/versions/{INT64_OVER}", field="version"),
    Case("model-file-version", "GET", f"/v1/models/{MODEL}/versions/{HUGE}/files/model.skops", field="version"),
    Case("alias-version", "PUT", f"/v1/models/{MODEL}/aliases/prod", body=body(version=HUGE), field="version"),
    Case("alias-history-limit", "GET", f"/v1/models/{MODEL}/alias-history", {"limit": HUGE}, field="limit"),
    Case("token-expiry", "POST", "/v1/governance/tokens", body=body(name="t", expires_in_days=HUGE), field="expires_in_days"),
    Case("token-expiry-1e7", "POST", "/v1/governance/tokens", body=body(name="t", expires_in_days=10**7), field="expires_in_days"),
    Case("grant-expiry", "POST", "/v1/governance/access/grants", body=body(product=PRODUCT, port="main", grantee="bob", expires_in_days=HUGE), field="expires_in_days"),
    Case("request-expiry", "POST", "/v1/governance/access/requests", body=body(product=PRODUCT, port="main", purpose="p", expires_in_days=HUGE), field="expires_in_days"),
    Case("claim-lease", "POST", "/v1/pipelines/queue/claim", body=body(owner="w", lease_seconds=1e300), field="lease_seconds"),
    Case("renew-lease", "POST", "/v1/pipelines/runs/r1/lease", body=body(owner="w", lease_seconds=1e300), field="lease_seconds"),
    Case("dispatch-limit", "POST", "/v1/pipelines/queue/dispatch", body=body(limit=HUGE), field="limit"),
    Case("pipeline-runs-limit", "GET", "/v1/pipelines/runs", {"limit": HUGE}, field="limit"),
    Case("trigger-events-limit", "GET", "/v1/pipelines/trigger-events", {"limit": HUGE}, field="limit"),
    Case("trigger-max-pending", "POST", "/v1/pipelines/triggers", body=body(name="t", topic="x", ref="a:b", max_pending=HUGE), field="max_pending"),
    Case("alerts-limit", "GET", "/v1/alerts", {"limit": HUGE}, field="limit"),
    Case("alert-id", "GET", f"/v1/alerts/{HUGE}", field="alert_id"),
    Case("monitor-result-id", "GET", f"/v1/monitor-results/{HUGE}", field="result_id"),
    Case("deliveries-limit", "GET", "/v1/project/deliveries", {"limit": HUGE}, field="limit"),
    Case("approvals-version", "GET", f"/v1/project/models/{MODEL}/versions/{HUGE}/approvals", field="version"),
    Case("lineage-depth", "GET", "/v1/lineage/upstream", {"urn": "meshops:run:x", "depth": HUGE}, field="depth"),
    Case("canary-percent", "POST", "/v1/endpoints", body=body(name="e", model=f"{MODEL}/1", canary_percent=1e300), field="canary_percent"),
    Case("metric-step", "POST", "/v1/metrics/batch", body=body(rows=[["{run}", "k", 1.0, HUGE, 0.0]]), field="metrics"),
    Case("search-max-results", "POST", "/v1/runs/search", body=body(max_results=HUGE), field="max_results"),
    Case("search-page-token-offset", "POST", "/v1/runs/search", body=body(page_token=base64.urlsafe_b64encode(b'{"offset": 1' + b"0" * 30 + b"}").decode()), field="page_token"),
    # the run-search filter -----------------------------------------------------------
    Case("filter-1500-parentheses", "POST", "/v1/runs/search", body=body(filter="(" * 1500 + "metrics.auc > 0" + ")" * 1500), field="filter"),
    Case("filter-300-conditions", "POST", "/v1/runs/search", body=body(filter=" and ".join(["metrics.auc > 0"] * 300)), field="filter"),
    Case("filter-2000-in-values", "POST", "/v1/runs/search", body=body(filter="metrics.auc IN (" + ",".join(["1"] * 2000) + ")"), field="filter"),
    Case("filter-100k-characters", "POST", "/v1/runs/search", body=body(filter="metrics.auc > " + "1" * 100_000), field="filter"),
    Case("order-by-500-keys", "POST", "/v1/runs/search", body=body(order_by=["metrics.auc"] * 500), field="order_by"),
    # documents nested 900 levels --------------------------------------------------------
    Case("descriptor-900", "POST", "/v1/mesh/register", body=f'{{"descriptor":{with_extra(DESCRIPTOR, "x", nested(900))},"contracts":{{}}}}', field="descriptor"),
    Case("descriptor-900-lists", "POST", "/v1/mesh/diff", body=f'{{"descriptor":{with_extra(DESCRIPTOR, "x", nested_list(900))},"contracts":{{}}}}', field="descriptor"),
    Case("contract-900", "POST", "/v1/mesh/register", body=f'{{"descriptor":{DESCRIPTOR},"contracts":{{"main":{nested(900)}}}}}', field="contracts"),
    Case("descriptor-5000", "POST", "/v1/mesh/register", body=f'{{"descriptor":{nested(5000)},"contracts":{{}}}}', statuses=(400,), field="nests too deeply"),
    Case("publish-meta-900", "POST", "/v1/mesh/publish", files={"meta": ("meta.json", f'{{"descriptor":{nested(900)},"contracts":{{}}}}', "application/json")}, field="meta"),
    Case("publish-meta-not-json", "POST", "/v1/mesh/publish", files={"meta": ("meta.json", "{not json", "application/json")}, field="meta"),
    Case("policy-document-900", "POST", "/v1/governance/evaluate", body=f'{{"target":"dataproduct.publish","subject_urn":"meshops:dataproduct:x","document":{nested(900)}}}', field="document"),
    Case("run-params-900", "POST", "/v1/runs/{run}/params", body=f'{{"p":{nested(900)}}}', field="body"),
    Case("run-tags-900", "POST", "/v1/runs/{run}/tags", body=f'{{"p":{nested(900)}}}', field="body"),
    Case("pipeline-params-900", "POST", "/v1/pipelines/runs", body=f'{{"ref":"a:b","params":{nested(900)}}}', field="params"),
    # CEL expressions (policies, trigger filters): lark recursed for seconds, then 500 -----
    Case("policy-expression-1500", "POST", "/v1/governance/policies/test", body=body(id="p1", title="t", target="dataproduct.publish", rationale="r", owner="alice", expression="(" * 1500 + "true" + ")" * 1500), field="expression"),
    Case("policy-expression-long", "POST", "/v1/governance/policies/test", body=body(id="p1", title="t", target="dataproduct.publish", rationale="r", owner="alice", expression="1 + " * 3000 + "1 > 0"), field="expression"),
    Case("trigger-expression-1500", "POST", "/v1/pipelines/triggers", body=body(name="t", topic="dataproduct.published", ref="a:b", expression="(" * 1500 + "true" + ")" * 1500), field="expression"),
    # found by Schemathesis and by hand ----------------------------------------------------
    Case("publish-table-not-arrow", "POST", "/v1/mesh/publish", files={"meta": ("meta.json", body(descriptor={}, contracts={}), "application/json"), "tables": ("main", b"garbage", "application/octet-stream")}, field="tables"),
    Case("deprecate-sunset", "POST", f"/v1/mesh/products/{PRODUCT}/deprecate", body=body(sunset="Í-not-a-date"), field="sunset"),
]  # fmt: skip


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    with seeded_server(tmp_path_factory.mktemp("bounds") / "home") as server:
        yield server


@pytest.fixture(scope="module")
def client(served: Seeded) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served.url, headers=served.headers, timeout=60) as c:
        yield c


def assert_error_shape(response: httpx.Response) -> dict[str, Any]:
    data = response.json()
    assert isinstance(data, dict) and set(data) >= {"error", "message", "detail"}, data
    assert isinstance(data["error"], str) and isinstance(data["message"], str)
    assert isinstance(data["detail"], dict)
    return data


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_out_of_bounds_input_is_a_4xx_in_the_error_shape(
    case: Case, client: httpx.Client, served: Seeded
) -> None:
    response = case.send(client, served.run_id)
    assert response.status_code in case.statuses, response.text[:500]
    data = assert_error_shape(response)
    assert data["error"] == "invalid_input"
    assert case.field in json.dumps(data), data  # the field at fault is named


def test_the_server_still_answers_after_every_case(client: httpx.Client, served: Seeded) -> None:
    assert client.get(f"/v1/runs/{served.run_id}").status_code == 200


def test_limits_at_the_bound_are_accepted(client: httpx.Client) -> None:
    """The bounds refuse only what is out of range: the maximum itself is served."""
    assert client.get("/v1/catalog/search", params={"limit": 1000}).status_code == 200
    assert client.get("/v1/governance/compliance", params={"days": 3650}).status_code == 200
    assert client.get("/v1/governance/audit/events", params={"limit": 10_000}).status_code == 200
    search = {"filter": "(" * 32 + "metrics.auc > 0" + ")" * 32, "max_results": 50_000}
    assert client.post("/v1/runs/search", json=search).status_code == 200


def test_integer_beyond_64_bits_in_a_filter_compares_as_a_number(client: httpx.Client) -> None:
    found = client.post("/v1/runs/search", json={"filter": "metrics.auc < 99999999999999999999999"})
    assert found.status_code == 200
    assert len(found.json()["runs"]) == 1  # auc = 0.5 < 1e23


def test_starlette_errors_have_the_error_shape(client: httpx.Client) -> None:
    missing = client.get("/v1/no-such-route")
    assert missing.status_code == 404 and assert_error_shape(missing)["error"] == "not_found"
    wrong = client.delete("/v1/catalog/search")
    assert wrong.status_code == 405
    assert assert_error_shape(wrong)["error"] == "method_not_allowed"


def test_yaml_alias_bomb_and_depth_are_refused(tmp_path: Path) -> None:
    """Descriptor files (CLI, project apply of a checkout) are bounded the same way."""
    from meshops.kernel.bounds import load_bounded_yaml
    from meshops.kernel.errors import InvalidInput
    from meshops.mesh.specs import parse_yaml

    lines = ['a: &a ["x","x","x","x","x","x","x","x","x"]']
    for prev, name in zip("abcdefg", "bcdefgh", strict=True):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    with pytest.raises(InvalidInput, match="expands to more than"):
        parse_yaml("\n".join(lines), "bomb.yaml")
    with pytest.raises(InvalidInput, match="nests too deeply"):
        parse_yaml("a: " + "[" * 2000 + "]" * 2000, "deep.yaml")
    with pytest.raises(InvalidInput, match="nests deeper than 64"):
        parse_yaml("a: " + "[" * 100 + "]" * 100, "deep.yaml")
    # The project checkout a server plans and feature repo files go through the same check.
    with pytest.raises(InvalidInput, match="expands to more than"):
        load_bounded_yaml("\n".join(lines), "features.yaml")
    assert load_bounded_yaml("a: &x [1]\nb: *x\n", "small.yaml") == {"a": [1], "b": [1]}


def test_the_serve_data_plane_has_the_error_shape(tmp_path: Path) -> None:
    """`meshops serve` (a FastAPI app of its own) answers its 404/405 in the same shape."""
    from fastapi.testclient import TestClient

    from meshops.kernel.home import Home
    from meshops.serving.endpoint_app import create_endpoint_app
    from tests.conftest import make_settings

    home = Home(make_settings(tmp_path / "home"))
    plane = create_endpoint_app(home, ["absent"])
    client = TestClient(plane.app)  # no lifespan: nothing to warm
    for response, status in (
        (client.get("/v1/no-such-route"), 404),
        (client.get("/healthz?x=1", headers={"content-type": "x"}), 200),
        (client.put("/healthz"), 405),
    ):
        assert response.status_code == status, response.text
        if status >= 400:
            assert_error_shape(response)
    home.close()
