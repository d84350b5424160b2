"""YAML definitions (errors name the file, field and fix) and the `meshops features` CLI."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pyarrow as pa
import pytest
from typer.testing import CliRunner

from meshops.cli.main import app
from meshops.client import Platform
from meshops.features.specs import load_repo
from meshops.kernel.errors import InvalidInput
from meshops.kernel.home import Home
from tests.conftest import make_settings
from tests.features.helpers import publish
from tests.features.test_end_to_end import orders_v1

VIEWS = """
entities:
  - {name: customer, join_keys: [customer_id]}
feature_views:
  - name: customer_stats
    entities: [customer]
    source: sales.customer_stats:main@^1
    event_time: event_time
    ttl: 12h
    tags: [growth]
    features:
      - {name: orders_7d, type: int64, description: orders in 7 days}
      - {name: avg_amount, type: float64}
"""
SERVICES = """
feature_services:
  - {name: churn, features: ["customer_stats:*"]}
"""


def write(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


def test_a_folder_of_yaml_files_is_one_repository(tmp_path: Path) -> None:
    repo = load_repo(write(tmp_path / "features", {"a.yaml": VIEWS, "b.yml": SERVICES}))
    view = repo.feature_views[0]
    assert view.ttl_seconds == 12 * 3600
    assert (view.source.product, view.source.port, view.source.version) == (
        "sales.customer_stats", "main", "^1",
    )  # fmt: skip
    assert view.tags == {"growth": ""}
    assert repo.feature_services[0].features == ["customer_stats:*"]
    assert repo.origins["feature_view:customer_stats"].endswith("a.yaml#feature_views[0]")


BAD_CASES = [
    ("views: []", "views", "feature_views"),
    (
        VIEWS.replace("type: int64", "type: integer"),
        "feature_views[0].features.0.type",
        "int64",
    ),
    (VIEWS.replace("ttl: 12h", "ttl: soon"), "feature_views[0].ttl", "30d"),
    (
        VIEWS.replace("name: customer_stats", "name: Customer-Stats"),
        "feature_views[0].name",
        "lower-case",
    ),
    (
        VIEWS.replace("    event_time: event_time\n", ""),
        "feature_views[0].event_time",
        "add the field",
    ),
]


@pytest.mark.parametrize(("text", "field", "fix"), BAD_CASES)
def test_bad_yaml_names_file_field_and_fix(tmp_path: Path, text: str, field: str, fix: str) -> None:
    path = write(tmp_path, {"bad.yaml": text}) / "bad.yaml"
    with pytest.raises(InvalidInput) as info:
        load_repo(path)
    assert info.value.detail["file"] == str(path)
    assert info.value.detail["field"] == field
    assert fix in info.value.detail["fix"]


def test_broken_yaml_syntax_gives_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, {"bad.yaml": "entities:\n  - name: [unclosed\n"}) / "bad.yaml"
    with pytest.raises(InvalidInput) as info:
        load_repo(path)
    assert info.value.detail["line"] == 3


@pytest.fixture
def cli_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home_dir = tmp_path / "home"
    monkeypatch.setenv("MESHOPS_HOME", str(home_dir))
    monkeypatch.setenv("MESHOPS_USER", "alice")
    monkeypatch.delenv("MESHOPS_URI", raising=False)
    home = Home(make_settings(home_dir))
    platform = Platform(home.settings, home=home)
    publish(platform, "sales.customer_stats", "1.0.0", orders_v1())
    platform.close()
    home.close()
    return home_dir


def test_cli_apply_list_materialize_online_training_set(cli_home: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    folder = write(tmp_path / "features", {"a.yaml": VIEWS.replace("@^1", ""), "b.yaml": SERVICES})
    result = runner.invoke(app, ["features", "apply", str(folder), "--json"])
    assert result.exit_code == 0, result.output
    assert "feature_view:customer_stats" in json.loads(result.stdout)["created"]
    listed = json.loads(runner.invoke(app, ["features", "list", "--json"]).stdout)
    assert {d["name"] for d in listed} == {"customer", "customer_stats", "churn"}
    done = runner.invoke(app, ["features", "materialize", "--end", "2024-01-01T12:00:00", "--json"])
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)[0]["rows_written"] == 2
    online = runner.invoke(
        app, ["features", "online", "-e", "customer_id=2", "-f", "customer_stats:orders_7d",
              "--json"],
    )  # fmt: skip
    assert online.exit_code == 0, online.output
    row = json.loads(online.stdout)["rows"][0]
    # Materialized up to 2024-01-01 12:00; "now" is years later, so beyond the 12 h TTL.
    assert row["status"] == "stale" and row["values"] == {"orders_7d": None}
    labels = tmp_path / "labels.csv"
    labels.write_text(
        "customer_id,event_timestamp\n1,2024-01-01T06:00:00Z\n2,2024-01-01T03:00:00Z\n"
    )
    out = tmp_path / "ts.parquet"
    made = runner.invoke(
        app, ["features", "training-set", str(labels), "-s", "churn", "-o", str(out), "--json"]
    )
    assert made.exit_code == 0, made.output
    import pyarrow.parquet as pq

    table = pq.read_table(out)
    assert table.column("orders_7d").to_pylist() == [2, 11]
    assert json.loads(made.stdout)["row_count"] == 2
    shown = runner.invoke(app, ["features", "show", "customer_stats"])
    assert shown.exit_code == 0 and "statistics of customer_stats" in shown.stdout


def test_cli_contract_error_exits_2_naming_the_file(
    cli_home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from meshops.cli.main import main

    bad = VIEWS.replace("avg_amount, type: float64", "avg_amount, type: string")
    folder = write(tmp_path / "features", {"views.yaml": bad})
    monkeypatch.setattr(sys, "argv", ["meshops", "features", "apply", str(folder)])
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 2
    # Rich wraps long lines; compare without whitespace.
    err = "".join(capsys.readouterr().err.split())
    assert f"{folder / 'views.yaml'}:feature_views[0].features[1].type" in err
    assert "fix:declareitasoneof['float32','float64']" in err


def test_entities_from_pandas_give_the_same_digest_as_arrow(cli_home: Path) -> None:
    home = Home(make_settings(cli_home))
    platform = Platform(home.settings, home=home)
    try:
        platform.features.apply(load_repo_text(VIEWS))
        arrow = pa.table(
            {"customer_id": [1, 2],
             "event_timestamp": pa.array([0, 3600_000_000], pa.timestamp("us", tz="UTC"))}
        )  # fmt: skip
        chunked = pa.Table.from_batches(arrow.to_batches(max_chunksize=1))
        first = platform.features.training_set(arrow, ["customer_stats:orders_7d"])
        second = platform.features.training_set(chunked, ["customer_stats:orders_7d"])
        third = platform.features.training_set(arrow.to_pandas(), ["customer_stats:orders_7d"])
        assert first.digest == second.digest == third.digest
    finally:
        platform.close()
        home.close()


def load_repo_text(text: str) -> object:
    import yaml

    from meshops.features.specs import parse_document

    return parse_document(yaml.safe_load(text), "<test>")
