"""`meshops pipelines ...`, `meshops schedules ...`, `meshops triggers ...` and
`meshops worker` (all through the SDK, so they work on an embedded home and a server)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

import typer

from meshops.cli.output import (
    JSON_HELP,
    ColumnsOpt,
    WideOpt,
    err_console,
    print_json,
    print_records,
    print_table,
    short_id,
)

if TYPE_CHECKING:
    from meshops.pipelines.models import PipelineRun, ReproduceReport, RunDetail

pipelines_app = typer.Typer(help="Run and inspect pipelines.", no_args_is_help=True)
schedules_app = typer.Typer(help="Cron schedules of pipelines.", no_args_is_help=True)
triggers_app = typer.Typer(help="Event triggers of pipelines.", no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help=JSON_HELP)]
ParamOpt = Annotated[
    list[str] | None,
    typer.Option("--param", "-p", help="NAME=VALUE (VALUE is JSON, else a string); repeatable."),
]
ExecutorOpt = Annotated[str, typer.Option("--executor", "-x", help="inline, process or ray.")]
RunIdArg = Annotated[
    str,
    typer.Argument(help="Pipeline run id, or its first characters as `pipelines list` shows them."),
]


def parse_params(pairs: list[str] | None) -> dict[str, Any]:
    from meshops.kernel.errors import InvalidInput

    params: dict[str, Any] = {}
    for pair in pairs or []:
        name, sep, raw = pair.partition("=")
        if not sep or not name:
            raise InvalidInput(f"bad --param {pair!r}", {"fix": "use --param name=value"})
        try:
            params[name] = json.loads(raw)
        except json.JSONDecodeError:
            params[name] = raw
    return params


RUN_FIELDS: dict[str, Callable[[PipelineRun], Any]] = {
    "id": lambda r: short_id(r.id),
    "pipeline": lambda r: r.pipeline,
    "status": lambda r: r.status.value,
    "origin": lambda r: r.origin.get("kind", ""),
    "created": lambda r: r.created_at,
    "finished": lambda r: r.finished_at,
    "executor": lambda r: r.executor,
    "error": lambda r: (r.error or "").strip().split("\n", 1)[0],
}


def _print_runs(
    runs: list[PipelineRun], json_out: bool, wide: bool = False, columns: str | None = None
) -> None:
    if json_out:
        print_json(runs)
        return
    default = ["id", "pipeline", "status", "origin", "created"]
    if any(r.error for r in runs):
        default.append("error")
    print_records("pipeline runs", RUN_FIELDS, runs, default, wide=wide, columns=columns)


STEP_FIELDS: dict[str, Callable[[Any], Any]] = {
    "node": lambda s: s.node,
    "status": lambda s: s.status.value,
    "attempts": lambda s: s.attempts,
    "started": lambda s: s.started_at,
    "finished": lambda s: s.finished_at,
    "outputs": lambda s: ", ".join(f"{o.name}={o.digest[:12]}" for o in s.outputs),
    "cache hit of": lambda s: short_id(s.cache_hit_of),
    "error": lambda s: (s.error or "").split("\n", 1)[0],
}


def _print_detail(detail: RunDetail, json_out: bool, wide: bool = False) -> None:
    if json_out:
        print_json(detail)
        return
    _print_runs([detail.run], False)
    steps = detail.steps
    # What every step has, then the columns only some steps fill (cache hits, errors).
    default = ["node", "status", "attempts", "finished", "outputs"]
    default += [
        c
        for c, used in (
            ("cache hit of", any(s.cache_hit_of for s in steps)),
            ("error", any(s.error for s in steps)),
        )
        if used
    ]
    print_records("steps", STEP_FIELDS, steps, default, wide=wide)
    origin = detail.run.origin
    if origin.get("kind") == "trigger":
        print(
            f"started by trigger {origin.get('trigger')} for event {origin.get('event_id')} "
            f"({origin.get('topic')} {origin.get('subject')})"
        )
    code = detail.run.code
    if code is not None:
        dirty = f", uncommitted changes (diff sha256 {code.diff_sha256})" if code.dirty else ""
        print(f"code: commit {code.commit} of {code.repo}{dirty}")
    _print_errors(detail)


def _step_error(node: str, attempts: int, error: str) -> None:
    # Plain prints (in order with the text around them): a traceback's [brackets] are no markup.
    print(f"== {node} failed (attempt {attempts}):")
    print(error.rstrip("\n"))


def _says_more(run_error: str, step_errors: list[str]) -> bool:
    """Whether the run's error adds to its steps' ("step X failed: <their first line>")."""
    return bool(run_error) and not any(e.split("\n", 1)[0] in run_error for e in step_errors)


def _print_errors(detail: RunDetail) -> None:
    """The whole error of each failed step (message and traceback; the tables show its
    first line), then the run's error when it says more than theirs."""
    shown = []
    for s in detail.steps:
        if s.error:
            _step_error(s.node, s.attempts, s.error)
            shown.append(s.error)
    error = (detail.run.error or "").strip()
    if _says_more(error, shown):
        print(f"== run {detail.run.id} {detail.run.status.value}:")
        print(error)


@pipelines_app.command("run")
def run(  # noqa: PLR0917 - one parameter per CLI option
    ref: Annotated[str, typer.Argument(help="module:function or path/to/file.py:function")],
    param: ParamOpt = None,
    executor: ExecutorOpt = "inline",
    ray_address: Annotated[str | None, typer.Option(help="Ray cluster to run on.")] = None,
    queue: Annotated[bool, typer.Option("--queue", help="Queue it for a worker.")] = False,
    no_track: Annotated[bool, typer.Option("--no-track", help="No tracking run tree.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Run a pipeline here (or queue it for `meshops worker` with --queue)."""
    from meshops.client import connect

    params = parse_params(param)
    with connect() as platform:
        if queue:
            _print_runs([platform.pipelines.submit(ref, params, executor)], json_out)
            return
        detail = platform.pipelines.run(
            ref, params, executor, ray_address=ray_address, track=not no_track
        )
    _print_detail(detail, json_out)
    if detail.run.status.value != "succeeded":
        raise typer.Exit(1)


@pipelines_app.command("list")
def list_runs(  # noqa: PLR0917 - one parameter per CLI option
    pipeline: Annotated[str | None, typer.Option(help="Only runs of this pipeline.")] = None,
    status: Annotated[str | None, typer.Option(help="queued, running, succeeded ...")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", help="At most this many runs.")] = 50,
    wide: WideOpt = False,
    columns: ColumnsOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Recent pipeline runs, newest first."""
    from meshops.client import connect

    with connect() as platform:
        runs = platform.pipelines.list_runs(pipeline, status, limit)
    _print_runs(runs, json_out, wide, columns)


@pipelines_app.command("show")
def show(run_id: RunIdArg, wide: WideOpt = False, json_out: JsonOpt = False) -> None:
    """A run and its step runs."""
    from meshops.client import connect

    with connect() as platform:
        detail = platform.pipelines.get_run(platform.pipelines.resolve_run_id(run_id))
    _print_detail(detail, json_out, wide)


@pipelines_app.command("logs")
def logs(
    run_id: RunIdArg,
    step: Annotated[str | None, typer.Option(help="Only this step node.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """What the steps of a run printed, each failed step followed by its whole error (message
    and traceback). --json gives only the printed output, by step."""
    from meshops.client import connect

    with connect() as platform:
        run_id = platform.pipelines.resolve_run_id(run_id)
        found = platform.pipelines.logs(run_id, step)
        if json_out:
            print_json(found)
            return
        detail = platform.pipelines.get_run(run_id)
    failed = {s.node: s for s in detail.steps if s.error and s.node in found}
    for node, text in found.items():
        err_console.print(f"[bold cyan]== {node}[/bold cyan]")
        print(text, end="" if text.endswith("\n") or not text else "\n")
        if node in failed:
            _step_error(node, failed[node].attempts, failed[node].error or "")
    run_error = (detail.run.error or "").strip()
    if step is None and _says_more(run_error, [s.error or "" for s in failed.values()]):
        print(f"== run {detail.run.id} {detail.run.status.value}:")
        print(run_error)


@pipelines_app.command("resume")
def resume(
    run_id: RunIdArg,
    local: Annotated[bool, typer.Option("--local", help="Run here instead of queueing.")] = False,
    executor: Annotated[
        str | None,
        typer.Option("--executor", "-x", help="inline, process or ray (default: the run's)."),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Rerun what failed (and what depends on it), reusing every other step's outputs."""
    from meshops.client import connect

    with connect() as platform:
        run_id = platform.pipelines.resolve_run_id(run_id)
        _print_runs([platform.pipelines.resume(run_id, local=local, executor=executor)], json_out)


UseCurrentCodeOpt = Annotated[
    bool,
    typer.Option(
        "--use-current-code",
        help="Rerun with the code as it is now instead of a checkout of the recorded commit.",
    ),
]


@pipelines_app.command("reproduce")
def reproduce(
    run_id: RunIdArg,
    executor: ExecutorOpt = "inline",
    use_current_code: UseCurrentCodeOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Rerun a past run with its recorded code version (a checkout of its git commit),
    parameters and inputs, without the cache, and report whether every step's outputs
    have the same digests (exit 1 when they differ)."""
    from meshops.client import connect

    with connect() as platform:
        run_id = platform.pipelines.resolve_run_id(run_id)
        report = platform.pipelines.reproduce(run_id, executor, use_current_code=use_current_code)
    print_reproduce_report(report, json_out)


def print_reproduce_report(report: ReproduceReport, json_out: bool) -> None:
    """Print a reproduction's verdict; exit 1 when the digests differ."""
    if json_out:
        print_json(report)
    else:
        print_table(
            f"reproduce {report.original} -> {report.rerun}: "
            + ("MATCH" if report.matches else "DIFFERENT"),
            ["node", "same code", "same inputs", "same outputs"],
            [
                [s["node"], s["same_code"], s["same_inputs"], s["same_outputs"]]
                for s in report.steps
            ],
        )
        if report.code is not None:
            print(f"code: {report.code.note}")
            if report.code.commit:
                print(f"commit: {report.code.commit}")
    if not report.matches:
        raise typer.Exit(1)


@pipelines_app.command("cancel")
def cancel(run_id: RunIdArg, json_out: JsonOpt = False) -> None:
    """Cancel a queued run."""
    from meshops.client import connect

    with connect() as platform:
        _print_runs(
            [platform.pipelines.cancel(platform.pipelines.resolve_run_id(run_id))], json_out
        )


@schedules_app.command("create")
def schedule_create(  # noqa: PLR0917 - one parameter per CLI option
    name: Annotated[str, typer.Argument(help="A name for the schedule.")],
    cron: Annotated[str, typer.Option(help="Cron expression, e.g. '0 3 * * *'.")],
    ref: Annotated[str, typer.Option(help="module:function or file.py:function")],
    param: ParamOpt = None,
    executor: ExecutorOpt = "process",
    json_out: JsonOpt = False,
) -> None:
    """Run a pipeline on a cron schedule (fired by `meshops worker`)."""
    from meshops.client import connect

    with connect() as platform:
        schedule = platform.pipelines.create_schedule(
            name, cron, ref, parse_params(param), executor
        )
    _print_schedules([schedule], json_out)


@schedules_app.command("list")
def schedule_list(json_out: JsonOpt = False) -> None:
    """Every cron schedule with its pipeline, parameters and next and last fire."""
    from meshops.client import connect

    with connect() as platform:
        _print_schedules(platform.pipelines.list_schedules(), json_out)


@schedules_app.command("delete")
def schedule_delete(
    name: Annotated[str, typer.Argument(help="The schedule's name (see `schedules list`).")],
) -> None:
    """Delete a cron schedule; runs it already started are not affected."""
    from meshops.client import connect

    with connect() as platform:
        platform.pipelines.delete_schedule(name)
    err_console.print(f"deleted schedule {name}")


def _print_schedules(schedules: list[Any], json_out: bool) -> None:
    if json_out:
        print_json(schedules)
        return
    print_table(
        "schedules",
        ["name", "cron", "ref", "params", "executor", "next fire", "last fire"],
        [
            [
                s.name,
                s.cron,
                s.ref,
                json.dumps(s.params),
                s.executor,
                s.next_fire_at,
                s.last_fire_at,
            ]
            for s in schedules
        ],
    )


@triggers_app.command("create")
def trigger_create(  # noqa: PLR0917 - one parameter per CLI option
    name: Annotated[str, typer.Argument(help="A name for the trigger.")],
    topic: Annotated[str, typer.Option(help="e.g. dataproduct.published, monitor.alert")],
    ref: Annotated[str, typer.Option(help="module:function or file.py:function")],
    param: ParamOpt = None,
    match: Annotated[
        list[str] | None, typer.Option(help="FIELD=VALUE the event payload must have.")
    ] = None,
    expression: Annotated[
        str | None, typer.Option("--if", help='CEL filter, e.g. event.payload.severity == "high"')
    ] = None,
    max_concurrent: Annotated[int, typer.Option(help="Active runs allowed at once.")] = 1,
    max_pending: Annotated[
        int, typer.Option(help="Matched events kept waiting for a slot; newer ones are dropped.")
    ] = 100,
    coalesce: Annotated[
        bool,
        typer.Option("--coalesce", help="A newer event for a subject supersedes its waiting ones."),
    ] = False,
    executor: ExecutorOpt = "process",
    json_out: JsonOpt = False,
) -> None:
    """Run a pipeline when an event matches (dispatched by `meshops worker`). Events over
    the concurrency limit wait in the trigger's backlog and start as runs finish; see
    `meshops triggers events NAME` for what became of each."""
    from meshops.client import connect

    with connect() as platform:
        trigger = platform.pipelines.create_trigger(
            name,
            topic,
            ref,
            parse_params(param),
            match=parse_params(match),
            expression=expression,
            max_concurrent=max_concurrent,
            executor=executor,
            max_pending=max_pending,
            coalesce_pending=coalesce,
        )
    _print_triggers([trigger], json_out)


@triggers_app.command("list")
def trigger_list(json_out: JsonOpt = False) -> None:
    """Triggers with their active runs and what became of the events they matched."""
    from meshops.client import connect

    with connect() as platform:
        states = platform.pipelines.trigger_states()
    if json_out:
        print_json(states)
        return
    print_table(
        "triggers",
        ["name", "topic", "ref", "if", "limit", "active", "waiting", "started", "skipped"],
        [
            [
                s.trigger.name,
                s.trigger.topic,
                s.trigger.ref,
                s.trigger.expression or json.dumps(s.trigger.match),
                f"{s.trigger.max_concurrent} (+{s.trigger.max_pending} waiting"
                + (", coalesced)" if s.trigger.coalesce_pending else ")"),
                s.active_runs,
                s.events.get("pending", 0),
                s.events.get("started", 0),
                _skipped_text(s.events),
            ]
            for s in states
        ],
    )


def _skipped_text(events: dict[str, int]) -> str:
    parts = [f"{events[k]} {k}" for k in ("coalesced", "dropped") if events.get(k)]
    return ", ".join(parts) or "0"


@triggers_app.command("events")
def trigger_events(
    name: Annotated[str | None, typer.Argument(help="Only this trigger's events.")] = None,
    status: Annotated[
        str | None, typer.Option(help="pending, started, coalesced or dropped.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", help="At most this many events.")] = 50,
    json_out: JsonOpt = False,
) -> None:
    """Events the triggers matched, newest first: waiting, started (with the run),
    coalesced (superseded by a newer event) or dropped (and why)."""
    from meshops.client import connect

    with connect() as platform:
        found = platform.pipelines.list_trigger_events(name, status, limit)
    if json_out:
        print_json(found)
        return
    print_table(
        "trigger events",
        ["trigger", "event", "topic", "subject", "status", "run", "received", "reason"],
        [
            [
                e.trigger_name,
                e.event_id,
                e.topic,
                e.subject,
                e.status.value,
                e.run_id,
                e.received_at,
                e.reason,
            ]
            for e in found
        ],
    )


@triggers_app.command("delete")
def trigger_delete(
    name: Annotated[str, typer.Argument(help="The trigger's name (see `triggers list`).")],
) -> None:
    """Delete an event trigger: its waiting events are dropped; runs it started go on."""
    from meshops.client import connect

    with connect() as platform:
        platform.pipelines.delete_trigger(name)
    err_console.print(f"deleted trigger {name}")


def _print_triggers(found: list[Any], json_out: bool) -> None:
    if json_out:
        print_json(found)
        return
    print_table(
        "triggers",
        ["name", "topic", "ref", "match", "if", "max concurrent", "max pending", "coalesce"],
        [
            [
                t.name,
                t.topic,
                t.ref,
                json.dumps(t.match),
                t.expression,
                t.max_concurrent,
                t.max_pending,
                t.coalesce_pending,
            ]
            for t in found
        ],
    )


def worker(  # noqa: PLR0917 - one parameter per CLI option
    lease: Annotated[float, typer.Option(help="Lease seconds; renewed every third.")] = 30.0,
    poll: Annotated[float, typer.Option(help="Seconds between polls when idle.")] = 1.0,
    max_runs: Annotated[int | None, typer.Option(help="Exit after this many runs.")] = None,
    once: Annotated[bool, typer.Option("--once", help="Exit when the queue is empty.")] = False,
    ray_address: Annotated[str | None, typer.Option(help="Ray cluster for ray runs.")] = None,
    max_workers: Annotated[int | None, typer.Option(help="Process pool size.")] = None,
    name: Annotated[str | None, typer.Option(help="Worker name (default host:pid).")] = None,
) -> None:
    """Run queued pipelines, cron schedules and event triggers until stopped."""
    import logging

    from meshops.client import connect
    from meshops.pipelines.worker import Worker, WorkerOptions

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    options = WorkerOptions(
        lease_seconds=lease,
        poll_seconds=poll,
        executor_options={"ray_address": ray_address, "max_workers": max_workers},
    )
    with connect() as platform:
        tracking = getattr(platform, "tracking", None)
        runner = Worker(platform.pipelines, tracking, options, name)
        runner.install_signal_handlers()
        err_console.print(f"worker {runner.name} polling every {poll}s (lease {lease}s)")
        done = runner.serve(max_runs=max_runs, idle_exit=once)
    err_console.print(f"worker {runner.name} stopped after {done} run(s)")
