"""Models, versions, aliases and loading, over both transports and PostgreSQL."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

import meshops
from meshops.client import Platform
from meshops.kernel import audit, outbox
from meshops.kernel.errors import Conflict, Forbidden, InvalidInput, NotFound, PolicyViolation
from meshops.kernel.home import Home
from meshops.registry.models import ModelFile, VersionStatus
from tests.conftest import make_settings
from tests.registry.helpers import fitted_classifier, frame, labels

# PostgreSQL runs the tests that exercise the tables; the rest is transport behaviour.
TWO_TRANSPORTS = pytest.mark.parametrize("platform", ["embedded", "http"], indirect=True)


def test_log_model_versions_metadata_and_card(platform: Platform) -> None:
    model, data = fitted_classifier()
    reg = platform.registry
    reg.create_model("churn", description="who leaves", tags={"team": "crm"}, domain="sales")
    v1 = reg.log_model("churn", model, input_example=data[:5], metrics={"auc": 0.91})
    v2 = reg.log_model("churn", model, description="second", tags={"k": "v"})
    assert (v1.version, v2.version) == (1, 2)
    assert v1.flavor == "sklearn"
    assert v1.urn == "meshops:model:churn:1"
    assert v1.metrics == {"auc": 0.91}
    assert v1.files[0].path == "model.skops" and len(v1.files[0].digest) == 64
    assert v1.signature is not None
    assert v1.signature.input_names == ["age", "spend", "visits"]
    assert v1.signature.outputs[0].type == "integer"
    assert v2.signature is None and v2.tags == {"k": "v"}
    got = reg.get_model("churn")
    assert (got.latest_version, got.domain, got.tags) == (2, "sales", {"team": "crm"})
    assert [v.version for v in reg.list_versions("churn")] == [2, 1]
    reg.set_model_card("churn", 1, "# Churn\n\nTrained on **2024** data.")
    assert reg.get_model_card("churn", 1).startswith("# Churn")
    assert reg.get_model_card("churn", 2) == ""
    updated = reg.update_version("churn", 2, description="better", status=VersionStatus.ARCHIVED)
    assert (updated.description, updated.status) == ("better", VersionStatus.ARCHIVED)
    assert reg.update_model("churn", description="new").description == "new"
    assert [m.name for m in reg.list_models()] == ["churn"]
    assert reg.list_models(domain="other") == []


@TWO_TRANSPORTS
def test_log_model_creates_the_model_on_first_use(platform: Platform) -> None:
    model, _ = fitted_classifier()
    version = platform.registry.log_model("fresh", model)
    assert version.version == 1
    assert platform.registry.get_model("fresh").created_by == "alice"


def test_aliases_move_with_full_history_and_uris_load(platform: Platform) -> None:
    reg = platform.registry
    model_a, data = fitted_classifier(seed=0)
    model_b, _ = fitted_classifier(seed=1)
    # champion is a protected alias: the default model.promote policies want metrics.
    reg.log_model("churn", model_a, input_example=data[:3], metrics={"auc": 0.81})
    reg.log_model("churn", model_b, input_example=data[:3], metrics={"auc": 0.84})
    first = reg.set_alias("churn", "champion", 1, reason="first release")
    assert (first.from_version, first.to_version, first.actor) == (None, 1, "alice")
    reg.set_alias("churn", "challenger", 2)
    # Moving champion away from v1 needs v2 scored against it on the same data.
    holdout = frame(200, seed=5).assign(churned=labels)
    assert reg.compare("churn", 2, data=pa.Table.from_pandas(holdout), label="churned").allowed
    moved = reg.set_alias("churn", "champion", 2, reason="won the A/B test")
    assert (moved.from_version, moved.to_version) == (1, 2)
    again = reg.set_alias("churn", "champion", 2)  # no move, no new history entry
    assert again.id == moved.id
    removed = reg.delete_alias("churn", "challenger", reason="done")
    assert (removed.from_version, removed.to_version) == (2, None)

    history = reg.alias_history("churn", "champion")
    assert [(m.from_version, m.to_version, m.reason) for m in history] == [
        (1, 2, "won the A/B test"),
        (None, 1, "first release"),
    ]
    assert len(reg.alias_history("churn")) == 4
    assert reg.get_model("churn").aliases == {"champion": 2}
    assert reg.get_version("churn", 2).aliases == ["champion"]

    assert reg.resolve("models:/churn@champion").version == 2
    assert reg.resolve("models:/churn/1").version == 1
    assert reg.resolve("models:/churn/latest").version == 2
    champion = meshops.load_model("models:/churn@champion", platform)
    expected = model_b.predict(data[:4])
    assert np.array_equal(champion.predict(data[:4]), expected)
    row = {"age": float(data.age[0]), "spend": float(data.spend[0]), "visits": int(data.visits[0])}
    assert champion.predict(row).tolist() == expected[:1].tolist()
    assert champion.uri == "models:/churn/2"
    loaded_v1 = reg.load_model("models:/churn/1")
    assert np.array_equal(loaded_v1.predict(data), model_a.predict(data))


@TWO_TRANSPORTS
def test_predict_enforces_the_signature(platform: Platform) -> None:
    model, data = fitted_classifier()
    platform.registry.log_model("churn", model, input_example=data[:5])
    loaded = platform.registry.load_model("models:/churn/1")
    with pytest.raises(InvalidInput, match="missing input column: visits"):
        loaded.predict({"age": 1.0, "spend": 2.0})
    with pytest.raises(InvalidInput, match="column 'spend' should be a number") as info:
        loaded.predict({"age": 1.0, "spend": "lots", "visits": 3})
    assert info.value.detail["field"] == "spend"
    with pytest.raises(InvalidInput, match="record 0: column 'visits' should be an integer"):
        loaded.predict(data.assign(visits=data["visits"] + 0.5))


@pytest.mark.parametrize("platform", ["embedded", "embedded-postgres"], indirect=True)
def test_events_and_audit_are_written_with_the_change(platform: Platform) -> None:
    assert platform.home is not None
    model, _ = fitted_classifier()
    platform.registry.log_model("churn", model, metrics={"auc": 0.8})
    platform.registry.set_alias("churn", "champion", 1)
    with platform.home.db.read() as conn:
        registered = outbox.recent(conn, outbox.MODEL_VERSION_REGISTERED)
        moved = outbox.recent(conn, outbox.MODEL_ALIAS_MOVED)
        events = audit.events(conn, obj="meshops:model:churn:1")
    assert registered[0].subject == "meshops:model:churn:1"
    assert registered[0].payload["flavor"] == "sklearn"
    assert moved[0].payload == {
        "name": "churn",
        "alias": "champion",
        "from_version": None,
        "to_version": 1,
        "reason": "",
    }
    assert {e.action for e in events} == {
        "registry.register_version",
        "model.promotion_gate",  # the gate's decision on the protected alias
        "registry.set_alias",
    }


def test_bad_input_is_refused_and_leaves_nothing(platform: Platform) -> None:
    reg = platform.registry
    model, _ = fitted_classifier()
    with pytest.raises(InvalidInput, match="invalid model name"):
        reg.log_model("bad name", model)
    with pytest.raises(NotFound, match="model 'ghost' not found"):
        reg.get_model("ghost")
    with pytest.raises(NotFound):
        reg.load_model("models:/ghost@champion")
    with pytest.raises(InvalidInput, match="not a model URI") as info:
        reg.load_model("churn:champion")
    assert "models:/<name>/<version>" in info.value.detail["accepted"]
    reg.log_model("churn", model, metrics={"auc": 0.8})
    with pytest.raises(NotFound, match="no version 7"):
        reg.get_version("churn", 7)
    with pytest.raises(NotFound, match="no alias 'champion'"):
        reg.load_model("models:/churn@champion")
    with pytest.raises(InvalidInput, match="invalid alias"):
        reg.set_alias("churn", "9lives", 1)
    with pytest.raises(NotFound):
        reg.set_alias("churn", "champion", 5)
    with pytest.raises(InvalidInput, match="metric 'auc' is nan"):
        reg.log_model("churn", model, metrics={"auc": float("nan")})
    with pytest.raises(InvalidInput, match="unknown model flavor"):
        reg.log_model("churn", model, flavor="tensorflow")
    with pytest.raises(InvalidInput, match="not in the blob store"):
        reg.register_files("churn", [ModelFile(path="m.skops", digest="a" * 64, size=1)], "sklearn")
    with pytest.raises(InvalidInput, match="invalid model file path"):
        digest = reg.upload_file(b"x")
        reg.register_files("churn", [ModelFile(path="../x", digest=digest, size=1)], "sklearn")
    with pytest.raises(Conflict, match="already exists"):
        reg.create_model("churn")
    assert [v.version for v in reg.list_versions("churn")] == [1]
    reg.set_alias("churn", "champion", 1)
    with pytest.raises(Conflict, match="alias"):
        reg.update_version("churn", 1, status=VersionStatus.ARCHIVED)


@TWO_TRANSPORTS
def test_untrusted_skops_file_is_refused_at_registration(platform: Platform) -> None:
    from sklearn.preprocessing import FunctionTransformer

    # `eval` inside a model file is exactly what a malicious upload would carry: refused
    # when it is registered (422), not when it is first served.
    evil = FunctionTransformer(func=eval)
    with pytest.raises(InvalidInput, match=r"builtins\.eval") as info:
        platform.registry.log_model("evil", evil, flavor="sklearn")
    assert info.value.detail["untrusted_types"] == ["builtins.eval"]
    assert "trusted_skops_types" in info.value.detail["fix"]
    assert platform.registry.list_models() == []


def test_an_admin_may_trust_more_skops_names_for_a_home(tmp_path: Path) -> None:
    from sklearn.preprocessing import FunctionTransformer

    settings = make_settings(tmp_path / "home")
    settings = replace(settings, extra={"registry": {"trusted_skops_types": ["builtins.eval"]}})
    with Platform(settings, home=Home(settings)) as platform:
        platform.registry.log_model("evil", FunctionTransformer(func=eval), flavor="sklearn")
        assert platform.registry.load_model("models:/evil/1").raw.func is eval
    plain = make_settings(tmp_path / "home")  # the same files, without the setting
    with Platform(plain, home=Home(plain)) as platform:
        with pytest.raises(Forbidden, match=r"builtins\.eval") as info:
            platform.registry.load_model("models:/evil/1")
        assert "trusted_types" in info.value.detail["fix"]
        loaded = platform.registry.load_model("models:/evil/1", trusted_types=["builtins.eval"])
        assert loaded.raw.func is eval


@TWO_TRANSPORTS
def test_read_file_returns_the_registered_bytes(platform: Platform) -> None:
    import hashlib

    model, _ = fitted_classifier()
    version = platform.registry.log_model("churn", model)
    data = platform.registry.read_file("churn", 1, "model.skops")
    assert hashlib.sha256(data).hexdigest() == version.files[0].digest
    with pytest.raises(NotFound, match="no file"):
        platform.registry.read_file("churn", 1, "other.bin")


def test_protected_alias_asks_the_policies_by_default(platform: Platform) -> None:
    """No `[registry] promotion_gate` setting: the real gate guards plain alias moves."""
    reg = platform.registry
    model, _ = fitted_classifier()
    reg.log_model("churn", model)  # no evaluation metrics recorded
    with pytest.raises(PolicyViolation, match="production-models-have-evaluation-metrics") as info:
        reg.set_alias("churn", "champion", 1)
    assert info.value.detail["gate"]["allowed"] is False
    assert "champion" not in reg.get_model("churn").aliases
    assert reg.alias_history("churn", "champion") == []
    reg.set_alias("churn", "challenger", 1)  # not a protected alias: no gate
    recorded = platform.governance.evaluations(subject_urn="meshops:model:churn:1")
    assert {e.policy_id for e in recorded if e.outcome == "fail"} == {
        "production-models-have-evaluation-metrics"
    }


def test_protected_alias_moves_with_metrics(platform: Platform) -> None:
    reg = platform.registry
    model, _ = fitted_classifier()
    reg.log_model("churn", model, metrics={"auc": 0.9})
    moved = reg.set_alias("churn", "production", 1, reason="evaluated")
    assert moved.to_version == 1
    recorded = platform.governance.evaluations(subject_urn="meshops:model:churn:1")
    assert {e.outcome for e in recorded} == {"pass"}
    assert len(recorded) == 2  # the two model.promote policies of the default pack


def test_an_operator_can_turn_the_gate_off(tmp_path: Path) -> None:
    """`[registry] promotion_gate = "open"` (a setting of the home's operator) turns it off."""
    settings = make_settings(tmp_path / "home")
    home = Home(replace(settings, extra={"registry": {"promotion_gate": "open"}}))
    with Platform(home.settings, home=home) as platform:
        model, _ = fitted_classifier()
        platform.registry.log_model("churn", model)
        assert platform.registry.set_alias("churn", "champion", 1).to_version == 1
    home.close()
