"""`meshops domain ...`: domains and their teams."""

from __future__ import annotations

from typing import Annotated

import typer

from meshops.cli.output import JSON_HELP, print_json, print_table

app = typer.Typer(help="Domains: who owns which data products.", no_args_is_help=True)


@app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="The domain's name, e.g. sales.")],
    *,
    description: Annotated[str, typer.Option(help="What the domain covers.")] = "",
    owner: Annotated[list[str] | None, typer.Option(help="Owner (repeatable).")] = None,
    member: Annotated[list[str] | None, typer.Option(help="Member (repeatable).")] = None,
    team: Annotated[str, typer.Option(help="Team name.")] = "",
    json_out: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Create a domain."""
    from meshops.client import connect

    with connect() as platform:
        domain = platform.mesh.create_domain(name, description, owner, member, team)
    if json_out:
        print_json(domain)
    else:
        print_table(
            "domain",
            ["name", "owners", "team"],
            [[domain.name, ", ".join(domain.owners), domain.team]],
        )


@app.command("list")
def list_domains(json_out: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False) -> None:
    """List domains."""
    from meshops.client import connect

    with connect() as platform:
        domains = platform.mesh.list_domains()
    if json_out:
        print_json(domains)
        return
    print_table(
        "domains",
        ["name", "description", "owners", "members"],
        [[d.name, d.description, ", ".join(d.owners), ", ".join(d.members)] for d in domains],
    )
