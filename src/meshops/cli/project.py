"""`meshops init | plan | apply | check`: the project workflow (through the SDK)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from meshops.cli.output import JSON_HELP, console, err_console, print_json, print_table

JsonOut = Annotated[bool, typer.Option("--json", help=JSON_HELP)]
Root = Annotated[
    Path | None,
    typer.Option("--path", help="The project folder (default: the nearest with meshops.toml)."),
]


def _root(path: Path | None) -> Path:
    from meshops.project.repo import find_root

    return find_root(path or Path.cwd())


def init(
    folder: Annotated[Path, typer.Argument(help="Where to create the project.")] = Path("."),
    template: Annotated[
        str, typer.Option(help="default | training-pipeline (adds a training pipeline).")
    ] = "default",
    name: Annotated[str | None, typer.Option(help="Project name (default: folder name).")] = None,
    owner: Annotated[str | None, typer.Option(help="Owner of the example products.")] = None,
    no_git: Annotated[bool, typer.Option("--no-git", help="Do not run git init.")] = False,
) -> None:
    """Create a project repository: meshops.toml, domains/, features/, pipelines/,
    policies/, tests/ and a CI workflow (.github/workflows/meshops.yml)."""
    from meshops.kernel.config import load_settings
    from meshops.project.scaffold import init as scaffold

    written = scaffold(
        folder,
        template=template,
        project=name,
        owner=owner or load_settings().user,
        git=not no_git,
    )
    err_console.print(f"[green]created[/green] project in {folder} ({len(written)} files)")
    for path in written:
        console.print(f"  {path.relative_to(folder)}")
    err_console.print("next: git add -A && git commit -m init && meshops check && meshops plan")


def _print_plan(plan: Any) -> None:
    commit = (plan.git.commit or "no git commit")[:12]
    dirty = " (uncommitted changes)" if plan.git.dirty else ""
    err_console.print(f"project [bold]{plan.project}[/bold] at {commit}{dirty}")
    rows = []
    for c in plan.changes:
        if c.action == "unchanged" and not c.errors:
            continue
        notes = list(c.details)
        notes += [f"BREAKING: {b.message}" for b in c.breaking]
        if c.affected.consumers:
            notes.append("consumers: " + ", ".join(c.affected.consumers))
        if c.affected.models:
            notes.append("models: " + ", ".join(c.affected.models))
        notes += [
            f"policy {p.policy_id} {p.outcome} ({p.severity}): {p.explanation}"
            for p in c.policies
            if p.outcome != "pass"
        ]
        notes += [f"ERROR: {e}" for e in c.errors]
        rows.append([c.action, c.kind, c.name, "\n".join(notes)])
    if rows:
        print_table("plan", ["action", "kind", "name", "details"], rows)
    unchanged = sum(1 for c in plan.changes if c.action == "unchanged" and not c.errors)
    verdict = "[red]blocked[/red]" if plan.blocked else "[green]ok[/green]"
    err_console.print(
        f"{len(plan.pending)} to change, {unchanged} unchanged; {verdict}"
        + ("" if plan.has_changes else " - nothing to do")
    )


def plan(path: Root = None, json_out: JsonOut = False) -> None:
    """Show what `meshops apply` would change on the platform (exit 1 if it is blocked)."""
    from meshops.client import connect

    with connect() as platform:
        result = platform.project.plan(_root(path))
    if json_out:
        print_json(result)
    else:
        _print_plan(result)
    if result.blocked:
        raise SystemExit(1)


def apply(
    path: Root = None,
    require_clean: Annotated[
        bool, typer.Option("--require-clean", help="Refuse uncommitted changes.")
    ] = False,
    json_out: JsonOut = False,
) -> None:
    """Apply the repository to the platform, recording the git commit on every object."""
    from meshops.client import connect

    with connect() as platform:
        result = platform.project.apply(_root(path), allow_dirty=not require_clean)
    if json_out:
        print_json(result)
        return
    for change in result.applied:
        err_console.print(f"[green]{change.action}[/green] {change.kind} {change.name}")
    for removed in result.removed:
        err_console.print(f"[yellow]removed[/yellow] {removed}")
    commit = (result.commit or "no commit")[:12]
    err_console.print(
        f"applied {len(result.applied)}, removed {len(result.removed)}, "
        f"unchanged {len(result.unchanged)} (commit {commit})"
    )


def check(
    path: Root = None,
    junit: Annotated[Path | None, typer.Option(help="Write JUnit XML here.")] = None,
    markdown: Annotated[
        Path | None, typer.Option(help="Write a Markdown summary (PR comment) here.")
    ] = None,
    no_tests: Annotated[bool, typer.Option("--no-tests", help="Skip tests/.")] = False,
    json_out: JsonOut = False,
) -> None:
    """Validate specs, run contract and transform tests, dry-run policies and detect
    breaking changes; exit code 0 when everything passed, 1 otherwise."""
    from meshops.client import connect
    from meshops.project.check import junit_xml
    from meshops.project.check import markdown as render_markdown

    with connect() as platform:
        report = platform.project.check(_root(path), run_tests=not no_tests)
    if junit:
        junit.write_text(junit_xml(report))
    if markdown:
        markdown.write_text(render_markdown(report))
    if json_out:
        print_json(report)
    else:
        rows = [
            [c.suite, c.name, "skip" if c.skipped else ("ok" if c.passed else "FAIL"), c.message]
            for c in report.cases
        ]
        print_table("meshops check", ["suite", "case", "result", "message"], rows)
        failed = len(report.failures)
        colour = "red" if failed else "green"
        err_console.print(
            f"[{colour}]{len(report.cases) - failed} passed, {failed} failed[/{colour}] "
            f"in {report.seconds:.1f} s"
        )
    if not report.passed:
        raise SystemExit(1)


def promote(
    name: Annotated[str, typer.Argument(help="The registered model's name.")],
    to: Annotated[str, typer.Option("--to", help="The alias to move.")] = "production",
    version: Annotated[int | None, typer.Option(help="Default: the latest version.")] = None,
    reason: Annotated[str, typer.Option(help="Kept in the alias history.")] = "",
    json_out: JsonOut = False,
) -> None:
    """Move alias --to of model NAME through the promotion gate (model.promote policies,
    comparison with the current holder, approvals)."""
    from meshops.client import connect

    with connect() as platform:
        result = platform.project.promote(name, to, version, reason)
    if json_out:
        print_json(result)
        return
    gate = result.gate
    rows = [[p.policy_id, p.severity, p.outcome, p.explanation] for p in gate.policies]
    print_table("model.promote policies", ["policy", "severity", "outcome", "explanation"], rows)
    if gate.metric:
        err_console.print(
            f"{gate.metric}: v{result.version} {gate.candidate_value} vs current "
            f"v{gate.current_version} {gate.current_value}"
        )
    err_console.print(
        f"[green]promoted[/green] {name} v{result.version} to {to} "
        f"(was {result.from_version}; approvals {len(gate.approvals)}/{gate.approvals_required})"
    )


def approve(
    name: Annotated[str, typer.Argument(help="The registered model's name.")],
    version: Annotated[int, typer.Argument(help="The version to approve.")],
    comment: Annotated[str, typer.Option(help="Why you approve.")] = "",
    json_out: JsonOut = False,
) -> None:
    """Approve VERSION of model NAME for promotion (the author may not approve)."""
    from meshops.client import connect

    with connect() as platform:
        approval = platform.project.approve(name, version, comment)
    if json_out:
        print_json(approval)
        return
    err_console.print(
        f"[green]approved[/green] {name} v{version} by {approval.approver} "
        f"({approval.role or 'no role'})"
    )
