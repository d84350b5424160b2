"""`meshops import mlflow` from a real MLflow store: the MLflow client (its own virtualenv)
creates a SQLite tracking store with a file artifact root, and the test compares what
meshops holds after the import object by object with what the MLflow client reads back;
a second import copies nothing."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from meshops.cli.main import app
from meshops.client import connect
from meshops.kernel.errors import Forbidden
from meshops.kernel.home import Home
from meshops.mlflow.importer import (
    END_TIME_TAG,
    EXPERIMENT_ID_TAG,
    RUN_ID_TAG,
    START_TIME_TAG,
    VERSION_TAG,
    ImportReport,
    MlflowImporter,
    SourceFile,
    SourceRun,
    SqlSource,
    import_mlflow,
)
from meshops.registry.service import RegistryService
from meshops.tracking.service import TrackingService
from tests.conftest import free_port, make_settings
from tests.mlflow.conftest import DATA_SCIENTIST, MlflowWorld

STORE_SCRIPT = r"""
import hashlib, json, os, sys, tempfile
from pathlib import Path

import mlflow
import numpy as np
from mlflow import MlflowClient
from sklearn.linear_model import LogisticRegression

root = Path(sys.argv[2])
mlflow.set_tracking_uri(sys.argv[1])
client = MlflowClient()
churn = client.create_experiment(
    "churn", artifact_location=(root / "churn").as_uri(), tags={"team": "growth"}
)
pricing = client.create_experiment("pricing", artifact_location=(root / "pricing").as_uri())
X = np.random.RandomState(0).rand(60, 3)
y = (X[:, 0] > 0.5).astype(int)
T0 = 1_700_000_000_000
for i in range(2):
    with mlflow.start_run(experiment_id=churn, run_name=f"lr-{i}"):
        mlflow.log_params({"C": str(0.5 * (i + 1)), "solver": "lbfgs"})
        for step in range(6):
            value, ts = 1.0 / (step + 1) + i, T0 + 1000 * step + i
            mlflow.log_metric("loss", value, step=step, timestamp=ts)
        mlflow.log_metric("loss", 0.01, step=5, timestamp=T0 + 9999)  # two values at one step
        mlflow.log_metric("auc", 0.8 + i / 100)
        mlflow.set_tags({"stage": "dev", "owner.name": "dana"})
        mlflow.log_text("hello from run %d" % i, "notes/readme.txt")
        mlflow.log_dict({"features": ["a", "b", "c"], "i": i}, "config.json")
        model = LogisticRegression(C=0.5 * (i + 1)).fit(X, y)
        mlflow.sklearn.log_model(
            model, name="model", serialization_format="skops",
            registered_model_name="churn-model", pip_requirements=["scikit-learn", "skops"],
        )
with mlflow.start_run(experiment_id=pricing, run_name="broken") as failed:
    mlflow.log_param("depth", "7")
    mlflow.log_metric("rmse", 3.5, step=1)
client.set_terminated(failed.info.run_id, "FAILED")
with mlflow.start_run(experiment_id=pricing, run_name="pickled"):
    mlflow.sklearn.log_model(
        LogisticRegression().fit(X, y), name="model", serialization_format="pickle",
        registered_model_name="pickled-model", pip_requirements=["scikit-learn"],
    )
with mlflow.start_run(experiment_id=pricing, run_name="gone") as gone:
    mlflow.log_param("x", "1")
client.delete_run(gone.info.run_id)
client.set_registered_model_tag("churn-model", "task", "classification")
client.update_registered_model("churn-model", description="who leaves next month")
client.set_model_version_tag("churn-model", "1", "validated", "yes")
client.set_registered_model_alias("churn-model", "candidate", "2")
client.set_registered_model_alias("churn-model", "champion", "1")


def files(folder):
    folder = Path(folder)
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*")) if p.is_file()
    }


truth = {"experiments": {}, "runs": {}, "versions": {}, "aliases": {}, "deleted": gone.info.run_id}
for exp in client.search_experiments():
    truth["experiments"][exp.name] = {"id": exp.experiment_id, "tags": dict(exp.tags)}
for run in client.search_runs([churn, pricing]):
    run_id = run.info.run_id
    history = {
        key: [[m.step, m.value, m.timestamp] for m in client.get_metric_history(run_id, key)]
        for key in run.data.metrics
    }
    with tempfile.TemporaryDirectory() as tmp:
        arts = files(client.download_artifacts(run.info.run_id, "", tmp))
    truth["runs"][run.info.run_id] = {
        "name": run.info.run_name, "status": run.info.status,
        "start_time": run.info.start_time, "end_time": run.info.end_time,
        "params": run.data.params, "tags": run.data.tags, "metrics": history,
        "artifacts": arts, "experiment_id": run.info.experiment_id,
    }
for mv in client.search_model_versions("name='churn-model'"):
    with tempfile.TemporaryDirectory() as tmp:
        uri = f"models:/churn-model/{mv.version}"
        arts = files(mlflow.artifacts.download_artifacts(uri, dst_path=tmp))
    arts.pop("registered_model_meta", None)  # written by the client's download, not stored
    truth["versions"][mv.version] = {
        "run_id": mv.run_id, "tags": mv.tags, "files": arts, "description": mv.description or "",
    }
rm = client.get_registered_model("churn-model")
truth["aliases"] = dict(rm.aliases)
truth["model"] = {"tags": rm.tags, "description": rm.description}
print(json.dumps(truth))
"""


@pytest.fixture(scope="module")
def mlflow_store(mlflow_python: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A real MLflow store made by the MLflow client, and what the client reads back."""
    folder = tmp_path_factory.mktemp("mlflow-store")
    db_uri = f"sqlite:///{folder / 'mlflow.db'}"
    script = folder / "make_store.py"
    script.write_text(textwrap.dedent(STORE_SCRIPT))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "MESHOPS_"))}
    env["GIT_PYTHON_REFRESH"] = "quiet"
    proc = subprocess.run(
        [str(mlflow_python), str(script), db_uri, str(folder / "artifacts")],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-6000:]
    truth = json.loads(proc.stdout.strip().splitlines()[-1])
    return {"uri": db_uri, "folder": folder, "truth": truth}


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_import_from_database_uri_is_faithful_and_idempotent(
    mlflow_store: dict[str, Any], tmp_path: Path
) -> None:
    home = Home(make_settings(tmp_path / "home"))
    try:
        tracking = TrackingService(home.context())
        registry = RegistryService(home.context())
        report = import_mlflow(mlflow_store["uri"], tracking, registry)
        _assert_faithful(mlflow_store["truth"], report, tracking, registry)
        again = import_mlflow(mlflow_store["uri"], tracking, registry)
        _assert_nothing_copied(mlflow_store["truth"], again, registry)
    finally:
        home.close()


def test_import_from_mlflow_server_url(
    mlflow_store: dict[str, Any], mlflow_python: Path, tmp_path: Path
) -> None:
    """The same store served by `mlflow server`, imported through its REST API."""
    port = free_port()
    folder = mlflow_store["folder"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "MESHOPS_"))}
    server = subprocess.Popen(
        [
            str(mlflow_python.parent / "mlflow"),
            "server",
            "--backend-store-uri",
            mlflow_store["uri"],
            "--default-artifact-root",
            (folder / "artifacts").as_uri(),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        cwd=folder,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    home = Home(make_settings(tmp_path / "home"))
    try:
        _wait_up(f"{url}/health", server)
        tracking = TrackingService(home.context())
        registry = RegistryService(home.context())
        report = import_mlflow(url, tracking, registry)
        _assert_faithful(mlflow_store["truth"], report, tracking, registry)
        again = import_mlflow(url, tracking, registry)
        _assert_nothing_copied(mlflow_store["truth"], again, registry)
    finally:
        home.close()
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def _wait_up(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"mlflow server exited with {proc.returncode}"
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"{url} did not come up")


def _assert_faithful(
    truth: dict[str, Any],
    report: ImportReport,
    tracking: TrackingService,
    registry: RegistryService,
) -> None:

    # experiments: the MLflow id as a tag, the tags as they were
    for name in ("churn", "pricing"):
        exp = tracking.get_experiment(name)
        assert exp.tags[EXPERIMENT_ID_TAG] == truth["experiments"][name]["id"]
        for key, value in truth["experiments"][name]["tags"].items():
            assert exp.tags[key] == value
    # runs, object by object (the deleted one is skipped, with its reason)
    imported = {
        r.tags[RUN_ID_TAG]: r
        for name in ("churn", "pricing", "default")
        for r in tracking.search_runs([name], "", [], 100).runs
        if _exists(tracking, name)
    }
    assert set(imported) == set(truth["runs"])
    assert truth["deleted"] not in imported
    assert any(s.id == truth["deleted"] and "deleted" in s.reason for s in report.skipped)
    for run_id, expected in truth["runs"].items():
        run = imported[run_id]
        assert run.name == expected["name"]
        assert run.status.value == expected["status"]
        assert run.params == expected["params"]
        for key, value in expected["tags"].items():
            assert run.tags[key] == value, key
        assert run.tags[START_TIME_TAG] == str(expected["start_time"])
        assert run.tags[END_TIME_TAG] == str(expected["end_time"])
        for key, history in expected["metrics"].items():
            got = [
                [m.step, m.value, round(m.timestamp * 1000)]
                for m in tracking.metric_history(run.id, key)
            ]
            assert sorted(got) == sorted(history), key
        arts = {a.path: a.digest for a in tracking.list_artifacts(run.id)}
        for path, digest in expected["artifacts"].items():
            assert _sha(tracking.read_artifact(run.id, path)) == digest, path
            assert arts[path] == digest
    # registered model, versions (files byte for byte, run link), tags, aliases
    model = registry.get_model("churn-model")
    assert model.description == truth["model"]["description"]
    assert model.tags["task"] == "classification"
    versions = {v.tags[VERSION_TAG]: v for v in registry.list_versions("churn-model")}
    assert set(versions) == set(truth["versions"])
    for number, expected in truth["versions"].items():
        version = versions[number]
        assert version.run_id == report.run_ids[expected["run_id"]]
        assert imported[expected["run_id"]].id == version.run_id
        for key, value in expected["tags"].items():
            assert version.tags[key] == value
        assert {f.path for f in version.files} == set(expected["files"])
        for path, digest in expected["files"].items():
            assert _sha(registry.read_file("churn-model", version.version, path)) == digest
    # MLflow's skops sklearn is served like native sklearn; a pickled one is stored
    # and loads only under the trust rules
    assert {v.flavor for v in versions.values()} == {"mlflow-sklearn"}
    (pickled,) = registry.list_versions("pickled-model")
    assert pickled.flavor == "mlflow-sklearn-pickle"
    with pytest.raises(Forbidden):
        registry.load_model("models:/pickled-model/1")
    assert registry.load_model("models:/pickled-model/1", trust=True) is not None
    # the unprotected alias is set as it was, through set_alias with an audit reason
    assert model.aliases["candidate"] == versions[str(truth["aliases"]["candidate"])].version
    history = registry.alias_history("churn-model", "candidate")
    assert history[0].reason.startswith("imported from MLflow")
    # champion is protected: the promotion gate decided, and a refusal is reported
    champion = versions[str(truth["aliases"]["champion"])].version
    if model.aliases.get("champion") != champion:
        assert any(
            s.kind == "aliases" and s.id == "churn-model@champion" and "refused" in s.reason
            for s in report.skipped
        ), report.skipped


def _assert_nothing_copied(
    truth: dict[str, Any], again: ImportReport, registry: RegistryService
) -> None:
    """A second import copies nothing and finds everything."""
    assert all(c.copied == 0 for c in again.counts.values()), again.to_json()
    assert again.counts["runs"].unchanged == len(truth["runs"])
    assert again.counts["versions"].unchanged == len(truth["versions"]) + 1  # + pickled
    assert not again.changed
    assert len(registry.list_versions("churn-model")) == len(truth["versions"])


def _exists(tracking: TrackingService, name: str) -> bool:
    try:
        tracking.get_experiment(name)
    except Exception:
        return False
    return True


def test_cli_dry_run_then_import(mlflow_store: dict[str, Any], tmp_path: Path) -> None:
    """`meshops import mlflow --from URI --dry-run` writes nothing; without it the summary
    counts what was copied; bad input is a clear error."""
    home = tmp_path / "home"
    Home(make_settings(home)).close()
    env = {"MESHOPS_HOME": str(home), "MESHOPS_USER": "alice"}
    runner = CliRunner()
    args = ["import", "mlflow", "--from", mlflow_store["uri"], "--json"]
    dry = runner.invoke(app, [*args, "--dry-run"], env=env, catch_exceptions=False)
    assert dry.exit_code == 0, dry.output
    planned = json.loads(dry.stdout)
    assert planned["dry_run"] is True
    assert planned["counts"]["runs"]["copied"] == len(mlflow_store["truth"]["runs"])
    opened = Home(make_settings(home))
    try:  # the dry run wrote nothing
        listed = TrackingService(opened.context()).list_experiments()
        assert all(EXPERIMENT_ID_TAG not in e.tags for e in listed)
    finally:
        opened.close()
    done = runner.invoke(app, args, env=env, catch_exceptions=False)
    assert done.exit_code == 0, done.output
    counts = json.loads(done.stdout)["counts"]
    assert counts["runs"]["copied"] == len(mlflow_store["truth"]["runs"])
    assert counts["metrics"]["copied"] == sum(
        len(h) for r in mlflow_store["truth"]["runs"].values() for h in r["metrics"].values()
    )
    table = runner.invoke(app, args[:-1], env=env, catch_exceptions=False)
    assert table.exit_code == 0
    assert "already there" in table.stdout and "skipped" in table.stdout
    bad = runner.invoke(app, ["import", "mlflow", "--from", "ftp://nowhere"], env=env)
    assert bad.exit_code != 0
    assert "MLflow server URL" in str(bad.exception)


def test_import_into_a_server_as_a_data_scientist_and_refused_for_a_consumer(
    mlflow_store: dict[str, Any], mlflow_world: MlflowWorld
) -> None:
    """Over the SDK's HTTP transport, as the CLI does against MESHOPS_URI: the importer's
    writes are the importing user's, authorised and audited; a consumer may not import and
    nothing is half-written."""
    truth = mlflow_store["truth"]
    consumer_token = mlflow_world.token("consumer")
    with connect(mlflow_world.url, token=consumer_token) as consumer, pytest.raises(Forbidden):
        import_mlflow(mlflow_store["uri"], consumer.tracking, consumer.registry)
    with connect(mlflow_world.url, token=mlflow_world.token("data_scientist")) as dana:
        assert all(
            EXPERIMENT_ID_TAG not in e.tags for e in dana.tracking.list_experiments()
        )  # the refused import wrote nothing
        report = import_mlflow(mlflow_store["uri"], dana.tracking, dana.registry)
        assert report.counts["runs"].copied == len(truth["runs"])
        imported = dana.tracking.get_run(report.run_ids[next(iter(truth["runs"]))])
        assert imported.user == DATA_SCIENTIST
        for run_id, expected in truth["runs"].items():
            run = dana.tracking.get_run(report.run_ids[run_id])
            assert run.params == expected["params"]
            for key, history in expected["metrics"].items():
                got = [
                    [m.step, m.value, round(m.timestamp * 1000)]
                    for m in dana.tracking.metric_history(run.id, key)
                ]
                assert sorted(got) == sorted(history), key
            for path, digest in expected["artifacts"].items():
                assert _sha(dana.tracking.read_artifact(run.id, path)) == digest
        versions = {v.tags[VERSION_TAG]: v for v in dana.registry.list_versions("churn-model")}
        for number, expected in truth["versions"].items():
            for path, digest in expected["files"].items():
                data = dana.registry.read_file("churn-model", versions[number].version, path)
                assert _sha(data) == digest
        again = import_mlflow(mlflow_store["uri"], dana.tracking, dana.registry)
        assert all(c.copied == 0 for c in again.counts.values()), again.to_json()


CHANGE_SCRIPT = r"""
import json, sys
import mlflow
from mlflow import MlflowClient

mlflow.set_tracking_uri(sys.argv[1])
client = MlflowClient()
churn = client.get_experiment_by_name("churn").experiment_id
first = client.search_runs([churn], order_by=["attributes.start_time ASC"])[0]
client.set_tag(first.info.run_id, "reviewed", "yes")
with mlflow.start_run(experiment_id=churn, run_name="late") as late:
    mlflow.log_metric("loss", 0.5, step=1)
client.set_registered_model_alias("churn-model", "candidate", "1")
print(json.dumps({"tagged": first.info.run_id, "new": late.info.run_id}))
"""


def test_reimport_reports_what_changed_in_mlflow(
    mlflow_store: dict[str, Any], mlflow_python: Path, tmp_path: Path
) -> None:
    """After an import, MLflow changes (a run tagged, a new run, an alias moved): the next
    import copies the new run, applies the tag, moves the alias (through the gate) and
    reports each change."""
    home = Home(make_settings(tmp_path / "home"))
    try:
        tracking = TrackingService(home.context())
        registry = RegistryService(home.context())
        first = import_mlflow(mlflow_store["uri"], tracking, registry)
        changed_db = tmp_path / "changed.db"
        shutil.copyfile(mlflow_store["folder"] / "mlflow.db", changed_db)
        script = tmp_path / "change.py"
        script.write_text(CHANGE_SCRIPT)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "MESHOPS_"))}
        proc = subprocess.run(
            [str(mlflow_python), str(script), f"sqlite:///{changed_db}"],
            env={**env, "GIT_PYTHON_REFRESH": "quiet"},
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr[-4000:]
        done = json.loads(proc.stdout.strip().splitlines()[-1])

        again = import_mlflow(f"sqlite:///{changed_db}", tracking, registry)
        assert again.counts["runs"].copied == 1
        assert again.counts["runs"].changed == 1
        (run_change,) = [c for c in again.changed if c.kind == "runs"]
        assert run_change.id == done["tagged"] and "reviewed" in run_change.reason
        assert tracking.get_run(first.run_ids[done["tagged"]]).tags["reviewed"] == "yes"
        assert again.run_ids[done["new"]] not in first.run_ids.values()
        (alias_change,) = [c for c in again.changed if c.kind == "aliases"]
        assert alias_change.id == "churn-model@candidate"
        assert (
            registry.get_model("churn-model").aliases["candidate"]
            == first.versions["churn-model/1"]
        )
    finally:
        home.close()


def test_a_run_whose_copy_fails_midway_is_reported_and_copied_again(
    mlflow_store: dict[str, Any], tmp_path: Path
) -> None:
    """Fault injection on the real store: one run's artifact cannot be read. That run is
    skipped with the reason and its partial copy ended FAILED; the next import (the file
    readable again) copies it in full; the other runs are not copied twice."""
    broken = next(iter(r for r in mlflow_store["truth"]["runs"].values() if r["artifacts"]))
    failing = {"on": True}

    class FlakySource(SqlSource):
        def run_artifacts(self, run: SourceRun) -> Iterator[SourceFile]:
            for f in super().run_artifacts(run):
                if failing["on"] and run.name == broken["name"]:
                    yield SourceFile(f.path, f.size, _unreadable_file)
                else:
                    yield f

    home = Home(make_settings(tmp_path / "home"))
    try:
        tracking = TrackingService(home.context())
        registry = RegistryService(home.context())
        source = FlakySource(mlflow_store["uri"], None)
        try:
            first = MlflowImporter(source, tracking, registry).run()
            failing["on"] = False
            second = MlflowImporter(source, tracking, registry).run()
        finally:
            source.close()
        (skip,) = [s for s in first.skipped if s.kind == "runs" and "copy failed" in s.reason]
        assert "disk went away" in skip.reason
        partial = skip.reason.split("meshops run ")[1].split(" ")[0]
        assert tracking.get_run(partial).status.value == "FAILED"
        assert RUN_ID_TAG not in tracking.get_run(partial).tags
        assert second.counts["runs"].copied == 1
        assert second.counts["runs"].unchanged == len(mlflow_store["truth"]["runs"]) - 1
        copy = tracking.get_run(second.run_ids[skip.id])
        for path, digest in broken["artifacts"].items():
            assert _sha(tracking.read_artifact(copy.id, path)) == digest
    finally:
        home.close()


def _unreadable_file() -> bytes:
    raise OSError("disk went away")
