"""`meshops init --template training-pipeline` gives a project the platform's own automated
training pipeline, with its nightly schedule and its retrain-on-drift trigger."""

from __future__ import annotations

from pathlib import Path

from meshops.client import Platform
from meshops.pipelines.dsl import load_pipeline
from meshops.pipelines.templates import training
from meshops.project import scaffold


def test_training_pipeline_template_is_the_packaged_pipeline(
    platform: Platform, tmp_path: Path
) -> None:
    root = tmp_path / "ml"
    written = scaffold.init(root, template="training-pipeline", project="ml", owner="alice")
    module = root / "pipelines" / "training.py"
    assert module in written
    assert module.read_text() == Path(training.__file__).read_text()
    assert load_pipeline(f"{module}:training_pipeline").name == "training_pipeline"

    plan = platform.project.plan(root)
    actions = {(c.kind, c.name): c.action for c in plan.changes}
    assert actions[("schedule", "nightly-training")] == "create"
    assert actions[("trigger", "retrain-on-drift")] == "create"
