"""`meshops demo`: the whole reference architecture end to end on a fresh embedded home.

Stages (one Rich progress display, one task per stage): the organisation (people, four
domains, roles), source-aligned and aggregate data products under the default policies, a
consumer asking for and receiving access, feature views and materialization, the automated
training pipeline (v1 becomes the champion), the API server on a loopback port with an
endpoint receiving traffic over HTTP, a drift monitor, a market change (new product versions
and shifted traffic), the drift alert, retraining triggered by it through a worker, the new
version promoted and served, and a summary with the lineage from source to prediction.

The retraining is justified by a champion/challenger comparison: the training template
scores the new version and the current champion on the same holdout of the latest training
set (`platform.registry.compare`), and the default promotion gate moves `champion` only on
that recorded comparison; the summary prints both scores and the comparison's run.
"""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Column
from rich.tree import Tree

from meshops.demo import org

ADMIN = "admin"
PEOPLE = {
    "carol": ("Carol (customers domain owner)", "domain_owner", "customers"),
    "sam": ("Sam (sales domain owner)", "domain_owner", "sales"),
    "sue": ("Sue (support domain owner)", "domain_owner", "support"),
    "dana": ("Dana (data scientist, retention)", "data_scientist", None),
    "max": ("Max (ML engineer, retention)", "ml_engineer", None),
}
GATE_TOML = """# written by `meshops demo`
[promotion]
protected_aliases = ["champion"]
"""
REF = "meshops.pipelines.templates.training:training_pipeline"
STAGES = [
    ("home", "Fresh embedded home"),
    ("org", "Organisation: people, domains, roles"),
    ("products", "Source-aligned and aggregate data products"),
    ("access", "Consumer requests access, owner approves"),
    ("features", "Feature views and materialization"),
    ("train", "Automated training pipeline -> v1 champion"),
    ("serve", "API server + endpoint, live traffic over HTTP"),
    ("monitor", "Drift monitor and retraining trigger"),
    ("drift", "Market change: new data, fresh online features, shifted traffic"),
    ("alert", "Drift monitor alerts"),
    ("retrain", "Worker: alert -> retraining -> comparison -> gate -> alias move"),
    ("verify", "Endpoint serves the new version"),
]


@dataclass
class DemoResult:
    home: Path
    url: str
    token: str
    products: dict[str, list[str]] = field(default_factory=dict)
    grants: list[str] = field(default_factory=list)
    model_versions: list[int] = field(default_factory=list)
    alias_moves: list[tuple[int | None, int | None]] = field(default_factory=list)
    alert_id: int | None = None
    retrain_run: str = ""
    served_after: int | None = None
    online: dict[str, Any] = field(default_factory=dict)  # the showcase online lookup
    comparison: dict[str, Any] = field(default_factory=dict)  # the recorded comparison
    lineage_path: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage
    # Seconds of parts within a stage (B13 times the feedback loop from the drifted traffic).
    parts: dict[str, float] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)


class LiveServer:
    """The API (and UI) on a loopback port, in a thread of this process."""

    def __init__(self, home: Any, port: int) -> None:
        import uvicorn

        from meshops.api.app import create_app
        from meshops.governance.authn import authenticate_token

        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        config = uvicorn.Config(
            create_app(home, authenticate=authenticate_token),
            host="127.0.0.1",
            port=port,
            log_level="warning",
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True, name="demo-api")

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError(f"the API server did not start on {self.url}")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


class WorkerThread:
    """`meshops worker` in a thread: dispatches outbox events to triggers, runs queued runs."""

    def __init__(self, platform: Any) -> None:
        from meshops.pipelines.service import PipelinesService
        from meshops.pipelines.worker import Worker, WorkerOptions
        from meshops.tracking.service import TrackingService

        ctx = platform.context
        self.worker = Worker(
            PipelinesService(ctx),
            tracking=TrackingService(ctx),
            options=WorkerOptions(poll_seconds=0.2, lease_seconds=60),
            name="demo-worker",
        )
        self.thread = threading.Thread(target=self.worker.serve, daemon=True, name="demo-worker")

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.worker.stopping.set()
        self.thread.join(timeout=120)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def _stage(
    progress: Progress, tasks: dict[str, Any], key: str, result: DemoResult
) -> Iterator[None]:
    task = tasks[key]
    progress.update(task, visible=True)
    progress.start_task(task)
    start = time.perf_counter()
    yield
    result.timings[key] = time.perf_counter() - start
    progress.update(task, completed=1)


def run_demo(
    home: Path,
    *,
    seed: int = 7,
    scale: str = "full",
    serve: bool = False,
    port: int | None = None,
    console: Console | None = None,
) -> DemoResult:
    console = console or Console()
    home = home.expanduser().resolve()
    sizes = org.Scale.named(scale)
    requests = 1500 if scale == "full" else 300
    batch = 10
    progress = Progress(
        SpinnerColumn(),
        # Labels and notes wrap instead of ending in "…" on a narrow (80-column) terminal.
        TextColumn("[bold]{task.description}", table_column=Column(overflow="fold")),
        BarColumn(bar_width=10),
        TextColumn("{task.fields[note]}", table_column=Column(overflow="fold")),
        TimeElapsedColumn(),
        console=console,
    )
    tasks = {
        key: progress.add_task(text, total=1, start=False, note="", visible=True)
        for key, text in STAGES
    }
    result = DemoResult(home=home, url="", token="")
    server: LiveServer | None = None
    worker: WorkerThread | None = None

    def note(key: str, text: str) -> None:
        progress.update(tasks[key], note=text)

    with progress:
        with _stage(progress, tasks, "home", result):
            platform = _fresh_home(home)
            note("home", str(home))
        try:
            p = platform
            with _stage(progress, tasks, "org", result):
                _organisation(p)
                note("org", f"{len(PEOPLE) + 1} people, {len(org.DOMAINS)} domains")
            with _stage(progress, tasks, "products", result):
                customers = org.profiles(sizes, seed)
                org.publish(p, "customers.profiles", "1.0.0", customers)
                first = _publish_period(p, customers, org.period(sizes, seed, 1), "1.0.0", seed)
                result.rows = {
                    "customers.profiles": customers.num_rows,
                    "sales.orders": first["orders"].row_count,
                    "support.tickets": first["tickets"].row_count,
                    "sales.customer_activity": first["activity"].row_count,
                    "customers.churn_labels": first["labels"].row_count,
                }
                note("products", f"5 products, {sum(result.rows.values()):,} rows")
            with _stage(progress, tasks, "access", result):
                grant = _consumer_access(p)
                result.grants.append(grant)
                note("access", "dana granted customers.profiles (email masked)")
            with _stage(progress, tasks, "features", result):
                p.features.apply(org.feature_repo(owner="dana"))
                materialized = p.features.materialize()
                written = sum(m.rows_written for m in materialized)
                note("features", f"{written:,} online rows")
            params = {
                "model": "churn",
                "domain": "retention",
                "seed": seed,
                "description": "Churn within 60 days, from activity and profile features.",
            }
            with _stage(progress, tasks, "train", result):
                _promotion_policy(p)
                detail = p.pipelines.run(_training(), params)
                if detail.run.status.value != "succeeded":
                    raise RuntimeError(f"training failed: {detail.run.error}")
                v1 = p.registry.get_version("churn", 1)
                note("train", f"churn v1 roc_auc {v1.metrics['roc_auc']:.3f} -> @champion")
            with _stage(progress, tasks, "serve", result):
                token = p.governance.create_token("demo-traffic").token
                server = LiveServer(platform.home, port or _free_port())
                server.start()
                result.url, result.token = server.url, token
                p.serving.create_endpoint(
                    "churn-api",
                    "churn@champion",
                    domain="retention",
                    description="Churn risk per customer",
                )
                normal = org.traffic(first["table"], customers, requests, seed)
                versions = _send(server.url, token, normal, batch)
                note("serve", f"{len(normal)} scored over HTTP by v{sorted(versions)}")
            with _stage(progress, tasks, "monitor", result):
                calm = _monitor(p, v1, params)
                note("monitor", f"baseline run: {calm.status}")
            with _stage(progress, tasks, "drift", result):
                second = _publish_period(p, customers, org.period(sizes, seed, 2), "2.0.0", seed)
                result.online = _online_lookup(p)
                shifted = org.traffic(second["table"], customers, requests, seed + 1)
                sent = time.perf_counter()
                _send(server.url, token, shifted, batch)
                result.parts["drift.traffic"] = time.perf_counter() - sent
                note(
                    "drift",
                    f"orders -30%, baskets +60%, tickets x2; customer 1 online: "
                    f"{result.online['status']}",
                )
            with _stage(progress, tasks, "alert", result):
                window = p.serving.prediction_window("churn-api")
                current = window.slice(len(normal)).select(org.FEATURES)
                drifted = p.monitoring.run_monitor("churn-drift", current=current)
                alerts = p.monitoring.list_alerts(monitor="churn-drift")
                if not alerts:
                    raise RuntimeError(f"the drift monitor did not alert: {drifted.summary}")
                result.alert_id = alerts[0].id
                note("alert", f"alert #{alerts[0].id}: {drifted.summary[:60]}")
            with _stage(progress, tasks, "retrain", result):
                from meshops.pipelines.worker import wait_for

                worker = WorkerThread(p)
                worker.start()
                waiting = time.perf_counter()
                run_id = _wait_for_triggered_run(p)
                result.parts["retrain.trigger"] = time.perf_counter() - waiting
                detail = wait_for(p.pipelines, run_id, timeout=600)
                if detail.run.status.value != "succeeded":
                    raise RuntimeError(f"retraining failed: {detail.run.error}")
                result.retrain_run = run_id
                champion = p.registry.resolve("models:/churn@champion")
                result.comparison = _comparison(p, champion.version)
                note("retrain", f"v{champion.version} promoted: {_verdict(result.comparison)}")
            with _stage(progress, tasks, "verify", result):
                # The server's runtime picks up alias moves by polling (every 2 s).
                deadline = time.monotonic() + 60
                while True:
                    served = _send(server.url, token, shifted[:batch], batch)
                    if max(served) == champion.version or time.monotonic() > deadline:
                        break
                    time.sleep(0.5)
                result.served_after = max(served)
                note("verify", f"churn-api now serves v{result.served_after}")
            _collect(p, result, first)
        except BaseException:
            if worker is not None:
                worker.stop()
            if server is not None:
                server.stop()
            platform.close()
            raise
    _summary(console, p, result)
    if serve:
        _serve_forever(console, result)
    if worker is not None:
        worker.stop()
    if server is not None:
        server.stop()
    platform.close()
    if not serve:
        _after_the_demo(console)
    return result


def _after_the_demo(console: Console) -> None:
    """No URL or token of the demo's own server: it has stopped with the demo."""
    console.print(
        "The demo's server has stopped. To look at the UI: `meshops demo --serve`, or "
        "`meshops tokens create me` and `meshops server` on this home."
    )


def _training() -> Any:
    from meshops.pipelines.templates.training import training_pipeline

    return training_pipeline


def _fresh_home(home: Path) -> Any:
    import meshops

    if home.exists():
        shutil.rmtree(home)
    home.mkdir(parents=True)
    (home / "meshops.toml").write_text(GATE_TOML)
    # Pipeline steps (here and in the worker) open the platform from the environment.
    os.environ["MESHOPS_HOME"] = str(home)
    os.environ["MESHOPS_USER"] = ADMIN
    for name in ("MESHOPS_URI", "MESHOPS_DATABASE_URL", "MESHOPS_BLOB_URL", "MESHOPS_TOKEN"):
        os.environ.pop(name, None)
    # One OpenMP/BLAS thread: the machine is shared and scoring is many small batches.
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

    threadpool_limits(limits=1)
    return meshops.connect(home=home)


def _organisation(p: Any) -> None:
    for name, (display, _role, _domain) in PEOPLE.items():
        p.governance.create_user(name, display_name=display, email=f"{name}@example.org")
    for name, (text, owner) in org.DOMAINS.items():
        p.mesh.create_domain(name, text, owners=[owner])
    for name, (_display, role, domain) in PEOPLE.items():
        if domain is not None:
            p.governance.bind_role(name, role, domain=domain)
        else:
            p.governance.bind_role(name, role)
            p.governance.bind_role(name, "domain_owner", domain="retention")


def _publish_period(
    p: Any, customers: Any, period: org.Period, version: str, seed: int
) -> dict[str, Any]:
    orders = org.publish(p, "sales.orders", version, period.orders)
    tickets = org.publish(p, "support.tickets", version, period.tickets)
    # The aggregate reads its inputs through the governed read path (usage is recorded).
    orders_read = p.mesh.read("sales.orders", version, purpose="customer activity aggregate")
    tickets_read = p.mesh.read("support.tickets", version, purpose="customer activity aggregate")
    activity = org.customer_activity(customers, orders_read, tickets_read, period.start, period.end)
    aggregate = org.publish(
        p, "sales.customer_activity", version, activity, inputs=[orders.urn, tickets.urn]
    )
    labels = org.churn_labels(activity, customers, period.regime, seed)
    label_version = org.publish(p, "customers.churn_labels", version, labels)
    return {
        "orders": orders,
        "tickets": tickets,
        "activity": aggregate,
        "labels": label_version,
        "table": activity,
    }


def _as(p: Any, name: str) -> Any:
    import meshops
    from meshops.kernel.auth import Actor

    return meshops.connect(home=p.settings.home, actor=Actor(name))


def _consumer_access(p: Any) -> str:
    with _as(p, "dana") as dana:
        request = dana.governance.request_access(
            "customers.profiles",
            "profiles",
            "churn model features: age and region of each customer",
            expires_in_days=90,
        )
    with _as(p, "carol") as carol:
        decided = carol.governance.decide(request.id, True, "approved for the churn model")
    with _as(p, "dana") as dana:
        sample = dana.mesh.read("customers.profiles", columns=["customer_id", "email", "age"])
        if sample.column("email")[0].as_py() == "customer1@example.org":
            raise RuntimeError("the e-mail column should be masked for dana")
    grants = p.governance.list_grants(product="customers.profiles", grantee="dana")
    return grants[0].id if grants else str(decided.id)


def _promotion_policy(p: Any) -> None:
    from meshops.governance.models import Policy

    p.governance.save_policy(
        Policy(
            id="retention-champion-must-beat-current",
            scope="retention",
            target="model.promote",
            expression='!("roc_auc_lift" in metrics) || metrics["roc_auc_lift"] > 0.0',
            rationale="a new champion beats the current one on the same holdout",
            owner="max",
        )
    )


def _send(url: str, token: str, records: list[dict[str, Any]], batch: int) -> set[int]:
    import httpx

    versions: set[int] = set()
    with httpx.Client(base_url=url, headers={"authorization": f"Bearer {token}"}) as client:
        for k in range(0, len(records), batch):
            response = client.post(
                "/v1/endpoints/churn-api/predict",
                json={"records": records[k : k + batch]},
                timeout=30,
            )
            response.raise_for_status()
            versions.add(int(response.json()["model_version"]))
    return versions


def _monitor(p: Any, v1: Any, params: dict[str, Any]) -> Any:
    from meshops.kernel import outbox
    from meshops.monitoring.models import AlertRuleSpec, MonitorSpec

    training = p.features.get_training_set(v1.tags["meshops.training_set_id"])
    reference = training.to_arrow().select(org.FEATURES)
    p.monitoring.create_monitor(
        MonitorSpec(
            name="churn-drift",
            kind="data_drift",
            domain="retention",
            endpoint="churn-api",
            model="churn",
            numerical=org.FEATURES,
        ),
        reference=reference,
    )
    p.monitoring.add_rule(
        "churn-drift",
        AlertRuleSpec(name="dataset-drift", metric="dataset_drift", op=">=", value=1),
    )
    p.pipelines.create_trigger(
        "retrain-on-drift",
        outbox.MONITOR_ALERT,
        REF,
        params,
        match={"monitor": "churn-drift"},
        executor="inline",
    )
    window = p.serving.prediction_window("churn-api")
    return p.monitoring.run_monitor("churn-drift", current=window.select(org.FEATURES))


def _online_lookup(p: Any) -> dict[str, Any]:
    """Materialize what the last ingest published, then look customer 1 up online: every
    feature fresh (its snapshot is within the views' TTL) or the demo stops. A full pass:
    the incremental one reads only rows with event times after the last run's end, and the
    new product versions' snapshots are all earlier than that (the view has no created-time
    column to tell new rows by)."""
    p.features.materialize(full=True)
    row = p.features.online([{"customer_id": 1}], "churn_features").rows[0]
    empty = sorted(k for k, v in row.values.items() if v is None)
    if row.status != "ok" or empty:
        raise RuntimeError(
            f"the online lookup of customer 1 is {row.status} (empty: {empty}, stale: "
            f"{row.stale}, missing: {row.missing})"
        )
    return {"status": row.status, "values": dict(row.values)}


def _comparison(p: Any, version: int) -> dict[str, Any]:
    """The recorded champion/challenger comparison that let `version` become champion."""
    for found in p.registry.list_comparisons("churn", version=version):
        if found.alias == "champion" and found.allowed:
            return dict(found.model_dump(mode="json"))
    return {}


def _verdict(comparison: dict[str, Any]) -> str:
    if not comparison:
        return "no comparison recorded"
    if comparison["champion_version"] is None:
        return "first version"
    metric = comparison["metric"]
    return (
        f"{metric} {comparison['challenger_score']:.3f} vs "
        f"{comparison['champion_score']:.3f} of v{comparison['champion_version']} "
        f"on the same {comparison['evaluated_rows']} rows"
    )


def _wait_for_triggered_run(p: Any, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for run in p.pipelines.list_runs(pipeline="training_pipeline", limit=20):
            if run.origin.get("trigger") == "retrain-on-drift":
                return str(run.id)
        time.sleep(0.2)
    raise RuntimeError("the alert did not trigger a retraining run")


def _collect(p: Any, result: DemoResult, first: dict[str, Any]) -> None:
    for product in org.PRODUCTS:
        result.products[product] = [v.version for v in p.mesh.list_versions(product)]
    result.model_versions = [v.version for v in p.registry.list_versions("churn")]
    moves = p.registry.alias_history("churn", "champion")
    result.alias_moves = sorted(
        ((m.from_version, m.to_version) for m in moves), key=lambda m: m[1] or 0
    )
    v1 = p.registry.get_version("churn", 1)
    champion = p.registry.resolve("models:/churn@champion")
    run_urn = f"meshops:pipelinerun:{result.retrain_run}"
    result.lineage_path = [
        first["orders"].urn,
        first["activity"].urn,
        v1.urn,
        "meshops:endpoint:churn-api",
        f"meshops:alert:{result.alert_id}",
        run_urn,
        champion.urn,
    ]


def _summary(console: Console, p: Any, result: DemoResult) -> None:
    console.print()
    tree = Tree(f"[bold]lineage: {result.lineage_path[0]}[/] (source)")
    labels = [
        "aggregate data product version",
        "model version (trained by the pipeline)",
        "endpoint (prediction log)",
        "drift alert (monitor result)",
        "retraining pipeline run (triggered)",
        "new champion version",
    ]
    node = tree
    for urn, label in zip(result.lineage_path[1:], labels, strict=True):
        node = node.add(f"{urn}  [dim]{label}[/]")
    console.print(tree)
    if result.comparison:
        c = result.comparison
        console.print(
            f"\n[bold]champion/challenger[/]: v{c['challenger_version']} vs "
            f"v{c['champion_version']} on the same {c['evaluated_rows']} rows "
            f"(data {c['data_digest'][:12]}, {c['data_urn']}): {c['metric']} "
            f"{c['challenger_score']:.3f} vs {c['champion_score']:.3f} "
            f"({'higher' if c['direction'] == 'max' else 'lower'} is better, tolerance "
            f"{c['tolerance']:g}) -> promoted; comparison run {c['run_id'][:8]}"
        )
    if result.online:
        values = ", ".join(f"{k}={v}" for k, v in sorted(result.online["values"].items()))
        console.print(f"online features of customer 1 ({result.online['status']}): {values}")
    total = sum(result.timings.values())
    console.print(
        f"\n[bold green]done in {total:.0f}s[/]: products {result.products}\n"
        f"model versions {result.model_versions}, champion moves {result.alias_moves}, "
        f"alert #{result.alert_id}, retraining run {result.retrain_run[:8]}, "
        f"endpoint serves v{result.served_after}"
    )
    console.print(
        f"\nLook around:\n  export MESHOPS_HOME={result.home}\n"
        "  meshops catalog search churn · meshops models show churn · "
        "meshops alerts list · meshops pipelines list\n"
        f"  meshops lineage downstream {result.lineage_path[0]}"
    )


def _serve_forever(console: Console, result: DemoResult) -> None:
    """The URLs and the token only now: the server is running, and stays up until Ctrl-C."""
    console.print(
        f"\n[bold]serving[/] {result.url}/ui with a worker; Ctrl-C to stop\n"
        f"  UI: {result.url}/ui   API docs: {result.url}/docs\n"
        f"  sign in with the admin token {result.token}",
        soft_wrap=True,  # a URL or token cut across lines could not be copied
    )
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt)  # `kill` stops it as cleanly as Ctrl-C
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        console.print("stopping")


def _interrupt(_signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt
