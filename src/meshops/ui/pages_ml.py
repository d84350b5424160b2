"""Experiments (runs table, metric charts, comparison) and the model registry."""

from __future__ import annotations

from collections import Counter
from typing import Any

from fastapi import APIRouter, Depends, Query
from markupsafe import Markup

from meshops.kernel.errors import InvalidInput
from meshops.kernel.lineage import Edge, LineageService
from meshops.pipelines.service import PipelinesService
from meshops.registry.comparison import METRIC_TAG, ModelComparison
from meshops.registry.models import ModelVersion
from meshops.registry.service import RegistryService
from meshops.tracking.metrics_direction import (
    Direction,
    best_index,
    configured_directions,
    declared_metric,
    direction_of,
    rank_metrics,
)
from meshops.tracking.models import Run
from meshops.tracking.service import PIPELINE_RUN_TAG, TrackingService
from meshops.ui import charts, graphs
from meshops.ui.pages_mesh import edges_graph
from meshops.ui.routing import UIRoute
from meshops.ui.web import Session, attempt, markdown, session

router = APIRouter(prefix="/ui", route_class=UIRoute)

RUNS_PAGE = 50
MAX_COLUMNS = 6
MAX_COMPARE = 6
MAX_CHARTS = 8
MAX_EXPERIMENT_CHARTS = 3
MAX_VERSION_METRICS = 3
SHORT_ID = 8  # enough to tell runs of one page apart; the CLI accepts it as a prefix


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
    metric_keys = ranked_metrics(runs)[:MAX_COLUMNS]
    labels = run_labels(runs)
    return s.render(
        "experiment.html",
        active="experiments",
        experiment=exp,
        runs=runs,
        labels=labels,
        started_by=started_by_all(s, runs),
        next_token=page.next_page_token,
        metric_keys=metric_keys,
        param_keys=_keys([r.params for r in runs]),
        charts=_across_runs(runs, labels, metric_keys[:MAX_EXPERIMENT_CHARTS]),
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
    labels = run_labels(runs)
    metric_keys = ranked_metrics(runs)[:50]
    param_keys = _keys([r.params for r in runs], limit=50)
    configured = configured_directions(s.ctx.home.settings)
    directions = {k: direction_of(k, configured) for k in metric_keys}
    chart_list = []
    for key in metric_keys:
        series = {
            labels[r.id]: [(m.step, m.value) for m in tracking.metric_history(r.id, key)]
            for r in runs
        }
        if any(len(points) > 1 for points in series.values()):  # once-logged: in the table
            chart_list.append(charts.line_chart(series, title=key, x_label="step"))
        if len(chart_list) == MAX_CHARTS:
            break
    differing = {k for k in param_keys if len({r.params.get(k) for r in runs}) > 1}
    return s.render(
        "compare.html",
        active="experiments",
        runs=runs,
        labels=labels,
        metric_keys=metric_keys,
        param_keys=param_keys,
        differing=differing,
        charts=chart_list,
        directions=directions,
        best=best_runs(runs, directions),
    )


@router.get("/runs/{run_id}", include_in_schema=False)
def run_page(run_id: str, s: Session = Depends(session)) -> Any:
    tracking = TrackingService(s.ctx)
    run = tracking.get_run(run_id)
    histories = {
        key: [(m.step, m.value) for m in tracking.metric_history(run.id, key)]
        for key in ranked_metrics([run])[:MAX_CHARTS]
    }
    chart_list = [
        charts.line_chart({key: points}, title=key, x_label="step")
        for key, points in histories.items()
        if len(points) > 1
    ]
    once = {key: points for key, points in histories.items() if len(points) == 1}
    lineage = LineageService(s.ctx)
    upstream = attempt(lineage.upstream, run.urn, 2) or []
    edges = [*upstream, *(attempt(lineage.downstream, run.urn, 3) or [])]
    return s.render(
        "run.html",
        active="experiments",
        run=run,
        charts=chart_list,
        values=charts.single_values(once, title="logged once") if once else None,
        started_by=started_by(s, run, upstream),
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
    comparisons: list[ModelComparison] = (
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
    declared = [
        str(s.ctx.home.settings.section("promotion").get("metric") or ""),
        *(c.metric for c in comparisons),
        model.tags.get(METRIC_TAG, ""),
        *(declared_metric(v.tags, v.metrics) or "" for v in versions),
    ]
    version_metrics = model_metrics(versions, declared)[:MAX_VERSION_METRICS]
    return s.render(
        "model.html",
        active="models",
        model=model,
        versions=versions,
        version_metrics=version_metrics,
        chosen_metrics=model_metrics([chosen], declared) if chosen else [],
        metric_chart=_by_version(versions, version_metrics[:1]),
        chosen=chosen,
        card=markdown(card) if card else None,
        history=registry.alias_history(name, limit=50),
        comparisons=comparisons,
        graph=graph,
    )


# --- what the pages show ------------------------------------------------------------------


def ranked_metrics(runs: list[Run]) -> list[str]:
    """Metric keys of `runs`, the one they are judged by first (see rank_metrics)."""
    declared = [m for m in (declared_metric(r.tags, r.metrics) for r in runs) if m]
    return rank_metrics({k for r in runs for k in r.metrics}, declared)


def model_metrics(versions: list[ModelVersion], declared: list[str]) -> list[str]:
    """The versions' metric keys, the model's comparison metric first: the first declared
    one (home's `[promotion] metric`, a comparison's, the model's tag) that a version has."""
    keys = {k for v in versions for k in v.metrics}
    first = next((d for d in declared if d in keys), None)
    return rank_metrics(keys, [first] if first else [])


def run_labels(runs: list[Run]) -> dict[str, str]:
    """{run id: what to call it}: the name, with a short id where names repeat (or when
    there is no name), so two runs of the same name can be told apart."""
    counts = Counter(r.name for r in runs)
    return {
        r.id: r.name if r.name and counts[r.name] == 1 else f"{r.name or 'run'} · {r.id[:SHORT_ID]}"
        for r in runs
    }


def best_runs(runs: list[Run], directions: dict[str, Direction | None]) -> dict[str, str]:
    """{metric: id of the run with the best value}, only for metrics whose direction is
    known (higher or lower is better) and whose values differ."""
    best: dict[str, str] = {}
    for key, direction in directions.items():
        having = [r for r in runs if key in r.metrics]
        index = best_index([r.metrics[key] for r in having], direction)
        if index is not None:
            best[key] = having[index].id
    return best


def started_by(s: Session, run: Run, upstream: list[Edge]) -> str | None:
    """ "trigger retrain-on-drift (monitor.alert)" or "schedule nightly" when a pipeline run
    that a trigger or schedule queued created this run (its tag, or its lineage)."""
    pipeline_run = run.tags.get(PIPELINE_RUN_TAG) or _pipeline_run_of(run.urn, upstream)
    if not pipeline_run or not s.can("pipelines.read"):
        return None
    return _origin_text(s, pipeline_run)


def _origin_text(s: Session, pipeline_run: str) -> str | None:
    detail = attempt(PipelinesService(s.ctx).get_run, pipeline_run)
    origin: dict[str, Any] = detail.run.origin if detail else {}
    if origin.get("kind") == "trigger":
        topic = f" ({origin['topic']})" if origin.get("topic") else ""
        return f"trigger {origin.get('trigger', '?')}{topic}"
    if origin.get("kind") == "schedule":
        return f"schedule {origin.get('schedule', '?')}"
    return None


def _pipeline_run_of(urn: str, upstream: list[Edge]) -> str | None:
    """The pipeline run whose step produced `urn`: pipelinerun -contains-> steprun
    -produced-> urn."""
    steps = {e.upstream for e in upstream if e.downstream == urn and e.relation == "produced"}
    return next(
        (
            e.upstream.split(":")[2]
            for e in upstream
            if e.downstream in steps and e.upstream.startswith("meshops:pipelinerun:")
        ),
        None,
    )


def started_by_all(s: Session, runs: list[Run]) -> dict[str, str]:
    """started_by of the runs of a table page that carry their pipeline run's tag: one
    query per distinct pipeline run, none for other runs (a run a step created without the
    tag says so on its own page, which reads its lineage)."""
    if not s.can("pipelines.read"):
        return {}
    origins: dict[str, str | None] = {}
    out: dict[str, str] = {}
    for run in runs:
        pipeline_run = run.tags.get(PIPELINE_RUN_TAG)
        if not pipeline_run:
            continue
        if pipeline_run not in origins:
            origins[pipeline_run] = _origin_text(s, pipeline_run)
        if origins[pipeline_run]:
            out[run.id] = str(origins[pipeline_run])
    return out


def _across_runs(runs: list[Run], labels: dict[str, str], keys: list[str]) -> list[Markup]:
    """Each metric's latest value per run, oldest run first (x: run number, whole ticks;
    the tooltips name the run)."""
    ordered = sorted(runs, key=lambda r: r.start_time)
    names = {float(i + 1): labels[r.id] for i, r in enumerate(ordered)}
    out = []
    for key in keys:
        points = [(i + 1, r.metrics[key]) for i, r in enumerate(ordered) if key in r.metrics]
        if len(points) > 1:
            out.append(
                charts.line_chart(
                    {key: points},
                    title=f"{key} per run",
                    x_label="run (oldest first)",
                    x_names=names,
                )
            )
    return out


def _by_version(versions: list[ModelVersion], keys: list[str]) -> Markup | None:
    """The primary metric of each version (x: version number)."""
    for key in keys:
        points = [(v.version, v.metrics[key]) for v in versions if key in v.metrics]
        if len(points) > 1:
            return charts.line_chart({key: points}, title=f"{key} by version", x_label="version")
    return None


def _keys(dicts: list[dict[str, Any]], limit: int = MAX_COLUMNS) -> list[str]:
    counts: dict[str, int] = {}
    for d in dicts:
        for k in d:
            counts[k] = counts.get(k, 0) + 1
    ordered = sorted(counts, key=lambda k: (-counts[k], k))
    return sorted(ordered[:limit])
