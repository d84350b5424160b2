"""`meshops catalog search`: find data products (kept light: CLI start time matters)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import typer

from meshops.cli.output import JSON_HELP, ColumnsOpt, WideOpt, print_json, print_records

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
    wide: WideOpt = False,
    columns: ColumnsOpt = None,
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
    # A large total can be an estimate (result.total_exact, see mesh/catalog_search.py).
    total = f"{result.total}" if result.total_exact else f"about {result.total:,}"
    # Scores are bm25 sums on no fixed scale: people get the rank and the relevance
    # relative to the best hit; --json keeps the raw score.
    best = max((h.score for h in result.hits), default=0.0) or 1.0
    fields: dict[str, Callable[[Any], Any]] = {
        "#": lambda h: result.hits.index(h) + 1,
        "product": lambda h: h.product,
        "version": lambda h: h.latest_version,
        "status": lambda h: h.status,
        "relevance": lambda h: f"{h.score / best:.0%}",
        "description": lambda h: h.description,
        "score": lambda h: h.score,
    }
    print_records(
        f"{total} product(s) for {text!r}",
        fields,
        result.hits,
        ["#", "product", "version", "status", "relevance", "description"],
        wide=wide,
        columns=columns,
    )
