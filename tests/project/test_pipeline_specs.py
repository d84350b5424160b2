"""Schedules and triggers declared in the repository's pipelines/*.yaml reach the platform
through plan/apply, backlog options included, and applying twice changes nothing."""

from __future__ import annotations

from pathlib import Path

from meshops.client import Platform
from meshops.project import scaffold
from tests.project.helpers import commit_all, edit

SPECS = """\
schedules:
  - {name: nightly, cron: "0 3 * * *", ref: "pipelines/train.py:training"}
triggers:
  - name: retrain-on-orders
    topic: dataproduct.published
    ref: "pipelines/train.py:training"
    match: {product: sales.orders}
    max_concurrent: 1
    max_pending: 5
    coalesce_pending: true
"""


def test_schedules_and_triggers_are_planned_and_applied(platform: Platform, tmp_path: Path) -> None:
    root = tmp_path / "shop"
    scaffold.init(root, project="shop", owner="alice")
    (root / "pipelines" / "schedules.yaml").write_text(SPECS)
    commit_all(root, "schedules and triggers")

    plan = platform.project.plan(root)
    assert plan.change("schedule", "nightly").action == "create"
    assert plan.change("trigger", "retrain-on-orders").action == "create"
    platform.project.apply(root)
    trigger = {t.name: t for t in platform.pipelines.list_triggers()}["retrain-on-orders"]
    assert (trigger.max_pending, trigger.coalesce_pending) == (5, True)
    assert trigger.match == {"product": "sales.orders"}
    assert [s.cron for s in platform.pipelines.list_schedules()] == ["0 3 * * *"]
    assert not platform.project.plan(root).has_changes

    edit(root / "pipelines" / "schedules.yaml", "max_pending: 5", "max_pending: 0")
    commit_all(root, "no backlog")
    change = platform.project.plan(root).change("trigger", "retrain-on-orders")
    assert change.action == "update" and change.details == ["max_pending changes"]
    platform.project.apply(root)
    trigger = {t.name: t for t in platform.pipelines.list_triggers()}["retrain-on-orders"]
    assert trigger.max_pending == 0
    assert not platform.project.plan(root).has_changes
