"""`meshops login`, `meshops users|tokens|roles|policy|access|audit|usage` (thin: every
command goes through the SDK, so it works on an embedded home and against a server)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from meshops.cli.output import JSON_HELP, console, err_console, print_json, print_table

if TYPE_CHECKING:
    from meshops.governance.models import Policy

users_app = typer.Typer(help="Users and service accounts.", no_args_is_help=True)
tokens_app = typer.Typer(help="API tokens (shown once, stored hashed).", no_args_is_help=True)
roles_app = typer.Typer(help="Roles and role bindings.", no_args_is_help=True)
policy_app = typer.Typer(
    help="Policies as code (CEL), evaluations, compliance.", no_args_is_help=True
)
access_app = typer.Typer(
    help="Access requests and grants to data product ports.", no_args_is_help=True
)
audit_app = typer.Typer(help="The hash-chained audit log.", no_args_is_help=True)
usage_app = typer.Typer(help="Who reads which data products.", no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help=JSON_HELP)]
DomainOpt = Annotated[str | None, typer.Option("--domain", help="Domain scope (else platform).")]
UserArg = Annotated[str, typer.Argument(help="The user's (or service account's) name.")]
PrincipalArg = Annotated[str, typer.Argument(help="A user or service account name.")]
RoleArg = Annotated[str, typer.Argument(help="A role name (see `roles list`).")]
ProductArg = Annotated[str, typer.Argument(help="A data product: <domain>.<name>.")]
PolicyIdArg = Annotated[str, typer.Argument(help="The policy's id (see `policy list`).")]
RequestIdArg = Annotated[str, typer.Argument(help="The access request's id (see `access list`).")]
ReasonOpt = Annotated[str, typer.Option(help="Why (kept in the audit log).")]
DaysOpt = Annotated[int, typer.Option(help="Look back this many days.")]


def _connect() -> Any:
    from meshops.client import connect

    return connect()


def _show(data: Any, json_out: bool, title: str, columns: list[str], rows: list[list[Any]]) -> None:
    if json_out:
        print_json(data)
    else:
        print_table(title, columns, rows)


# ---------------------------------------------------------------------------- login
def login(
    url: Annotated[str, typer.Argument(help="The server, e.g. http://127.0.0.1:8080")],
    token: Annotated[
        str | None, typer.Option(help="An API token (prompted for when omitted).")
    ] = None,
) -> None:
    """Check a token against a server and remember it for that URL."""
    from meshops.governance.remote import remote_governance
    from meshops.kernel.config import store_token
    from meshops.kernel.http import HttpTransport

    secret = token or typer.prompt("API token", hide_input=True)
    http = HttpTransport(url, secret)
    try:
        me = remote_governance(http).whoami()
    finally:
        http.close()
    path = store_token(url, secret)
    err_console.print(f"[green]logged in[/green] to {url} as {me.name} (token saved in {path})")
    err_console.print(f"use it with: MESHOPS_URI={url} meshops ...")


# ---------------------------------------------------------------------------- users
@users_app.command("list")
def users_list(json_out: JsonOpt = False) -> None:
    """List users and service accounts."""
    with _connect() as platform:
        users = platform.governance.list_users()
    rows = [[u.name, u.kind, u.display_name, u.email, u.owner, u.disabled] for u in users]
    _show(
        users,
        json_out,
        "principals",
        ["name", "kind", "display", "email", "owner", "disabled"],
        rows,
    )


@users_app.command("create")
def users_create(
    name: UserArg,
    *,
    email: Annotated[str, typer.Option(help="E-mail address.")] = "",
    display_name: Annotated[str, typer.Option(help="Display name.")] = "",
    service: Annotated[bool, typer.Option("--service", help="A service account.")] = False,
    owner: Annotated[str | None, typer.Option(help="Who answers for the service account.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Create a user (or, with --service, a service account)."""
    with _connect() as platform:
        if service:
            made = platform.governance.create_service_account(name, owner, display_name)
        else:
            made = platform.governance.create_user(name, display_name, email)
    if json_out:
        print_json(made)
    else:
        console.print(f"created {made.kind} {made.name}")


@users_app.command("disable")
def users_disable(
    name: UserArg,
    enable: Annotated[
        bool, typer.Option("--enable", help="Enable the user again instead.")
    ] = False,
) -> None:
    """Disable a principal (its tokens stop working), or --enable it again."""
    with _connect() as platform:
        who = platform.governance.set_disabled(name, not enable)
    console.print(f"{who.name}: {'disabled' if who.disabled else 'enabled'}")


@users_app.command("whoami")
def users_whoami(json_out: JsonOpt = False) -> None:
    """Who you are on this platform and your role bindings."""
    with _connect() as platform:
        me = platform.governance.whoami()
    rows = [[b.role, b.scope, "yes" if b.implicit else ""] for b in me.bindings]
    _show(me, json_out, f"{me.name} ({me.kind})", ["role", "scope", "implicit"], rows)


# ---------------------------------------------------------------------------- tokens
@tokens_app.command("create")
def tokens_create(
    name: Annotated[str, typer.Argument(help="A name for the token, e.g. ci-deploy.")],
    user: Annotated[str | None, typer.Option(help="For another principal (admins).")] = None,
    scope: Annotated[
        list[str] | None, typer.Option(help="Allowed action pattern (repeatable).")
    ] = None,
    expires_in_days: Annotated[int | None, typer.Option(help="Expire after N days.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Create an API token; the secret is printed once."""
    with _connect() as platform:
        made = platform.governance.create_token(name, user, scope, expires_in_days)
    if json_out:
        print_json(made)
        return
    err_console.print(f"token {made.info.id} for {made.info.principal} (shown only now):")
    print(made.token)


@tokens_app.command("list")
def tokens_list(
    user: Annotated[str | None, typer.Option(help="Whose tokens (default: yours).")] = None,
    all_users: Annotated[bool, typer.Option("--all", help="Everyone's (admins).")] = False,
    json_out: JsonOpt = False,
) -> None:
    """List tokens (never their secrets)."""
    from meshops.kernel.db import utcnow

    with _connect() as platform:
        me = None if all_users else (user or platform.governance.whoami().name)
        found = platform.governance.list_tokens(me)
    now = utcnow()
    rows = [
        [t.id, t.principal, t.name, t.prefix + "...", t.scopes or "all", t.state(now), t.expires_at]
        for t in found
    ]
    _show(
        found,
        json_out,
        "tokens",
        ["id", "principal", "name", "prefix", "scopes", "state", "expires"],
        rows,
    )


@tokens_app.command("revoke")
def tokens_revoke(
    token_id: Annotated[str, typer.Argument(help="The token's id (see `tokens list`).")],
) -> None:
    """Revoke a token: it stops working at once."""
    with _connect() as platform:
        platform.governance.revoke_token(token_id)
    console.print(f"revoked {token_id}")


# ---------------------------------------------------------------------------- roles
@roles_app.command("list")
def roles_list(json_out: JsonOpt = False) -> None:
    """The roles and what each is for."""
    with _connect() as platform:
        roles = platform.governance.list_roles()
    data = [
        {"name": r.name, "title": r.title, "description": r.description, "actions": r.actions()}
        for r in roles
    ]
    rows = [[r.name, r.title, len(r.actions()), r.description] for r in roles]
    _show(data, json_out, "roles", ["role", "title", "actions", "description"], rows)


@roles_app.command("bind")
def roles_bind(principal: PrincipalArg, role: RoleArg, domain: DomainOpt = None) -> None:
    """Bind a role to a principal at platform scope or in --domain."""
    with _connect() as platform:
        b = platform.governance.bind_role(principal, role, domain)
    console.print(f"{b.principal} is {b.role} at {b.scope} scope")


@roles_app.command("unbind")
def roles_unbind(principal: PrincipalArg, role: RoleArg, domain: DomainOpt = None) -> None:
    """Remove a role binding."""
    with _connect() as platform:
        platform.governance.unbind_role(principal, role, domain)
    console.print(f"removed {role} from {principal}")


@roles_app.command("bindings")
def roles_bindings(
    principal: Annotated[
        str | None, typer.Argument(help="Only this user or service account.")
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """List role bindings (of one principal, or all)."""
    with _connect() as platform:
        found = platform.governance.list_bindings(principal)
    rows = [
        [b.principal, b.role, b.scope, "yes" if b.implicit else "", b.created_by] for b in found
    ]
    _show(found, json_out, "bindings", ["principal", "role", "scope", "implicit", "by"], rows)


# ---------------------------------------------------------------------------- policies
def _load_policy(path: Path, owner: str) -> Policy:
    import yaml

    from meshops.governance.models import Policy
    from meshops.kernel.errors import InvalidInput

    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise InvalidInput(
            f"{path}: {exc}", {"file": str(path), "fix": "correct the YAML"}
        ) from exc
    if not isinstance(data, dict):
        raise InvalidInput(f"{path}: expected a mapping of policy fields", {"file": str(path)})
    data.setdefault("owner", owner)
    return Policy.model_validate(data)


PolicyFile = Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Policy YAML.")]


@policy_app.command("list")
def policy_list(
    target: Annotated[str | None, typer.Option(help="Only this target.")] = None,
    scope: Annotated[str | None, typer.Option(help="global or a domain.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """List policies."""
    with _connect() as platform:
        found = platform.governance.list_policies(target, scope)
    rows = [[p.id, p.scope, p.target, p.severity, p.owner, p.version, p.rationale] for p in found]
    _show(
        found,
        json_out,
        "policies",
        ["id", "scope", "target", "severity", "owner", "v", "rationale"],
        rows,
    )


@policy_app.command("show")
def policy_show(policy_id: PolicyIdArg) -> None:
    """Show one policy with its expression."""
    with _connect() as platform:
        print_json(platform.governance.get_policy(policy_id))


@policy_app.command("save")
def policy_save(path: PolicyFile) -> None:
    """Create or change a policy from YAML (checked now: syntax and types, with position)."""
    with _connect() as platform:
        policy = _load_policy(path, platform.governance.whoami().name)
        saved = platform.governance.save_policy(policy)
    console.print(f"saved {saved.id} v{saved.version} ({saved.scope}, {saved.target})")


@policy_app.command("delete")
def policy_delete(policy_id: PolicyIdArg) -> None:
    """Delete a policy (global ones only by the governance group)."""
    with _connect() as platform:
        platform.governance.delete_policy(policy_id)
    console.print(f"deleted {policy_id}")


@policy_app.command("test")
def policy_test(
    source: Annotated[str, typer.Argument(help="A policy YAML file or a stored policy id.")],
    json_out: JsonOpt = False,
) -> None:
    """Dry-run a policy against every object evaluated for its target so far."""
    with _connect() as platform:
        path = Path(source)
        if path.is_file():
            policy = _load_policy(path, platform.governance.whoami().name)
        else:
            policy = platform.governance.get_policy(source)
        results = platform.governance.test_policy(policy)
    rows = [[r.subject_urn, r.domain, r.outcome, r.explanation] for r in results]
    _show(
        results,
        json_out,
        f"dry run of {policy.id}",
        ["object", "domain", "outcome", "explanation"],
        rows,
    )
    failing = sum(r.outcome != "pass" for r in results)
    err_console.print(f"{len(results) - failing} pass, {failing} fail")


@policy_app.command("evaluations")
def policy_evaluations(
    subject: Annotated[str | None, typer.Option(help="Object URN.")] = None,
    policy: Annotated[str | None, typer.Option(help="Policy id.")] = None,
    limit: Annotated[int, typer.Option(help="How many.")] = 50,
    json_out: JsonOpt = False,
) -> None:
    """Recorded evaluations, newest first."""
    with _connect() as platform:
        found = platform.governance.evaluations(subject, policy, limit)
    rows = [[e.at, e.policy_id, e.subject_urn, e.outcome, e.severity, e.explanation] for e in found]
    _show(
        found,
        json_out,
        "evaluations",
        ["at", "policy", "object", "outcome", "severity", "explanation"],
        rows,
    )


@policy_app.command("compliance")
def policy_compliance(
    domain: DomainOpt = None,
    days: Annotated[int, typer.Option(help="Trend window.")] = 30,
    json_out: JsonOpt = False,
) -> None:
    """Compliance report: score, open violations and trend."""
    with _connect() as platform:
        report = platform.governance.compliance(domain, days)
    if json_out:
        print_json(report)
        return
    console.print(f"score {report.score:.0%} over {report.checked} policy × object pairs")
    print_table(
        "violations",
        ["object", "policy", "severity", "explanation"],
        [[v.subject_urn, v.policy_id, v.severity, v.explanation] for v in report.violations],
    )
    print_table("trend", ["day", "passed"], [[d, f"{s:.0%}"] for d, s in report.trend])


@policy_app.command("mask")
def policy_mask(
    classification: Annotated[
        str, typer.Argument(help="A column classification, e.g. pii or confidential.")
    ],
    method: Annotated[str, typer.Argument(help="hash, redact or null")],
    domain: DomainOpt = None,
) -> None:
    """Set how a classification level is masked (globally or in --domain)."""
    from meshops.governance.models import MaskRule

    rule = MaskRule.model_validate(
        {"scope": domain or "global", "classification": classification, "method": method}
    )
    with _connect() as platform:
        platform.governance.set_mask_rule(rule)
    console.print(f"{classification} -> {method} ({rule.scope})")


# ---------------------------------------------------------------------------- access
@access_app.command("request")
def access_request(
    product: ProductArg,
    *,
    port: Annotated[str, typer.Option(help="Output port.")],
    purpose: Annotated[str, typer.Option(help="What you will use it for.")],
    column: Annotated[
        list[str] | None, typer.Option(help="Classified column to see unmasked.")
    ] = None,
    row_filter: Annotated[str | None, typer.Option(help="SQL predicate limiting rows.")] = None,
    expires_in_days: Annotated[int | None, typer.Option(help="Access for N days.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Request access to a data product port."""
    with _connect() as platform:
        req = platform.governance.request_access(
            product,
            port,
            purpose,
            columns=column,
            row_filter=row_filter,
            expires_in_days=expires_in_days,
        )
    if json_out:
        print_json(req)
    else:
        console.print(f"request {req.id}: {req.status} (owners: {', '.join(req.owners)})")


@access_app.command("list")
def access_list(
    status: Annotated[str | None, typer.Option(help="pending, approved, denied.")] = None,
    product: Annotated[str | None, typer.Option(help="Only this product.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Access requests you may see."""
    with _connect() as platform:
        found = platform.governance.list_requests(status, product)
    rows = [
        [r.id, r.product, r.port, r.requester, r.status, r.purpose, r.decided_by] for r in found
    ]
    _show(
        found,
        json_out,
        "access requests",
        ["id", "product", "port", "requester", "status", "purpose", "by"],
        rows,
    )


def _decide(request_id: str, approve: bool, reason: str) -> None:
    with _connect() as platform:
        decided = platform.governance.decide(request_id, approve, reason)
    console.print(
        f"request {decided.id}: {decided.status}"
        + (f", grant {decided.grant_id}" if decided.grant_id else "")
    )


@access_app.command("approve")
def access_approve(request_id: RequestIdArg, reason: ReasonOpt = "") -> None:
    """Approve a pending request (owners)."""
    _decide(request_id, True, reason)


@access_app.command("deny")
def access_deny(request_id: RequestIdArg, reason: ReasonOpt = "") -> None:
    """Deny a pending request (owners)."""
    _decide(request_id, False, reason)


@access_app.command("grant")
def access_grant(
    product: ProductArg,
    grantee: Annotated[str, typer.Argument(help="Who gets access: a user or service account.")],
    *,
    port: Annotated[str, typer.Option(help="Output port.")],
    purpose: Annotated[str, typer.Option(help="What the data is used for.")] = "",
    column: Annotated[list[str] | None, typer.Option(help="Classified column unmasked.")] = None,
    row_filter: Annotated[str | None, typer.Option(help="SQL predicate limiting rows.")] = None,
    expires_in_days: Annotated[
        int | None, typer.Option(help="The grant ends after this many days (else never).")
    ] = None,
) -> None:
    """Grant access directly (owners, access.decide)."""
    with _connect() as platform:
        g = platform.governance.grant_access(
            product,
            port,
            grantee,
            purpose=purpose,
            columns=column,
            row_filter=row_filter,
            expires_in_days=expires_in_days,
        )
    console.print(f"grant {g.id}: {g.grantee} on {g.product}:{g.port}")


@access_app.command("revoke")
def access_revoke(
    grant_id: Annotated[str, typer.Argument(help="The grant's id (see `access grants`).")],
    reason: ReasonOpt = "",
) -> None:
    """Revoke a grant: reads stop at once."""
    with _connect() as platform:
        platform.governance.revoke_grant(grant_id, reason)
    console.print(f"revoked {grant_id}")


@access_app.command("grants")
def access_grants(
    product: Annotated[str | None, typer.Option(help="Only grants on this product.")] = None,
    grantee: Annotated[str | None, typer.Option(help="Only grants to this principal.")] = None,
    all_grants: Annotated[bool, typer.Option("--all", help="Include ended grants.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Grants you may see (active ones unless --all)."""
    with _connect() as platform:
        found = platform.governance.list_grants(product, grantee, not all_grants)
    rows = [
        [
            g.id,
            g.product,
            g.port,
            g.grantee,
            ",".join(g.columns),
            g.row_filter,
            g.expires_at,
            g.revoked_at,
        ]
        for g in found
    ]
    _show(
        found,
        json_out,
        "grants",
        ["id", "product", "port", "grantee", "unmasked", "row filter", "expires", "revoked"],
        rows,
    )


# ---------------------------------------------------------------------------- audit
@audit_app.command("list")
def audit_list(
    obj: Annotated[str | None, typer.Option("--object", help="Object URN.")] = None,
    actor: Annotated[str | None, typer.Option(help="Only this actor.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many entries, newest first.")] = 50,
    json_out: JsonOpt = False,
) -> None:
    """Audit events, newest first."""
    with _connect() as platform:
        found = platform.governance.audit_events(obj, actor, limit)
    rows = [[e.id, e.at, e.actor, e.action, e.object, e.hash[:12]] for e in found]
    _show(found, json_out, "audit log", ["id", "at", "actor", "action", "object", "hash"], rows)


@audit_app.command("verify")
def audit_verify(json_out: JsonOpt = False) -> None:
    """Walk the hash chain; exit 1 when it was tampered with."""
    with _connect() as platform:
        result = platform.governance.verify_audit()
    if json_out:
        print_json(result)
    elif result.intact:
        console.print(f"[green]intact[/green]: {result.checked} events")
    else:
        console.print(
            f"[red]TAMPERED[/red]: {result.reason or 'broken chain'}; first bad event "
            f"{result.first_bad_id} after {result.checked} good ones"
        )
    if result.legacy and not json_out:
        console.print(
            f"{result.legacy} legacy events (ids up to {result.legacy_upto}) carry the "
            "unkeyed hash of older versions: sealed by the first keyed event after them"
        )
    if not result.intact:
        raise typer.Exit(1)


# ---------------------------------------------------------------------------- usage
@usage_app.command("show")
def usage_show(product: ProductArg, days: DaysOpt = 30, json_out: JsonOpt = False) -> None:
    """Consumers, reads per day and last read of a product."""
    with _connect() as platform:
        u = platform.governance.product_usage(product, days)
    if json_out:
        print_json(u)
        return
    console.print(f"{u.product}: {u.reads} reads, {u.rows} rows, last read {u.last_read}")
    print_table("consumers", ["consumer", "reads"], sorted(u.consumers.items()))
    print_table("reads per day", ["day", "reads"], u.reads_per_day)


@usage_app.command("idle")
def usage_idle(days: DaysOpt = 90, json_out: JsonOpt = False) -> None:
    """Products nobody read for N days (deprecation candidates)."""
    with _connect() as platform:
        known = [p.product for p in platform.mesh.list_products()]
        found = platform.governance.idle_products(days, known)
    rows = [[i.product, i.last_read, i.days_idle] for i in found]
    _show(found, json_out, f"no reads for {days} days", ["product", "last read", "days idle"], rows)


@usage_app.command("impact")
def usage_impact(
    product: ProductArg,
    column: Annotated[list[str] | None, typer.Option(help="Changed column (repeatable).")] = None,
    days: DaysOpt = 90,
    json_out: JsonOpt = False,
) -> None:
    """What a change to a product (or its columns) touches: lineage, grants, readers."""
    with _connect() as platform:
        impact = platform.governance.impact(product, column, days)
    if json_out:
        print_json(impact)
        return
    print_table(
        "downstream",
        ["depth", "upstream", "relation", "downstream"],
        [[e["depth"], e["upstream"], e["relation"], e["downstream"]] for e in impact.downstream],
    )
    print_table(
        "active grants",
        ["grantee", "port", "unmasked"],
        [[g.grantee, g.port, ",".join(g.columns)] for g in impact.grants],
    )
    print_table(f"readers in {days} days", ["consumer", "reads"], sorted(impact.consumers.items()))
