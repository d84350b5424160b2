"""`meshops` command: assembles the area sub-commands and maps errors to exit codes."""

from __future__ import annotations

import inspect
import sys
from collections.abc import Iterable
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from meshops.cli import catalog as catalog_cli
from meshops.cli import demo as demo_cli
from meshops.cli import domains as domains_cli
from meshops.cli import features as features_cli
from meshops.cli import governance as governance_cli
from meshops.cli import imports as imports_cli
from meshops.cli import models as models_cli
from meshops.cli import monitoring as monitoring_cli
from meshops.cli import pipelines as pipelines_cli
from meshops.cli import products as products_cli
from meshops.cli import project as project_cli
from meshops.cli import runs as runs_cli
from meshops.cli import serving as serving_cli
from meshops.cli.help import PolishedGroup, polish
from meshops.cli.output import JSON_HELP, err_console, print_json, print_table

if TYPE_CHECKING:
    from typer import _click as click  # typer's own (vendored) click
    from typer.core import TyperGroup

    from meshops.kernel.errors import MeshopsError

app = typer.Typer(
    name="meshops",
    help="Self-serve data mesh and MLOps platform.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Metadata database schema.", no_args_is_help=True)
lineage_app = typer.Typer(help="The lineage graph.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(lineage_app, name="lineage")
app.add_typer(serving_cli.endpoints_app, name="endpoints")
app.command("serve")(serving_cli.serve)
app.command("predict")(serving_cli.predict)
app.command("feedback")(serving_cli.feedback)
app.add_typer(domains_cli.app, name="domain")
app.add_typer(products_cli.app, name="product")
app.add_typer(catalog_cli.app, name="catalog")
app.add_typer(features_cli.app, name="features")
app.add_typer(models_cli.app, name="models")
app.add_typer(monitoring_cli.monitors_app, name="monitors")
app.add_typer(monitoring_cli.alerts_app, name="alerts")
app.add_typer(runs_cli.runs_app, name="runs")
app.add_typer(pipelines_cli.pipelines_app, name="pipelines")
app.add_typer(pipelines_cli.schedules_app, name="schedules")
app.add_typer(pipelines_cli.triggers_app, name="triggers")
app.command("worker")(pipelines_cli.worker)
app.add_typer(runs_cli.experiments_app, name="experiments")
app.command("init")(project_cli.init)
app.command("demo")(demo_cli.demo)
app.command("plan")(project_cli.plan)
app.command("apply")(project_cli.apply)
app.command("check")(project_cli.check)
app.command("login")(governance_cli.login)
app.add_typer(governance_cli.users_app, name="users")
app.add_typer(governance_cli.tokens_app, name="tokens")
app.add_typer(governance_cli.roles_app, name="roles")
app.add_typer(governance_cli.policy_app, name="policy")
app.add_typer(governance_cli.access_app, name="access")
app.add_typer(governance_cli.audit_app, name="audit")
app.add_typer(governance_cli.usage_app, name="usage")
app.add_typer(imports_cli.import_app, name="import")

# `meshops --help` lists the commands by area, in this order.
PANELS = {
    "Data mesh": ["domain", "product", "catalog", "lineage"],
    "Features": ["features"],
    "ML": ["experiments", "runs", "models"],
    "Pipelines": ["pipelines", "schedules", "triggers", "worker"],
    "Serving & monitoring": ["endpoints", "serve", "predict", "feedback", "monitors", "alerts"],
    "Governance": ["login", "users", "tokens", "roles", "policy", "access", "audit", "usage"],
    "Platform": ["server", "init", "plan", "apply", "check", "demo", "db", "import", "version"],
}
PANEL_OF = {name: panel for panel, names in PANELS.items() for name in names}


@app.command()
def version() -> None:
    """Print the meshops version."""
    import meshops

    print(meshops.__version__)


class LogFormat(StrEnum):
    text = "text"
    json = "json"


@app.command()
def server(
    host: Annotated[
        str | None,
        typer.Option(
            help="Interface to bind. Default: $MESHOPS_SERVER_HOST, else `host` in the "
            "config's server table, else 127.0.0.1."
        ),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(
            help="Port to listen on. Default: $MESHOPS_SERVER_PORT, else `port` in the "
            "config's server table, else 8080."
        ),
    ] = None,
    workers: Annotated[int, typer.Option(help="Number of worker processes.")] = 1,
    log_format: Annotated[
        LogFormat | None,
        typer.Option(
            help="Log lines as text, or as one JSON object each. Default: "
            "$MESHOPS_LOG_FORMAT, else `log_format` in the config's server table, else text."
        ),
    ] = None,
) -> None:
    """Run the platform's API server: the HTTP API, the web UI and the MLflow routes on the
    configured home, which the SDK, the CLI (MESHOPS_URI) and browsers connect to.

    To serve a model endpoint for inference alone, use `meshops serve`."""
    from meshops.api.server import serve

    serve(
        host=host, port=port, workers=workers, log_format=log_format.value if log_format else None
    )


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply pending schema migrations to the metadata database."""
    from meshops.kernel import schema
    from meshops.kernel.config import load_settings
    from meshops.kernel.db import Database

    settings = load_settings()
    if settings.database_url.startswith("sqlite"):
        settings.home.mkdir(parents=True, exist_ok=True)
    db = Database(settings.database_url)
    heads = schema.upgrade(db)
    err_console.print(f"[green]schema up to date[/green] ({', '.join(heads)})")


@db_app.command("status")
def db_status(json_out: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False) -> None:
    """Show the applied and expected schema revisions."""
    from meshops.kernel import schema
    from meshops.kernel.config import load_settings
    from meshops.kernel.db import Database

    db = Database(load_settings().database_url)
    current, expected = schema.current_heads(db), schema.expected_heads(db)
    if json_out:
        print_json(
            {
                "database": db.url,
                "current": current,
                "expected": expected,
                "up_to_date": current == expected,
            }
        )
        return
    row = [db.url, ", ".join(current), ", ".join(expected), str(current == expected)]
    print_table("schema", ["database", "current", "expected", "up to date"], [row])


UrnArg = Annotated[
    str, typer.Argument(help="A meshops URN, e.g. meshops:model:churn:2 (see `catalog search`).")
]


def _print_edges(title: str, edges: list[object], json_out: bool) -> None:
    if json_out:
        print_json(edges)
        return
    print_table(
        title,
        ["depth", "upstream", "relation", "downstream"],
        [[e.depth, e.upstream, e.relation, e.downstream] for e in edges],  # type: ignore[attr-defined]
    )


@lineage_app.command("upstream")
def lineage_upstream(
    urn: UrnArg,
    depth: Annotated[int, typer.Option(help="How many hops to walk.")] = 5,
    json_out: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """What `URN` was derived from."""
    from meshops.client import connect

    with connect() as platform:
        _print_edges(f"upstream of {urn}", list(platform.lineage.upstream(urn, depth)), json_out)


@lineage_app.command("downstream")
def lineage_downstream(
    urn: UrnArg,
    depth: Annotated[int, typer.Option(help="How many hops to walk.")] = 5,
    json_out: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """What was derived from `URN` (impact analysis)."""
    from meshops.client import connect

    with connect() as platform:
        _print_edges(
            f"downstream of {urn}", list(platform.lineage.downstream(urn, depth)), json_out
        )


def _assign_panels() -> None:
    """Every top-level entry in its `PANELS` area (also for the full app tests walk)."""
    from typer.main import get_command_name

    for command_info in app.registered_commands:
        assert command_info.callback is not None
        name = command_info.name or get_command_name(command_info.callback.__name__)
        command_info.rich_help_panel = PANEL_OF.get(name)
    for group_info in app.registered_groups:
        group_info.rich_help_panel = PANEL_OF.get(str(group_info.name))


_assign_panels()


def in_panel_order(names: Iterable[str]) -> list[str]:
    """`names` in the order of `PANELS` (any other name after them)."""
    names = list(names)
    ordered = [name for panel in PANELS.values() for name in panel if name in names]
    return ordered + [name for name in names if name not in ordered]


def full_command() -> TyperGroup:
    """The whole `meshops` click tree, built at once and rendered as `meshops` renders it
    (`cli.help`; commands in panel order): what tests and generators walk."""
    from typer.main import get_command

    class Ordered(PolishedGroup):
        def list_commands(self, ctx: click.Context) -> list[str]:
            return in_panel_order(super().list_commands(ctx))

    group = polish(get_command(app))
    assert isinstance(group, PolishedGroup)
    group.__class__ = Ordered
    return group


def lazy_group() -> TyperGroup:
    """The `meshops` group, building only the sub-command that runs.

    Typer turns every command's signature into click parameters up front (~100 commands);
    a CLI run needs one. This group lists the same entries as `app` (the full Typer app,
    which tests use) and builds an entry on first use; `meshops --help` lists light
    stand-ins carrying each entry's help text and panel.
    """
    import copy

    from typer.core import TyperCommand, TyperGroup
    from typer.main import get_command_name, get_group, get_install_completion_arguments
    from typer.models import CommandInfo, DefaultPlaceholder, TyperInfo

    def value(v: Any) -> Any:
        return v.value if isinstance(v, DefaultPlaceholder) else v

    entries: dict[str, TyperInfo | CommandInfo] = {}  # typer's order: commands, then groups
    for command_info in app.registered_commands:
        assert command_info.callback is not None
        name = command_info.name or get_command_name(command_info.callback.__name__)
        entries[name] = command_info
    for group_info in app.registered_groups:
        sub = group_info.typer_instance
        group_name = value(group_info.name) or (value(sub.info.name) if sub else None)
        entries[str(group_name)] = group_info

    def build(name: str) -> click.Command:
        single = copy.copy(app)
        info = entries[name]
        single.registered_groups = [info] if isinstance(info, TyperInfo) else []
        single.registered_commands = [info] if isinstance(info, CommandInfo) else []
        return polish(get_group(single).commands[name])

    def stand_in(name: str) -> click.Command:
        info = entries[name]
        if isinstance(info, TyperInfo):
            sub_info = info.typer_instance.info if info.typer_instance else info
            return polish(
                TyperGroup(
                    name=name,
                    help=value(info.help) or value(sub_info.help),
                    short_help=value(info.short_help) or value(sub_info.short_help),
                    hidden=bool(value(info.hidden) or value(sub_info.hidden)),
                    rich_help_panel=PANEL_OF.get(name),
                )
            )
        assert info.callback is not None
        return polish(
            TyperCommand(
                name=name,
                help=info.help or inspect.getdoc(info.callback),
                short_help=info.short_help,
                hidden=info.hidden,
                deprecated=info.deprecated,
                rich_help_panel=PANEL_OF.get(name),
            )
        )

    built: dict[str, click.Command] = {}
    listing = {"stand_ins": False}

    class LazyGroup(PolishedGroup):
        def list_commands(self, ctx: click.Context) -> list[str]:
            return in_panel_order(entries)

        def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
            if cmd_name not in entries:
                return None
            if listing["stand_ins"]:
                return stand_in(cmd_name)
            if cmd_name not in built:
                built[cmd_name] = build(cmd_name)
            return built[cmd_name]

        def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
            listing["stand_ins"] = True
            try:
                super().format_help(ctx, formatter)
            finally:
                listing["stand_ins"] = False

    shell = copy.copy(app)
    shell.registered_groups, shell.registered_commands = [], []
    group = get_group(shell)
    group.__class__ = LazyGroup
    if app._add_completion:
        group.params.extend(get_install_completion_arguments())
    return group


def main() -> None:
    """Entry point: run the app, turning meshops errors into a message and an exit code."""
    from meshops.kernel.errors import MeshopsError, outage_error

    try:
        # Without standalone mode click returns a command's `typer.Exit(code)` instead of
        # raising it, so the return value is the exit code.
        result = lazy_group()(standalone_mode=False)
    except MeshopsError as exc:
        _fail(exc)
    except (typer.Exit, SystemExit) as exc:
        code = exc.exit_code if isinstance(exc, typer.Exit) else exc.code
        sys.exit(code if isinstance(code, int) else 0)
    except Exception as exc:  # click usage errors and aborts
        from typer import _click as click  # typer vendors click: its exceptions are these

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        if isinstance(exc, typer.Abort):
            err_console.print("aborted")
            sys.exit(130)
        fault = outage_error(exc)  # a full disk, a database that does not answer
        if fault is not None:
            _fail(fault)
        raise
    sys.exit(result if isinstance(result, int) else 0)


def _fail(exc: MeshopsError) -> NoReturn:
    err_console.print(f"[bold red]error[/bold red] ({exc.error}): {exc.message}")
    for key, value in exc.detail.items():
        err_console.print(f"  {key}: {value}")
    sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
