"""`meshops runs list|show|search|import` and `meshops experiments list` (through the SDK)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from meshops.cli.output import (
    JSON_HELP,
    ColumnsOpt,
    WideOpt,
    choose_columns,
    fit_columns,
    format_number,
    print_json,
    print_table,
    progress_bar,
    short_id,
    widest,
)

if TYPE_CHECKING:
    from meshops.tracking.models import Run, RunSpec

runs_app = typer.Typer(help="Runs of the ML metadata store.", no_args_is_help=True)
experiments_app = typer.Typer(help="Experiments of the ML metadata store.", no_args_is_help=True)

ExperimentOpt = Annotated[
    list[str] | None, typer.Option("--experiment", "-e", help="Experiment name or id.")
]
OrderOpt = Annotated[
    list[str] | None,
    typer.Option("--order-by", "-o", help="e.g. 'metrics.rmse ASC' (repeatable)."),
]
LimitOpt = Annotated[int, typer.Option("--max-results", "-n", help="Runs per page.")]
PageOpt = Annotated[str | None, typer.Option("--page-token", help="Token of the next page.")]
JsonOpt = Annotated[bool, typer.Option("--json", help=JSON_HELP)]
RunIdArg = Annotated[
    str, typer.Argument(help="Run id, or its first characters as `runs list` shows them.")
]


RUN_COLUMNS = ("id", "name", "status", "start", "user", "end", "experiment", "parent")
DEFAULT_RUN_COLUMNS = ("id", "name", "status", "start")


def metric_order(runs: list[Run]) -> list[str]:
    """Every metric key of `runs`, the one they are judged by first: the metric a run
    declares (tag `meshops.primary_metric`, or the training template's `<metric>_lift`),
    else the usual yardsticks (roc_auc, accuracy, f1, ..., r2, rmse, ...), else
    alphabetical (`tracking.metrics_direction.rank_metrics`, the UI's order too)."""
    from meshops.tracking.metrics_direction import declared_metric, rank_metrics

    declared = [m for m in (declared_metric(r.tags, r.metrics) for r in runs) if m]
    return rank_metrics({k for r in runs for k in r.metrics}, declared)


def _run_cell(run: Run, column: str) -> Any:
    attributes: dict[str, Any] = {
        "id": short_id(run.id),
        "name": run.name,
        "status": run.status.value,
        "start": run.start_time,
        "user": run.user,
        "end": run.end_time,
        "experiment": run.experiment_id,
        "parent": short_id(run.parent_run_id),
    }
    return attributes[column] if column in attributes else run.metrics.get(column)


def _print_runs(
    runs: list[Run],
    next_token: str | None,
    json_out: bool,
    wide: bool = False,
    columns: str | None = None,
) -> None:
    if json_out:
        print_json({"runs": runs, "next_page_token": next_token})
        return
    metrics = [m for m in metric_order(runs) if m not in RUN_COLUMNS]
    available = [*RUN_COLUMNS[:3], *metrics[:1], *RUN_COLUMNS[3:], *metrics[1:]]
    if columns or wide:
        chosen = choose_columns(available, [], wide=wide, columns=columns)
    else:  # the primary metric always; more metrics while they fit the terminal
        required = [*DEFAULT_RUN_COLUMNS[:3], *metrics[:1], DEFAULT_RUN_COLUMNS[3]]
        widths = {c: widest(c, [_run_cell(r, c) for r in runs]) for c in available}
        widths["name"] = min(widths["name"], 24)  # names wrap; ids, metrics and times do not
        chosen = fit_columns(required, metrics[1:], widths)
    print_table("runs", chosen, [[_run_cell(r, c) for c in chosen] for r in runs])
    if next_token:
        typer.echo(f"more: --page-token {next_token}", err=True)


def _search(
    *,
    experiment: list[str] | None,
    filter_text: str,
    order_by: list[str] | None,
    max_results: int,
    page_token: str | None,
    json_out: bool,
    wide: bool,
    columns: str | None,
) -> None:
    from meshops.client import connect

    with connect() as platform:
        page = platform.tracking.search_runs(
            experiment or None, filter_text, order_by or [], max_results, page_token
        )
    _print_runs(page.runs, page.next_page_token, json_out, wide, columns)


@runs_app.command("list")
def list_runs(  # noqa: PLR0917 - one parameter per CLI option
    experiment: ExperimentOpt = None,
    max_results: LimitOpt = 50,
    page_token: PageOpt = None,
    wide: WideOpt = False,
    columns: ColumnsOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """The newest runs (of some experiments), the metric they are judged by first; more
    metrics as the terminal's width allows (--wide: all)."""
    _search(
        experiment=experiment,
        filter_text="",
        order_by=None,
        max_results=max_results,
        page_token=page_token,
        json_out=json_out,
        wide=wide,
        columns=columns,
    )


@runs_app.command("search")
def search_runs(
    *,
    filter_text: Annotated[
        str,
        typer.Option("--filter", "-f", help="e.g. \"metrics.rmse < 0.5 and params.model = 'rf'\""),
    ] = "",
    experiment: ExperimentOpt = None,
    order_by: OrderOpt = None,
    max_results: LimitOpt = 50,
    page_token: PageOpt = None,
    wide: WideOpt = False,
    columns: ColumnsOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Runs matching a filter, in the given order."""
    _search(
        experiment=experiment,
        filter_text=filter_text,
        order_by=order_by,
        max_results=max_results,
        page_token=page_token,
        json_out=json_out,
        wide=wide,
        columns=columns,
    )


@runs_app.command("show")
def show_run(run_id: RunIdArg, json_out: JsonOpt = False) -> None:
    """One run: status, params, latest metrics, tags, inputs and artifacts."""
    from meshops.client import connect

    with connect() as platform:
        run_id = platform.tracking.resolve_run_id(run_id)
        run = platform.tracking.get_run(run_id)
        artifacts = platform.tracking.list_artifacts(run_id)
    if json_out:
        print_json({**run.model_dump(mode="json"), "artifacts": artifacts})
        return
    print_table(
        f"run {run.id}",
        ["field", "value"],
        [
            ["name", run.name],
            ["experiment", run.experiment_id],
            ["status", run.status.value],
            ["user", run.user],
            ["start", run.start_time],
            ["end", run.end_time],
            ["parent", run.parent_run_id],
            ["error", (run.error or "").strip().splitlines()[-1] if run.error else None],
        ],
    )
    for title, values in (("params", run.params), ("metrics", run.metrics), ("tags", run.tags)):
        if values:
            print_table(title, ["key", "value"], [[k, v] for k, v in sorted(values.items())])
    if run.inputs:
        print_table(
            "inputs",
            ["urn", "digest", "context"],
            [[i.urn, i.digest, i.context] for i in run.inputs],
        )
    if artifacts:
        print_table(
            "artifacts",
            ["path", "size", "digest"],
            [[a.path, a.size, a.digest[:12]] for a in artifacts],
        )


@runs_app.command("compare")
def compare_runs(
    run_ids: Annotated[
        list[str],
        typer.Argument(
            help="Two or more run ids, or their first characters as `runs list` shows them."
        ),
    ],
    json_out: JsonOpt = False,
) -> None:
    """Runs side by side: their metrics (the primary one first, the best value of each
    metric with a known direction marked *) and the params that differ."""
    from meshops.client import connect
    from meshops.kernel.config import load_settings
    from meshops.kernel.errors import InvalidInput
    from meshops.tracking.metrics_direction import best_index, configured_directions, direction_of

    if len(run_ids) < 2:
        raise InvalidInput(
            "compare at least two runs", {"field": "run_ids", "fix": "name two or more runs"}
        )
    with connect() as platform:
        runs = [platform.tracking.get_run(platform.tracking.resolve_run_id(r)) for r in run_ids]
    if json_out:
        print_json(runs)
        return
    configured = configured_directions(load_settings())
    heads = [short_id(r.id) for r in runs]
    rows: list[list[Any]] = [["name", "", *(r.name for r in runs)]]
    for metric in metric_order(runs):
        values = [r.metrics.get(metric) for r in runs]
        direction = direction_of(metric, configured)
        best = best_index([float("nan") if v is None else v for v in values], direction)
        shown = [
            "" if v is None else format_number(v) + (" *" if i == best else "")
            for i, v in enumerate(values)
        ]
        rows.append([metric, {"max": "higher", "min": "lower"}.get(direction or "", ""), *shown])
    print_table("metrics (* best)", ["metric", "better", *heads], rows)
    params = sorted({k for r in runs for k in r.params})
    differing = [k for k in params if len({r.params.get(k) for r in runs}) > 1]
    if differing:
        print_table(
            "params that differ",
            ["param", *heads],
            [[k, *(r.params.get(k) for r in runs)] for k in differing],
        )


@runs_app.command("reproduce")
def reproduce_run(
    run_id: Annotated[
        str,
        typer.Argument(
            help="A pipeline run, or a tracking run it made (an id or its first characters)."
        ),
    ],
    executor: Annotated[str, typer.Option("--executor", "-x", help="inline, process or ray.")] = (
        "inline"
    ),
    use_current_code: Annotated[
        bool,
        typer.Option(
            "--use-current-code",
            help="Rerun with the code as it is now instead of a checkout of the recorded commit.",
        ),
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Rerun a pipeline run with its recorded code version (a checkout of its git commit),
    parameters and data versions, and report whether the output digests match (exit 1 when
    they differ). A tracking run made by a pipeline stands for its pipeline run."""
    from meshops.cli.pipelines import print_reproduce_report
    from meshops.client import connect

    with connect() as platform:
        pipeline_run = _pipeline_run_of(platform, run_id)
        report = platform.pipelines.reproduce(
            pipeline_run, executor, use_current_code=use_current_code
        )
    print_reproduce_report(report, json_out)


def _pipeline_run_of(platform: Any, run_id: str) -> str:
    """`run_id` if it is a pipeline run, else the pipeline run the tracking run belongs to."""
    from meshops.kernel.errors import InvalidInput, NotFound

    try:
        return str(platform.pipelines.resolve_run_id(run_id))
    except NotFound:
        pass
    try:
        tags = platform.tracking.get_run(platform.tracking.resolve_run_id(run_id)).tags
    except NotFound:
        raise NotFound(
            f"no pipeline run or tracking run {run_id}",
            {"fix": "list runs with `meshops pipelines list` or `meshops runs list`"},
        ) from None
    pipeline_run = tags.get("meshops.pipeline_run")
    if not pipeline_run:
        raise InvalidInput(
            f"run {run_id} was not made by a pipeline, so there is nothing to rerun",
            {"fix": "reproduce a pipeline run (`meshops pipelines list`)"},
        )
    return str(pipeline_run)


@runs_app.command("import")
def import_runs(
    file: Annotated[Path, typer.Argument(help="JSON Lines: one run (RunSpec) a line.")],
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, max=10_000, help="Runs a request.")
    ] = 1_000,
    json_out: JsonOpt = False,
) -> None:
    """Create whole runs from a JSON Lines file through the batch API (`create_runs`): each
    line is a run ({"experiment", "name", "tags", "params", "metrics": [{"key", "value",
    "step", "timestamp"}], "status", "start_time", "end_time"}). The whole file is checked
    first; each request of --batch-size runs is then one transaction."""
    from rich.progress import BarColumn, TextColumn, TimeElapsedColumn

    from meshops.client import connect

    total = sum(1 for _ in _run_specs(file))  # every line parses before anything is sent
    created: list[str] = []
    with (
        connect() as platform,
        progress_bar(
            TextColumn("runs"), BarColumn(), TextColumn("{task.completed:,}/{task.total:,}"),
            TimeElapsedColumn(), json_out=json_out,
        ) as bar,
    ):  # fmt: skip
        task = bar.add_task("runs", total=total)
        batch: list[RunSpec] = []
        for spec in _run_specs(file):
            batch.append(spec)
            if len(batch) == batch_size:
                _send(platform.tracking, batch, created)
                bar.update(task, completed=len(created))
                batch = []
        if batch:
            _send(platform.tracking, batch, created)
    if json_out:
        print_json({"created": len(created), "run_ids": created})
    else:
        print(f"created {len(created):,} runs from {file}")


def _send(tracking: Any, batch: list[RunSpec], created: list[str]) -> None:
    """One request; a refusal says which runs of the file it held and what stays created."""
    from meshops.kernel.errors import MeshopsError

    try:
        created += tracking.create_runs(batch)
    except MeshopsError as exc:
        first = len(created) + 1
        exc.message = (
            f"{exc.message} (runs {first:,}-{first + len(batch) - 1:,} of the file, counting "
            f"from 1; runs[i] is the i-th of them; the {len(created):,} runs before were created)"
        )
        exc.args = (exc.message,)
        exc.detail = {**exc.detail, "created": len(created)}
        raise


def _run_specs(file: Path) -> Iterator[RunSpec]:
    """The runs of a JSON Lines file; a bad line is an error naming the file and line."""
    from pydantic import ValidationError

    from meshops.kernel.errors import InvalidInput
    from meshops.tracking.models import RunSpec

    try:
        lines = file.open(encoding="utf-8")
    except OSError as exc:
        raise InvalidInput(f"cannot read {file}: {exc.strerror}", {"file": str(file)}) from exc
    with lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                yield RunSpec.model_validate_json(line)
            except ValidationError as exc:
                error = exc.errors()[0]
                field = ".".join(str(part) for part in error["loc"]) or "line"
                raise InvalidInput(
                    f"{file} line {number}: {field}: {error['msg']}",
                    {"file": str(file), "line": number, "field": field, "fix": "fix the line"},
                ) from exc


@experiments_app.command("list")
def list_experiments(json_out: JsonOpt = False) -> None:
    """Every experiment."""
    from meshops.client import connect

    with connect() as platform:
        experiments = platform.tracking.list_experiments()
    if json_out:
        print_json(experiments)
        return
    print_table(
        "experiments",
        ["id", "name", "description", "created"],
        [[e.id, e.name, e.description, e.created_at] for e in experiments],
    )
