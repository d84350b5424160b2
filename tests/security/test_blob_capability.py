"""A digest is not a capability (issue #14, finding 5), over real HTTP.

Reading a blob requires read access to an object that references it; a new model version
or pipeline step output may only reference blobs its caller uploaded (or may already
read). The product snapshot's digest is visible to every consumer in the version's
metadata, so it is the key an attacker tries everywhere.
"""

from __future__ import annotations

import hashlib
import uuid

import httpx
import pytest
import skops.io
from sklearn.linear_model import LogisticRegression

from meshops.pipelines.models import artifact_urn
from tests.security.conftest import CLEAR, SecurityHome, leaks

CONSUMER = "consumer-none"  # a plain consumer: no grant, no pipelines/registry roles
DS = "ds-none"  # registry.write, pipelines.run; no grant on crm.customers
READER = "ds-revoked"  # another data scientist: pipelines.read, registry.read


def _no_clear_values(answer: httpx.Response) -> None:
    assert leaks(answer.content, CLEAR.masked_needles()) == []


def test_the_snapshot_digest_is_visible_to_a_consumer(sec: SecurityHome) -> None:
    """The premise: the digest is no secret (it is in the version's metadata)."""
    answer = sec.client(CONSUMER).get("/v1/mesh/products/crm.customers/version")
    assert answer.status_code == 200, answer.text
    assert sec.snapshot_digest in answer.text


@pytest.mark.parametrize("who", [CONSUMER, DS, READER, "mle-none", "ds-masked"])
def test_the_pipeline_artifact_route_does_not_serve_a_snapshot(sec: SecurityHome, who: str) -> None:
    before = sec.reads(who)
    answer = sec.client(who).get(f"/v1/pipelines/artifacts/{sec.snapshot_digest}")
    assert answer.status_code in (403, 404), answer.status_code
    if answer.status_code == 404:  # may read pipelines, but this is no pipeline artifact
        assert "mesh" in answer.json()["detail"]["fix"]  # points to the governed read API
    _no_clear_values(answer)
    assert sec.reads(who) == before  # nothing was read, so nothing to count


def _skops_bytes() -> bytes:
    model = LogisticRegression().fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1])
    return bytes(skops.io.dumps(model))


@pytest.mark.parametrize("flavor", ["sklearn", "python", "onnx"])
def test_a_model_version_cannot_wrap_a_foreign_digest(sec: SecurityHome, flavor: str) -> None:
    name = f"wrap-{flavor}-{uuid.uuid4().hex[:6]}"
    client = sec.client(DS)
    files = [{"path": "model.skops", "digest": sec.snapshot_digest, "size": 1}]
    answer = client.post(f"/v1/models/{name}/versions", json={"files": files, "flavor": flavor})
    assert answer.status_code == 422, answer.text
    assert "did not upload" in answer.json()["message"]
    download = client.get(f"/v1/models/{name}/versions/1/files/model.skops")
    assert download.status_code == 404
    _no_clear_values(download)


def test_a_foreign_digest_is_refused_next_to_an_uploaded_file(sec: SecurityHome) -> None:
    """One honest file does not carry a stolen one in with it."""
    client = sec.client(DS)
    data = _skops_bytes()
    digest = client.post("/v1/models/-/files", content=data).json()["digest"]
    files = [
        {"path": "model.skops", "digest": digest, "size": len(data)},
        {"path": "extra/data.parquet", "digest": sec.snapshot_digest, "size": 1},
    ]
    answer = client.post(
        "/v1/models/wrap-mixed/versions", json={"files": files, "flavor": "sklearn"}
    )
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"]["files"] == ["extra/data.parquet"]


def test_an_upload_is_a_capability_for_its_uploader_only(sec: SecurityHome) -> None:
    """ds-none uploads a model file; another writer cannot name that digest (it never had
    the bytes), the uploader can; once registered, registry readers download it."""
    # A model no one else has: a unique regularisation constant gives unique bytes.
    data = skops.io.dumps(
        LogisticRegression(C=float(uuid.uuid4().int % 1000 + 1)).fit([[0.0], [1.0]], [0, 1])
    )
    digest = sec.client(DS).post("/v1/models/-/files", content=data).json()["digest"]
    files = [{"path": "model.skops", "digest": digest, "size": len(data)}]
    name = f"owned-{uuid.uuid4().hex[:6]}"
    other = sec.client("mle-none").post(
        f"/v1/models/{name}/versions", json={"files": files, "flavor": "sklearn"}
    )
    assert other.status_code == 422, other.text
    mine = sec.client(DS).post(
        f"/v1/models/{name}/versions", json={"files": files, "flavor": "sklearn"}
    )
    assert mine.status_code == 201, mine.text
    download = sec.client(READER).get(f"/v1/models/{name}/versions/1/files/model.skops")
    assert download.status_code == 200
    assert download.content == data
    # The download is recorded (audit), like every read of a governed object.
    events = sec.admin().audit_events(obj=f"meshops:model:{name}:1")
    assert "registry.read_file" in [e.action for e in events]


def test_pipeline_artifacts_owner_reads_back_others_only_once_produced(
    sec: SecurityHome,
) -> None:
    data = f"artifact {uuid.uuid4()}".encode()
    digest = hashlib.sha256(data).hexdigest()
    owner, reader = sec.client(DS), sec.client(READER)
    put = owner.put(f"/v1/pipelines/artifacts/{digest}", content=data)
    assert put.status_code == 201, put.text
    own = owner.get(f"/v1/pipelines/artifacts/{digest}")
    assert own.status_code == 200 and own.content == data  # the uploader, mid-run
    assert reader.get(f"/v1/pipelines/artifacts/{digest}").status_code == 404
    # Once a recorded step run produced it, whoever may read pipelines reads it.
    run = owner.post(
        "/v1/pipelines/engine/start",
        json={"pipeline": "cap", "ref": "cap.py:cap", "params": {}, "executor": "inline"},
    ).json()
    step = _step(run["id"], digest, len(data))
    recorded = owner.post(f"/v1/pipelines/runs/{run['id']}/steps", json={"steps": [step]})
    assert recorded.status_code == 204, recorded.text
    shared = reader.get(f"/v1/pipelines/artifacts/{digest}")
    assert shared.status_code == 200 and shared.content == data
    events = sec.admin().audit_events(obj=artifact_urn(digest))
    assert [e.actor for e in events if e.action == "pipelines.read_artifact"] == [READER]


def _step(run_id: str, digest: str, size: int, inline: str | None = None) -> dict[str, object]:
    output = {"name": "out", "digest": digest, "materializer": "bytes", "type": "bytes"}
    return {
        "id": uuid.uuid4().hex,
        "run_id": run_id,
        "node": "steal",
        "step": "steal",
        "status": "succeeded",
        "code_digest": "0" * 64,
        "cache_key": uuid.uuid4().hex,
        "outputs": [{**output, "size": size, "inline": inline}],
    }


@pytest.mark.parametrize("inline", [None, "bm90IHRoZSBzbmFwc2hvdA=="])
def test_a_step_run_cannot_claim_a_snapshot_as_its_output(
    sec: SecurityHome, inline: str | None
) -> None:
    """Recording a step output is what makes an artifact readable, so a forged record
    naming the snapshot (as a blob, or inline with other bytes) is refused."""
    client = sec.client(DS)
    run = client.post(
        "/v1/pipelines/engine/start",
        json={"pipeline": "forge", "ref": "forge.py:forge", "params": {}, "executor": "inline"},
    ).json()
    step = _step(run["id"], sec.snapshot_digest, 1, inline)
    recorded = client.post(f"/v1/pipelines/runs/{run['id']}/steps", json={"steps": [step]})
    assert recorded.status_code == 422, recorded.text
    for who in (DS, READER):
        answer = sec.client(who).get(f"/v1/pipelines/artifacts/{sec.snapshot_digest}")
        assert answer.status_code == 404
        _no_clear_values(answer)


def test_the_governed_read_still_works_and_counts(sec: SecurityHome) -> None:
    """The way to the data stays open for whom the grant allows, and is recorded."""
    who = "consumer-unmasked"
    before = sec.reads(who)
    platform = sec.remote(who)
    try:
        table = platform.mesh.read("crm.customers")
    finally:
        platform.close()
    assert table.column("email").to_pylist() == CLEAR.emails()
    assert sec.reads(who) == before + 1


def test_the_prediction_log_shows_enriched_features_only_as_the_reader_may_see_them(
    sec: SecurityHome,
) -> None:
    """An endpoint that looks features up logs what its model saw, for whoever called
    predict. A reader of the log (window, monitors, roll) sees those values only as its own
    grant allows: the log's chunks are blobs, and the endpoint is not a capability on the
    features' source product either."""
    from tests.security.conftest import FEATURES, MASKED_COLUMNS, PORT, PRODUCT

    endpoint = f"enriched-{uuid.uuid4().hex[:6]}"
    admin = sec.embedded("alice")
    try:
        admin.serving.create_endpoint(
            endpoint, "churn@champion", features=FEATURES, entity_keys=["customer_id"]
        )
    finally:
        admin.close()
    caller = f"predictor-{uuid.uuid4().hex[:6]}"
    sec.new_user(caller, "software_engineer")  # serving.predict; a clear grant below
    sec.admin().grant_access(PRODUCT, PORT, caller, purpose="clear", columns=list(MASKED_COLUMNS))
    records = [
        {"customer_id": i + 1, "tenure": 0.1, "spend": 0.2, "calls": 0.3, "age": 0.4}
        for i in range(CLEAR.rows)
    ]
    answer = sec.client(caller).post(f"/v1/endpoints/{endpoint}/predict", json={"records": records})
    assert answer.status_code == 200, answer.text
    path = f"/v1/endpoints/{endpoint}/predictions"

    mine = sec.client(caller).get(path)
    assert mine.status_code == 200
    assert leaks(mine.content, {"email": CLEAR.emails()[0].encode()}) == ["email"]

    for reader in (DS, "ds-masked", "ds-revoked"):
        before = sec.reads(reader)
        window = sec.client(reader).get(path)
        assert window.status_code == 200, window.text
        assert leaks(window.content, CLEAR.masked_needles()) == [], reader
        if reader == "ds-masked":  # unclassified columns of its grant stay readable
            assert leaks(window.content, CLEAR.allowed_needles())
            assert sec.reads(reader) == before + 1  # and the read is counted
        else:
            assert leaks(window.content, CLEAR.allowed_needles()) == []

    # Rolled into the log data product, the looked-up values are a classified column: a
    # grant on the log that does not name it reads it masked.
    admin = sec.embedded("alice")
    try:
        rolled = admin.serving.roll_log(endpoint)
    finally:
        admin.close()
    assert rolled.version is not None and rolled.rows == CLEAR.rows
    sec.admin().grant_access(rolled.product, "predictions", "ds-masked", purpose="monitoring")
    reader = sec.remote("ds-masked")
    try:
        table = reader.mesh.read(rolled.product)
    finally:
        reader.close()
    assert table.num_rows == CLEAR.rows
    assert leaks(repr(table.to_pylist()).encode(), CLEAR.masked_needles()) == []


def test_only_who_started_or_claimed_a_run_records_into_it(sec: SecurityHome) -> None:
    """Step runs are what the cache and the artifact route trust, so a principal with
    pipelines.run cannot write them (or finish the run) into someone else's run, even
    naming the run's lease owner, which is only a name the worker chose."""
    owner, other = sec.client(DS), sec.client("mle-none")
    run = owner.post(
        "/v1/pipelines/engine/start",
        json={"pipeline": "mine", "ref": "mine.py:mine", "params": {}, "executor": "inline"},
    ).json()
    data = f"honest {uuid.uuid4()}".encode()
    digest = hashlib.sha256(data).hexdigest()
    assert other.put(f"/v1/pipelines/artifacts/{digest}", content=data).status_code == 201
    step = _step(run["id"], digest, len(data))
    steps = f"/v1/pipelines/runs/{run['id']}/steps"
    refused = other.post(steps, json={"steps": [step], "owner": run.get("lease_owner")})
    assert refused.status_code == 403, refused.text
    finish = f"/v1/pipelines/runs/{run['id']}/finish"
    assert other.post(finish, json={"status": "failed", "error": "x"}).status_code == 403
    detail = owner.get(f"/v1/pipelines/runs/{run['id']}").json()
    assert detail["steps"] == [] and detail["run"]["status"] == "running"
    owner.put(f"/v1/pipelines/artifacts/{digest}", content=data)
    assert owner.post(steps, json={"steps": [step]}).status_code == 204
    assert owner.post(finish, json={"status": "succeeded"}).status_code == 200
