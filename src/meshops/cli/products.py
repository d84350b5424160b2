"""`meshops product ...`: scaffold, validate, build, publish, diff, inspect, re-test and read
products."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from meshops.cli.output import JSON_HELP, console, err_console, print_json, print_table

if TYPE_CHECKING:
    from meshops.mesh.models import BuildSummary

app = typer.Typer(help="Data products: specs, builds, versions and reads.", no_args_is_help=True)
T = TypeVar("T")
JsonOpt = Annotated[bool, typer.Option("--json", help=JSON_HELP)]
FolderArg = Annotated[
    Path, typer.Argument(help="A product folder (dataproduct.yaml, contracts, build.yaml).")
]
ProductArg = Annotated[str, typer.Argument(help="A data product: <domain>.<name>.")]


@app.command("new")
def new(
    product: Annotated[str, typer.Argument(help="<domain>.<name>")],
    folder: Annotated[Path | None, typer.Option(help="Where to create it.")] = None,
    owner: Annotated[str | None, typer.Option(help="Owner user name.")] = None,
) -> None:
    """Scaffold a product folder (dataproduct.yaml, contract, build.yaml) from the template."""
    import jinja2

    from meshops.kernel.config import load_settings
    from meshops.kernel.errors import Conflict
    from meshops.mesh.models import check_name, split_product_ref

    domain, name, _ = split_product_ref(product)
    check_name(domain, "domain", "product")
    check_name(name, "product name", "product")
    target = folder or Path(f"{domain}_{name}")
    if target.exists() and any(target.iterdir()):
        raise Conflict(f"{target} exists and is not empty", {"fix": "pass --folder <new dir>"})
    templates = Path(__file__).resolve().parent.parent / "mesh" / "templates" / "product"
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(templates), keep_trailing_newline=True)
    values = {"domain": domain, "name": name, "owner": owner or load_settings().user}
    target.mkdir(parents=True, exist_ok=True)
    outputs = {
        "dataproduct.yaml.j2": "dataproduct.yaml",
        "contract.odcs.yaml.j2": f"{name}.odcs.yaml",
        "build.yaml.j2": "build.yaml",
    }
    for template, out in outputs.items():
        (target / out).write_text(env.get_template(template).render(**values))
    err_console.print(f"[green]created[/green] {target}/ ({', '.join(outputs.values())})")


@app.command("validate")
def validate(folder: FolderArg, json_out: JsonOpt = False) -> None:
    """Check the descriptor, contracts and build recipe of a product folder."""
    from meshops.client import connect

    with connect() as platform:
        report = platform.mesh.validate(folder)
    if json_out:
        print_json(report)
    else:
        err_console.print(
            f"[green]valid[/green] {report.product} {report.version} "
            f"ports: {', '.join(report.ports)}"
        )


def _progress_build(action: str, folder: Path, run: Callable[[Callable[[str], None]], T]) -> T:
    """Run a build with its steps on one live line; a step that measures progress (the rows
    a Ray build has transformed, builds.ProgressStep) fills the bar."""
    from rich.progress import (
        BarColumn,
        Progress,
        SpinnerColumn,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    if not err_console.is_terminal:  # a log or a pipe gets the outcome, not spinner frames
        result = run(_print_retried)
        err_console.print(f"{action} {folder}: done")
        return result
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),  # the percentage, when the step measures progress
        TimeElapsedColumn(),
        console=err_console,
        transient=True,  # nothing is left behind when the build fails and its error prints
    ) as progress:
        task = progress.add_task(f"{action} {folder}", total=None)

        def on_step(message: str) -> None:
            _print_retried(message)
            done, total = getattr(message, "done", None), getattr(message, "total", None)
            progress.update(
                task, description=f"{action} {folder}: {message}", total=total, completed=done
            )

        result = run(on_step)
    err_console.print(f"{action} {folder}: done")
    return result


def _print_retried(step: str) -> None:
    """A block of a Ray build that failed and was retried stays on screen (docs/ray.md)."""
    if step.endswith("; retried"):
        err_console.print(f"[yellow]{step}[/yellow]")


def _print_build(summary: BuildSummary | None) -> None:
    """How a version was built (stored with it): engine, duration, blocks, retried blocks."""
    if summary is None:
        return
    where = f" at {summary.ray_address}" if summary.ray_address else ""
    console.print(f"built on {summary.engine}{where} in {summary.seconds:.1f} s")
    for port in summary.blocks:
        blocks = f"{port.blocks:,}" + (f"/{port.total_blocks:,}" if port.total_blocks else "")
        rows = f"{port.rows:,}" + (f"/{port.total_rows:,}" if port.total_rows is not None else "")
        console.print(f"  port {port.port}: {blocks} blocks, {rows} rows")
    if summary.retried_blocks:
        print_table(
            f"{summary.retried_blocks} block failure(s) retried",
            ["port", "block", "attempt", "error"],
            [[r.port, r.block, r.attempt, r.error] for r in summary.retries],
        )


def _verdict(result: Any) -> str:
    """yes / NO, or "not evaluated" / "not checked" for a rule reported without a verdict."""
    status = str(getattr(result, "status", ""))
    return status if status.startswith("not ") else ("yes" if result.passed else "NO")


def _print_rules(results: list[Any]) -> None:
    print_table(
        "contract test",
        ["rule", "passed", "observed", "expected", "message"],
        [[r.rule, _verdict(r), r.observed, r.expected, r.message] for r in results],
    )


@app.command("build")
def build(folder: FolderArg, json_out: JsonOpt = False) -> None:
    """Build a product and run its contract test, without publishing."""
    from meshops.client import connect

    with connect() as platform:
        report = _progress_build("build", folder, lambda step: platform.mesh.build(folder, step))
    if json_out:
        print_json(report)
    else:
        for port in report.ports:
            _print_rules(list(port.report.results))
        _print_build(report.build)
    if not report.passed:
        raise typer.Exit(1)


@app.command("publish")
def publish(folder: FolderArg, json_out: JsonOpt = False) -> None:
    """Build, test and publish a product folder as a new immutable version."""
    from meshops.client import connect

    with connect() as platform:
        version = _progress_build(
            "publish", folder, lambda step: platform.mesh.publish(folder, step)
        )
    if json_out:
        print_json(version)
        return
    note = " (identical content already published)" if version.reused else ""
    console.print(
        f"[green]published[/green] {version.urn} rows={version.row_count} "
        f"digest={version.digest[:12]}{note}"
    )
    if not version.reused:
        _print_build(version.build)
    for warning in version.policy_warnings:
        console.print(f"[yellow]policy warning[/yellow] {warning.policy_id}: {warning.explanation}")


@app.command("diff")
def diff(folder: FolderArg, json_out: JsonOpt = False) -> None:
    """Schema diff of a product folder against its last published version."""
    from meshops.client import connect

    with connect() as platform:
        result = platform.mesh.diff(folder)
    if json_out:
        print_json(result)
        return
    print_table(
        f"{result.previous_version or '(none)'} -> {result.new_version}: "
        f"needs {result.required_bump}",
        ["kind", "breaking", "message"],
        [[c.kind, "yes" if c.breaking else "", c.message] for c in result.changes],
    )
    if result.affected:
        console.print("affected downstream: " + ", ".join(result.affected))


@app.command("list")
def list_products(
    domain: Annotated[str | None, typer.Option(help="Only this domain.")] = None,
    status: Annotated[str | None, typer.Option(help="Only this status.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """List data products."""
    from meshops.client import connect

    with connect() as platform:
        products = platform.mesh.list_products(domain, status)
    if json_out:
        print_json(products)
        return
    print_table(
        "data products",
        ["product", "latest", "status", "owners", "description"],
        [
            [p.product, p.latest_version, p.status, ", ".join(p.owners), p.description]
            for p in products
        ],
    )


@app.command("show")
def show(
    product: Annotated[str, typer.Argument(help="<domain>.<name>[@range]")],
    version: Annotated[str | None, typer.Option(help="Version or range.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Show a version: ports, columns, quality results and how it was built."""
    from meshops.client import connect

    with connect() as platform:
        found = platform.mesh.get_version(product, version)
    if json_out:
        print_json(found)
        return
    console.print(
        f"[bold]{found.urn}[/bold] {found.status} rows={found.row_count} digest={found.digest[:12]}"
    )
    _print_build(found.build)
    for port in found.ports:
        print_table(
            f"port {port.name} ({port.row_count} rows)",
            ["column", "type", "required", "unique", "pk", "classification", "description"],
            [
                [
                    c.name,
                    c.logical_type,
                    c.required,
                    c.unique,
                    c.primary_key,
                    c.classification,
                    c.description,
                ]
                for c in port.columns
            ],
        )
        judged = [r for r in port.quality if not r.status.startswith("not ")]
        passed = sum(r.passed for r in judged)
        unjudged = len(port.quality) - len(judged)
        more = f" ({unjudged} not evaluated or not checked)" if unjudged else ""
        console.print(f"quality: {passed}/{len(judged)} rules passed{more}")


@app.command("deprecate")
def deprecate(
    product: ProductArg,
    *,
    sunset: Annotated[str | None, typer.Option(help="YYYY-MM-DD")] = None,
    replacement: Annotated[str | None, typer.Option(help="<domain>.<name> to use instead.")] = None,
    reason: Annotated[str, typer.Option(help="Why.")] = "",
    retire: Annotated[bool, typer.Option("--retire", help="Retire (after deprecation).")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Deprecate a product (reads warn), or retire it (reads fail naming the replacement)."""
    from meshops.client import connect

    with connect() as platform:
        result = (
            platform.mesh.retire(product)
            if retire
            else platform.mesh.deprecate(product, sunset, replacement, reason)
        )
    if json_out:
        print_json(result)
    else:
        console.print(f"{result.product} is now {result.status}")


@app.command("compact")
def compact(
    product: ProductArg,
    *,
    port: Annotated[str | None, typer.Option(help="One Iceberg port (default: all).")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Compact a product's Iceberg tables and expire their snapshots (docs/iceberg.md)."""
    from meshops.client import connect

    with connect() as platform:
        report = platform.mesh.compact(product, port)
    if json_out:
        print_json(report)
        return
    for table in report.tables:
        console.print(
            f"{table.table}: {table.compacted_files} files compacted, "
            f"{table.expired_snapshots} snapshots expired, {table.removed_files} files "
            f"({table.removed_bytes} bytes) removed"
            + (f"; versions past retention: {', '.join(table.expired_versions)}"
               if table.expired_versions else "")
        )  # fmt: skip


@app.command("test")
def test(
    product: Annotated[str, typer.Argument(help="<domain>.<name>[@range]")],
    *,
    version: Annotated[str | None, typer.Option(help="Version or range (default: latest).")] = None,
    port: Annotated[str | None, typer.Option(help="One output port (default: all).")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Run a published version's contract test again on its stored data (exit 1 on a failed
    rule); "from metadata" marks the rules an Iceberg snapshot's manifests answered."""
    from meshops.client import connect

    with connect() as platform:
        report = platform.mesh.test_version(product, version, port)
    if json_out:
        print_json(report)
    else:
        for tested in report.ports:
            print_table(
                f"{report.product} {report.version} port {tested.port} ({tested.format}, "
                f"{tested.rows} rows)",
                [
                    "rule",
                    "passed",
                    "at publish",
                    "from metadata",
                    "observed",
                    "expected",
                    "message",
                ],
                [_rule_row(r) for r in tested.results],
            )
        verdict = "[green]passed[/green]" if report.passed else "[red]FAILED[/red]"
        console.print(f"{report.urn}: contract test {verdict}")
    if not report.passed:
        raise typer.Exit(1)


def _rule_row(result: Any) -> list[Any]:
    at_publish = result.passed_at_publish
    return [
        result.rule,
        _verdict(result),
        "" if at_publish is None else ("yes" if at_publish else "NO"),
        "yes" if result.from_metadata else "",
        result.observed,
        result.expected,
        result.message,
    ]


def _print_arrow(table: Any, limit: int, json_out: bool) -> None:
    rows = table.slice(0, limit).to_pylist()
    if json_out:
        print_json(rows)
        return
    names = table.column_names
    print_table(f"{table.num_rows} row(s)", names, [[r[n] for n in names] for r in rows])


@app.command("read")
def read(
    product: Annotated[str, typer.Argument(help="<domain>.<name>[@range]")],
    *,
    version: Annotated[str | None, typer.Option(help="Version or range.")] = None,
    port: Annotated[str | None, typer.Option(help="Output port (default: the first).")] = None,
    columns: Annotated[str | None, typer.Option(help="Comma-separated columns.")] = None,
    limit: Annotated[int, typer.Option(help="Rows to print.")] = 20,
    output: Annotated[
        Path | None, typer.Option(help="Write all rows to this Parquet file.")
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Read a product's data (governed: access, masking and usage apply)."""
    from meshops.client import connect

    with connect() as platform:
        table = platform.mesh.read(product, version, port, columns.split(",") if columns else None)
    if output:
        import pyarrow.parquet as pq

        pq.write_table(table, output)
        err_console.print(f"wrote {table.num_rows} rows to {output}")
        return
    _print_arrow(table, limit, json_out)


@app.command("sql")
def sql(
    query: Annotated[
        str,
        typer.Argument(
            help="A DuckDB query naming products as tables, e.g. "
            "'select * from sales.orders limit 5'."
        ),
    ],
    limit: Annotated[int, typer.Option(help="Rows to print.")] = 50,
    json_out: JsonOpt = False,
) -> None:
    """Run DuckDB SQL across products named <domain>.<name>."""
    from meshops.client import connect

    with connect() as platform:
        table = platform.mesh.sql(query)
    _print_arrow(table, limit, json_out)
