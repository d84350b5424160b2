"""`meshops import mlflow`: copy an existing MLflow store into meshops (through the SDK)."""

from __future__ import annotations

from typing import Annotated

import typer

from meshops.cli.output import JSON_HELP, err_console, print_json, print_table, progress_bar

import_app = typer.Typer(help="Import from other tools.", no_args_is_help=True)


@import_app.command("mlflow")
def import_mlflow(  # noqa: PLR0917 - one parameter per CLI option
    source: Annotated[
        str,
        typer.Option(
            "--from",
            help="An MLflow server URL (http://host:5000) or its database URI "
            "(sqlite:///mlflow.db, postgresql://user@host/db).",
        ),
    ],
    artifacts: Annotated[
        str | None,
        typer.Option(
            help="The artifact root, for a database URI whose artifacts are "
            "mlflow-artifacts:/ locations (the server's --artifacts-destination) or moved.",
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Report what would be copied; write nothing.")
    ] = False,
    max_runs: Annotated[
        int, typer.Option(min=1, max=1_000_000, help="Copy at most this many runs.")
    ] = 100_000,
    max_artifact_mb: Annotated[
        int,
        typer.Option(min=1, max=10_240, help="Skip artifact and model files larger than this."),
    ] = 1024,
    json_out: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Copy experiments, runs (params, metric histories, tags, artifacts), registered
    models, versions and aliases from MLflow. Re-running copies only what is new."""
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn

    from meshops.client import connect
    from meshops.mlflow.importer import KINDS, import_mlflow

    with (
        connect() as platform,
        progress_bar(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), json_out=json_out
        ) as bar,
    ):
        task = bar.add_task("reading MLflow", total=None)

        def progress(what: str, done: int, total: int) -> None:
            bar.update(task, description=what[:60], completed=done, total=total)

        report = import_mlflow(
            source,
            platform.tracking,
            platform.registry,
            artifacts=artifacts,
            dry_run=dry_run,
            max_runs=max_runs,
            max_artifact_bytes=max_artifact_mb * 1024 * 1024,
            progress=progress,
        )
    if json_out:
        print_json(report.to_json())
        return
    verb = "would copy" if dry_run else "copied"
    print_table(
        f"import from {report.source}" + (" (dry run)" if dry_run else ""),
        ["kind", verb, "already there", "changed", "skipped"],
        [
            [kind, c.copied, c.unchanged, c.changed, c.skipped]
            for kind in KINDS
            if (c := report.counts[kind])
        ],
    )
    if report.changed:
        print_table(
            "changed in MLflow since the last import",
            ["kind", "id", "what"],
            [[s.kind, s.id, s.reason] for s in report.changed[:200]],
        )
    if report.skipped:
        print_table(
            "skipped",
            ["kind", "id", "why"],
            [[s.kind, s.id, s.reason] for s in report.skipped[:200]],
        )
        if len(report.skipped) > 200:
            err_console.print(f"... {len(report.skipped) - 200} more (see --json)")
