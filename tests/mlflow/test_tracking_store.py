"""The tracking additions the MLflow API stands on, on SQLite and PostgreSQL: delete and
restore, renames, tag removal, reopening a run, logged models and their files; each
write authorised and audited."""

from __future__ import annotations

import pytest

from meshops.governance.service import GovernanceService
from meshops.kernel.errors import Conflict, Forbidden, InvalidInput, NotFound
from meshops.kernel.home import Home
from meshops.tracking.logged_models import LoggedModels
from meshops.tracking.service import TrackingService


def test_experiment_lifecycle(home: Home) -> None:
    svc = TrackingService(home.context())
    exp = svc.create_experiment("churn", tags={"team": "ml"})
    svc.create_experiment("other")
    assert svc.delete_experiment("churn").lifecycle_stage == "deleted"
    assert [e.name for e in svc.list_experiments_in_view("active")] == ["other"]
    assert [e.name for e in svc.list_experiments_in_view("deleted")] == ["churn"]
    assert svc.restore_experiment(exp.id).lifecycle_stage == "active"
    renamed = svc.update_experiment(exp.id, new_name="churn-v2", tags={"owner": "dana"})
    assert renamed.name == "churn-v2" and renamed.tags == {"team": "ml", "owner": "dana"}
    assert svc.get_experiment(exp.id).name == "churn-v2"
    with pytest.raises(Conflict, match="already exists"):
        svc.update_experiment(exp.id, new_name="other")
    svc.create_run("default", capture_environment=False)
    with pytest.raises(InvalidInput, match="default experiment"):
        svc.delete_experiment("default")
    actions = {e.action for e in GovernanceService(home.context()).audit_events(limit=50)}
    assert {
        "tracking.delete_experiment",
        "tracking.restore_experiment",
        "tracking.update_experiment",
    } <= actions


def test_run_delete_restore_rename_reopen_untag(home: Home) -> None:
    svc = TrackingService(home.context())
    run = svc.create_run("exp", name="a", tags={"t": "1", "u": "2"}, capture_environment=False)
    assert svc.update_run(run.id, name="b").name == "b"
    assert svc.update_run(run.id, status="FINISHED").status == "FINISHED"
    assert svc.update_run(run.id, status="KILLED").status == "FINISHED"  # ended stays
    reopened = svc.update_run(run.id, status="RUNNING")
    assert reopened.status == "RUNNING" and reopened.end_time is None
    svc.log_params(run.id, {"p": "1"})  # a reopened run takes values again
    svc.delete_tag(run.id, "t")
    assert svc.get_run(run.id).tags == {"u": "2"}
    with pytest.raises(NotFound, match="no tag 't'"):
        svc.delete_tag(run.id, "t")
    assert svc.delete_run(run.id).lifecycle_stage == "deleted"
    assert svc.search_runs(["exp"]).runs == []
    assert svc.get_run(run.id).lifecycle_stage == "deleted"
    svc.restore_run(run.id)
    assert [r.id for r in svc.search_runs(["exp"]).runs] == [run.id]


def test_logged_models_and_files(home: Home) -> None:
    ctx = home.context()
    svc = TrackingService(ctx)
    run = svc.create_run("models", capture_environment=False)
    models = LoggedModels(ctx)
    model = models.create(
        run.experiment_id, "clf", run_id=run.id, model_type="sklearn", params={"C": "1"}
    )
    assert model.id.startswith("m-") and model.status == "PENDING"
    models.put_file(model.id, "MLmodel", b"flavors: {}\n")
    models.put_file(model.id, "sub/model.pkl", b"\x00\x01")
    assert [f.path for f in models.list_files(model.id)] == ["MLmodel", "sub/model.pkl"]
    assert models.read_file(model.id, "sub/model.pkl") == b"\x00\x01"
    ready = models.update(model.id, status="READY", tags={"k": "v"})
    assert ready.status == "READY" and ready.tags == {"k": "v"}
    assert models.update(model.id, delete_tag="k").tags == {}
    found, more = models.search([run.experiment_id])
    assert [m.id for m in found] == [model.id] and not more
    with pytest.raises(InvalidInput, match="status"):
        models.update(model.id, status="DONE")
    with pytest.raises(InvalidInput, match="artifact path"):
        models.put_file(model.id, "../escape", b"x")
    with pytest.raises(NotFound, match="no experiment"):
        models.create("0" * 32)
    models.update(model.id, delete=True)
    with pytest.raises(NotFound):
        models.get(model.id)
    assert models.get(model.id, allow_deleted=True).lifecycle_stage == "deleted"
    assert models.search([run.experiment_id])[0] == []


def test_a_consumer_cannot_write(home: Home) -> None:
    gov = GovernanceService(home.context())
    gov.create_user("carl")
    from meshops.kernel.auth import Actor

    svc = TrackingService(home.context(Actor("carl")))
    with pytest.raises(Forbidden):
        svc.create_experiment("nope")
    owner = TrackingService(home.context())
    run = owner.create_run("exp", capture_environment=False)
    with pytest.raises(Forbidden):
        svc.delete_run(run.id)
    with pytest.raises(Forbidden):
        LoggedModels(home.context(Actor("carl"))).create(run.experiment_id)
