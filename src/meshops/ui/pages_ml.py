"""Experiments (runs table, metric charts, comparison) and the model registry."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query

from meshops.kernel.errors import InvalidInput
from meshops.kernel.lineage import LineageService
from meshops.registry.models import ModelVersion
from meshops.registry.service import RegistryService
from meshops.tracking.models import Run
from meshops.tracking.service import TrackingService
from meshops.ui import charts, graphs
from meshops.ui.pages_mesh import edges_graph
from meshops.ui.routing import UIRoute
from meshops.ui.web import Session, attempt, markdown, session

router = APIRouter(prefix="/ui", route_class=UIRoute)

RUNS_PAGE = 50
MAX_COLUMNS = 6
MAX_COMPARE = 6
MAX_CHARTS = 8


@router.get("/experiments", include_in_schema=False)
def experiments(s: Session = Depends(session)) -> Any:
    return s.render("experiments.html", experiments=TrackingService(s.ctx).list_experiments())


@router.get("/experiments/{name}", include_in_schema=False)
def experiment(
    name: str,
    s: Session = Depends(session),
    filter: str = "",
    sort: str = "start_time DESC",
    page_token: str | None = None,
) -> Any:
    tracking = TrackingService(s.ctx)
    exp = tracking.get_experiment(name)
    error = ""
    try:
        page = tracking.search_runs(
            [exp.id], filter=filter, order_by=[sort], max_results=RUNS_PAGE, page_token=page_token
        )
    except InvalidInput as exc:  # a typo in the filter: show it next to the box
        error = exc.message
        page = tracking.search_runs([exp.id], max_results=RUNS_PAGE)
    runs = page.runs
    metric_keys = _keys([r.metrics for r in runs])
    param_keys = _keys([r.params for r in runs])
    return s.render(
        "experiment.html",
        active="experiments",
        experiment=exp,
        runs=runs,
        next_token=page.next_page_token,
        metric_keys=metric_keys,
        param_keys=param_keys,
        filter=filter,
        sort=sort,
        error=error,
    )


@router.get("/runs/compare", include_in_schema=False)
def compare(s: Session = Depends(session), run: list[str] = Query(default_factory=list)) -> Any:
    if len(run) < 2:
        raise InvalidInput(
            "select at least two runs to compare", {"fix": "tick two or more runs in the table"}
        )
    tracking = TrackingService(s.ctx)
    runs = [tracking.get_run(r) for r in run[:MAX_COMPARE]]
    metric_keys = _keys([r.metrics for r in runs], limit=50)
    param_keys = _keys([r.params for r in runs], limit=50)
    chart_list = []
    for key in metric_keys[:MAX_CHARTS]:
        series = {
            f"{r.name} ({r.id[:6]})": [
                (m.step, m.value) for m in tracking.metric_history(r.id, key)
            ]
            for r in runs
        }
        chart_list.append(charts.line_chart(series, title=key, x_label="step"))
    differing = {k for k in param_keys if len({r.params.get(k) for r in runs}) > 1}
    return s.render(
        "compare.html",
        active="experiments",
        runs=runs,
        metric_keys=metric_keys,
        param_keys=param_keys,
        differing=differing,
        charts=chart_list,
        best=_best(runs, metric_keys),
    )


@router.get("/runs/{run_id}", include_in_schema=False)
def run_page(run_id: str, s: Session = Depends(session)) -> Any:
    tracking = TrackingService(s.ctx)
    run = tracking.get_run(run_id)
    chart_list = [
        charts.line_chart(
            {key: [(m.step, m.value) for m in tracking.metric_history(run.id, key)]},
            title=key,
        )
        for key in sorted(run.metrics)[:MAX_CHARTS]
    ]
    lineage = LineageService(s.ctx)
    edges = [
        *(attempt(lineage.upstream, run.urn, 2) or []),
        *(attempt(lineage.downstream, run.urn, 3) or []),
    ]
    return s.render(
        "run.html",
        active="experiments",
        run=run,
        charts=chart_list,
        graph=graphs.graph_svg(edges_graph(edges, focus=run.urn)),
        artifacts=attempt(tracking.list_artifacts, run.id) or [],
    )


@router.get("/models", include_in_schema=False)
def models(s: Session = Depends(session)) -> Any:
    return s.render("models.html", models=RegistryService(s.ctx).list_models())


@router.get("/models/{name}", include_in_schema=False)
def model_page(name: str, s: Session = Depends(session), version: int | None = None) -> Any:
    registry = RegistryService(s.ctx)
    model = registry.get_model(name)
    versions = sorted(registry.list_versions(name), key=lambda v: v.version, reverse=True)
    chosen: ModelVersion | None = None
    if versions:
        chosen = next((v for v in versions if v.version == version), None) or versions[0]
    card = attempt(registry.get_model_card, name, chosen.version) if chosen else None
    # Champion/challenger comparisons of the chosen version (both scores, verdict, run).
    comparisons = (
        attempt(registry.list_comparisons, name, chosen.version, 20) or [] if chosen else []
    )
    graph = None
    if chosen:
        lineage = LineageService(s.ctx)
        edges = [
            *(attempt(lineage.upstream, chosen.urn, 4) or []),
            *(attempt(lineage.downstream, chosen.urn, 3) or []),
        ]
        graph = graphs.graph_svg(edges_graph(edges, focus=chosen.urn))
    return s.render(
        "model.html",
        active="models",
        model=model,
        versions=versions,
        chosen=chosen,
        card=markdown(card) if card else None,
        history=registry.alias_history(name, limit=50),
        comparisons=comparisons,
        graph=graph,
    )


def _keys(dicts: list[dict[str, Any]], limit: int = MAX_COLUMNS) -> list[str]:
    counts: dict[str, int] = {}
    for d in dicts:
        for k in d:
            counts[k] = counts.get(k, 0) + 1
    ordered = sorted(counts, key=lambda k: (-counts[k], k))
    return sorted(ordered[:limit])


def _best(runs: list[Run], keys: list[str]) -> dict[str, str]:
    """Which run has the highest value of each metric (losses and errors: the lowest)."""
    best: dict[str, str] = {}
    for key in keys:
        values = [(r.metrics[key], r.id) for r in runs if key in r.metrics]
        if len(values) < 2:
            continue
        lower = any(w in key.lower() for w in ("loss", "error", "rmse", "mae", "mse"))
        best[key] = (min if lower else max)(values)[1]
    return best
