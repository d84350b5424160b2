"""Endpoints and monitors, pipelines, and governance."""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Depends, Form, Query
from fastapi.responses import HTMLResponse, RedirectResponse
from markupsafe import Markup

from meshops.governance.models import ComplianceViolation
from meshops.governance.service import GovernanceService
from meshops.kernel.lineage import LineageService
from meshops.mesh.service import MeshService
from meshops.monitoring import reports
from meshops.monitoring.models import Alert, FeatureResult
from meshops.monitoring.service import MonitoringService
from meshops.monitoring.stats import P_VALUE_METHODS
from meshops.pipelines.models import RunDetail
from meshops.pipelines.service import PipelinesService
from meshops.serving.service import ServingService
from meshops.ui import charts, graphs
from meshops.ui.pages_mesh import edges_graph
from meshops.ui.routing import UIRoute
from meshops.ui.web import Session, attempt, session

router = APIRouter(prefix="/ui", route_class=UIRoute)

TRAFFIC_HOURS = 24  # the endpoint page's window
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
    times = window.column("time").to_pylist()
    traffic = _traffic(times, window.column("latency_ms").to_pylist(), since)
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
        last_seen=max(times, default=None),
        traffic_chart=charts.bar_chart(
            traffic.labels,
            [float(n) for n in traffic.counts],
            title=f"predictions per {traffic.bucket_name}",
        ),
        latency_chart=charts.line_chart(
            traffic.latency,
            title=f"latency (ms) per {traffic.bucket_name}",
            x_label=f"time (UTC), {traffic.bucket_name} buckets",
            y_label="ms",
            x_tick_format=traffic.clock,
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
    drift_charts = _drift_charts(monitoring.feature_history(mon.id, limit=50))
    features: list[FeatureResult] = chosen.features if chosen else []
    histograms = [(f, reports.histogram_svg(f)) for f in features[:MAX_HISTOGRAMS] if f.histogram]
    return s.render(
        "monitor.html",
        active="endpoints",
        monitor=mon,
        results=results,
        chosen=chosen,
        drift_charts=drift_charts,
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


def _drift_charts(history: list[FeatureResult]) -> list[Markup]:
    """One chart per test method: each feature's statistic over the monitor's runs, with the
    threshold it is judged by (p-values drift below theirs, distances above)."""
    by_method: dict[str, dict[str, list[tuple[float, float]]]] = defaultdict(
        lambda: defaultdict(list)
    )
    limits: dict[str, dict[str, float]] = defaultdict(dict)
    for row in sorted(history, key=lambda h: h.result_id):
        by_method[row.method][row.feature].append((float(row.result_id), row.score))
        limits[row.method][row.feature] = row.threshold
    out = []
    for method, series in sorted(by_method.items()):
        p_value = method in P_VALUE_METHODS
        statistic = "p-value" if p_value else "statistic"
        direction = "drift below the threshold" if p_value else "drift above the threshold"
        same = set(limits[method].values())
        out.append(
            charts.line_chart(
                dict(series),
                title=f"{method} {statistic} per feature ({direction})",
                x_label="monitor run #",
                y_label=statistic,
                threshold=same.pop() if len(same) == 1 else None,
                thresholds=None if len(set(limits[method].values())) == 1 else limits[method],
                x_integer=True,
            )
        )
    return out


BUCKET_SECONDS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600)
MAX_BUCKETS = 24


@dataclass
class Traffic:
    """Predictions and latency percentiles in equal time buckets, from the first prediction
    of the window to the last (a demo's minute of traffic gets seconds, a day gets hours)."""

    start: float  # epoch seconds of the first bucket
    size: int  # seconds per bucket
    counts: list[int]
    latency: dict[str, list[tuple[float, float]]]  # p50/p95 at each bucket's start

    @property
    def bucket_name(self) -> str:
        if self.size % 3600 == 0:
            return "hour" if self.size == 3600 else f"{self.size // 3600} h"
        if self.size % 60 == 0:
            return "minute" if self.size == 60 else f"{self.size // 60} min"
        return "second" if self.size == 1 else f"{self.size} s"

    @property
    def labels(self) -> list[str]:
        return [self.clock(self.start + k * self.size) for k in range(len(self.counts))]

    def clock(self, epoch: float) -> str:
        pattern = "%H:%M:%S" if self.size < 60 else "%H:%M"
        return datetime.fromtimestamp(epoch, UTC).strftime(pattern)


def _traffic(times: list[datetime], latencies: list[float | None], since: datetime) -> Traffic:
    stamps = [(t.timestamp(), ms) for t, ms in zip(times, latencies, strict=True)]
    in_window = [t for t, _ in stamps if t >= since.timestamp()]
    first = min(in_window, default=datetime.now(UTC).timestamp())
    last = max(in_window, default=first)
    size = next((b for b in BUCKET_SECONDS if b * MAX_BUCKETS >= last - first), 3600)
    start = first // size * size
    count = int((last - start) // size) + 1
    counts = [0] * count
    lat: list[list[float]] = [[] for _ in range(count)]
    for t, ms in stamps:
        k = int((t - start) // size)
        if 0 <= k < count:
            counts[k] += 1
            if ms is not None:
                lat[k].append(ms)
    p50: list[tuple[float, float]] = []
    p95: list[tuple[float, float]] = []
    for k, values in enumerate(lat):
        if values:
            values.sort()
            x = start + k * size
            p50.append((x, values[len(values) // 2]))
            p95.append((x, values[min(len(values) - 1, int(len(values) * 0.95))]))
    return Traffic(start, size, counts, {"p50": p50, "p95": p95})


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
            compliance.append(("all domains", overall, findings(overall.violations)))
        for d in domains[:MAX_COMPLIANCE_DOMAINS]:
            report = attempt(service.compliance, d.name)
            if report:
                compliance.append((d.name, report, findings(report.violations)))
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


@dataclass
class Finding:
    """One policy's violations of one kind, said once, with where they are: each product
    with its versions and the ports named (a port's warning repeats for every version)."""

    policy_id: str
    severity: str
    explanation: str
    places: dict[str, tuple[list[str], list[str]]]  # product -> (versions, ports)

    @property
    def count(self) -> int:
        return sum(len(versions) for versions, _ in self.places.values())


PORT_SUFFIX = re.compile(r"^(?P<text>.*?)\s*\[(?P<port>[^\]]+)\]$")


def findings(violations: list[ComplianceViolation]) -> list[Finding]:
    grouped: dict[tuple[str, str, str], Finding] = {}
    for v in violations:
        matched = PORT_SUFFIX.match(v.explanation)
        text, port = (matched["text"], matched["port"]) if matched else (v.explanation, "")
        severity = str(getattr(v.severity, "value", v.severity))
        key = (v.policy_id, severity, text)
        finding = grouped.setdefault(key, Finding(v.policy_id, severity, text, {}))
        parts = v.subject_urn.split(":")
        product = parts[2] if len(parts) > 2 else v.subject_urn
        versions, ports = finding.places.setdefault(product, ([], []))
        version = parts[3] if len(parts) > 3 else ""
        if version and version not in versions:
            versions.append(version)
        if port and port not in ports:
            ports.append(port)
    return list(grouped.values())
