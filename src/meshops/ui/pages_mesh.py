"""Home, catalog, data product pages and access requests/decisions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Form, Query
from fastapi.responses import RedirectResponse

from meshops.governance.service import GovernanceService
from meshops.kernel.lineage import Edge
from meshops.mesh.models import DataProductVersion, SchemaChange
from meshops.mesh.schema_diff import diff_schemas
from meshops.mesh.service import MeshService
from meshops.monitoring.service import MonitoringService
from meshops.registry.models import AliasMove
from meshops.registry.service import RegistryService
from meshops.tracking.service import TrackingService
from meshops.ui import charts, graphs
from meshops.ui.activity import describe
from meshops.ui.routing import UIRoute
from meshops.ui.web import Session, attempt, session, urn_href, urn_label

router = APIRouter(prefix="/ui", route_class=UIRoute)

PAGE_SIZE = 20
ACTIVITY_SCAN = 60  # events read to write ACTIVITY_LINES sentences (repeats fold together)
ACTIVITY_LINES = 15
MAX_VERSIONS_SHOWN = 20


@router.get("", include_in_schema=False)
def home(s: Session = Depends(session)) -> Any:
    mesh = MeshService(s.ctx)
    domains = attempt(mesh.list_domains) or []
    activity = []
    if s.can("audit.read"):
        events = GovernanceService(s.ctx).audit_events(limit=ACTIVITY_SCAN)
        activity = describe(events, _Names(s), limit=ACTIVITY_LINES)
    alerts = []
    if s.can("monitoring.read"):
        alerts = MonitoringService(s.ctx).list_alerts(state="open", limit=10)
    facets = attempt(mesh.search, "", limit=1)
    return s.render(
        "home.html",
        domains=domains,
        activity=activity,
        alerts=alerts,
        products_total=facets.total if facets else 0,
        domain_counts=(facets.facets.get("domain", {}) if facets else {}),
    )


class _Names:
    """Run and alias names for the activity sentences, looked up once each."""

    def __init__(self, s: Session) -> None:
        self.tracking = TrackingService(s.ctx) if s.can("tracking.read") else None
        self.registry = RegistryService(s.ctx) if s.can("registry.read") else None
        self.runs: dict[str, tuple[str, str] | None] = {}
        self.experiments: dict[str, str] = {}
        self.moves: dict[str, list[AliasMove]] = {}

    def run(self, run_id: str) -> tuple[str, str] | None:
        if self.tracking is None:
            return None
        if run_id not in self.runs:
            found = attempt(self.tracking.get_run, run_id)
            self.runs[run_id] = (
                (found.name, self._experiment(found.experiment_id)) if found else None
            )
        return self.runs[run_id]

    def _experiment(self, experiment_id: str) -> str:
        if experiment_id not in self.experiments and self.tracking is not None:
            found = attempt(self.tracking.get_experiment, experiment_id)
            self.experiments[experiment_id] = found.name if found else experiment_id[:8]
        return self.experiments.get(experiment_id, experiment_id[:8])

    def alias(self, model: str, version: int, at: datetime) -> str | None:
        if self.registry is None:
            return None
        if model not in self.moves:
            self.moves[model] = attempt(self.registry.alias_history, model, limit=50) or []
        matching = [m for m in self.moves[model] if m.to_version == version]
        if not matching:
            return None
        return min(matching, key=lambda m: abs((m.at - at).total_seconds())).alias


@router.get("/catalog", include_in_schema=False)
def catalog(
    *,
    s: Session = Depends(session),
    q: str = "",
    domain: str | None = None,
    status: str | None = None,
    classification: str | None = None,
    tag: str | None = None,
    page: int = Query(1, ge=1, le=500),
) -> Any:
    result = MeshService(s.ctx).search(
        q,
        domain=domain or None,
        status=status or None,
        classification=classification or None,
        tag=tag or None,
        limit=PAGE_SIZE,
        offset=(page - 1) * PAGE_SIZE,
    )
    pages = max(1, -(-result.total // PAGE_SIZE))
    return s.render(
        "catalog.html",
        result=result,
        q=q,
        selected={"domain": domain, "status": status, "classification": classification, "tag": tag},
        page=page,
        pages=pages,
    )


@router.get("/products/{product}", include_in_schema=False)
def product_page(
    product: str, s: Session = Depends(session), version: str | None = None, msg: str = ""
) -> Any:
    mesh = MeshService(s.ctx)
    info = mesh.get_product(product)
    current = mesh.get_version(product, version) if info.latest_version else None
    versions = mesh.list_versions(product) if info.latest_version else []
    history = _version_changes(versions)[-MAX_VERSIONS_SHOWN:][::-1]
    slo = attempt(mesh.slo, product) if current else None
    graph = _lineage_graph(mesh, product, current) if current else None
    governance = GovernanceService(s.ctx)
    is_owner = s.user in info.owners or s.can("access.decide", info.domain)
    usage = attempt(governance.product_usage, product) if s.can("usage.read", info.domain) else None
    usage_chart = (
        charts.bar_chart(
            [d for d, _ in usage.reads_per_day],
            [float(n) for _, n in usage.reads_per_day],
            title="reads per day (30 days)",
        )
        if usage
        else None
    )
    requests = governance.list_requests(product=info.product) if s.can("access.request") else []
    pending = [r for r in requests if r.status == "pending"]
    approvals = [r for r in pending if s.user in r.owners or s.can("access.decide", r.domain)]
    mine = [r for r in requests if r.requester == s.user]
    grants = (
        governance.list_grants(product=info.product, grantee=s.user)
        if s.can("access.request")
        else []
    )
    can_request = (
        current is not None
        and not is_owner
        and s.can("access.request", info.domain)
        and not any(r.status == "pending" for r in mine)
    )
    return s.render(
        "product.html",
        active="catalog",
        product=info,
        current=current,
        history=history,
        slo=slo,
        graph=graph,
        usage=usage,
        usage_chart=usage_chart,
        approvals=approvals,
        my_requests=mine,
        grants=grants,
        can_request=can_request,
        is_owner=is_owner,
        msg=msg,
    )


@router.post("/products/{product}/access", include_in_schema=False)
def request_access(
    product: str,
    s: Session = Depends(session),
    port: str = Form(...),
    purpose: str = Form(...),
    columns: list[str] = Form(default_factory=list),
) -> Any:
    request = GovernanceService(s.ctx).request_access(
        product, port, purpose, columns=[c for c in columns if c] or None
    )
    note = "granted automatically" if request.status == "approved" else "sent to the owners"
    return RedirectResponse(f"/ui/products/{product}?msg=Access+request+{note}", status_code=303)


@router.post("/access/{request_id}", include_in_schema=False)
def decide(
    request_id: str,
    s: Session = Depends(session),
    decision: str = Form(...),
    reason: str = Form(""),
) -> Any:
    decided = GovernanceService(s.ctx).decide(request_id, decision == "approve", reason)
    verb = "approved" if decided.status == "approved" else decided.status
    return RedirectResponse(
        f"/ui/products/{decided.product}?msg=Request+from+{decided.requester}+{verb}",
        status_code=303,
    )


def _version_changes(
    versions: list[DataProductVersion],
) -> list[tuple[DataProductVersion, list[SchemaChange]]]:
    out = []
    previous: DataProductVersion | None = None
    for v in versions:
        if previous is None:
            changes: list[SchemaChange] = []
        else:
            diff = diff_schemas(
                previous.version,
                v.version,
                {p.name: p.columns for p in previous.ports},
                {p.name: p.columns for p in v.ports},
            )
            changes = diff.changes
        out.append((v, changes))
        previous = v
    return out


def _lineage_graph(mesh: MeshService, product: str, current: DataProductVersion) -> Any:
    up = attempt(mesh.lineage, product, current.version, "upstream", 3) or []
    down = attempt(mesh.lineage, product, current.version, "downstream", 4) or []
    return graphs.graph_svg(edges_graph([*up, *down], focus=current.urn))


CONTAINS = "contains"
FEEDBACK = frozenset({"triggered"})  # an alert starting a retraining closes the MLOps loop
HIDDEN_KINDS = ("monitorresult", "alert", "artifact")  # one node per run/step: noise in a graph


def edges_graph(edges: list[Edge], focus: str | None = None) -> graphs.Graph:
    """Lineage edges as a graph of linked nodes (`focus` highlighted). Artifacts, monitor
    results and alerts are passed through, not drawn: a step that produced an artifact
    another step read gets an edge straight to that step."""
    graph = graphs.Graph(feedback=FEEDBACK)
    if focus:
        label, sub = urn_label(focus)
        graph.add(graphs.Node(focus, label, sub, urn_href(focus), "focus"))
    for upstream, downstream, relation in _without_implied_containment(_through_hidden(edges)):
        for urn in (upstream, downstream):
            label, sub = urn_label(urn)
            graph.add(graphs.Node(urn, label, sub, urn_href(urn), None))
        graph.edges.append((upstream, downstream, relation))
    return graph


def _without_implied_containment(
    edges: list[tuple[str, str, str]],
) -> list[tuple[str, str, str]]:
    """A pipeline run `contains` every step run; drawn to each, those edges cross the whole
    graph. A step already reached by another edge (from the step before it) keeps only
    that one, so the run points at its first steps and the steps follow each other."""
    reached = {b for _, b, relation in edges if relation != CONTAINS}
    return [e for e in edges if e[2] != CONTAINS or e[1] not in reached]


def _hidden(urn: str) -> bool:
    return urn.split(":")[1:2] in ([k] for k in HIDDEN_KINDS)


def _through_hidden(edges: list[Edge]) -> list[tuple[str, str, str]]:
    """The edges between shown nodes, hidden nodes contracted (each pair once)."""
    after: dict[str, list[tuple[str, str]]] = {}
    for e in edges:
        after.setdefault(e.upstream, []).append((e.downstream, e.relation))
    out: dict[tuple[str, str], str] = {}
    for start in [u for u in after if not _hidden(u)]:
        stack, seen = list(after[start]), set()
        while stack:
            node, relation = stack.pop()
            if node in seen:
                continue
            seen.add(node)
            if _hidden(node):
                stack.extend(after.get(node, []))  # the relation of the last hop names it
            elif node != start:
                out.setdefault((start, node), relation)
    return [(a, b, relation) for (a, b), relation in out.items()]
