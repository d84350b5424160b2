"""`meshops endpoints ...`, `meshops serve`, `meshops predict`, `meshops feedback`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from meshops.cli.output import JSON_HELP, print_json, print_table

endpoints_app = typer.Typer(help="Model serving endpoints.", no_args_is_help=True)
JsonOut = Annotated[bool, typer.Option("--json", help=JSON_HELP)]
EndpointArg = Annotated[str, typer.Argument(help="The endpoint's name (see `endpoints list`).")]


def _show(endpoint: Any, json_out: bool) -> None:
    if json_out:
        print_json(endpoint)
        return
    canary = f"{endpoint.canary} ({endpoint.canary_percent:g} %)" if endpoint.canary else ""
    rows = [
        [
            endpoint.name,
            endpoint.domain,
            endpoint.model,
            canary,
            ", ".join(endpoint.shadows),
            endpoint.generation,
            endpoint.updated_at,
        ]
    ]
    print_table(
        "endpoint",
        ["name", "domain", "model", "canary", "shadows", "generation", "updated"],
        rows,
    )


@endpoints_app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="A name for the endpoint, e.g. churn-api.")],
    *,
    model: Annotated[str, typer.Option(help="Model to serve, e.g. churn@champion.")],
    domain: Annotated[str | None, typer.Option(help="Owning domain (default: model's).")] = None,
    features: Annotated[
        list[str] | None, typer.Option("--feature", help="Online features to add.")
    ] = None,
    entity_keys: Annotated[
        list[str] | None, typer.Option("--entity-key", help="Entity key column(s).")
    ] = None,
    description: Annotated[str, typer.Option(help="What the endpoint serves, for people.")] = "",
    trust_model_code: Annotated[
        bool,
        typer.Option(
            "--trust-model-code",
            help="Allow pickled (python-flavor) models: loading runs their code (audited).",
        ),
    ] = False,
    json_out: JsonOut = False,
) -> None:
    """Create an endpoint serving a model alias."""
    from meshops.client import connect

    with connect() as platform:
        created = platform.serving.create_endpoint(
            name,
            model,
            domain=domain,
            features=features or None,
            entity_keys=entity_keys or None,
            description=description,
            trust_model_code=trust_model_code,
        )
    _show(created, json_out)


@endpoints_app.command("list")
def list_endpoints(
    domain: Annotated[str | None, typer.Option(help="Only this domain's endpoints.")] = None,
    json_out: JsonOut = False,
) -> None:
    """List endpoints."""
    from meshops.client import connect

    with connect() as platform:
        found = platform.serving.list_endpoints(domain)
    if json_out:
        print_json(found)
        return
    rows = [[e.name, e.domain, e.model, e.canary or "", e.canary_percent] for e in found]
    print_table("endpoints", ["name", "domain", "model", "canary", "canary %"], rows)


@endpoints_app.command("show")
def show(name: EndpointArg, json_out: JsonOut = False) -> None:
    """Show an endpoint's routes."""
    from meshops.client import connect

    with connect() as platform:
        _show(platform.serving.get_endpoint(name), json_out)


@endpoints_app.command("traffic")
def traffic(
    name: EndpointArg,
    *,
    model: Annotated[str | None, typer.Option(help="New primary model.")] = None,
    canary: Annotated[str | None, typer.Option(help="Canary model, e.g. churn/4.")] = None,
    percent: Annotated[float, typer.Option(help="Share of requests for the canary.")] = 0.0,
    shadows: Annotated[list[str] | None, typer.Option("--shadow", help="Shadow model(s).")] = None,
    trust_model_code: Annotated[
        bool | None,
        typer.Option(
            "--trust-model-code/--no-trust-model-code",
            help="Allow pickled (python-flavor) models (audited); unchanged if omitted.",
        ),
    ] = None,
    json_out: JsonOut = False,
) -> None:
    """Set the routes: primary, canary share and shadows (omitted ones are removed)."""
    from meshops.client import connect

    with connect() as platform:
        changed = platform.serving.set_traffic(
            name,
            model=model,
            canary=canary,
            canary_percent=percent,
            shadows=shadows or [],
            trust_model_code=trust_model_code,
        )
    _show(changed, json_out)


@endpoints_app.command("roll-log")
def roll_log(name: EndpointArg, json_out: JsonOut = False) -> None:
    """Publish the newest prediction-log rows as a data product version."""
    from meshops.client import connect

    with connect() as platform:
        rolled = platform.serving.roll_log(name)
    if json_out:
        print_json(rolled)
        return
    print_table(
        "prediction log",
        ["endpoint", "product", "version", "rows"],
        [[rolled.endpoint, rolled.product, rolled.version or "(nothing new)", rolled.rows]],
    )


def serve(  # noqa: PLR0917 - one parameter per CLI option
    endpoints: Annotated[list[str], typer.Argument(help="Endpoint(s) to serve.")],
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
    workers: Annotated[int, typer.Option(help="Number of worker processes.")] = 1,
    auth: Annotated[
        bool,
        typer.Option(
            help="Require an API token like `meshops server` (--no-auth: act as the local user)."
        ),
    ] = True,
    trust_model_code: Annotated[
        bool,
        typer.Option(
            "--trust-model-code",
            help="Load pickled (python-flavor) models of endpoints that trust them: their "
            "code runs in this process (an admin's decision).",
        ),
    ] = False,
) -> None:
    """Serve model endpoint(s) for inference alone: uvicorn workers answering /invocations
    and /metrics, without the platform's API or UI.

    For the platform's API server (HTTP API, UI, MLflow routes), use `meshops server`."""
    from meshops.serving.endpoint_app import serve as run

    run(
        list(endpoints),
        host=host,
        port=port,
        workers=workers,
        auth=auth,
        trust_model_code=trust_model_code,
    )


def _read_records(data: str | None, file: Path | None) -> Any:
    if file is not None:
        text = sys.stdin.read() if str(file) == "-" else file.read_text()
    elif data is not None:
        text = data
    else:
        raise typer.BadParameter("give --data JSON or --file PATH ('-' for stdin)")
    return json.loads(text)


def predict(
    endpoint: EndpointArg,
    data: Annotated[str | None, typer.Option(help="JSON records, e.g. '[{\"x\": 1}]'.")] = None,
    file: Annotated[Path | None, typer.Option(help="JSON file of records ('-': stdin).")] = None,
    request_id: Annotated[str | None, typer.Option(help="Request id to use.")] = None,
    proba: Annotated[
        bool, typer.Option(help="Add a classifier's class probabilities (proba_<class>).")
    ] = False,
) -> None:
    """Score records on an endpoint; prints the predictions as JSON."""
    from meshops.client import connect

    records = _read_records(data, file)
    with connect() as platform:
        result = platform.serving.predict(endpoint, records, request_id=request_id, proba=proba)
    print_json(result)


def feedback(
    endpoint: EndpointArg,
    request_id: Annotated[str | None, typer.Option(help="Request id of one prediction.")] = None,
    label: Annotated[str | None, typer.Option(help="Its label (JSON value).")] = None,
    file: Annotated[
        Path | None, typer.Option(help="JSON list of {request_id, label, record?}.")
    ] = None,
) -> None:
    """Send ground-truth labels for predictions (one, or many from a file)."""
    from meshops.client import connect

    with connect() as platform:
        if file is not None:
            stored = platform.serving.feedback_bulk(endpoint, json.loads(file.read_text()))
        elif request_id is not None and label is not None:
            stored = platform.serving.feedback(endpoint, request_id, json.loads(label))
        else:
            raise typer.BadParameter("give --request-id and --label, or --file")
    print_json({"stored": stored})


@endpoints_app.command("batch-score")
def batch_score(
    model: Annotated[str, typer.Argument(help="Model to score with, e.g. churn@champion.")],
    product: Annotated[str, typer.Argument(help="Product to score, e.g. sales.customers.")],
    *,
    output: Annotated[str, typer.Option(help="Product to publish predictions as.")],
    version: Annotated[str | None, typer.Option(help="Input version (default: latest).")] = None,
    port: Annotated[str | None, typer.Option(help="Input port (default: the first).")] = None,
    keep: Annotated[
        list[str] | None, typer.Option("--keep", help="Input column to carry over.")
    ] = None,
    engine: Annotated[
        str, typer.Option(help="local (this process) or ray (Ray Data, docs/ray.md).")
    ] = "local",
    ray_address: Annotated[
        str | None, typer.Option(help="Ray cluster address (default: a local Ray).")
    ] = None,
    block_rows: Annotated[int | None, typer.Option(help="Rows per block on Ray.")] = None,
    workers: Annotated[int | None, typer.Option(help="Scoring actors on Ray.")] = None,
    trust_model_code: Annotated[
        bool, typer.Option("--trust-model-code", help="Allow pickled (python-flavor) models.")
    ] = False,
    json_out: JsonOut = False,
) -> None:
    """Score a data product version and publish the predictions as a product version."""
    from meshops.cli.output import console, err_console
    from meshops.client import connect

    with connect() as platform, err_console.status(f"scoring {product} ({engine})"):
        published = platform.serving.batch_score(
            model,
            product,
            version,
            output=output,
            port=port,
            keep_columns=keep or None,
            trust_model_code=trust_model_code,
            engine=engine,  # type: ignore[arg-type]  # checked by the service
            ray_address=ray_address,
            block_rows=block_rows,
            workers=workers,
        )
    if json_out:
        print_json(published)
        return
    console.print(f"[green]published[/green] {published.urn} rows={published.row_count}")
