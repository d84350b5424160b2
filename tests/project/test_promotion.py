"""Promotion gate: model.promote policies, comparison with the alias holder on a recorded
metric, approvals by role (never by the author), all audited; SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from meshops.client import Platform
from meshops.kernel.auth import Actor
from meshops.kernel.errors import Forbidden, PolicyViolation
from meshops.kernel.home import Home
from tests.conftest import make_settings

GATE = "meshops.project.promotion:GovernedPromotionGate"


class Echo:
    def predict(self, rows: list[float]) -> list[float]:
        return rows


def _home(tmp_path: Path, url: str | None, promotion: dict[str, object]) -> Home:
    settings = make_settings(tmp_path / "home", url)
    extra = {"registry": {"promotion_gate": GATE}, "promotion": promotion}
    return Home(replace(settings, extra=extra))


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    yield request.getfixturevalue("postgres_url") if request.param == "postgres" else None


def _register(platform: Platform, accuracy: float) -> int:
    version = platform.registry.log_model(
        "churn", Echo(), flavor="python", metrics={"accuracy": accuracy}
    )
    return version.version


def test_promotion_without_approvals_compares_metrics(tmp_path: Path, db_url: str | None) -> None:
    home = _home(tmp_path, db_url, {"metric": "accuracy", "direction": "max"})
    with Platform(home.settings, home=home) as alice:
        v1 = _register(alice, 0.80)
        first = alice.project.promote("churn", to="production", version=v1)
        assert first.gate.allowed and first.from_version is None
        v2 = _register(alice, 0.75)
        with pytest.raises(PolicyViolation) as refused:
            alice.project.promote("churn", to="production", version=v2)
        assert "not better than 0.8" in refused.value.message
        assert alice.registry.get_model("churn").aliases["production"] == v1
        # the registry's hook guards plain alias moves to protected aliases too
        with pytest.raises(PolicyViolation):
            alice.registry.set_alias("churn", "production", v2)
        alice.registry.set_alias("churn", "challenger", v2)  # not protected
        v3 = _register(alice, 0.91)
        moved = alice.project.promote("churn", to="production")
        assert (moved.version, moved.from_version) == (v3, v1)
        assert moved.gate.current_value == 0.80 and moved.gate.candidate_value == 0.91
        gates = alice.governance.audit_events(obj=f"meshops:model:churn:{v2}")
        assert [e.action for e in gates].count("model.promotion_gate") == 2  # both refusals
        assert any(not e.detail["allowed"] for e in gates if e.action == "model.promotion_gate")
    home.close()


def test_promotion_needs_approval_by_role_not_author(tmp_path: Path, db_url: str | None) -> None:
    home = _home(
        tmp_path,
        db_url,
        {"approvals_required": 1, "approver_roles": ["business_stakeholder"]},
    )
    with Platform(home.settings, home=home) as alice:
        alice.governance.create_user("bob")
        alice.governance.bind_role("bob", "business_stakeholder")
        alice.governance.create_user("carol")
        alice.governance.bind_role("carol", "data_scientist")
        version = _register(alice, 0.9)
        with pytest.raises(PolicyViolation) as refused:
            alice.project.promote("churn", to="production", version=version)
        assert "needs 1 approval(s) by business_stakeholder" in refused.value.message
        with pytest.raises(Forbidden, match="may not approve"):
            alice.project.approve("churn", version)  # alice is the author
    with (
        Platform(home.settings, home=home, actor=Actor("carol")) as carol,
        pytest.raises(Forbidden),
    ):
        carol.project.approve("churn", version)  # no approver role
    with Platform(home.settings, home=home, actor=Actor("bob")) as bob:
        approval = bob.project.approve("churn", version, "signed off")
        assert approval.role == "business_stakeholder"
    with Platform(home.settings, home=home) as alice:
        result = alice.project.promote("churn", to="production", version=version)
        assert [a.approver for a in result.gate.approvals] == ["bob"]
        assert alice.registry.get_model("churn").aliases["production"] == version
        actions = [
            e.action for e in alice.governance.audit_events(obj=f"meshops:model:churn:{version}")
        ]
        assert "model.approve" in actions and "model.promotion_gate" in actions
    home.close()


def _register_metric(platform: Platform, metric: str, value: float) -> int:
    return platform.registry.log_model(
        "churn", Echo(), flavor="python", metrics={metric: value}
    ).version


def test_recorded_metric_gate_takes_the_metrics_known_direction(tmp_path: Path) -> None:
    # No [promotion] direction: brier is lower-is-better, so 0.30 after 0.20 is refused
    # (the gate once assumed "higher is better" for every metric it did not list).
    home = _home(tmp_path, None, {"metric": "brier"})
    with Platform(home.settings, home=home) as alice:
        alice.project.promote(
            "churn", to="production", version=_register_metric(alice, "brier", 0.2)
        )
        worse = _register_metric(alice, "brier", 0.3)
        with pytest.raises(PolicyViolation) as refused:
            alice.project.promote("churn", to="production", version=worse)
        assert "lower is better" in refused.value.message
        better = _register_metric(alice, "brier", 0.1)
        assert alice.project.promote("churn", to="production", version=better).gate.allowed
    home.close()


def test_recorded_metric_gate_refuses_a_metric_of_unknown_direction(tmp_path: Path) -> None:
    home = _home(tmp_path, None, {"metric": "house_score"})
    with Platform(home.settings, home=home) as alice:
        first = _register_metric(alice, "house_score", 0.2)
        alice.project.promote("churn", to="production", version=first)
        second = _register_metric(alice, "house_score", 0.9)
        with pytest.raises(PolicyViolation) as refused:
            alice.project.promote("churn", to="production", version=second)
        assert "[promotion] direction" in refused.value.message
        assert alice.registry.get_model("churn").aliases["production"] == first
    home.close()
