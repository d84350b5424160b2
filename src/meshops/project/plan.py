"""`meshops plan`: the repository compared with the platform.

Every object the repository defines (domains, data products, entities, feature views and
services, policies, schedules, triggers) is compared with what the platform holds and with
the spec digest recorded when this project last applied it: created, changed (a data product
gets a new version), removed (applied from this project before, gone from the repository) or
unchanged. Data product versions are diffed against the published version with the mesh's
schema diff; breaking changes carry the consumers and models the lineage graph reaches. Every
data product about to be published is dry-run against the `dataproduct.publish` policies as
they will be after the apply (the platform's, overridden by the repository's), recording
nothing.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from meshops.features.models import FeatureRepo
from meshops.governance.models import Policy
from meshops.kernel.errors import MeshopsError, NotFound
from meshops.kernel.urn import Urn
from meshops.mesh import specs
from meshops.mesh.gate import publish_document
from meshops.mesh.models import SchemaDiff, SemVer
from meshops.mesh.schema_diff import diff_schemas
from meshops.project.interface import Areas
from meshops.project.models import (
    Action,
    Affected,
    AppliedObject,
    BreakingChange,
    Change,
    ObjectKind,
    Plan,
    PolicyOutcome,
    spec_digest,
)
from meshops.project.repo import Repository, git_info, load_repository

FEATURE_SECTIONS: dict[str, ObjectKind] = {
    "entities": "entity",
    "feature_views": "feature_view",
    "on_demand_features": "on_demand_feature",
    "feature_services": "feature_service",
}
_URN_KINDS = {
    "domain": "domain",
    "dataproduct": "dataproduct",
    "entity": "entity",
    "feature_view": "featureview",
    "on_demand_feature": "feature",
    "feature_service": "featureservice",
    "policy": "policy",
    "schedule": "schedule",
    "trigger": "trigger",
}
SCHEDULE_FIELDS = ("cron", "ref", "params", "executor")
TRIGGER_FIELDS = ("topic", "ref", "params", "match", "expression", "max_concurrent", "executor")
TRIGGER_BACKLOG_FIELDS = ("max_pending", "coalesce_pending")
POLICY_FIELDS = ("scope", "target", "expression", "severity", "rationale", "description")
CONSUMER_KINDS = frozenset(
    {"dataproduct", "featureview", "featureservice", "trainingset", "pipeline", "endpoint"}
)


def object_urn(kind: str, name: str) -> str:
    """The URN a project object is recorded under (data products: without a version)."""
    return str(Urn.of(_URN_KINDS[kind], name))


@dataclass
class ProductPlan:
    spec: specs.ProductSpec
    change: Change
    published_columns: dict[str, Any] | None = None


@dataclass
class Planned:
    """A plan and everything apply needs to carry it out without reading the repo again."""

    repo: Repository
    plan: Plan
    products: dict[str, ProductPlan] = field(default_factory=dict)
    features: FeatureRepo = field(default_factory=FeatureRepo)
    policies: dict[str, Policy] = field(default_factory=dict)
    effective_policies: list[Policy] = field(default_factory=list)
    schedules: dict[str, dict[str, Any]] = field(default_factory=dict)
    triggers: dict[str, dict[str, Any]] = field(default_factory=dict)


# --- policies, evaluated locally (a dry run records nothing) -----------------------------------


def dry_run(
    policies: list[Policy], target: str, document: dict[str, Any], domain: str | None
) -> list[PolicyOutcome]:
    from meshops.governance import policies as cel
    from meshops.governance.documents import normalise

    normalised = normalise(target, document)
    outcomes = []
    for policy in policies:
        if policy.target != target or policy.scope not in ("global", domain):
            continue
        result = cel.run(policy.expression, normalised)
        outcomes.append(
            PolicyOutcome(
                policy_id=policy.id,
                scope=policy.scope,
                severity=policy.severity,
                outcome=result.outcome,
                explanation=cel.explanation(policy, result),
            )
        )
    return outcomes


# --- the plan ----------------------------------------------------------------------------------


def make_plan(areas: Areas, root: str | Path = ".") -> Planned:
    repo = load_repository(root)
    planned = Planned(repo, Plan(project=repo.name, root=str(repo.root), git=git_info(repo.root)))
    applied = {a.urn: a for a in areas.records.applied(repo.name)}
    for error in repo.errors:
        planned.plan.changes.append(
            Change(
                kind="policy" if error.file.startswith("policies") else "schedule",
                name=error.file,
                urn="",
                action="unchanged",
                digest="",
                file=error.file,
                errors=[error.message],
            )
        )
    _plan_domains(areas, planned, applied)
    _plan_policies(areas, planned, applied)
    _plan_products(areas, planned, applied)
    _plan_features(areas, planned, applied)
    _plan_pipelines(areas, planned, applied)
    _plan_removals(planned, applied)
    return planned


def plan(areas: Areas, root: str | Path = ".") -> Plan:
    return make_plan(areas, root).plan


def _action(
    urn: str, digest: str, exists: bool, same_as_platform: bool, applied: dict[str, AppliedObject]
) -> tuple[Action, str | None]:
    previous = applied[urn].digest if urn in applied else None
    if not exists:
        return "create", previous
    if previous == digest or (previous is None and same_as_platform):
        return "unchanged", previous
    if same_as_platform:
        # Same on the platform already; apply only records the digest and commit.
        return "update", previous
    return "update", previous


def _plan_domains(areas: Areas, planned: Planned, applied: dict[str, AppliedObject]) -> None:
    existing = {d.name: d for d in areas.mesh.list_domains()}
    for name, data in planned.repo.domains.items():
        wanted = {k: data[k] for k in ("description", "owners", "members", "team") if k in data}
        urn = object_urn("domain", name)
        digest = spec_digest({"name": name, **wanted})
        current = existing.get(name)
        differs = []
        if current is not None:
            differs = [k for k, v in wanted.items() if getattr(current, k) != v]
        action, previous = _action(urn, digest, current is not None, not differs, applied)
        planned.plan.changes.append(
            Change(
                kind="domain",
                name=name,
                urn=urn,
                action=action,
                digest=digest,
                previous_digest=previous,
                file=planned.repo.domain_files.get(name, ""),
                details=[f"{k} changes" for k in differs],
            )
        )


def _plan_policies(areas: Areas, planned: Planned, applied: dict[str, AppliedObject]) -> None:
    from meshops.governance.policies import check_policy

    platform = {p.id: p for p in areas.governance.list_policies()}
    for file, index, item in planned.repo.policy_docs:
        raw = {"scope": "global", "owner": f"project:{planned.repo.name}", **item}
        policy_id = str(item.get("id", f"{file}#{index}"))
        change = Change(
            kind="policy",
            name=policy_id,
            urn="",
            action="unchanged",
            digest="",
            file=f"{file}#policies[{index}]",
        )
        planned.plan.changes.append(change)
        try:
            policy = Policy.model_validate(raw)
            check_policy(policy)
        except MeshopsError as exc:
            change.errors.append(exc.message)
            continue
        except ValueError as exc:
            change.errors.append(f"invalid policy: {exc}".splitlines()[0])
            continue
        planned.policies[policy.id] = policy
        change.urn = object_urn("policy", policy.id)
        change.digest = spec_digest({k: getattr(policy, k) for k in POLICY_FIELDS})
        current = platform.get(policy.id)
        differs = [] if current is None else _differs(current, policy, POLICY_FIELDS)
        if current is not None and current.scope != policy.scope:
            change.errors.append(
                f"policy {policy.id!r} exists in scope {current.scope!r}; pick another id"
            )
        action, change.previous_digest = _action(
            change.urn, change.digest, current is not None, not differs, applied
        )
        change.action = action
        change.details = [f"{k} changes" for k in differs]
    removed = {
        a.name for a in applied.values() if a.kind == "policy" and a.name not in planned.policies
    }
    planned.effective_policies = [
        p for pid, p in platform.items() if pid not in planned.policies and pid not in removed
    ] + list(planned.policies.values())


def _differs(current: Any, wanted: Any, fields: tuple[str, ...]) -> list[str]:
    def get(obj: Any, key: str) -> Any:
        value = obj.get(key) if isinstance(obj, dict) else getattr(obj, key, None)
        return value if value not in (None, {}, "") else None

    return [k for k in fields if get(current, k) != get(wanted, k)]


def _folder_digest(spec: specs.ProductSpec, folder: Path) -> str:
    files = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            files[str(path.relative_to(folder))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return spec_digest(
        {
            "descriptor": spec.descriptor,
            "contracts": {p.port: p.document for p in spec.ports},
            "files": files,
        }
    )


def _plan_products(areas: Areas, planned: Planned, applied: dict[str, AppliedObject]) -> None:
    repo = planned.repo
    for folder in repo.product_folders:
        rel = repo.rel(folder)
        try:
            spec = specs.load_product(folder)
        except MeshopsError as exc:
            planned.plan.changes.append(
                Change(
                    kind="dataproduct",
                    name=folder.name,
                    urn="",
                    action="unchanged",
                    digest="",
                    file=rel,
                    errors=[_located(exc)],
                )
            )
            continue
        urn = object_urn("dataproduct", spec.key)
        digest = _folder_digest(spec, folder)
        change = Change(
            kind="dataproduct",
            name=spec.key,
            urn=urn,
            action="create",
            digest=digest,
            previous_digest=applied[urn].digest if urn in applied else None,
            file=rel,
            version=spec.version,
        )
        planned.plan.changes.append(change)
        planned.products[spec.key] = ProductPlan(spec, change)
        if folder.parent.parent.name != spec.domain:
            change.errors.append(
                f"{rel}: the descriptor's domain {spec.domain!r} does not match the folder "
                f"domains/{folder.parent.parent.name}/"
            )
        _compare_product(areas, planned, spec, change)


def _located(exc: MeshopsError) -> str:
    where = [str(exc.detail[k]) for k in ("file", "field", "line") if exc.detail.get(k)]
    fix = f" (fix: {exc.detail['fix']})" if exc.detail.get("fix") else ""
    return f"{exc.message}{' at ' + ':'.join(where) if where else ''}{fix}"


def _compare_product(
    areas: Areas, planned: Planned, spec: specs.ProductSpec, change: Change
) -> None:
    try:
        product = areas.mesh.get_product(spec.key)
    except NotFound:
        product = None
    latest = product.latest_version if product else None
    diff: SchemaDiff | None = None
    if latest is None:
        change.action = "new_version"
        change.version_bump = "initial"
        change.details.append(f"first version {spec.version}")
    else:
        change.published_version = latest
        published = areas.mesh.get_version(spec.key, latest)
        old_ports = {p.name: p.columns for p in published.ports}
        new_ports = {p.port: p.columns for p in spec.ports}
        same_contracts = {p.name: p.contract for p in published.ports} == {
            p.port: p.document for p in spec.ports
        }
        current, wanted = SemVer.parse(latest), SemVer.parse(spec.version)
        if change.previous_digest == change.digest:
            change.action = "unchanged"
            return
        if wanted == current:
            if same_contracts:
                # Published already with this contract: apply publishes again only if the
                # data or build changed, and the mesh refuses new content under an old version.
                change.action = "update" if change.previous_digest else "unchanged"
                if change.previous_digest:
                    change.details.append(
                        f"build or data changed; {latest} is published: bump the version "
                        "unless the data is identical"
                    )
                return
            diff = diff_schemas(latest, spec.version, old_ports, new_ports)
            change.action = "update"
            change.version_bump = "none"
            change.errors.append(
                f"the contract of {spec.key} changed but {latest} is already published "
                "(versions are immutable): bump the version in dataproduct.yaml"
            )
        elif wanted < current:
            change.action = "update"
            change.errors.append(f"{spec.key} {spec.version} is older than the published {latest}")
            return
        else:
            from meshops.governance.documents import version_bump

            diff = diff_schemas(latest, spec.version, old_ports, new_ports)
            change.action = "new_version"
            change.version_bump = version_bump(latest, spec.version)
            change.details.append(f"{latest} -> {spec.version} ({change.version_bump})")
        change.details += [c.message for c in diff.changes]
        change.breaking = [
            BreakingChange(kind=c.kind, port=c.port, column=c.column, message=c.message)
            for c in diff.breaking
        ]
        if change.breaking:
            change.affected = _affected(areas, spec.key)
    document = publish_document(spec, latest, diff)
    change.policies = dry_run(
        planned.effective_policies, "dataproduct.publish", document, spec.domain
    )


def _affected(areas: Areas, product: str) -> Affected:
    """Everything downstream of any version of `product` in the lineage graph."""
    found: dict[str, None] = {}
    for version in areas.mesh.list_versions(product):
        for edge in areas.lineage.downstream(version.urn, depth=10):
            found.setdefault(edge.downstream)
    affected = Affected()
    for urn in found:
        kind = urn.split(":")[1] if urn.count(":") >= 2 else ""
        if kind == "model":
            affected.models.append(urn)
        elif kind in CONSUMER_KINDS:
            affected.consumers.append(urn)
        else:
            affected.other.append(urn)
    return affected


def _plan_features(areas: Areas, planned: Planned, applied: dict[str, AppliedObject]) -> None:
    from meshops.features.specs import load_file

    repo = planned.repo
    if not repo.feature_files:
        return
    platform: dict[tuple[str, str], Any] = {
        (d.kind, d.name): d for d in areas.features.list_definitions()
    }
    for path in repo.feature_files:
        rel = repo.rel(path)
        try:
            loaded = load_file(path)
        except MeshopsError as exc:
            planned.plan.changes.append(
                Change(
                    kind="feature_view",
                    name=rel,
                    urn="",
                    action="unchanged",
                    digest="",
                    file=rel,
                    errors=[_located(exc)],
                )
            )
            continue
        for section, kind in FEATURE_SECTIONS.items():
            items: list[BaseModel] = getattr(loaded, section)
            getattr(planned.features, section).extend(items)
            for item in items:
                name = str(getattr(item, "name"))  # noqa: B009 - every section item has one
                dump = item.model_dump(mode="json")
                urn = object_urn(kind, name)
                digest = spec_digest(dump)
                current = platform.get((kind, name))
                same = current is not None and _same_definition(current.definition, dump)
                action, previous = _action(urn, digest, current is not None, same, applied)
                planned.plan.changes.append(
                    Change(
                        kind=kind,
                        name=name,
                        urn=urn,
                        action=action,
                        digest=digest,
                        previous_digest=previous,
                        file=rel,
                        details=[] if action != "update" else ["definition changed"],
                    )
                )
        planned.features.origins.update(loaded.origins)


def _same_definition(current: dict[str, Any], wanted: dict[str, Any]) -> bool:
    return all(current.get(k) == v for k, v in wanted.items() if k in current)


def _plan_pipelines(areas: Areas, planned: Planned, applied: dict[str, AppliedObject]) -> None:
    repo = planned.repo
    if not repo.schedules and not repo.triggers:
        return
    kinds: list[
        tuple[ObjectKind, list[tuple[str, dict[str, Any]]], dict[str, Any], tuple[str, ...]]
    ]
    kinds = [
        (
            "schedule",
            repo.schedules,
            {s.name: s for s in areas.pipelines.list_schedules()},
            SCHEDULE_FIELDS,
        ),
        (
            "trigger",
            repo.triggers,
            {t.name: t for t in areas.pipelines.list_triggers()},
            TRIGGER_FIELDS,
        ),
    ]
    for kind, items, platform, fields in kinds:
        target = planned.schedules if kind == "schedule" else planned.triggers
        for file, item in items:
            name = str(item.get("name", ""))
            missing = [
                k
                for k in ("name", "ref", "cron" if kind == "schedule" else "topic")
                if not item.get(k)
            ]
            change = Change(
                kind=kind, name=name or file, urn="", action="unchanged", digest="", file=file
            )
            planned.plan.changes.append(change)
            if missing:
                change.errors.append(f"a {kind} needs {', '.join(missing)}")
                continue
            defaults = {"params": {}, "executor": "process", "match": {}, "max_concurrent": 1}
            wanted = {k: item.get(k, defaults.get(k)) for k in fields}
            if kind == "trigger":
                # Backlog options join the spec (and its digest) only when the file sets them,
                # so triggers applied before they existed do not show as changed.
                wanted |= {k: item[k] for k in TRIGGER_BACKLOG_FIELDS if k in item}
            target[name] = {"name": name, **wanted}
            change.urn = object_urn(kind, name)
            change.digest = spec_digest(target[name])
            current = platform.get(name)
            compared = fields + tuple(k for k in TRIGGER_BACKLOG_FIELDS if k in wanted)
            differs = [] if current is None else _differs(current, wanted, compared)
            action, change.previous_digest = _action(
                change.urn, change.digest, current is not None, not differs, applied
            )
            change.action = action
            change.details = [f"{k} changes" for k in differs]


def _plan_removals(planned: Planned, applied: dict[str, AppliedObject]) -> None:
    present = {c.urn for c in planned.plan.changes if c.urn}
    for urn, record in applied.items():
        if urn in present:
            continue
        details = {
            "dataproduct": "deprecated on the platform (versions are immutable, never deleted)",
            "policy": "deleted",
            "schedule": "deleted",
            "trigger": "deleted",
            "domain": "left on the platform (domains are not deleted); record dropped",
        }.get(record.kind, "left on the platform (no delete in that area); record dropped")
        planned.plan.changes.append(
            Change(
                kind=record.kind,
                name=record.name,
                urn=urn,
                action="remove",
                digest="",
                previous_digest=record.digest,
                details=[details],
            )
        )
