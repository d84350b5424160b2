"""Every principal x every read interface x grant state (issue #14, "Must show").

Each test reads `crm.customers` (see `conftest.py`: pii `email` hashed, confidential `note`
redacted, restricted `income` nulled for a masked grant) as one principal through one
interface and checks the design's answer, in the response bytes themselves:

- `refused` (no grant, a revoked grant, or a role that lacks the interface's action):
  403 / `Forbidden` / exit 6, and not one value of the product in the answer;
- `masked` (a grant naming no classified column): the read succeeds, no clear value of a
  masked column (nor its unkeyed SHA-256) occurs anywhere in the bytes, the unclassified
  `region` does, and the read is counted in usage;
- `clear` (admin, the product's owner, a grant naming the columns): the clear values are
  there (proving the needles would catch a leak) and the read is counted in usage;
- `filtered` (a grant naming the columns, with a row filter): clear values of the rows it
  may see, none of the rows the filter excludes, counted in usage;
- metadata routes and UI pages answer everyone, but never carry a masked value to a
  principal who may not read it (finding 8: min/max statistics);
- blobs: a digest is not a capability. The artifact route does not hand the snapshot to a
  principal who may not read it unmasked, and no one registers a model version whose file
  is the snapshot (findings 5 and the "model files validated at registration" design);
  nor is a server-side path: a drift monitor whose Parquet source is the snapshot's file
  does not return its values to a principal who may not read them;
- serving: enrichment of a predict request is an online lookup under the caller's grant
  (refused without one, counted in usage), and the prediction log, which keeps the
  enrichment, shows it only as the reader's own grant allows.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import httpx
import pyarrow as pa
import pytest

from meshops.client import Platform
from meshops.kernel.errors import MeshopsError
from tests.security.conftest import (
    ADMIN,
    CLEAR,
    ENRICHED,
    FEATURES,
    MODEL,
    PORT,
    PRINCIPALS,
    PRODUCT,
    T0,
    TS,
    VIEW,
    Principal,
    SecurityHome,
    customers_contract,
    customers_descriptor,
    entity_rows,
    ipc_bytes,
    leaks,
    scoring_record,
)
from tests.support.products import data_product

SQL = f"SELECT customer_id, region, email, note, income FROM {PRODUCT}"
MASKED = CLEAR.masked_needles()
ALLOWED = CLEAR.allowed_needles()
EVERY_VALUE = {**MASKED, **ALLOWED}
FILTERED_OUT = CLEAR.masked_needles(CLEAR.filtered_out())


@dataclass
class Outcome:
    """What an interface answered: `status` is the HTTP status (SDK errors give theirs, the
    CLI's exit codes are mapped back: 0 -> 200, 6 -> 403), `body` every byte returned."""

    status: int
    body: bytes
    what: str = ""

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def _from_error(exc: MeshopsError) -> Outcome:
    return Outcome(exc.http_status, json.dumps(exc.to_json(), default=str).encode(), exc.message)


# --- the interfaces ---------------------------------------------------------------------------


def sdk_embedded_read(sec: SecurityHome, p: Principal) -> Outcome:
    platform = sec.embedded(p.name)
    try:
        return Outcome(200, ipc_bytes(platform.mesh.read(PRODUCT)))
    except MeshopsError as exc:
        return _from_error(exc)
    finally:
        platform.close()


def sdk_embedded_sql(sec: SecurityHome, p: Principal) -> Outcome:
    platform = sec.embedded(p.name)
    try:
        return Outcome(200, ipc_bytes(platform.mesh.sql(SQL)))
    except MeshopsError as exc:
        return _from_error(exc)
    finally:
        platform.close()


def sdk_http_read(sec: SecurityHome, p: Principal) -> Outcome:
    with sec.remote(p.name) as platform:
        try:
            return Outcome(200, ipc_bytes(platform.mesh.read(PRODUCT)))
        except MeshopsError as exc:
            return _from_error(exc)


def sdk_http_sql(sec: SecurityHome, p: Principal) -> Outcome:
    with sec.remote(p.name) as platform:
        try:
            return Outcome(200, ipc_bytes(platform.mesh.sql(SQL)))
        except MeshopsError as exc:
            return _from_error(exc)


CLI_STATUS = {0: 200, 2: 422, 3: 404, 5: 401, 6: 403}


def _cli(sec: SecurityHome, p: Principal, *args: str) -> Outcome:
    done = sec.cli(p.name, *args)
    status = CLI_STATUS.get(done.returncode, 500)
    return Outcome(status, done.stdout + done.stderr, f"exit {done.returncode}")


CLI_COMMANDS = {
    "cli-read": ("product", "read", PRODUCT, "--json"),
    "cli-sql": ("product", "sql", SQL, "--json"),
}


def cli_read(sec: SecurityHome, p: Principal) -> Outcome:
    return _cli(sec, p, *CLI_COMMANDS["cli-read"])


def cli_sql(sec: SecurityHome, p: Principal) -> Outcome:
    return _cli(sec, p, *CLI_COMMANDS["cli-sql"])


@dataclass
class CliRun:
    outcome: Outcome
    counted: bool  # the principal's usage grew while its process ran


@pytest.fixture(scope="module")
def cli_runs(sec: SecurityHome) -> dict[tuple[str, str], CliRun]:
    """Every principal's CLI reads, a few processes at a time: a CLI process is mostly
    interpreter start-up, and one after the other they took over a minute. One wave per
    command with one process per principal, so each principal's usage growth in a wave
    belongs to exactly one process."""
    from concurrent.futures import ThreadPoolExecutor

    runs: dict[tuple[str, str], CliRun] = {}
    with ThreadPoolExecutor(max_workers=6) as pool:
        for interface, args in CLI_COMMANDS.items():
            before = {p.name: sec.reads(p.name) for p in PRINCIPALS}
            outcomes = list(pool.map(lambda p, a=args: _cli(sec, p, *a), PRINCIPALS))
            for p, outcome in zip(PRINCIPALS, outcomes, strict=True):
                grew = outcome.ok and _usage_grew(sec, p.name, before[p.name]) > before[p.name]
                runs[(p.name, interface)] = CliRun(outcome, grew)
    return runs


def _http(response: httpx.Response) -> Outcome:
    return Outcome(response.status_code, response.content, f"{response.request.url.path}")


def http_sql(sec: SecurityHome, p: Principal) -> Outcome:
    return _http(sec.client(p.name).post("/v1/mesh/sql", json={"query": SQL}))


def http_arrow(sec: SecurityHome, p: Principal) -> Outcome:
    return _http(sec.client(p.name).get(f"/v1/mesh/products/{PRODUCT}/data"))


def http_arrow_as_pipeline(sec: SecurityHome, p: Principal) -> Outcome:
    """The caller claims the `pipeline` interface and names the masked columns."""
    params = {
        "interface": "pipeline",
        "port": PORT,
        "columns": "customer_id,region,email,note,income",
    }
    return _http(sec.client(p.name).get(f"/v1/mesh/products/{PRODUCT}/data", params=params))


def online(sec: SecurityHome, p: Principal) -> Outcome:
    rows = [{"customer_id": i} for i in range(1, CLEAR.rows + 1)]
    body = {"entity_rows": rows, "features": FEATURES}
    return _http(sec.client(p.name).post("/v1/features/online", json=body))


def _training_set(sec: SecurityHome, p: Principal, *, sql: str | None) -> Outcome:
    client = sec.client(p.name)
    params: dict[str, str | list[str]] = {"feature": FEATURES, "name": f"ts-{p.name}"}
    content = b""
    if sql:
        params["sql"] = sql
    else:
        content = ipc_bytes(entity_rows())
    made = client.post("/v1/features/training-sets", params=params, content=content)
    if not made.is_success:
        return _http(made)
    data = client.get(f"/v1/features/training-sets/{made.json()['id']}/data")
    return Outcome(data.status_code, made.content + data.content, "training set data")


def training_set(sec: SecurityHome, p: Principal) -> Outcome:
    return _training_set(sec, p, sql=None)


def training_set_sql(sec: SecurityHome, p: Principal) -> Outcome:
    """Entity rows by SQL over the product itself (user SQL: the sandbox's business)."""
    query = f"SELECT customer_id, updated_at + INTERVAL 1 DAY AS event_timestamp FROM {PRODUCT}"
    return _training_set(sec, p, sql=query)


def training_set_foreign(sec: SecurityHome, p: Principal) -> Outcome:
    """The data of the training set the admin made: recomputed under the caller's grant."""
    path = f"/v1/features/training-sets/{sec.training_set_id}/data"
    return _http(sec.client(p.name).get(path))


def artifact(sec: SecurityHome, p: Principal) -> Outcome:
    """The product's snapshot fetched by digest from the pipelines' artifact route."""
    return _http(sec.client(p.name).get(f"/v1/pipelines/artifacts/{sec.snapshot_digest}"))


def model_files(sec: SecurityHome, p: Principal) -> Outcome:
    """Register a model version whose file is the product's snapshot, then download it."""
    client = sec.client(p.name)
    name = f"steal-{p.name}"
    made = client.post("/v1/models", json={"name": name, "domain": "crm"})
    if made.status_code not in (201, 409):
        return _http(made)
    size = len(sec.home.context().blobs.get_bytes(sec.snapshot_digest))
    files = [{"path": "model.skops", "digest": sec.snapshot_digest, "size": size}]
    registered = client.post(
        f"/v1/models/{name}/versions", json={"files": files, "flavor": "sklearn"}
    )
    if not registered.is_success:
        return _http(registered)
    version = registered.json()["version"]
    data = client.get(f"/v1/models/{name}/versions/{version}/files/model.skops")
    return Outcome(registered.status_code, registered.content + data.content, "registered")


def monitor_over_blob_path(sec: SecurityHome, p: Principal) -> Outcome:
    """A drift monitor whose Parquet source is the snapshot's file in the blob store, run
    once: its result carries per-category frequencies, i.e. the values."""
    import io

    import pyarrow.parquet as pq

    digest = sec.snapshot_digest
    path = f"{sec.settings.home}/blobs/sha256/{digest[:2]}/{digest[2:]}"
    name = f"steal-{p.name}"
    spec = {
        "name": name,
        "kind": "data_drift",
        "window": "3650d",
        "features": ["email", "note", "income", "region"],
        "source": {"type": "parquet", "options": {"path": path, "time_column": "updated_at"}},
    }
    reference = io.BytesIO()
    pq.write_table(
        pa.table({"email": ["a"], "note": ["b"], "income": [1.0], "region": ["c"]}), reference
    )
    client = sec.client(p.name)
    made = client.post(
        "/v1/monitors",
        data={"spec": json.dumps(spec)},
        files={"reference": ("reference.parquet", reference.getvalue())},
    )
    if not made.is_success:
        return _http(made)
    ran = client.post(f"/v1/monitors/{name}/runs", data={"now": "2024-03-02T00:00:00Z"})
    return Outcome(ran.status_code, made.content + ran.content, "monitor run")


def predict_enriched(sec: SecurityHome, p: Principal) -> Outcome:
    """Score on the endpoint that enriches records from the feature view: the enrichment
    is an online lookup under the caller's grant; the answer carries predictions only."""
    records = [scoring_record(i) for i in range(1, CLEAR.rows + 1)]
    path = f"/v1/endpoints/{ENRICHED}/predict"
    return _http(sec.client(p.name).post(path, json={"records": records}))


def prediction_log(sec: SecurityHome, p: Principal) -> Outcome:
    """The enriched endpoint's prediction log (it holds what the admin was served)."""
    return _http(sec.client(p.name).get(f"/v1/endpoints/{ENRICHED}/predictions"))


# Pages every principal may open, then pages its role may or may not open (403 is fine).
UI_OPEN = (f"/ui/products/{PRODUCT}", "/ui/catalog?q=customers", "/ui")
UI_ROLE = (f"/ui/endpoints/{ENRICHED}", f"/ui/models/{MODEL}", "/ui/governance", "/ui/pipelines")


def ui_pages(sec: SecurityHome, p: Principal) -> Outcome:
    client = sec.ui(p.name)
    opened = [client.get(path) for path in UI_OPEN]
    by_role = [client.get(path) for path in UI_ROLE]
    assert all(r.status_code in (200, 403) for r in by_role), [
        (r.request.url.path, r.status_code) for r in by_role
    ]
    status = max(r.status_code for r in opened)
    leaking = [r.request.url.path for r in opened + by_role if leaks(r.content, MASKED)]
    body = b"".join(r.content for r in opened + by_role)
    return Outcome(status, body, f"masked-column values in {leaking}")


METADATA_PATHS = (
    f"/v1/mesh/products/{PRODUCT}",
    f"/v1/mesh/products/{PRODUCT}/version",
    f"/v1/mesh/products/{PRODUCT}/versions",
    f"/v1/mesh/products/{PRODUCT}/export",
    "/v1/catalog/search?text=customers",
    f"/v1/features/views/{VIEW}",
    f"/v1/features/views/{VIEW}/status",
    # audit.read / usage.read roles only: what was done, never the values it was done to
    "/v1/governance/audit/events?limit=10000",
    f"/v1/governance/usage/events?product={PRODUCT}&limit=10000",
)


def metadata(sec: SecurityHome, p: Principal) -> Outcome:
    client = sec.client(p.name)
    answers = [client.get(path) for path in METADATA_PATHS]
    # Open to every principal but the feature routes (features.read); never a 5xx.
    status = max(r.status_code for r in answers[:5])
    assert all(r.status_code in (200, 403) for r in answers), [
        (r.request.url.path, r.status_code) for r in answers
    ]
    masked = [r.request.url.path for r in answers if leaks(r.content, MASKED)]
    other_rows = [r.request.url.path for r in answers if leaks(r.content, FILTERED_OUT)]
    what = f"masked-column values in {masked}; south-row values in {other_rows}"
    return Outcome(status, b"".join(r.content for r in answers), what)


Interface = Callable[[SecurityHome, Principal], Outcome]
DATA: dict[str, Interface] = {
    "sdk-embedded-read": sdk_embedded_read,
    "sdk-embedded-sql": sdk_embedded_sql,
    "sdk-http-read": sdk_http_read,
    "sdk-http-sql": sdk_http_sql,
    "cli-read": cli_read,
    "cli-sql": cli_sql,
    "http-sql": http_sql,
    "http-arrow": http_arrow,
    "http-arrow-as-pipeline": http_arrow_as_pipeline,
}
FEATURE_READS: dict[str, Interface] = {
    "online-features": online,
    "training-set": training_set,
    "training-set-sql": training_set_sql,
    "training-set-of-another": training_set_foreign,
}
INTERFACES: dict[str, Interface] = {
    **DATA,
    **FEATURE_READS,
    "artifact-by-digest": artifact,
    "model-file-by-digest": model_files,
    "monitor-over-blob-path": monitor_over_blob_path,
    "predict-enriched": predict_enriched,
    "prediction-log": prediction_log,
    "ui-pages": ui_pages,
    "metadata": metadata,
}

Expect = Literal[
    "clear",
    "masked",
    "filtered",
    "refused",
    "hidden",
    "visible",
    "safe",
    "rejected",
    "blob",
    "any",
    "scored",
    "log",
]


def expected(p: Principal, interface: str) -> Expect:
    """The issue's design, per principal and interface."""
    if interface in DATA:
        return p.reads
    if interface == "online-features" or interface in FEATURE_READS:
        # online lookups and training sets: authorised in the feature view's domain (#16)
        return p.reads if p.may("features.read") else "refused"
    if interface in ("ui-pages", "metadata"):
        return "visible" if p.reads == "clear" else "safe"
    if interface == "artifact-by-digest":
        # Only a principal who may read the snapshot unmasked may fetch its bytes; to the
        # others it is forbidden or does not exist (404 names no product: nothing learnt).
        return "blob" if p.reads == "clear" and p.may("pipelines.read") else "hidden"
    if interface == "predict-enriched":
        if not p.may("serving.predict", "sales") or p.reads == "refused":
            return "refused"
        return "scored"
    if interface == "prediction-log":
        # Logged enrichment is product data: shown only as the reader's grant allows.
        return "any" if p.reads == "clear" else "log"
    if interface == "monitor-over-blob-path":
        # A server-side file path is no way round the guard; full readers may be refused too.
        return "any" if p.reads == "clear" else "rejected"
    return "rejected"  # a parquet snapshot is no model file, and a digest no capability


def _usage_grew(sec: SecurityHome, name: str, before: int) -> int:
    """Reads recorded for `name` (waits up to 3 s: usage may be written behind the read)."""
    deadline = time.monotonic() + 3
    while True:
        now = sec.reads(name)
        if now > before or time.monotonic() > deadline:
            return now
        time.sleep(0.05)


CASES = [
    pytest.param(p, interface, id=f"{p.name}-{interface}")
    for p in PRINCIPALS
    for interface in INTERFACES
]


@pytest.mark.parametrize(("principal", "interface"), CASES)
def test_read_matrix(
    sec: SecurityHome, principal: Principal, interface: str, request: pytest.FixtureRequest
) -> None:
    want = expected(principal, interface)
    if interface in CLI_COMMANDS:  # run ahead, all principals at once (see cli_runs)
        run: CliRun = request.getfixturevalue("cli_runs")[(principal.name, interface)]
        got = run.outcome

        def counted() -> bool:
            return run.counted
    else:
        before = sec.reads(principal.name)
        got = INTERFACES[interface](sec, principal)

        def counted() -> bool:
            return _usage_grew(sec, principal.name, before) > before

    where = f"{principal.name} via {interface} ({got.what}, status {got.status})"
    if want == "refused":
        assert got.status == 403, f"{where}: expected a refusal, got {got.body[:300]!r}"
        assert leaks(got.body, EVERY_VALUE) == [], f"{where}: a refusal carries data"
    elif want == "hidden":
        assert got.status in (403, 404), f"{where}: expected no bytes, got {got.body[:300]!r}"
        assert leaks(got.body, EVERY_VALUE) == [], f"{where}: the answer carries data"
    elif want == "masked":
        assert got.ok, f"{where}: a masked grant reads, got {got.body[:300]!r}"
        assert leaks(got.body, MASKED) == [], f"{where}: clear values of masked columns"
        assert leaks(got.body, ALLOWED), f"{where}: the unclassified region is missing"
        assert counted(), f"{where}: read not in usage"
    elif want == "filtered":
        assert leaks(got.body, FILTERED_OUT) == [], f"{where}: rows outside the row filter"
        if interface == "online-features" and got.status == 403:
            return  # refusing lookups under a row-filtered grant is safe too
        assert got.ok, f"{where}: a filtered grant reads, got {got.body[:300]!r}"
        found = leaks(got.body, MASKED)
        assert any(label.startswith("email secret") for label in found), f"{where}: {found}"
        assert counted(), f"{where}: read not in usage"
    elif want == "clear":
        assert got.ok, f"{where}: expected a read, got {got.body[:300]!r}"
        found = leaks(got.body, MASKED)
        assert any(label.startswith("email secret") for label in found), f"{where}: {found}"
        assert counted(), f"{where}: read not in usage"
    elif want == "safe":
        assert got.status == 200, where
        # A row-filtered grant may see its own rows' values, never the others'.
        secret = FILTERED_OUT if principal.reads == "filtered" else MASKED
        assert leaks(got.body, secret) == [], f"{where}: values it may not read"
    elif want == "visible":
        assert got.status == 200, where
    elif want == "blob":
        # Allowed either way; if the bytes come back, they are the snapshot and counted.
        assert got.status in (200, 403, 404), where
        if got.ok:
            assert hashlib.sha256(got.body).hexdigest() == sec.snapshot_digest, where
            assert counted(), f"{where}: not in usage"
    elif want == "scored":
        assert leaks(got.body, EVERY_VALUE) == [], f"{where}: the answer carries product data"
        if principal.reads == "filtered" and got.status == 403:
            return  # an online lookup under a row-filtered grant may be refused
        assert got.ok, f"{where}: {got.body[:300]!r}"
        assert counted(), f"{where}: read not in usage"
    elif want == "log":
        assert got.status in (200, 403), f"{where}: {got.body[:300]!r}"
        secret = {"masked": MASKED, "filtered": FILTERED_OUT}.get(principal.reads, EVERY_VALUE)
        assert leaks(got.body, secret) == [], f"{where}: logged values it may not read"
    elif want == "any":
        assert got.status < 500, f"{where}: {got.body[:300]!r}"
    else:  # rejected
        assert got.status in (400, 403, 404, 422), f"{where}: {got.body[:300]!r}"
        assert leaks(got.body, EVERY_VALUE) == [], f"{where}: the rejection carries data"


# --- state changes: a cached decision never outlives the grant it was made from ------------


def _reads_now(sec: SecurityHome, name: str) -> dict[str, Outcome]:
    p = Principal(name, "data_scientist", None, "masked")
    return {
        "http-sql": http_sql(sec, p),
        "http-arrow": http_arrow(sec, p),
        "online-features": online(sec, p),
    }


def test_revoking_a_grant_stops_every_interface_at_once(sec: SecurityHome) -> None:
    """Reads (and online lookups, whose guard decision is cached) work under a masked
    grant; the moment it is revoked every interface refuses, and so does the data of a
    training set made while it held."""
    name = "late-revoke"
    sec.new_user(name, "data_scientist")
    grant = sec.admin().grant_access(PRODUCT, PORT, name, purpose="until revoked")
    for interface, got in _reads_now(sec, name).items():
        assert got.ok, (interface, got.status, got.body[:200])
        assert leaks(got.body, MASKED) == [], interface
    made = training_set(sec, Principal(name, "data_scientist", None, "masked"))
    assert made.ok, made.body[:200]
    made_id = sec.client(name).get("/v1/features/training-sets", params={"name": f"ts-{name}"})
    ids = [t["id"] for t in made_id.json()]
    sec.admin().revoke_grant(grant.id, "revoked while cached")
    for interface, got in _reads_now(sec, name).items():
        assert got.status == 403, (interface, got.status, got.body[:200])
        assert leaks(got.body, EVERY_VALUE) == [], interface
    data = sec.client(name).get(f"/v1/features/training-sets/{ids[0]}/data")
    assert data.status_code == 403, data.content[:200]


def test_narrowing_a_grant_masks_the_next_online_lookup(sec: SecurityHome) -> None:
    """An unmasked grant replaced by a masked one: the next lookup is masked (the cached
    decision is per policy epoch, and a grant change is a new epoch)."""
    name = "narrowed"
    sec.new_user(name, "ml_engineer")
    gov = sec.admin()
    wide = gov.grant_access(
        PRODUCT, PORT, name, purpose="wide", columns=["email", "note", "income"]
    )
    p = Principal(name, "ml_engineer", None, "unmasked")
    first = online(sec, p)
    assert first.ok and leaks(first.body, MASKED), first.body[:200]
    gov.revoke_grant(wide.id, "narrowed")
    gov.grant_access(PRODUCT, PORT, name, purpose="narrow")
    second = online(sec, p)
    assert second.ok, second.body[:200]
    assert leaks(second.body, MASKED) == [], "clear values after the grant was narrowed"
    assert leaks(second.body, ALLOWED), "the unclassified region is missing"


# --- the online interface runs no caller-chosen Python in the server -----------------------


def _publish_env_product(platform: Platform, owner: str) -> None:
    """`sales.envs`: one string column named `env`, so a feature can be named `env`."""
    from meshops.features.models import Entity, Feature, FeatureRepo, FeatureView, SourceRef
    from tests.features.helpers import contract_for

    table = pa.table(
        {
            "customer_id": pa.array([1], pa.int64()),
            "updated_at": pa.array([T0], TS),
            "env": ["x"],
        }
    )
    purpose = "a column named like a program"
    descriptor = data_product("sales.envs", "envs-contract", owner=owner, purpose=purpose)
    platform.mesh.publish_arrow(descriptor, {"envs": contract_for("envs", table)}, {"envs": table})
    view = FeatureView(
        name="envs",
        entities=["customer"],
        source=SourceRef(product="sales.envs"),
        event_time="updated_at",
        features=[Feature(name="env", type="string")],
        ttl_seconds=None,
        owner=owner,
    )
    repo = FeatureRepo(entities=[Entity(name="customer", join_keys=["customer_id"])])
    repo.feature_views.append(view)
    platform.features.apply(repo)
    platform.features.materialize(["envs"])


def test_on_demand_feature_cannot_run_a_callable_of_the_callers_choice(
    sec: SecurityHome, tmp_path: Path
) -> None:
    """An on-demand feature names `module:function`, called in the API server at lookup
    time with a dict of its inputs and request fields. With `subprocess:run`, an input
    feature named `env` and request fields `touch` and a path, that dict's keys are the
    command line `env touch <path>`. A data engineer may define features, not run code in
    the server: the definition or the lookup is refused, and nothing runs."""
    name = "odf-attacker"
    sec.new_user(name, "data_engineer")
    marker = tmp_path / "pwned"
    with sec.remote(name) as attacker:
        _publish_env_product(attacker, name)  # all within a data engineer's rights
    odf = {
        "name": "pwn",
        "function": "subprocess:run",
        "inputs": ["envs:env"],
        "request": ["touch", str(marker)],
    }
    client = sec.client(name)
    applied = client.post("/v1/features/apply", json={"on_demand_features": [odf]})
    row = {"customer_id": 1, "touch": 1, str(marker): 1}
    looked_up = _status_or_reset(
        lambda: client.post("/v1/features/online", json={"entity_rows": [row], "features": ["pwn"]})
    )
    # Offline, the same function runs row by row while the server builds a training set.
    entities = (
        pa.table({"customer_id": pa.array([1], pa.int64()), "event_timestamp": pa.array([T0], TS)})
        .append_column("touch", pa.array([1]))
        .append_column(str(marker), pa.array([1]))
    )
    body = ipc_bytes(entities)
    trained = _status_or_reset(
        lambda: client.post("/v1/features/training-sets", params={"feature": "pwn"}, content=body)
    )
    if trained.ok:
        made = json.loads(trained.body)["id"]
        _status_or_reset(lambda: client.get(f"/v1/features/training-sets/{made}/data"))
    assert not marker.exists(), "a caller-chosen callable ran in the API server"
    refused = (400, 403, 422)
    assert applied.status_code in refused or (
        looked_up.status in refused and trained.status in refused
    ), (applied.status_code, looked_up.status, trained.status, looked_up.body[:300])


def _status_or_reset(call: Callable[[], httpx.Response]) -> Outcome:
    """The response, or status 599 when the server dropped the connection."""
    try:
        return _http(call())
    except httpx.TransportError as exc:
        return Outcome(599, str(exc).encode(), "connection dropped")


# --- error messages carry only what the grant allows ---------------------------------------

ERROR_QUERIES = [
    f"SELECT CAST(email AS INTEGER) FROM {PRODUCT}",
    f"SELECT CAST(note AS INTEGER) FROM {PRODUCT} ORDER BY customer_id DESC",
    f"SELECT error(email) FROM {PRODUCT}",
    f"SELECT CAST(income AS DECIMAL(2,1)) FROM {PRODUCT}",
    f"SELECT min(email), max(note), max(income) FROM {PRODUCT}",
]


@pytest.mark.parametrize("principal", ["ds-masked", "ds-filtered", "consumer-none"])
@pytest.mark.parametrize("query", ERROR_QUERIES)
def test_sql_errors_and_aggregates_reveal_nothing_beyond_the_grant(
    sec: SecurityHome, principal: str, query: str
) -> None:
    """A failing cast or `error()` prints the offending value: it must be a value the
    caller may read (masked, or inside its row filter), never a clear or filtered-out one."""
    secret = {"ds-masked": MASKED, "ds-filtered": FILTERED_OUT}.get(principal, EVERY_VALUE)
    got = sec.client(principal).post("/v1/mesh/sql", json={"query": query})
    assert got.status_code in (200, 400, 403, 422), got.text[:300]
    assert leaks(got.content, secret) == [], got.text[:300]


# --- authority over a product comes from the server, not from a new version's descriptor ---


def _ledger_documents(version: str, owner: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """`crm.ledger` (the shape of crm.customers, its own ids), `owner` in its team."""
    descriptor = customers_descriptor()
    descriptor.update(id="crm.ledger", name="ledger", version=version)
    descriptor["description"] = {"purpose": "a second product of the crm domain"}
    descriptor["team"] = {"members": [{"username": owner, "role": "owner"}]}
    descriptor["outputPorts"] = [{"name": PORT, "version": version, "contractId": "crm-ledger"}]
    contract = customers_contract()
    contract.update(id="crm-ledger", version=version)
    return descriptor, contract


def test_a_new_version_does_not_make_its_publisher_owner_of_the_old_ones(
    sec: SecurityHome,
) -> None:
    """A data engineer (publish rights, no grant) publishes version 1.0.1 of a product
    someone else owns, naming itself owner in the descriptor, then reads 1.0.0. Owners
    are the server's state: the publish is refused, or it leaves 1.0.0 unreadable to it
    (refused or masked), never clear."""
    with sec.remote(ADMIN) as admin:
        descriptor, contract = _ledger_documents("1.0.0", "crm-owner")
        admin.mesh.publish_arrow(descriptor, {PORT: contract}, {PORT: CLEAR.table()})
    name = "de-hijack"
    sec.new_user(name, "data_engineer")
    decoy = CLEAR.table().slice(0, 1)
    decoy = decoy.set_column(2, "email", pa.array(["decoy@example.org"]))
    decoy = decoy.set_column(3, "note", pa.array(["decoy"]))
    with sec.remote(name) as attacker:
        descriptor, contract = _ledger_documents("1.0.1", name)
        try:
            attacker.mesh.publish_arrow(descriptor, {PORT: contract}, {PORT: decoy})
        except MeshopsError as exc:
            assert exc.http_status == 403, exc.message
        try:
            body = ipc_bytes(attacker.mesh.read("crm.ledger", "1.0.0"))
        except MeshopsError as exc:
            assert exc.http_status == 403, exc.message
            body = json.dumps(exc.to_json()).encode()
    assert leaks(body, MASKED) == [], "the publisher of a new version read the old one in clear"


# --- the online store holds the data, not one materializer's masked view of it -------------


def test_a_masked_materializer_does_not_rewrite_what_others_read_online(
    sec: SecurityHome,
) -> None:
    """An ML engineer with a masked grant may materialize (features.materialize). Its run
    must not replace the store's values with its own masked view: the owner's next lookup
    still reads clear values (or the run is refused)."""
    from meshops.features.models import Entity, Feature, FeatureRepo, FeatureView, SourceRef

    view = FeatureView(
        name="profile_copy",
        entities=["customer"],
        source=SourceRef(product=PRODUCT),
        event_time="updated_at",
        features=[Feature(name="email", type="string")],
        ttl_seconds=None,
        owner="crm-owner",
    )
    admin = sec.embedded(ADMIN)
    try:
        entity = Entity(name="customer", join_keys=["customer_id"])
        admin.features.apply(FeatureRepo(entities=[entity], feature_views=[view]))
        admin.features.materialize(["profile_copy"])
    finally:
        admin.close()
    lookup = {"entity_rows": [{"customer_id": 1}], "features": ["profile_copy:email"]}
    before = sec.client("crm-owner").post("/v1/features/online", json=lookup)
    assert before.status_code == 200 and leaks(before.content, MASKED), before.text[:300]
    ran = sec.client("mle-masked").post(
        "/v1/features/materialize", json={"views": ["profile_copy"], "full": True}
    )
    assert ran.status_code in (200, 403), ran.text[:300]
    after = sec.client("crm-owner").post("/v1/features/online", json=lookup)
    assert after.status_code == 200, after.text[:300]
    assert leaks(after.content, MASKED) == leaks(before.content, MASKED), after.text[:300]
