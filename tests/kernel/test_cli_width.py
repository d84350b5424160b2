"""The CLI's tables at 80 and 200 columns (issue #19): on a seeded home, `runs list`,
`models show`, `lineage upstream` and `catalog search` print every id and URN whole (folded
across lines at most, never cut), lead with the primary metric, and the short ids they
print are accepted by the commands that take an id."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from meshops.cli.output import format_number, short_id
from meshops.client import Platform
from meshops.kernel.home import Home
from meshops.tracking.metrics_direction import declared_metric, rank_metrics
from meshops.tracking.models import DatasetInput
from tests.conftest import make_settings
from tests.mesh.conftest import generate_example
from tests.support.cli import run_cli, run_main
from tests.ui.demo import churn_training

WIDTHS = (80, 200)
# More metrics than a narrow table holds; alphabetically roc_auc comes 7th.
METRICS = ("accuracy", "brier", "f1", "log_loss", "loss", "precision", "roc_auc", "recall")
BOX = "│┃║|"


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Products of the retail example, three runs with eight metrics reading a product, a
    model with two versions from two runs and two aliases."""
    root = tmp_path_factory.mktemp("cli-width")
    home_dir = root / "home"
    home = Home(make_settings(home_dir))
    platform = Platform(home.settings, home=home)
    try:
        retail = generate_example(root / "retail", rows=300)
        for folder in ("sales_orders", "customers_profiles", "sales_customer_revenue"):
            platform.mesh.publish(retail / folder)
        profiles = platform.mesh.get_version("customers.profiles")
        runs = []
        for i in range(3):
            run = platform.tracking.create_run(
                "churn", name=f"logreg with a long name {i}", capture_environment=False
            )
            platform.tracking.log_input(
                run.id, DatasetInput(urn=profiles.urn, digest=profiles.digest, name="profiles")
            )
            for k, metric in enumerate(METRICS):
                platform.tracking.log_metric(run.id, metric, 0.61234567 + 0.1 * i + 0.01 * k)
            platform.tracking.end_run(run.id)
            runs.append(run.id)
        frame = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0], "b": [1.0, 0.0, 1.0, 0.0]})
        platform.registry.create_model("churn", description="Churn risk", domain="customers")
        for run_id in runs[1:]:
            model = LogisticRegression().fit(frame, [0, 1, 0, 1])
            platform.registry.log_model("churn", model, input_example=frame, run_id=run_id)
        platform.registry.set_alias("churn", "champion", 1)
        platform.registry.set_alias("churn", "challenger", 2)
        pipeline_run = platform.pipelines.run(churn_training, {"n": 40, "c": 0.5}, track=False)
        return {"home": home_dir, "runs": runs, "pipeline_run": pipeline_run.run.id}
    finally:
        platform.close()
        home.close()


@pytest.fixture
def cli(
    seeded: dict[str, Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Callable[..., str]:
    """`meshops ARGS` on the seeded home in a terminal `width` columns wide, through the
    real entry point in this process (a new interpreter per call costs seconds); the
    console is made anew, as a new process makes it, from COLUMNS."""
    from rich.console import Console

    from meshops.cli import output

    monkeypatch.setenv("MESHOPS_HOME", str(seeded["home"]))
    monkeypatch.setenv("MESHOPS_USER", "alice")
    monkeypatch.delenv("MESHOPS_URI", raising=False)

    def run(width: int, *args: str, code: int = 0) -> str:
        monkeypatch.setenv("COLUMNS", str(width))
        monkeypatch.setattr(output, "console", Console())
        proc = run_main(args, monkeypatch, capsys)
        assert proc.returncode == code, proc.stderr
        assert "…" not in proc.stdout, proc.stdout  # nothing cut with an ellipsis
        return proc.stdout if code == 0 else proc.stderr

    return run


def readable(output: str) -> list[str]:
    """What a person can read whole in `output`: each line without its box characters
    and spaces, and each table column's fragments joined down the table (a folded cell
    continues on the next line of its column)."""
    texts = []
    columns: dict[int, list[str]] = {}
    for line in output.splitlines():
        texts.append(re.sub(rf"[\s{BOX}]", "", line))
        if "│" in line:
            for index, cell in enumerate(line.split("│")):
                columns.setdefault(index, []).append(cell.strip())
        else:  # a rule or a title ends the column runs
            texts.extend(re.sub(r"\s", "", "".join(parts)) for parts in columns.values())
            columns = {}
    texts.extend(re.sub(r"\s", "", "".join(parts)) for parts in columns.values())
    return texts


def shows_whole(output: str, token: str) -> bool:
    return any(token in text for text in readable(output))


@pytest.mark.parametrize("width", WIDTHS)
def test_runs_list_leads_with_the_primary_metric_and_short_ids(
    seeded: dict[str, Any], cli: Callable[..., str], width: int
) -> None:
    out = cli(width, "runs", "list")
    header = next(line for line in out.splitlines() if "┃" in line and "status" in line)
    assert "roc_auc" in header  # the primary metric, though 7th alphabetically
    others = [header.index(m) for m in METRICS if m != "roc_auc" and f" {m} " in header]
    assert header.index("roc_auc") < min(others, default=len(header))
    for run_id in seeded["runs"]:
        assert shows_whole(out, short_id(run_id))
    newest = json.loads(cli(width, "runs", "list", "--json"))["runs"][0]
    assert format_number(newest["metrics"]["roc_auc"]) in out  # 4 significant digits
    assert "e-0" not in out


def test_more_metrics_fit_a_wider_terminal_and_columns_are_chosen(
    cli: Callable[..., str],
) -> None:
    narrow = cli(80, "runs", "list")
    wide = cli(200, "runs", "list")
    assert sum(m in wide for m in METRICS) > sum(m in narrow for m in METRICS)
    picked = cli(80, "runs", "list", "--columns", "id,recall")
    header = next(line for line in picked.splitlines() if "┃" in line)
    assert header.split() == ["┃", "id", "┃", "recall", "┃"]
    every = cli(80, "runs", "list", "--wide")
    assert all(shows_whole(every, m) for m in METRICS)
    bad = cli(80, "runs", "list", "--columns", "id,nope", code=2)
    assert "nope" in bad and "roc_auc" in bad


@pytest.mark.parametrize("width", WIDTHS)
def test_runs_show_accepts_the_short_id(
    seeded: dict[str, Any], cli: Callable[..., str], width: int
) -> None:
    run_id = seeded["runs"][0]
    out = cli(width, "runs", "show", short_id(run_id))
    assert shows_whole(out, run_id)
    assert json.loads(cli(width, "runs", "show", run_id[:6], "--json"))["id"] == run_id
    assert "does not exist" in cli(width, "runs", "show", "ffffffffffff", code=3)


@pytest.mark.parametrize("width", WIDTHS)
def test_models_show_never_cuts_aliases_metrics_or_runs(
    seeded: dict[str, Any], cli: Callable[..., str], width: int
) -> None:
    out = cli(width, "models", "show", "churn")
    for token in ("champion", "challenger", "roc_auc", *map(short_id, seeded["runs"][1:])):
        assert shows_whole(out, token), token
    versions = json.loads(cli(width, "models", "show", "churn", "--json"))["versions"]
    for version in versions:
        assert shows_whole(out, format_number(version["metrics"]["roc_auc"]))
        for metric in METRICS:  # every other metric as name=value, whole
            if metric != "roc_auc":
                text = f"{metric}={format_number(version['metrics'][metric])}"
                assert shows_whole(out, text), text


@pytest.mark.parametrize("width", WIDTHS)
def test_lineage_upstream_prints_every_urn_whole(
    seeded: dict[str, Any], cli: Callable[..., str], width: int
) -> None:
    urn = "meshops:model:churn:2"
    edges = json.loads(cli(width, "lineage", "upstream", urn, "--json"))
    urns = {e[side] for e in edges for side in ("upstream", "downstream")}
    assert any(u.startswith("meshops:source:") for u in urns)  # the walk reaches the sources
    out = cli(width, "lineage", "upstream", urn)
    for found in urns:
        assert shows_whole(out, found), found
    if width == 80:  # too narrow for two URN columns: one block per edge, each URN on a line
        assert all(any(u in line for line in out.splitlines()) for u in urns)


@pytest.mark.parametrize("width", WIDTHS)
def test_catalog_search_shows_whole_names_and_relevance(
    seeded: dict[str, Any], cli: Callable[..., str], width: int
) -> None:
    out = cli(width, "catalog", "search", "customer")
    hits = json.loads(cli(width, "catalog", "search", "customer", "--json"))["hits"]
    assert len(hits) >= 2
    for hit in hits:
        assert shows_whole(out, hit["product"])
        assert shows_whole(out, re.sub(r"\s", "", hit["description"]))  # wrapped, not cut
    assert "100%" in out and "e-0" not in out  # relevance for people, not raw bm25 scores


def test_primary_metric_rule() -> None:
    assert rank_metrics(METRICS)[:3] == ["roc_auc", "accuracy", "f1"]
    assert rank_metrics(["zeta", "alpha"]) == ["alpha", "zeta"]
    declared = declared_metric({}, {"f1": 0.5, "f1_lift": 0.1, "roc_auc": 0.7})
    assert declared == "f1"
    assert rank_metrics(["roc_auc", "f1", "f1_lift"], [declared])[0] == "f1"
    tagged = declared_metric({"meshops.primary_metric": "recall"}, {"recall": 0.5})
    assert tagged == "recall"


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (0.912345, "0.9123"),
        (12.3456, "12.35"),
        (12345.6, "12,346"),
        (300.0, "300"),
        (1.96429e-06, "1.964e-06"),
        (0.000123456, "0.0001235"),
        (float("nan"), "nan"),
    ],
)
def test_numbers_are_formatted_for_people(value: float, shown: str) -> None:
    assert format_number(value) == shown


def test_id_prefixes_resolve_uniquely_or_list_the_candidates(tmp_path: Path) -> None:
    import sqlalchemy as sa

    from meshops.kernel.errors import InvalidInput, NotFound
    from meshops.tracking.service import resolve_id_prefix

    engine = sa.create_engine(f"sqlite:///{tmp_path / 'ids.db'}")
    ids = sa.Table("ids", sa.MetaData(), sa.Column("id", sa.String(32), primary_key=True))
    ids.create(engine)
    with engine.begin() as conn:
        conn.execute(ids.insert(), [{"id": "abcd1111"}, {"id": "abcd2222"}, {"id": "ef01"}])
        assert resolve_id_prefix(conn, ids.c.id, "abcd1", "run", "meshops runs list") == "abcd1111"
        assert resolve_id_prefix(conn, ids.c.id, "ef01", "run", "meshops runs list") == "ef01"
        with pytest.raises(InvalidInput, match="abcd1111, abcd2222"):
            resolve_id_prefix(conn, ids.c.id, "abcd", "run", "meshops runs list")
        with pytest.raises(NotFound) as short:
            resolve_id_prefix(conn, ids.c.id, "ab", "run", "meshops runs list")
        assert "at least 4" in short.value.detail["fix"]
        with pytest.raises(NotFound, match="no run id starts with"):
            resolve_id_prefix(conn, ids.c.id, "9999", "run", "meshops runs list")
        with pytest.raises(NotFound):  # a LIKE wildcard is no prefix
            resolve_id_prefix(conn, ids.c.id, "abc%", "run", "meshops runs list")


def test_run_ids_resolve_by_prefix_over_both_transports(platform: Platform) -> None:
    from meshops.kernel.errors import NotFound

    tracked = platform.tracking.create_run("prefixes", capture_environment=False)
    assert platform.tracking.resolve_run_id(short_id(tracked.id)) == tracked.id
    assert platform.tracking.resolve_run_id(tracked.id) == tracked.id
    with pytest.raises(NotFound, match="pipeline run ffffffff does not exist"):
        platform.pipelines.resolve_run_id("ffffffff")


def test_pipeline_commands_accept_the_short_id(
    seeded: dict[str, Any], cli: Callable[..., str]
) -> None:
    run_id = seeded["pipeline_run"]
    listed = cli(80, "pipelines", "list")
    assert shows_whole(listed, short_id(run_id))
    shown = cli(80, "pipelines", "show", short_id(run_id))
    assert "churn_training" in shown and "succeeded" in shown
    logs = cli(80, "pipelines", "logs", run_id[:8])
    assert "loaded 40 customers" in logs


def test_terminal_width_comes_from_columns_in_a_new_process(seeded: dict[str, Any]) -> None:
    urn = "meshops:model:churn:2"
    narrow = run_cli("lineage", "upstream", urn, home=seeded["home"], env={"COLUMNS": "80"})
    wide = run_cli("lineage", "upstream", urn, home=seeded["home"], env={"COLUMNS": "200"})
    assert narrow.returncode == 0 and wide.returncode == 0, narrow.stderr + wide.stderr
    assert max(map(len, narrow.stdout.splitlines())) <= 80
    assert max(map(len, wide.stdout.splitlines())) > 80


@pytest.mark.parametrize("width", WIDTHS)
def test_runs_compare_accepts_short_ids_and_marks_the_best(
    seeded: dict[str, Any], cli: Callable[..., str], width: int
) -> None:
    runs = seeded["runs"]
    out = cli(width, "runs", "compare", short_id(runs[0]), runs[2][:6])
    roc = next(line for line in out.splitlines() if "roc_auc" in line)
    assert "higher" in roc and roc.count("*") == 1  # the best of a known direction only
    assert roc.index("*") > roc.index(format_number(0.61234567 + 0.2 + 0.06))  # the later run
    for run_id in (runs[0], runs[2]):
        assert shows_whole(out, short_id(run_id))
    assert "compare at least two runs" in cli(width, "runs", "compare", runs[0], code=2)
