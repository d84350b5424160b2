"""`meshops monitors list|create|show|run|reference|report` and
`meshops alerts list|ack|resolve` (thin: everything goes through the SDK)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from meshops.cli.output import JSON_HELP, console, print_json, print_table

if TYPE_CHECKING:
    import pyarrow as pa

    from meshops.monitoring.models import Alert, MonitorResult

monitors_app = typer.Typer(
    help="Drift, performance, quality and SLO monitors.", no_args_is_help=True
)
alerts_app = typer.Typer(help="Alerts raised by monitor rules.", no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help=JSON_HELP)]
ParquetOpt = Annotated[Path | None, typer.Option(exists=True, dir_okay=False, help="Parquet file.")]
NoteOpt = Annotated[str, typer.Option("--note", "-m", help="Why (kept on the alert).")]


def _read(path: Path | None) -> pa.Table | None:
    if path is None:
        return None
    import pyarrow.parquet as pq

    return pq.read_table(path)


def _results_table(title: str, results: list[MonitorResult]) -> None:
    print_table(
        title,
        ["result", "monitor", "status", "finished", "current rows", "summary"],
        [
            [r.id, r.monitor_name, r.status, r.finished_at, r.current_rows, r.summary]
            for r in results
        ],
    )


@monitors_app.command("list")
def monitors_list(
    endpoint: Annotated[str | None, typer.Option(help="Only this endpoint's monitors.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """List monitors."""
    from meshops.client import connect

    with connect() as platform:
        monitors = platform.monitoring.list_monitors(endpoint)
    if json_out:
        print_json(monitors)
        return
    print_table(
        "monitors",
        ["name", "kind", "endpoint", "schedule", "window", "next run", "last run", "enabled"],
        [
            [
                m.name,
                m.kind,
                m.endpoint,
                m.spec.schedule,
                m.spec.window,
                m.next_run_at,
                m.last_run_at,
                m.enabled,
            ]
            for m in monitors
        ],
    )


@monitors_app.command("create")
def monitors_create(
    spec_file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="YAML/JSON spec.")],
    reference: ParquetOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Create a monitor from a spec file (optionally with its reference dataset)."""
    import yaml

    from meshops.client import connect
    from meshops.kernel.errors import InvalidInput
    from meshops.monitoring.models import AlertRuleSpec, MonitorSpec

    raw: Any = yaml.safe_load(spec_file.read_text())
    if not isinstance(raw, dict):
        raise InvalidInput(f"{spec_file} must hold a mapping", {"file": str(spec_file)})
    rules = raw.pop("rules", [])
    try:
        spec = MonitorSpec.model_validate(raw)
        rule_specs = [AlertRuleSpec.model_validate(r) for r in rules]
    except ValueError as exc:
        raise InvalidInput(f"{spec_file}: {exc}", {"file": str(spec_file)}) from exc
    with connect() as platform:
        monitor = platform.monitoring.create_monitor(spec, _read(reference))
        for rule in rule_specs:
            platform.monitoring.add_rule(monitor.id, rule)
    if json_out:
        print_json(monitor)
    else:
        console.print(f"created monitor [bold]{monitor.name}[/bold] ({monitor.id})")


MonitorArg = Annotated[str, typer.Argument(help="The monitor's name (see `monitors list`).")]
AlertArg = Annotated[int, typer.Argument(help="The alert's id (see `alerts list`).")]


@monitors_app.command("show")
def monitors_show(
    name: MonitorArg,
    limit: Annotated[int, typer.Option(help="How many recent results.")] = 10,
    json_out: JsonOpt = False,
) -> None:
    """A monitor, its rules and its recent results."""
    from meshops.client import connect

    with connect() as platform:
        monitor = platform.monitoring.get_monitor(name)
        rules = platform.monitoring.list_rules(name)
        results = platform.monitoring.list_results(name, limit)
    if json_out:
        print_json({"monitor": monitor, "rules": rules, "results": results})
        return
    console.print(
        f"[bold]{monitor.name}[/bold] {monitor.kind} · endpoint {monitor.endpoint or '-'} · "
        f"schedule {monitor.spec.schedule or '-'} · window {monitor.spec.window} · "
        f"reference rows {monitor.reference_rows or 0}"
    )
    print_table(
        "rules",
        ["name", "condition", "severity", "webhook"],
        [
            [
                r.name + (" (built-in)" if r.builtin else ""),
                f"{r.metric} {r.op} {r.value:g}",
                r.severity,
                r.webhook_url,
            ]
            for r in rules
        ],
    )
    _results_table("recent results", results)


@monitors_app.command("run")
def monitors_run(
    name: Annotated[str | None, typer.Argument(help="Monitor; omit to run all due.")] = None,
    current: ParquetOpt = None,
    reference: ParquetOpt = None,
    labels: ParquetOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Run one monitor (on given files or its source), or every monitor that is due."""
    from meshops.client import connect

    with connect() as platform:
        if name is None:
            results = platform.monitoring.run_due()
        else:
            results = [
                platform.monitoring.run_monitor(
                    name, current=_read(current), reference=_read(reference), labels=_read(labels)
                )
            ]
    if json_out:
        print_json(results)
        return
    _results_table("monitor runs", results)
    for result in results:
        if result.features:
            print_table(
                f"features of result {result.id}",
                ["feature", "test", "score", "threshold", "drifted"],
                [[f.feature, f.method, f.score, f.threshold, f.drifted] for f in result.features],
            )


@monitors_app.command("reference")
def monitors_reference(
    name: MonitorArg,
    reference: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Parquet file.")],
) -> None:
    """Set a monitor's reference dataset (e.g. the training set)."""
    from meshops.client import connect

    with connect() as platform:
        monitor = platform.monitoring.set_reference(name, _read(reference))
    console.print(f"reference of {monitor.name}: {monitor.reference_rows} rows")


@monitors_app.command("report")
def monitors_report(
    result_id: Annotated[
        int, typer.Argument(help="A monitor result's id (see `monitors show NAME`).")
    ],
    output: Annotated[Path | None, typer.Option("--output", "-o", help="HTML file.")] = None,
) -> None:
    """Write the HTML report of a monitor result (to a file or stdout)."""
    from meshops.client import connect

    with connect() as platform:
        html = platform.monitoring.report(result_id)
    if output is None:
        print(html)
    else:
        output.write_text(html)
        console.print(f"wrote {output} ({len(html):,} bytes)")


def _print_alerts(alerts: list[Alert], json_out: bool) -> None:
    if json_out:
        print_json(alerts)
        return
    print_table(
        "alerts",
        ["id", "state", "severity", "monitor", "rule", "summary", "seen", "opened", "webhook"],
        [
            [
                a.id,
                a.state,
                a.severity,
                a.monitor_name,
                a.rule_name,
                a.summary,
                a.occurrences,
                a.opened_at,
                a.webhook_status,
            ]
            for a in alerts
        ],
    )


@alerts_app.command("list")
def alerts_list(
    state: Annotated[
        str, typer.Option(help="open, acknowledged, resolved, active (open+ack) or all.")
    ] = "active",
    monitor: Annotated[str | None, typer.Option(help="Only this monitor's alerts.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many.")] = 100,
    json_out: JsonOpt = False,
) -> None:
    """List alerts (active ones by default)."""
    from meshops.client import connect

    with connect() as platform:
        _print_alerts(platform.monitoring.list_alerts(state, monitor, limit), json_out)


@alerts_app.command("ack")
def alerts_ack(alert_id: AlertArg, note: NoteOpt = "", json_out: JsonOpt = False) -> None:
    """Acknowledge an open alert."""
    from meshops.client import connect

    with connect() as platform:
        _print_alerts([platform.monitoring.acknowledge_alert(alert_id, note)], json_out)


@alerts_app.command("resolve")
def alerts_resolve(alert_id: AlertArg, note: NoteOpt = "", json_out: JsonOpt = False) -> None:
    """Resolve an alert (a new one opens if its rule fires again)."""
    from meshops.client import connect

    with connect() as platform:
        _print_alerts([platform.monitoring.resolve_alert(alert_id, note)], json_out)
