"""`meshops models ...` end to end in a subprocess: tables, --json and exit codes."""

from __future__ import annotations

import json
from pathlib import Path

from meshops.client import Platform
from meshops.kernel.home import Home
from tests.conftest import make_settings
from tests.registry.helpers import fitted_classifier
from tests.support.cli import run_cli


def test_models_commands(tmp_path: Path) -> None:
    home_dir = tmp_path / "home"
    settings = make_settings(home_dir)
    home = Home(settings)
    with Platform(settings, home=home) as platform:
        model, data = fitted_classifier()
        platform.registry.log_model("churn", model, input_example=data[:3], metrics={"auc": 0.8})
        platform.registry.log_model("churn", model)
        platform.registry.set_alias("churn", "challenger", 2)
    home.close()

    listed = run_cli("models", "list", "--json", home=home_dir)
    assert listed.returncode == 0, listed.stderr
    assert [(m["name"], m["latest_version"]) for m in json.loads(listed.stdout)] == [("churn", 2)]

    moved = run_cli(
        "models", "alias", "set", "churn", "champion", "1", "--reason", "go", home=home_dir
    )
    assert moved.returncode == 0, moved.stderr
    assert "champion" in moved.stdout

    history = run_cli("models", "alias", "history", "churn", "--json", home=home_dir)
    moves = json.loads(history.stdout)
    assert [(m["alias"], m["to_version"]) for m in moves] == [("champion", 1), ("challenger", 2)]
    assert moves[0]["reason"] == "go" and moves[0]["actor"] == "alice"

    shown = run_cli("models", "show", "churn", "--wide", home=home_dir)
    assert shown.returncode == 0 and "champion" in shown.stdout and "sklearn" in shown.stdout
    detail = run_cli("models", "show", "churn", "--version", "1", "--json", home=home_dir)
    assert json.loads(detail.stdout)["signature"]["inputs"][0]["name"] == "age"
    missing = run_cli("models", "show", "ghost", home=home_dir)
    assert missing.returncode == 3 and "not found" in missing.stderr
    bad_alias = run_cli("models", "alias", "set", "churn", "9x", "1", home=home_dir)
    assert bad_alias.returncode == 2 and "invalid alias" in bad_alias.stderr
