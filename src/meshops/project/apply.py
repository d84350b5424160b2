"""`meshops apply`: carry out the plan, all checks first, then the writes, atomically.

Everything is validated, built and contract-tested and every policy is dry-run before the
first write, so a refused apply writes nothing and holds no lock while user transforms run.
The writes then go area by area (policies, domains, data products through the
`dataproduct.publish` gate, features, schedules and triggers, removals, and the applied
records with the git commit) inside one unit of work of the metadata database: each area's
service joins the same transaction, later writes see earlier ones (a product published under
a policy saved by this apply), and if any write fails all of them roll back. Snapshot blobs
written before the failure stay in the content-addressed store, unreferenced.

The two halves are separate so that both transports write on the side of the database:
`prepare` plans, builds and checks where the repository is (user transforms run there) and
returns the `Prepared` writes; `write` carries them out in one transaction. Over HTTP the
client prepares and sends the writes (a document and the built tables, never code); the
server writes them in its unit of work, with the caller's permissions.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
from pydantic import BaseModel, Field

from meshops.features.models import FeatureRepo
from meshops.governance.models import Policy
from meshops.kernel.bounds import JsonObject
from meshops.kernel.errors import Forbidden, InvalidInput, MeshopsError, PolicyViolation
from meshops.kernel.urn import dataproduct_urn
from meshops.mesh import builds, contracts, specs
from meshops.mesh.gate import publish_document
from meshops.mesh.models import ContractReport, SemVer, VersionRange, split_product_ref
from meshops.project.interface import Areas
from meshops.project.models import AppliedRecord, ApplyResult, Change, GitInfo, Plan
from meshops.project.plan import TRIGGER_BACKLOG_FIELDS, Planned, dry_run, make_plan

PUBLISHING = ("new_version", "update")
# What one apply may write: far above a real repository, low enough that a request is cheap
# to validate before any write.
MAX_OBJECTS = 10_000
MAX_TABLES = 1_000


class ProductWrite(BaseModel):
    """A built data product to publish: its documents, and its tables by port."""

    key: str  # "domain.name"
    descriptor: JsonObject
    contracts: dict[str, JsonObject]  # by port
    inputs: list[str] = Field(default_factory=list, max_length=MAX_OBJECTS)
    parts: dict[str, str] = Field(default_factory=dict)  # port -> part of the HTTP request


class Writes(BaseModel):
    """Everything an apply writes, checked and built; the order of `products` is the
    order of publishing (upstream first)."""

    project: str
    git: GitInfo
    changes: list[Change] = Field(max_length=MAX_OBJECTS)
    policies: dict[str, Policy] = Field(default_factory=dict, max_length=MAX_OBJECTS)
    domains: dict[str, JsonObject] = Field(default_factory=dict, max_length=MAX_OBJECTS)
    products: list[ProductWrite] = Field(default_factory=list, max_length=MAX_TABLES)
    features: FeatureRepo = Field(default_factory=FeatureRepo)
    schedules: dict[str, JsonObject] = Field(default_factory=dict, max_length=MAX_OBJECTS)
    triggers: dict[str, JsonObject] = Field(default_factory=dict, max_length=MAX_OBJECTS)


@dataclass
class Prepared:
    writes: Writes
    tables: dict[str, dict[str, pa.Table]]  # product key -> port -> built table


@dataclass
class Built:
    spec: specs.ProductSpec
    tables: dict[str, pa.Table]
    inputs: list[str]
    reports: dict[str, ContractReport]


def _product_inputs(spec: specs.ProductSpec) -> list[str]:
    if spec.build is None:
        return []
    return [
        "{}.{}".format(*split_product_ref(i.product)[:2])
        for i in spec.build.inputs.values()
        if i.product
    ]


def build_order(products: dict[str, specs.ProductSpec], wanted: list[str]) -> list[str]:
    """`wanted` and the repository products they read, upstream first."""
    order: list[str] = []
    visiting: set[str] = set()

    def visit(key: str) -> None:
        if key in order or key not in products:
            return
        if key in visiting:
            raise InvalidInput(
                f"data products of the repository read each other in a cycle through {key}",
                {"field": "inputs", "fix": "break the cycle in build.yaml"},
            )
        visiting.add(key)
        for upstream in _product_inputs(products[key]):
            visit(upstream)
        visiting.discard(key)
        order.append(key)

    for key in wanted:
        visit(key)
    return order


def build_products(
    areas: Areas,
    products: dict[str, specs.ProductSpec],
    wanted: list[str],
    limits: builds.BuildLimits | None = None,
) -> dict[str, Built | MeshopsError]:
    """Build and contract-test products locally; inputs that are repository products built
    here are read from those builds, others through the platform's governed read."""
    built: dict[str, Built | MeshopsError] = {}

    def read(ref: str, port: str | None) -> tuple[pa.Table, str]:
        domain, name, wanted_range = split_product_ref(ref)
        key = f"{domain}.{name}"
        local = built.get(key)
        if isinstance(local, Built) and (
            wanted_range is None or SemVer.parse(local.spec.version) in VersionRange(wanted_range)
        ):
            port_name = port or local.spec.ports[0].port
            urn = dataproduct_urn(domain, name, local.spec.version)
            return local.tables[port_name], urn
        if isinstance(local, MeshopsError):
            raise InvalidInput(f"input {ref} failed to build: {local.message}")
        version = areas.mesh.get_version(ref)
        table = areas.mesh.read(key, version.version, port, interface="pipeline")
        return table, version.urn

    for key in build_order(products, wanted):
        spec = products[key]
        try:
            result = builds.build(spec, read, limits=limits)
            reports = {
                p.port: contracts.run_port_contract_test(result.tables[p.port], p)
                for p in spec.ports
            }
            built[key] = Built(spec, result.tables, [i.urn for i in result.inputs], reports)
        except MeshopsError as exc:
            built[key] = exc
        except Exception as exc:  # a user transform raised: report it as a build error
            built[key] = InvalidInput(f"build of {key} failed: {type(exc).__name__}: {exc}")
    return built


def refuse_if_blocked(plan: Plan) -> None:
    errors = [(c, e) for c in plan.changes for e in c.errors]
    if errors:
        raise InvalidInput(
            f"the plan has {len(errors)} error(s); nothing was applied: "
            + "; ".join(f"{c.kind} {c.name}: {e}" for c, e in errors[:10]),
            {
                "errors": [
                    {"kind": c.kind, "name": c.name, "file": c.file, "error": e} for c, e in errors
                ],
                "fix": "fix the specs (see `meshops plan`)",
            },
        )
    violations = [(c, p) for c in plan.changes for p in c.policies if p.blocking]
    if violations:
        raise PolicyViolation(
            "apply refused by policy; nothing was applied: "
            + "; ".join(f"{c.name}: {p.policy_id} ({p.explanation})" for c, p in violations),
            {
                "violations": [{"object": c.name, **p.model_dump()} for c, p in violations],
                "fix": "change the specs so the policies pass (e.g. bump the major version "
                "for a breaking change), then plan again",
            },
        )


def apply(
    areas: Areas,
    root: str | Path = ".",
    transaction: Callable[[], AbstractContextManager[None]] = nullcontext,
    limits: builds.BuildLimits | None = None,
) -> ApplyResult:
    """Plan, build and check, then write everything inside one `transaction()` (the
    embedded project service passes the database's unit of work)."""
    return write(areas, prepare(areas, root, limits), transaction)


def prepare(
    areas: Areas, root: str | Path = ".", limits: builds.BuildLimits | None = None
) -> Prepared:
    """Plan, build and check everything; refuses (writing nothing) what would fail."""
    planned = make_plan(areas, root)
    refuse_if_blocked(planned.plan)
    publishing = [
        c.name for c in planned.plan.changes if c.kind == "dataproduct" and c.action in PUBLISHING
    ]
    specs_by_key = {k: p.spec for k, p in planned.products.items()}
    built = build_products(areas, specs_by_key, publishing, limits)
    _check_builds(planned, built, publishing)
    return _prepared(planned, built)


def _prepared(planned: Planned, built: dict[str, Any]) -> Prepared:
    plan = planned.plan
    pending = {(c.kind, c.name) for c in plan.changes if c.action not in ("unchanged", "remove")}
    products, tables = [], {}
    for key in build_order(
        {k: p.spec for k, p in planned.products.items()}, list(planned.products)
    ):
        if planned.products[key].change.action not in PUBLISHING:
            continue
        b: Built = built[key]
        products.append(
            ProductWrite(
                key=key,
                descriptor=b.spec.descriptor,
                contracts={p.port: p.document for p in b.spec.ports},
                inputs=b.inputs,
            )
        )
        tables[key] = b.tables
    domains = {
        name: {k: data[k] for k in ("description", "owners", "members", "team") if k in data}
        for name, data in planned.repo.domains.items()
        if ("domain", name) in pending
    }
    writes = Writes(
        project=plan.project,
        git=plan.git,
        changes=plan.changes,
        policies={k: v for k, v in planned.policies.items() if ("policy", k) in pending},
        domains=domains,
        products=products,
        features=planned.features,
        schedules={k: v for k, v in planned.schedules.items() if ("schedule", k) in pending},
        triggers={k: v for k, v in planned.triggers.items() if ("trigger", k) in pending},
    )
    return Prepared(writes, tables)


def write(
    areas: Areas,
    prepared: Prepared,
    transaction: Callable[[], AbstractContextManager[None]] = nullcontext,
) -> ApplyResult:
    """Carry out prepared writes inside one `transaction()`: all of them, or none."""
    writes = prepared.writes
    result = ApplyResult(project=writes.project, commit=writes.git.commit)
    records: list[AppliedRecord] = []
    removed: list[str] = []
    try:
        with transaction():
            _write(areas, prepared, result, records, removed)
            _record(areas, writes, records, removed, result)
    except MeshopsError as exc:
        exc.detail.setdefault(
            "rolled_back", [f"{r.kind} {r.name}" for r in records] + result.removed
        )
        exc.message = f"apply failed and was rolled back, nothing was applied: {exc.message}"
        exc.args = (exc.message,)
        raise
    return result


def _check_builds(planned: Planned, built: dict[str, Any], publishing: list[str]) -> None:
    problems = []
    for key in publishing:
        outcome = built[key]
        change = planned.products[key].change
        if isinstance(outcome, Forbidden):  # e.g. a build the API server does not run
            raise type(outcome)(
                f"{key}: {outcome.message}; nothing was applied", outcome.detail
            ) from outcome
        if isinstance(outcome, MeshopsError):
            problems.append(f"{key}: {outcome.message}")
            continue
        failures = [f for r in outcome.reports.values() for f in r.failures]
        problems += [f"{key}: contract rule {f.rule}: {f.message}" for f in failures]
        # The final dry run sees the contract test results too.
        document = publish_document(
            outcome.spec,
            change.published_version,
            _diff_of(change, outcome.spec),
            outcome.reports,
        )
        change.policies = dry_run(
            planned.effective_policies, "dataproduct.publish", document, outcome.spec.domain
        )
    if problems:
        raise InvalidInput(
            f"build or contract test failed; nothing was applied: {'; '.join(problems[:10])}",
            {"errors": problems, "fix": "run `meshops check` and fix the data or contract"},
        )
    refuse_if_blocked(planned.plan)


def _diff_of(change: Change, spec: specs.ProductSpec) -> Any:
    from meshops.mesh.models import SchemaChange, SchemaDiff

    return SchemaDiff(
        previous_version=change.published_version,
        new_version=spec.version,
        changes=[
            SchemaChange(
                kind=b.kind, port=b.port, column=b.column, breaking=True, message=b.message
            )
            for b in change.breaking
        ],
    )


def _write(
    areas: Areas,
    prepared: Prepared,
    result: ApplyResult,
    records: list[AppliedRecord],
    removed: list[str],
) -> None:
    writes = prepared.writes
    changes = writes.changes

    def done(change: Change, **detail: Any) -> None:
        records.append(
            AppliedRecord(
                urn=change.urn,
                kind=change.kind,
                name=change.name,
                digest=change.digest,
                detail=detail,
            )
        )
        if change.action != "unchanged":
            result.applied.append(change)

    for change in changes:
        if change.action == "unchanged" and change.urn and change.previous_digest != change.digest:
            done(change, adopted=True)  # already on the platform as specified: record the link
        elif change.action == "unchanged":
            result.unchanged.append(f"{change.kind} {change.name}")
    pending = [c for c in changes if c.action not in ("unchanged", "remove")]
    for change in (c for c in pending if c.kind == "policy"):
        areas.governance.save_policy(writes.policies[change.name])
        done(change)
    for change in (c for c in pending if c.kind == "domain"):
        fields = writes.domains[change.name]
        if change.action == "create":
            areas.mesh.create_domain(change.name, **fields)
        elif fields:
            areas.mesh.update_domain(change.name, **fields)
        done(change)
    published = {c.name: c for c in pending if c.kind == "dataproduct"}
    for product in writes.products:
        change = published[product.key]
        # The mesh's publish path evaluates (and records) the dataproduct.publish policies;
        # the dry run of `prepare` refused blocked products before any write.
        version = areas.mesh.publish_arrow(
            product.descriptor,
            product.contracts,
            prepared.tables[product.key],
            inputs=product.inputs,
        )
        done(change, version=version.version, version_urn=version.urn, reused=version.reused)
    _write_features_and_pipelines(areas, writes, pending, done)
    for change in (c for c in changes if c.action == "remove"):
        _remove(areas, change, writes.project)
        removed.append(change.urn)
        result.removed.append(f"{change.kind} {change.name}")


def _write_features_and_pipelines(
    areas: Areas, writes: Writes, pending: list[Change], done: Callable[..., None]
) -> None:
    feature_changes = [
        c
        for c in pending
        if c.kind in ("entity", "feature_view", "on_demand_feature", "feature_service")
    ]
    if feature_changes:
        areas.features.apply(writes.features)
        for change in feature_changes:
            done(change)
    for change in (c for c in pending if c.kind == "schedule"):
        s = writes.schedules[change.name]
        areas.pipelines.create_schedule(
            change.name,
            s["cron"],
            s["ref"],
            s["params"] or {},
            executor=s["executor"],
            replace=change.action == "update",
        )
        done(change)
    for change in (c for c in pending if c.kind == "trigger"):
        t = writes.triggers[change.name]
        areas.pipelines.create_trigger(
            change.name,
            t["topic"],
            t["ref"],
            t["params"] or {},
            match=t["match"] or {},
            expression=t["expression"],
            max_concurrent=int(t["max_concurrent"]),
            executor=t["executor"],
            replace=change.action == "update",
            **{k: t[k] for k in TRIGGER_BACKLOG_FIELDS if k in t},
        )
        done(change)


def _remove(areas: Areas, change: Change, project: str) -> None:
    if change.kind == "policy":
        areas.governance.delete_policy(change.name)
    elif change.kind == "schedule":
        areas.pipelines.delete_schedule(change.name)
    elif change.kind == "trigger":
        areas.pipelines.delete_trigger(change.name)
    elif change.kind == "dataproduct":
        areas.mesh.deprecate(change.name, reason=f"removed from project {project}")


def _record(
    areas: Areas,
    writes: Writes,
    records: list[AppliedRecord],
    removed: list[str],
    result: ApplyResult,
) -> None:
    if records or removed:
        result.records = areas.records.record_applied(
            writes.project, writes.git.commit, records, removed, writes.git.dirty
        )
