"""`meshops catalog search`: find data products (kept light: CLI start time matters)."""

from __future__ import annotations

from typing import Annotated

import typer

from meshops.cli.output import JSON_HELP, print_json, print_table

app = typer.Typer(help="The data product catalog.", no_args_is_help=True)


@app.command("search")
def search(
    text: Annotated[str, typer.Argument(help="Words to find.")] = "",
    *,
    domain: Annotated[str | None, typer.Option(help="Only this domain.")] = None,
    status: Annotated[str | None, typer.Option(help="draft|published|deprecated|retired")] = None,
    classification: Annotated[str | None, typer.Option(help="With a column of this class.")] = None,
    tag: Annotated[str | None, typer.Option(help="With this tag.")] = None,
    limit: Annotated[int, typer.Option(help="How many hits.")] = 20,
    json_out: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Full-text search over names, descriptions, tags, columns, domains and owners."""
    from meshops.client import connect

    with connect() as platform:
        result = platform.mesh.search(
            text,
            domain=domain,
            status=status,
            classification=classification,
            tag=tag,
            limit=limit,
        )
    if json_out:
        print_json(result)
        return
    # Above catalog.TOTAL_EXACT matches the total is an estimate (result.total_exact).
    total = f"{result.total}" if result.total_exact else f"about {result.total:,}"
    print_table(
        f"{total} product(s) for {text!r}",
        ["product", "version", "status", "score", "description"],
        [[h.product, h.latest_version, h.status, h.score, h.description[:60]] for h in result.hits],
    )
