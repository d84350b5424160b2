"""`meshops features apply|list|show|materialize|training-set|online` (through the SDK, so
every command works on an embedded home and against a server alike)."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from meshops.cli.output import JSON_HELP, print_json, print_table, progress_bar

if TYPE_CHECKING:
    import pyarrow as pa

app = typer.Typer(
    help="Feature store: feature views on data products, training sets, online features.",
    no_args_is_help=True,
)
JsonOpt = Annotated[bool, typer.Option("--json", help=JSON_HELP)]
FeaturesOpt = Annotated[
    list[str] | None,
    typer.Option("--feature", "-f", help="A feature 'view:name', 'view:*' (repeatable)."),
]
ServiceOpt = Annotated[str | None, typer.Option("--service", "-s", help="A feature service.")]


def _features(features: list[str] | None, service: str | None) -> list[str] | str:
    if service:
        return service
    if not features:
        raise typer.BadParameter("name features with --feature/-f or a --service")
    return features


@app.command("apply")
def apply(
    path: Annotated[Path, typer.Argument(help="A features folder or YAML file.")] = Path(
        "features"
    ),
    json_out: JsonOpt = False,
) -> None:
    """Register the definitions of `features/*.yaml` (checked against the products' contracts)."""
    from meshops.client import connect
    from meshops.features.specs import load_repo

    repo = load_repo(path)
    with connect() as platform:
        result = platform.features.apply(repo)
    if json_out:
        print_json(result)
        return
    rows = [[name, "created"] for name in result.created]
    rows += [[name, "updated"] for name in result.updated]
    rows += [[name, "unchanged"] for name in result.unchanged]
    print_table(f"applied {path}", ["definition", "change"], rows)


@app.command("list")
def list_definitions(
    kind: Annotated[
        str | None,
        typer.Option(help="entity, feature_view, feature_service or on_demand_feature."),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """List the registered definitions."""
    from meshops.client import connect

    with connect() as platform:
        items = platform.features.list_definitions(kind)
    if json_out:
        print_json(items)
        return
    print_table(
        "feature definitions",
        ["kind", "name", "domain", "owner", "summary", "updated"],
        [
            [
                d.kind,
                d.name,
                ", ".join(d.domains) or d.domain,
                d.owner,
                _summary(d.definition),
                d.updated_at,
            ]
            for d in items
        ],
    )


def _summary(definition: dict[str, Any]) -> str:
    if "features" in definition and "source" in definition:
        source = definition["source"]["product"]
        return f"{len(definition['features'])} features from {source}"
    if "features" in definition:
        return ", ".join(definition["features"])
    if "join_keys" in definition:
        return "keys " + ", ".join(definition["join_keys"])
    return str(definition.get("function", ""))


@app.command("show")
def show(
    name: Annotated[str, typer.Argument(help="The feature view's (or entity's) name.")],
    kind: Annotated[str, typer.Option(help="What NAME is.")] = "feature_view",
    json_out: JsonOpt = False,
) -> None:
    """Show a definition; for a feature view also its freshness and statistics."""
    from meshops.client import connect

    with connect() as platform:
        item = platform.features.get(name, kind)
        status = platform.features.status(name) if kind == "feature_view" else None
    if json_out:
        print_json({"definition": item, "status": status})
        return
    print_table(f"{kind} {name}", ["field", "value"], [
        [key, json.dumps(value) if isinstance(value, dict | list) else value]
        for key, value in item.definition.items()
    ])  # fmt: skip
    if status is None:
        return
    print_table(f"freshness of {name}", ["field", "value"], [
        ["product", f"{status.product} {status.latest_version}"],
        ["materialized version", status.materialized_version],
        ["materialized at", status.materialized_at],
        ["rows / entities", f"{status.rows} / {status.entities}"],
        ["newest event", status.newest_event_time],
        ["age (s)", status.age_seconds],
        ["ttl (s)", status.ttl_seconds],
        ["fresh", status.fresh],
    ])  # fmt: skip
    print_table(
        f"statistics of {name}",
        ["feature", "type", "count", "nulls", "distinct", "min", "max", "mean"],
        [[s.name, s.type, s.count, s.nulls, s.distinct, s.min, s.max, s.mean]
         for s in status.features],
    )  # fmt: skip


@app.command("materialize")
def materialize(
    views: Annotated[list[str] | None, typer.Argument(help="Views (default: all).")] = None,
    end: Annotated[
        datetime | None, typer.Option(help="Load values up to this time (default: now).")
    ] = None,
    full: Annotated[bool, typer.Option(help="Ignore watermarks and reload everything.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Load what is new since each view's watermark into the online store."""
    from rich.progress import BarColumn, TextColumn, TimeElapsedColumn

    from meshops.client import connect

    with (
        connect() as platform,
        progress_bar(
            TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed:,}"),
            TimeElapsedColumn(), json_out=json_out,
        ) as bar,
    ):  # fmt: skip
        tasks: dict[str, Any] = {}

        def progress(view: str, done: int, total: int) -> None:
            if view not in tasks:
                tasks[view] = bar.add_task(view, total=total or None)
            bar.update(tasks[view], completed=done, total=total or None)

        results = platform.features.materialize(views, end=end, full=full, progress=progress)
    if json_out:
        print_json(results)
        return
    print_table(
        "materialized",
        ["view", "product", "version", "rows read", "entities written", "watermark", "note"],
        [[r.view, r.product, r.version, r.rows_read, r.rows_written, r.watermark, r.reason]
         for r in results],
    )  # fmt: skip


def _read_entities(path: Path) -> pa.Table:
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    if not path.exists():
        raise typer.BadParameter(f"{path} does not exist")
    if path.suffix in (".parquet", ".pq"):
        return pq.read_table(path)
    return pcsv.read_csv(path)


@app.command("training-set")
def training_set(
    entities: Annotated[
        Path | None,
        typer.Argument(help="Entity rows: Parquet or CSV with keys and a timestamp column."),
    ] = None,
    *,
    features: FeaturesOpt = None,
    service: ServiceOpt = None,
    name: Annotated[str, typer.Option(help="Name of the training set.")] = "training_set",
    timestamp_column: Annotated[
        str, typer.Option(help="The entity rows' label time column.")
    ] = "event_timestamp",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write Parquet.")] = None,
    list_sets: Annotated[bool, typer.Option("--list", help="List recorded sets.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Build a point-in-time correct training set and record it (digest + lineage)."""
    from meshops.client import connect

    with connect() as platform:
        if list_sets or entities is None:
            sets = platform.features.list_training_sets(None if name == "training_set" else name)
            if json_out:
                print_json(sets)
                return
            print_table(
                "training sets",
                ["id", "name", "digest", "rows", "features", "created"],
                [[t.id, t.name, t.digest[:16], t.row_count, len(t.features), t.created_at]
                 for t in sets],
            )  # fmt: skip
            return
        result = platform.features.training_set(
            _read_entities(entities), _features(features, service), name=name,
            timestamp_column=timestamp_column,
        )  # fmt: skip
        if output is not None:
            import pyarrow.parquet as pq

            reader = result.reader()
            with pq.ParquetWriter(output, reader.schema) as writer:
                for batch in reader:
                    writer.write_batch(batch)
    if json_out:
        print_json(result.info)
        return
    info = result.info
    print_table(f"training set {info.name}", ["field", "value"], [
        ["id", info.id], ["urn", info.urn], ["digest", info.digest], ["rows", info.row_count],
        ["features", ", ".join(info.features)],
        ["sources", ", ".join(f"{s.product}@{s.version}" for s in info.sources)],
        ["written to", str(output) if output else "(not written; use --output)"],
    ])  # fmt: skip


@app.command("online")
def online(
    entity: Annotated[
        list[str] | None,
        typer.Option("--entity", "-e", help="One entity row as key=value[,key=value] (repeat)."),
    ] = None,
    features: FeaturesOpt = None,
    service: ServiceOpt = None,
    rows: Annotated[str | None, typer.Option(help="Entity rows as a JSON list.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Look up the latest feature values of entities in the online store."""
    from meshops.client import connect

    entity_rows: list[dict[str, Any]] = json.loads(rows) if rows else []
    entity_rows += [_parse_row(text) for text in entity or []]
    if not entity_rows:
        raise typer.BadParameter("give entity rows with --entity/-e or --rows")
    with connect() as platform:
        result = platform.features.online(entity_rows, _features(features, service))
    if json_out:
        print_json(result)
        return
    print_table(
        "online features",
        ["entity", "status", *result.features],
        [[json.dumps(request), row.status, *row.values.values()]
         for request, row in zip(entity_rows, result.rows, strict=True)],
    )  # fmt: skip


def _parse_row(text: str) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        if not sep:
            raise typer.BadParameter(f"{part!r}: write key=value")
        try:
            row[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            row[key.strip()] = value
    return row
