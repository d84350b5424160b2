"""Endpoints and monitors, pipelines, and governance."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Depends, Form, Query
from fastapi.responses import HTMLResponse, RedirectResponse
from markupsafe import Markup

from meshops.governance.service import GovernanceService
from meshops.kernel.lineage import LineageService
from meshops.mesh.service import MeshService
from meshops.monitoring import reports
from meshops.monitoring.models import Alert, FeatureResult
from meshops.monitoring.service import MonitoringService
from meshops.pipelines.models import RunDetail
from meshops.pipelines.service import PipelinesService
from meshops.serving.service import ServingService
from meshops.ui import charts, graphs
from meshops.ui.pages_mesh import edges_graph
from meshops.ui.routing import UIRoute
from meshops.ui.web import Session, attempt, session

router = APIRouter(prefix="/ui", route_class=UIRoute)

TRAFFIC_HOURS = 24
MAX_HISTOGRAMS = 6
MAX_COMPLIANCE_DOMAINS = 12


# --- endpoints and monitors ---------------------------------------------------------------


@router.get("/endpoints", include_in_schema=False)
def endpoints(s: Session = Depends(session)) -> Any:
    monitoring = MonitoringService(s.ctx) if s.can("monitoring.read") else None
    return s.render(
        "endpoints.html",
        endpoints=ServingService(s.ctx).list_endpoints(),
        monitors=monitoring.list_monitors() if monitoring else [],
        alerts=monitoring.list_alerts(state="open", limit=20) if monitoring else [],
    )


@router.get("/endpoints/{name}", include_in_schema=False)
def endpoint_page(name: str, s: Session = Depends(session)) -> Any:
    serving = ServingService(s.ctx)
    endpoint = serving.get_endpoint(name)
    since = datetime.now(UTC) - timedelta(hours=TRAFFIC_HOURS)
    window = serving.prediction_window(name, start=since, with_labels=False)
    traffic, latency = _traffic(
        window.column("time").to_pylist(), window.column("latency_ms").to_pylist()
    )
    by_version: dict[str, int] = defaultdict(int)
    for model, version in zip(
        window.column("model").to_pylist(), window.column("model_version").to_pylist(), strict=True
    ):
        by_version[f"{model} v{version}"] += 1
    monitoring = MonitoringService(s.ctx) if s.can("monitoring.read") else None
    monitors = monitoring.list_monitors(endpoint=name) if monitoring else []
    alerts: list[Alert] = []
    if monitoring:
        for m in monitors:
            alerts += monitoring.list_alerts(monitor=m.id, limit=20)
    edges = attempt(LineageService(s.ctx).upstream, endpoint.urn, 4) or []
    return s.render(
        "endpoint.html",
        active="endpoints",
        endpoint=endpoint,
        requests=window.num_rows,
        traffic_chart=charts.bar_chart(
            [h for h, _ in traffic], [float(n) for _, n in traffic], title="predictions per hour"
        ),
        latency_chart=charts.line_chart(
            latency, title="latency (ms) per hour", x_label="hours ago (negative)"
        ),
        by_version=dict(by_version),
        monitors=monitors,
        alerts=alerts,
        graph=graphs.graph_svg(edges_graph(edges, focus=endpoint.urn)),
        can_ack=s.can("monitoring.write"),
    )


@router.get("/monitors/{monitor}", include_in_schema=False)
def monitor_page(
    monitor: str, s: Session = Depends(session), result: int | None = Query(None)
) -> Any:
    monitoring = MonitoringService(s.ctx)
    mon = monitoring.get_monitor(monitor)
    results = monitoring.list_results(mon.id, limit=30)
    chosen = None
    if results:
        picked = next((r for r in results if r.id == result), None) or results[0]
        chosen = monitoring.get_result(picked.id)  # with its per-feature results
    history = monitoring.feature_history(mon.id, limit=50)
    drift_chart: Markup | None = None
    if history:
        series: dict[str, list[tuple[int, float]]] = defaultdict(list)
        for row in sorted(history, key=lambda h: h.result_id):
            series[f"{row.feature} ({row.method})"].append((row.result_id, row.score))
        drift_chart = charts.line_chart(
            dict(series), title="drift score per feature over runs", x_label="monitor run"
        )
    features: list[FeatureResult] = chosen.features if chosen else []
    histograms = [(f, reports.histogram_svg(f)) for f in features[:MAX_HISTOGRAMS] if f.histogram]
    return s.render(
        "monitor.html",
        active="endpoints",
        monitor=mon,
        results=results,
        chosen=chosen,
        drift_chart=drift_chart,
        histograms=histograms,
        alerts=monitoring.list_alerts(monitor=mon.id, limit=20),
        rules=monitoring.list_rules(mon.id),
        can_ack=s.can("monitoring.write"),
    )


@router.get("/monitors/results/{result_id}/report", include_in_schema=False)
def monitor_report(result_id: int, s: Session = Depends(session)) -> Any:
    return HTMLResponse(MonitoringService(s.ctx).report(result_id))


@router.post("/alerts/{alert_id}", include_in_schema=False)
def alert_action(
    alert_id: int,
    s: Session = Depends(session),
    action: str = Form(...),
    back: str = Form("/ui/endpoints"),
) -> Any:
    monitoring = MonitoringService(s.ctx)
    if action == "resolve":
        monitoring.resolve_alert(alert_id, note=f"resolved in the UI by {s.user}")
    else:
        monitoring.acknowledge_alert(alert_id, note=f"acknowledged in the UI by {s.user}")
    return RedirectResponse(back if back.startswith("/ui") else "/ui", status_code=303)


def _traffic(
    times: list[datetime], latencies: list[float | None]
) -> tuple[list[tuple[str, int]], dict[str, list[tuple[float, float]]]]:
    now = datetime.now(UTC)
    counts = [0] * TRAFFIC_HOURS
    lat: list[list[float]] = [[] for _ in range(TRAFFIC_HOURS)]
    for t, ms in zip(times, latencies, strict=True):
        hours = int((now - t).total_seconds() // 3600)
        if 0 <= hours < TRAFFIC_HOURS:
            counts[hours] += 1
            if ms is not None:
                lat[hours].append(ms)
    labels = [f"-{h}h" for h in range(TRAFFIC_HOURS - 1, -1, -1)]
    traffic = list(zip(labels, counts[::-1], strict=True))
    p50: list[tuple[float, float]] = []
    p95: list[tuple[float, float]] = []
    for h in range(TRAFFIC_HOURS):
        if lat[h]:
            values = sorted(lat[h])
            p50.append((-h, values[len(values) // 2]))
            p95.append((-h, values[min(len(values) - 1, int(len(values) * 0.95))]))
    return traffic, {"p50": p50, "p95": p95}


# --- pipelines ----------------------------------------------------------------------------


@router.get("/pipelines", include_in_schema=False)
def pipelines(
    s: Session = Depends(session), pipeline: str | None = None, status: str | None = None
) -> Any:
    service = PipelinesService(s.ctx)
    return s.render(
        "pipelines.html",
        runs=service.list_runs(pipeline=pipeline or None, status=status or None, limit=50),
        schedules=service.list_schedules(),
        triggers=service.trigger_states(),
        pipeline=pipeline,
        status=status,
    )


@router.get("/pipelines/runs/{run_id}", include_in_schema=False)
def pipeline_run(run_id: str, s: Session = Depends(session), step: str | None = None) -> Any:
    service = PipelinesService(s.ctx)
    detail = service.get_run(run_id)
    chosen = next((st for st in detail.steps if st.node == step), None)
    logs = service.logs(run_id, chosen.node if chosen else None)
    return s.render(
        "pipeline_run.html",
        active="pipelines",
        detail=detail,
        graph=graphs.graph_svg(step_graph(detail)),
        chosen=chosen,
        logs=logs,
    )


def step_graph(detail: RunDetail) -> graphs.Graph:
    """Steps as nodes; an edge wherever a step consumed an artifact another step produced."""
    graph = graphs.Graph()
    producer: dict[str, str] = {}
    for st in detail.steps:
        for out in st.outputs:
            producer[out.digest] = st.node
    for st in detail.steps:
        label = st.status.value if hasattr(st.status, "value") else str(st.status)
        sub = f"{label}" + (f" · {st.attempts} attempts" if st.attempts > 1 else "")
        graph.add(
            graphs.Node(
                st.node,
                st.node,
                sub,
                f"/ui/pipelines/runs/{detail.run.id}?step={st.node}#logs",
                label,
            )
        )
    for st in detail.steps:
        for arg, digest in st.inputs.items():
            if digest in producer and producer[digest] != st.node:
                graph.edges.append((producer[digest], st.node, arg))
    return graph


# --- governance ---------------------------------------------------------------------------


@router.get("/governance", include_in_schema=False)
def governance(
    s: Session = Depends(session), actor: str | None = None, obj: str | None = None
) -> Any:
    service = GovernanceService(s.ctx)
    domains = attempt(MeshService(s.ctx).list_domains) or []
    compliance = []
    if s.can("policy.read"):
        overall = attempt(service.compliance)
        if overall:
            compliance.append(("all domains", overall))
        for d in domains[:MAX_COMPLIANCE_DOMAINS]:
            report = attempt(service.compliance, d.name)
            if report:
                compliance.append((d.name, report))
    audit = (
        service.audit_events(obj=obj or None, actor=actor or None, limit=50)
        if s.can("audit.read")
        else None
    )
    usage = service.usage_events(limit=30) if s.can("usage.read") else None
    return s.render(
        "governance.html",
        policies=service.list_policies() if s.can("policy.read") else [],
        compliance=compliance,
        audit=audit,
        usage=usage,
        requests=service.list_requests(status="pending") if s.can("access.request") else [],
        actor=actor,
        obj=obj,
        whoami=service.whoami(),
    )
