"""`meshops models ...`: registered models, versions and aliases (through the SDK)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import typer

from meshops.cli.output import (
    JSON_HELP,
    ColumnsOpt,
    WideOpt,
    format_number,
    print_json,
    print_records,
    print_table,
    short_id,
)

app = typer.Typer(help="The model registry: models, versions and aliases.", no_args_is_help=True)
alias_app = typer.Typer(help="Aliases such as champion and challenger.", no_args_is_help=True)
app.add_typer(alias_app, name="alias")


def _project_commands() -> None:
    # Promotion through the gate and approvals: owned by the project area (cli/project.py).
    from meshops.cli import project as project_cli

    app.command("promote")(project_cli.promote)
    app.command("approve")(project_cli.approve)


_project_commands()

JsonOut = Annotated[bool, typer.Option("--json", help=JSON_HELP)]
ModelArg = Annotated[str, typer.Argument(help="The registered model's name.")]


@app.command("list")
def list_models(
    domain: Annotated[str | None, typer.Option(help="Only models of this domain.")] = None,
    json_out: JsonOut = False,
) -> None:
    """List registered models with their latest version and aliases."""
    from meshops.client import connect

    with connect() as platform:
        models = platform.registry.list_models(domain)
    if json_out:
        print_json(models)
        return
    rows = [
        [
            m.name,
            m.latest_version,
            ", ".join(f"{a}→{v}" for a, v in m.aliases.items()),
            m.domain,
            m.description,
            m.updated_at,
        ]
        for m in models
    ]
    print_table("models", ["name", "latest", "aliases", "domain", "description", "updated"], rows)


@app.command("show")
def show(
    name: Annotated[str, typer.Argument(help="The registered model's name.")],
    version: Annotated[
        int | None, typer.Option(help="Show this version in detail instead of all versions.")
    ] = None,
    wide: WideOpt = False,
    columns: ColumnsOpt = None,
    json_out: JsonOut = False,
) -> None:
    """Show a model and its versions, or one version with its signature and files."""
    from meshops.client import connect

    with connect() as platform:
        if version is not None:
            detail = platform.registry.get_version(name, version)
            if json_out:
                print_json(detail)
                return
            _print_version(detail)
            return
        model = platform.registry.get_model(name)
        versions = platform.registry.list_versions(name)
    if json_out:
        print_json({"model": model, "versions": versions})
        return
    _print_model(model, versions, wide, columns)


def _metrics_text(metrics: dict[str, float], order: list[str]) -> str:
    return ", ".join(f"{k}={format_number(metrics[k])}" for k in order if k in metrics)


def _metric_getter(metric: str) -> Callable[[Any], Any]:
    return lambda version: version.metrics.get(metric)


def _print_model(model: Any, versions: list[Any], wide: bool, columns: str | None) -> None:
    from meshops.tracking.metrics_direction import declared_metric, rank_metrics

    tags = ", ".join(f"{k}={v}" for k, v in sorted(model.tags.items()))
    print_table(
        f"model {model.name}",
        ["description", "owner", "domain", "tags", "created by", "created"],
        [[model.description, model.owner, model.domain, tags, model.created_by, model.created_at]],
    )
    declared = [m for m in (declared_metric(v.tags, v.metrics) for v in versions) if m]
    order = rank_metrics({k for v in versions for k in v.metrics}, declared)
    primary = order[:1]
    fields: dict[str, Callable[[Any], Any]] = {
        "version": lambda v: v.version,
        "aliases": lambda v: ", ".join(v.aliases),
        "status": lambda v: v.status.value,
        **{m: _metric_getter(m) for m in primary},
        "run": lambda v: short_id(v.run_id),
        "metrics": lambda v: _metrics_text(v.metrics, order[1:]),
        "flavor": lambda v: v.flavor,
        "created by": lambda v: v.created_by,
        "created": lambda v: v.created_at,
    }
    default = ["version", "aliases", "status", *primary, "run", "metrics"]
    extra = ["flavor", "created"]
    print_records("versions", fields, versions, default, extra=extra, wide=wide, columns=columns)


def _print_version(v: object) -> None:
    from meshops.registry.models import ModelVersion

    assert isinstance(v, ModelVersion)
    print_table(
        f"{v.uri}",
        ["flavor", "status", "aliases", "run", "created by", "created", "description"],
        [
            [
                v.flavor,
                v.status.value,
                ", ".join(v.aliases),
                v.run_id,
                v.created_by,
                v.created_at,
                v.description,
            ]
        ],
    )
    if v.signature is not None:
        print_table(
            f"signature ({v.signature.kind})",
            ["direction", "name", "type", "shape"],
            [["input", c.name, c.type, c.shape] for c in v.signature.inputs]
            + [["output", c.name, c.type, c.shape] for c in v.signature.outputs],
        )
    print_table("files", ["path", "size", "digest"], [[f.path, f.size, f.digest] for f in v.files])
    if v.metrics:
        print_table("metrics", ["metric", "value"], sorted(v.metrics.items()))


@alias_app.command("set")
def alias_set(
    name: ModelArg,
    alias: Annotated[str, typer.Argument(help="The alias, e.g. champion.")],
    version: Annotated[int, typer.Argument(help="The version the alias points at.")],
    reason: Annotated[str, typer.Option(help="Why the alias moves (kept in history).")] = "",
    json_out: JsonOut = False,
) -> None:
    """Point ALIAS of model NAME at VERSION."""
    from meshops.client import connect

    with connect() as platform:
        move = platform.registry.set_alias(name, alias, version, reason)
    if json_out:
        print_json(move)
        return
    print_table(
        "alias moved",
        ["model", "alias", "from", "to", "by", "at"],
        [[move.name, move.alias, move.from_version, move.to_version, move.actor, move.at]],
    )


@alias_app.command("history")
def alias_history(
    name: ModelArg,
    alias: Annotated[str | None, typer.Argument(help="Only this alias.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many moves.")] = 100,
    json_out: JsonOut = False,
) -> None:
    """Every move of the aliases of model NAME, newest first."""
    from meshops.client import connect

    with connect() as platform:
        moves = platform.registry.alias_history(name, alias, limit)
    if json_out:
        print_json(moves)
        return
    print_table(
        f"alias history of {name}",
        ["at", "alias", "from", "to", "by", "reason"],
        [[m.at, m.alias, m.from_version, m.to_version, m.actor, m.reason] for m in moves],
    )
