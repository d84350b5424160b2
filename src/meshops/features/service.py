"""Feature store use cases: definitions, training sets, materialization, online lookups.

`FeatureStoreService(ctx)` is the embedded implementation of `interface.FeatureStore`
(the HTTP client is derived from its declarations). Data products are read only through the
`FeatureSource` (the mesh's governed read path, interface `features`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from sqlalchemy import select

from meshops.features import store
from meshops.features.materialize import Progress, Window, materialize_table
from meshops.features.models import (
    COMPATIBLE_LOGICAL,
    TIME_LOGICAL,
    ApplyResult,
    Entity,
    FeatureRepo,
    FeatureServiceDef,
    FeatureStats,
    FeatureView,
    MaterializeResult,
    OnDemandFeature,
    OnlineResponse,
    OnlineRow,
    SourceRead,
    SourceRef,
    TrainingSet,
    TrainingSetInfo,
    ViewStatus,
    ViewSummary,
    Watermark,
)
from meshops.features.offline import OnDemandInput, ViewInput, contiguous, point_in_time_join
from meshops.features.online import open_online_store
from meshops.features.online.base import entity_key
from meshops.features.registry import Definitions, Plan, resolve, resolve_cached
from meshops.features.source import FeatureSource, SourceVersion
from meshops.features.types import from_epoch_micros, utc
from meshops.kernel import changes, lineage, ports
from meshops.kernel.access import MaskMethod, ReadPlan, ReadRequest, ReadUsage
from meshops.kernel.codetrust import is_api_server, named_in_setting
from meshops.kernel.db import utcnow
from meshops.kernel.errors import Forbidden, InvalidInput, MeshopsError, NotFound, PolicyViolation
from meshops.kernel.plugins import load_object
from meshops.kernel.urn import Urn

if TYPE_CHECKING:
    from meshops.kernel.home import Context, Home

KIND_MODEL: dict[str, type[Entity | FeatureView | FeatureServiceDef | OnDemandFeature]] = {
    "entity": Entity,
    "feature_view": FeatureView,
    "feature_service": FeatureServiceDef,
    "on_demand_feature": OnDemandFeature,
}
EntityRows = Any  # an Arrow table, a RecordBatchReader or a pandas DataFrame
# The consumer of an online lookup, as `feature.use` policies see it (model.name).
ONLINE_MODEL = "online"


@dataclass
class _Snapshot:
    """What the online path of one home reuses between calls, current for one change epoch
    of the metadata database (`kernel.changes`): the parsed definitions, and the
    `feature.use` decisions per (actor, features asked) with the facts they were made on
    (definitions, materialized versions, policies). Any commit moves the epoch; the facts
    are then read again (three small queries) and the decisions kept if they are equal."""

    epoch: int = -1
    definitions: Definitions | None = None
    digests: tuple[tuple[str, str, str], ...] = ()
    materialized: dict[str, str] = dataclasses.field(default_factory=dict)
    facts: tuple[Any, ...] | None = None
    # (actor, kind, features, full_names) -> None (allowed) or the violation to raise
    decisions: dict[tuple[Any, ...], PolicyViolation | None] = dataclasses.field(
        default_factory=dict
    )
    # (actor, kind, scopes, features, full_names) -> the read guard's plans of an online
    # lookup, trusted for the change epoch they were made in (see _OnlineGuard)
    guards: dict[tuple[Any, ...], _OnlineGuard] = dataclasses.field(default_factory=dict)
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)
    # (change epoch, the audit head read in it): one small query per epoch
    head: tuple[int, str | None] = (-1, None)


MAX_CACHED_GUARDS = 10_000


@dataclass(frozen=True)
class _OnlineGuard:
    """The read guard's answer for one online lookup shape: per view, the request and the
    plan (or the refusal), made at change epoch `epoch` (kernel.changes: any commit, e.g. a
    revoked grant or a new mask rule, ends it) and holding until `until` (a grant's expiry)."""

    epoch: int
    until: datetime | None
    requests: dict[str, ReadRequest]
    plans: dict[str, ReadPlan]
    refusal: MeshopsError | None = None
    # The audit chain's head when the plans were made: every write a plan depends on (a
    # grant, a mask rule, a role, a policy, a publish, an apply, a materialization) is
    # audited, so a moved epoch with the same head (usage events, runs) leaves them valid.
    audit_head: str | None = None
    # per view, worked out once: outputs the plan leaves out, and (output, method, type)
    # of the outputs it masks
    hidden: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    masked: dict[str, tuple[tuple[str, MaskMethod, pa.DataType], ...]] = dataclasses.field(
        default_factory=dict
    )

    def current(self, epoch: int) -> bool:
        return epoch == self.epoch and (self.until is None or utcnow() < self.until)


_snapshots: weakref.WeakKeyDictionary[Home, _Snapshot] = weakref.WeakKeyDictionary()
_snapshots_lock = threading.Lock()


def _snapshot_of(home: Home) -> _Snapshot:
    snapshot = _snapshots.get(home)
    if snapshot is None:
        with _snapshots_lock:
            snapshot = _snapshots.setdefault(home, _Snapshot())
    return snapshot


def _parse_definitions(rows: list[dict[str, Any]]) -> Definitions:
    defs = Definitions()
    for row in rows:
        obj = KIND_MODEL[row["kind"]].model_validate(row["definition"])
        target = {
            "entity": defs.entities,
            "feature_view": defs.views,
            "feature_service": defs.services,
            "on_demand_feature": defs.on_demand,
        }[row["kind"]]
        target[row["name"]] = obj  # type: ignore[index]
    return defs


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def view_urn(name: str) -> str:
    return str(Urn.of("featureview", name))


def service_urn(name: str) -> str:
    return str(Urn.of("featureservice", name))


def _function(odf: OnDemandFeature, home: Home) -> Callable[[dict[str, Any]], Any]:
    # Importing a module runs its code: in the API server only what the admin named.
    if is_api_server(home) and not named_in_setting(
        home.settings, "features", "trusted_on_demand_functions", odf.function
    ):
        raise Forbidden(
            f"on-demand feature {odf.name!r} calls {odf.function!r}, which this server does "
            "not run: user Python never runs in the API server unless an admin names it",
            {
                "field": "function",
                "fix": f"an admin adds {odf.function!r} to [features] "
                "trusted_on_demand_functions in the server's meshops.toml, or compute the "
                "feature in the embedded SDK or a worker",
            },
        )
    function = load_object(odf.function)
    if not callable(function):
        raise InvalidInput(
            f"on-demand feature {odf.name!r}: {odf.function!r} is not a function",
            {"field": "function", "fix": "name a function as 'package.module:function'"},
        )
    return function  # type: ignore[no-any-return]


def _argument_name(ref: str) -> str:
    return ref.partition(":")[2] or ref


class FeatureStoreService:
    def __init__(self, ctx: Context, source: FeatureSource | None = None) -> None:
        self.ctx = ctx
        self._source = source
        self._injected_source = source  # a test's or embedder's own source, used for all reads

    @property
    def source(self) -> FeatureSource:
        if self._source is None:
            from meshops.features.source import MeshFeatureSource

            self._source = MeshFeatureSource(self.ctx)
        return self._source

    def _store_source(self) -> FeatureSource:
        """The source materialization reads: the platform's, unmasked. The online store is
        shared by every consumer and each lookup is masked for its caller by the read guard,
        so a materializer with a masked grant must not write its own masked view into it."""
        if self._injected_source is not None:
            return self._injected_source
        from meshops.features.source import MeshFeatureSource

        return MeshFeatureSource(self.ctx.home.system_context())

    # --- definitions -------------------------------------------------------------------

    def definitions(self, *, fresh: bool = False) -> Definitions:
        """The definitions, parsed once per change of the database (`fresh`: read now)."""
        snapshot = _snapshot_of(self.ctx.home)
        epoch = changes.epoch(self.ctx.db)
        if fresh or snapshot.epoch != epoch or snapshot.definitions is None:
            self._refresh(snapshot, epoch)
        assert snapshot.definitions is not None
        return snapshot.definitions

    def _refresh(self, snapshot: _Snapshot, epoch: int) -> None:
        """Read the facts of the online path again (after `epoch` was taken, see
        kernel.changes); keep the parsed definitions and the feature.use decisions when
        what they depend on is unchanged."""
        with self.ctx.db.read() as conn:
            digests = store.definition_digests(conn)
            definitions = snapshot.definitions
            if definitions is None or digests != snapshot.digests:
                definitions = _parse_definitions(store.get_definitions(conn))
            materialized = store.materialized_versions(conn)
        facts = (
            digests,
            tuple(sorted(materialized.items())),
            ports.POLICY_ENFORCER.get().fingerprint(self.ctx, "feature.use"),
        )
        with snapshot.lock:
            if facts != snapshot.facts:
                snapshot.decisions = {}
            snapshot.definitions, snapshot.digests = definitions, digests
            snapshot.materialized, snapshot.facts, snapshot.epoch = materialized, facts, epoch

    def apply(self, repo: FeatureRepo) -> ApplyResult:
        """Create or update definitions; views are checked against their product's contract."""
        current = self.definitions(fresh=True)
        merged = Definitions(
            entities={**current.entities, **{e.name: e for e in repo.entities}},
            views={**current.views, **{v.name: v for v in repo.feature_views}},
            services={**current.services, **{s.name: s for s in repo.feature_services}},
            on_demand={**current.on_demand, **{o.name: o for o in repo.on_demand_features}},
        )
        items: list[tuple[str, Any]] = [
            *(("entity", e) for e in repo.entities),
            *(("feature_view", v) for v in repo.feature_views),
            *(("on_demand_feature", o) for o in repo.on_demand_features),
            *(("feature_service", s) for s in repo.feature_services),
        ]
        self._authorize_apply(merged, items)
        validated = {
            v.name: self._validate_view(merged, v, repo.origins.get(f"feature_view:{v.name}"))
            for v in repo.feature_views
        }
        for service in repo.feature_services:
            self._validate_refs(
                merged, service.features, repo.origins, f"feature_service:{service.name}"
            )
        for odf in repo.on_demand_features:
            self._validate_refs(merged, odf.inputs, repo.origins, f"on_demand_feature:{odf.name}")
        result = ApplyResult()
        with self.ctx.db.begin() as conn:
            for kind, obj in items:
                domain = _single(merged.domains_of(kind, obj.name))
                owner = getattr(obj, "owner", "")
                definition = obj.model_dump(mode="json")
                digest = _digest(definition)
                old = store.get_definition(conn, kind, obj.name)
                label = f"{kind}:{obj.name}"
                if old and old["digest"] == digest:
                    result.unchanged.append(label)
                    continue
                store.upsert_definition(
                    conn, kind, obj.name, domain=domain, owner=owner or self.ctx.actor.name,
                    definition=definition, digest=digest, actor=self.ctx.actor.name,
                    exists=old is not None,
                )  # fmt: skip
                (result.updated if old else result.created).append(label)
                urn = self._urn(kind, obj.name)
                self.ctx.audit(
                    conn, "features.apply", urn,
                    before=old["definition"] if old else None, after=definition,
                )  # fmt: skip
                if kind == "feature_view":
                    source = validated[obj.name]
                    lineage.add_edge(conn, source.urn, urn, "source_of")
                    if old and self._needs_rematerialize(old["definition"], definition):
                        store.delete_watermark(conn, obj.name)
                if kind == "feature_service":
                    for view_name in {r.partition(":")[0] for r in obj.features if ":" in r}:
                        lineage.add_edge(conn, view_urn(view_name), urn, "feature_of")
            # A new view can change the domain of the entities and services it touches.
            for row in store.get_definitions(conn):
                domain = _single(merged.domains_of(row["kind"], row["name"]))
                if row["domain"] != domain:
                    store.set_domain(conn, row["kind"], row["name"], domain)
        self.definitions(fresh=True)
        online_views = [v.name for v in repo.feature_views if v.online]
        if online_views:
            open_online_store(self.ctx.home).update(keep=online_views, delete=[])
        return result

    # --- authorization by domain ------------------------------------------------------

    def _authorize_apply(self, merged: Definitions, items: list[tuple[str, Any]]) -> None:
        """`features.write` in every domain of each definition the apply creates or changes
        (an unchanged one needs nothing)."""
        if not items:
            self.ctx.authorize("features.write")
            return
        with self.ctx.db.read() as conn:
            stored = {(k, n): d for k, n, d in store.definition_digests(conn)}
        for kind, obj in items:
            if stored.get((kind, obj.name)) == _digest(obj.model_dump(mode="json")):
                continue
            self._authorize_all("features.write", merged.domains_of(kind, obj.name), kind, obj.name)

    def _authorize_all(self, action: str, domains: Iterable[str], kind: str, name: str) -> None:
        """`action` in each of `domains`; with none, at platform scope - and the refusal
        then says how to give the definition a domain."""
        wanted = list(dict.fromkeys(domains))
        for domain in wanted:
            self.ctx.authorize(action, domain)
        if wanted:
            return
        try:
            self.ctx.authorize(action)
        except Forbidden as exc:
            what = f"{kind.replace('_', ' ')} {name!r}"
            fix = str(exc.detail.get("fix") or "ask a platform admin for a platform-scope role")
            raise Forbidden(
                f"{exc.message}: {what} belongs to no domain, so only a platform-scope role "
                "may",
                {**exc.detail, "definition": f"{kind}:{name}",
                 "fix": f"{fix}; or give {what} a domain (`domain:` in its definition, or "
                 "use it from a feature view of your domain), where your domain role is "
                 "enough"},
            ) from None  # fmt: skip

    def _authorize_any(self, action: str, domains: list[str], kind: str, name: str) -> None:
        """`action` in at least one of `domains` (reading a definition shared by several
        domains); the first refusal otherwise."""
        if not domains:
            self._authorize_all(action, [], kind, name)
            return
        first: Forbidden | None = None
        for domain in domains:
            try:
                self.ctx.authorize(action, domain)
                return
            except Forbidden as exc:
                first = first or exc
        assert first is not None
        raise first

    def _may(self, action: str, domains: list[str], *, every: bool = False) -> bool:
        """Whether `action` is allowed in any (or `every`) of `domains`; with none, at
        platform scope."""
        scopes: list[str | None] = list(domains) if domains else [None]
        allowed = []
        for domain in scopes:
            try:
                self.ctx.authorize(action, domain)
                allowed.append(True)
            except Forbidden:
                allowed.append(False)
        return all(allowed) if every else any(allowed)

    def _authorize_plan(self, defs: Definitions, plan: Plan) -> None:
        """Reading features: `features.read` in the domain of each view read and in the
        declared domain of the feature service asked for (platform scope when neither)."""
        domains = [defs.views[name].domain for name in plan.views]
        service = defs.services.get(plan.service) if plan.service else None
        if service is not None and service.domain:
            domains.insert(0, service.domain)
        if plan.service:
            kind, name = "feature_service", plan.service
        else:
            kind, name = "on_demand_feature", ", ".join(o.name for o in plan.on_demand)
        self._authorize_all("features.read", domains, kind, name)

    @staticmethod
    def _needs_rematerialize(old: dict[str, Any], new: dict[str, Any]) -> bool:
        keys = ("source", "features", "event_time", "created_time", "entities")
        return any(old.get(k) != new.get(k) for k in keys)

    @staticmethod
    def _urn(kind: str, name: str) -> str:
        if kind == "feature_view":
            return view_urn(name)
        if kind == "feature_service":
            return service_urn(name)
        # Entities and on-demand features are parts of views and services.
        return str(Urn.of("featureview", f"{kind}.{name}"))

    def _validate_refs(
        self, defs: Definitions, refs: list[str], origins: dict[str, str], label: str
    ) -> None:
        try:
            resolve(defs, refs)
        except (InvalidInput, NotFound) as exc:
            file, _, prefix = origins.get(label, f"<python>#{label}").partition("#")
            raise InvalidInput(
                f"{file}: {prefix}: {exc.message}",
                {**exc.detail, "file": file, "definition": prefix},
            ) from exc

    def _validate_view(
        self, defs: Definitions, view: FeatureView, origin: str | None
    ) -> SourceVersion:
        """Check a view against its product's contract: every column exists, types fit."""
        file, _, prefix = (origin or f"<python>#feature_view:{view.name}").partition("#")
        try:
            keys = defs.join_keys(view)
        except NotFound as exc:
            raise InvalidInput(
                f"{file}: {prefix}: {exc.message}",
                {**exc.detail, "file": file, "field": f"{prefix}.entities"},
            ) from exc
        version = self.source.describe(view.source)

        def fail(field: str, problem: str, fix: str) -> InvalidInput:
            return InvalidInput(
                f"{file}: {prefix}.{field}: {problem}",
                {"file": file, "field": field, "definition": prefix, "product": version.product,
                 "version": version.version, "port": version.port, "fix": fix},
            )  # fmt: skip

        known = [c.name for c in version.columns]

        def column(name: str, field: str) -> str:
            col = version.column(name)
            if col is None:
                raise fail(
                    field,
                    f"{version.product}:{version.port} {version.version} has no column {name!r}",
                    f"use one of {known}",
                )
            return col.logical_type

        for key in keys:
            column(key, "entities.join_keys")
        for field, name in (("event_time", view.event_time), ("created_time", view.created_time)):
            if name and column(name, field) not in TIME_LOGICAL:
                raise fail(
                    field,
                    f"column {name!r} is {column(name, field)}, not a timestamp",
                    "name a timestamp or date column of the contract",
                )
        for index, feature in enumerate(view.features):
            logical = column(feature.source_column, f"features[{index}].name")
            if logical and logical not in COMPATIBLE_LOGICAL[feature.type]:
                fits = sorted(t for t, ok in COMPATIBLE_LOGICAL.items() if logical in ok)
                raise fail(
                    f"features[{index}].type",
                    f"feature {feature.name!r} is declared {feature.type} but the contract "
                    f"says column {feature.source_column!r} is {logical}",
                    f"declare it as one of {fits}" if fits else "choose another column",
                )
        return version

    def list_definitions(self, kind: str | None = None) -> list[ViewSummary]:
        """The definitions the caller may read: all with a platform-scope role, else those
        of the domains its roles are bound in."""
        defs = self.definitions(fresh=True)
        with self.ctx.db.read() as conn:
            rows = store.get_definitions(conn, kind)
        if not rows:
            self.ctx.authorize("features.read")
        readable: dict[tuple[str, ...], bool] = {}
        found = []
        for row in rows:
            domains = defs.domains_of(row["kind"], row["name"])
            key = tuple(domains)
            if key not in readable:
                readable[key] = self._may("features.read", domains)
            if readable[key]:
                found.append(self._summary(row, domains))
        return found

    def _summary(self, row: dict[str, Any], domains: list[str]) -> ViewSummary:
        kind, name = row["kind"], row["name"]
        return ViewSummary(
            kind=kind, name=name, definition=row["definition"], owner=row["owner"],
            domain=_single(domains), domains=domains,
            urn=self._urn(kind, name) if kind in ("feature_view", "feature_service") else None,
            updated_at=row["updated_at"],
        )  # fmt: skip

    def get(self, name: str, kind: str = "feature_view") -> ViewSummary:
        with self.ctx.db.read() as conn:
            row = store.get_definition(conn, kind, name)
        if row is None:
            self.ctx.authorize("features.read")  # a platform reader learns it is absent
            raise NotFound(
                f"no {kind.replace('_', ' ')} {name!r}",
                {"fix": "list definitions with `meshops features list`"},
            )
        domains = self.definitions(fresh=True).domains_of(kind, name)
        self._authorize_any("features.read", domains, kind, name)
        return self._summary(row, domains)

    def get_view(self, name: str) -> FeatureView:
        view = self.definitions(fresh=True).views.get(name)
        self.ctx.authorize("features.read", view.domain if view else None)
        return self.definitions().view(name)

    # --- offline -----------------------------------------------------------------------

    def _entities_table(self, entities: EntityRows) -> pa.Table:
        if isinstance(entities, str):
            # SQL over data products (`domain.name` as tables), through the governed path.
            reads = ports.GOVERNED_READS.get()
            sql_result: pa.Table = reads.sql(self.ctx, entities, interface="features")
            return sql_result.replace_schema_metadata(None)
        if isinstance(entities, pa.Table):
            table = entities
        elif isinstance(entities, pa.RecordBatchReader):
            table = entities.read_all()
        elif hasattr(entities, "to_arrow") and not hasattr(entities, "iloc"):
            table = entities.to_arrow()
        else:
            try:
                table = pa.Table.from_pandas(entities, preserve_index=False)
            except (TypeError, AttributeError) as exc:
                raise InvalidInput(
                    f"entities must be an Arrow table or a pandas DataFrame, "
                    f"not {type(entities).__name__}",
                    {"field": "entities"},
                ) from exc
        return table.replace_schema_metadata(None)

    def _read_views(
        self, defs: Definitions, plan: Plan, pinned: dict[str, SourceRead] | None = None
    ) -> tuple[list[ViewInput], list[SourceRead], dict[str, SourceVersion]]:
        inputs, reads, versions = [], [], {}
        for name, wanted in plan.views.items():
            view = defs.view(name)
            self.ctx.authorize("features.read", view.domain)
            keys = defs.join_keys(view)
            ref = view.source
            if pinned is not None:
                ref = SourceRef(product=ref.product, port=ref.port, version=pinned[name].version)
            version = versions[name] = self.source.describe(ref)
            columns = list(dict.fromkeys([
                *keys, view.event_time, *([view.created_time] if view.created_time else []),
                *(f.source_column for f, _ in wanted),
            ]))  # fmt: skip
            table = contiguous(self.source.read(ref, version, columns))
            inputs.append(ViewInput(view, table, keys, wanted))
            reads.append(
                SourceRead(view=name, product=version.product, version=version.version,
                           urn=version.urn, digest=version.digest, rows=table.num_rows)
            )  # fmt: skip
        return inputs, reads, versions

    def _on_demand_inputs(self, defs: Definitions, plan: Plan) -> list[OnDemandInput]:
        result = []
        for odf in plan.on_demand:
            arguments = {}
            for ref in odf.inputs:
                view_name, _, feature_name = ref.partition(":")
                output = next(o for f, o in plan.views[view_name] if f.name == feature_name)
                arguments[_argument_name(ref)] = output
            for field in odf.request:
                arguments[field] = field
            result.append(OnDemandInput(odf, _function(odf, self.ctx.home), odf.name, arguments))
        return result

    def _check_feature_use(
        self,
        plan: Plan,
        defs: Definitions,
        versions: dict[str, SourceVersion],
        *,
        purpose: str,
        model: str,
    ) -> None:
        """Evaluate the `feature.use` policies (global and of each source domain) for this
        consumer; a blocking violation raises PolicyViolation before anything is recorded."""
        by_domain: dict[str, list[dict[str, Any]]] = {}
        for name, wanted in plan.views.items():
            version = versions[name]
            for feature, _ in wanted:
                column = version.column(feature.source_column)
                by_domain.setdefault(version.domain, []).append({
                    "name": feature.name, "view": name, "source_product": version.product,
                    "source_port": version.port, "source_version": version.version,
                    "source_status": version.status,
                    "classification": (column.classification if column else None) or "public",
                })  # fmt: skip
        subject = service_urn(plan.service) if plan.service else view_urn(next(iter(plan.views)))
        enforcer = ports.POLICY_ENFORCER.get()
        for domain, features in by_domain.items():
            enforcer.enforce(
                self.ctx,
                "feature.use",
                {
                    "features": features,
                    "model": {"name": model, "domain": domain, "purpose": purpose},
                    "consumer": {"name": self.ctx.actor.name, "kind": self.ctx.actor.kind},
                },
                domain,
                subject,
            )

    def training_set(
        self,
        entities: EntityRows,
        features: list[str] | str,
        *,
        name: str = "training_set",
        timestamp_column: str = "event_timestamp",
        full_names: bool = False,
    ) -> TrainingSet:
        """Point-in-time correct features for each entity row, recorded as a dataset."""
        Urn.of("trainingset", name)
        defs = self.definitions(fresh=True)
        plan = resolve(defs, features, full_names)
        self._authorize_plan(defs, plan)
        table = self._entities_table(entities)
        inputs, reads, versions = self._read_views(defs, plan)
        self._check_feature_use(
            plan, defs, versions, purpose="training", model=plan.service or name
        )
        on_demand = self._on_demand_inputs(defs, plan)
        ts_inputs = [ViewInput(i.view, i.table, i.keys, i.features) for i in inputs]
        # Fail on bad entity rows before anything is recorded.
        from meshops.features.offline import check_entities

        check_entities(table, ts_inputs, timestamp_column)
        entities_digest = self._store_entities(table)
        used = {n: defs.view(n).model_dump(mode="json") for n in plan.views}
        definitions = {
            "views": used,
            # (without `domain`: who may read a set is not what it contains)
            "entities": {
                n: e.model_dump(mode="json", exclude={"domain"}) for n, e in defs.entities.items()
            },
            "on_demand": [o.model_dump(mode="json") for o in plan.on_demand],
            "outputs": plan.outputs,
            "wanted": {n: [f.name for f, _ in w] for n, w in plan.views.items()},
            "full_names": full_names,
            "service": plan.service,
        }
        digest = _digest({
            "entities": entities_digest, "timestamp_column": timestamp_column,
            "definitions": definitions,
            "sources": [(r.view, r.product, r.version, r.digest) for r in reads],
        })  # fmt: skip
        columns = list(table.column_names) + plan.outputs
        info = self._record_training_set(
            name, digest=digest, entities_digest=entities_digest, rows=table.num_rows,
            plan=plan, columns=columns, timestamp_column=timestamp_column, reads=reads,
            definitions=definitions,
        )  # fmt: skip
        return TrainingSet(info, lambda: self._join(table, ts_inputs, timestamp_column, on_demand))

    def _join(
        self,
        table: pa.Table,
        inputs: Sequence[ViewInput],
        timestamp_column: str,
        on_demand: Sequence[OnDemandInput],
    ) -> pa.RecordBatchReader:
        config = self.ctx.home.settings.section("features")
        spill = self.ctx.home.settings.home / "tmp" / "duckdb"
        spill.mkdir(parents=True, exist_ok=True)
        return point_in_time_join(
            table, inputs, timestamp_column, on_demand=on_demand,
            threads=config.get("threads"), memory_limit=config.get("memory_limit"),
            temp_directory=str(spill),
        )  # fmt: skip

    def _store_entities(self, table: pa.Table) -> str:
        """Entity rows as a Parquet blob; the same rows give the same bytes (and digest)."""
        import pyarrow.parquet as pq

        with self.ctx.blobs.writer() as (fh, digest):
            pq.write_table(table, fh, row_group_size=1 << 20, compression="zstd")
        return digest[0]

    def _record_training_set(
        self,
        name: str,
        *,
        digest: str,
        entities_digest: str,
        rows: int,
        plan: Plan,
        columns: list[str],
        timestamp_column: str,
        reads: list[SourceRead],
        definitions: dict[str, Any],
    ) -> TrainingSetInfo:
        urn = store.training_set_urn(name, digest)
        with self.ctx.db.begin() as conn:
            found = store.get_training_set(conn, digest)
            if found and found[0].name == name:
                self.ctx.link_to_step(conn, urn)  # inside a pipeline step
                return found[0]
            info = TrainingSetInfo(
                id=uuid.uuid4().hex, name=name, urn=urn, digest=digest,
                entities_digest=entities_digest, row_count=rows, features=plan.outputs,
                columns=columns, timestamp_column=timestamp_column, sources=reads,
                created_by=self.ctx.actor.name, created_at=utcnow(),
            )  # fmt: skip
            store.insert_training_set(conn, info, definitions)
            edges = [(r.urn, urn, "read_by") for r in reads]
            edges += [(view_urn(r.view), urn, "feature_of") for r in reads]
            if plan.service:
                edges.append((service_urn(plan.service), urn, "feature_of"))
            lineage.add_edges(conn, edges)
            self.ctx.link_to_step(conn, urn)  # inside a pipeline step
            self.ctx.audit(
                conn, "features.training_set", urn, after={"digest": digest, "rows": rows},
                detail={"sources": [r.urn for r in reads]},
            )  # fmt: skip
        return info

    def get_training_set(self, id_or_digest: str) -> TrainingSet:
        """A recorded training set; its data is recomputed from the recorded inputs (the
        stored entity rows and the exact product versions), so it is the same data."""
        with self.ctx.db.read() as conn:
            found = store.get_training_set(conn, id_or_digest)
        if found is None:
            self.ctx.authorize("features.read")
            raise NotFound(
                f"no training set {id_or_digest!r}",
                {"fix": "list them with `meshops features training-set --list`"},
            )
        info, definitions = found
        self._authorize_all("features.read", _source_domains(info), "training_set", info.name)
        return TrainingSet(info, lambda: self._recompute(info, definitions))

    def _recompute(
        self, info: TrainingSetInfo, definitions: dict[str, Any]
    ) -> pa.RecordBatchReader:
        import pyarrow.parquet as pq

        defs = Definitions(
            entities={n: Entity.model_validate(e) for n, e in definitions["entities"].items()},
            views={n: FeatureView.model_validate(v) for n, v in definitions["views"].items()},
            on_demand={
                o["name"]: OnDemandFeature.model_validate(o) for o in definitions["on_demand"]
            },
        )  # fmt: skip
        plan = Plan(service=definitions.get("service"))
        for view_name, names in definitions["wanted"].items():
            view = defs.views[view_name]
            for feature_name in names:
                plan.add(view, view.feature(feature_name), bool(definitions["full_names"]))
        plan.on_demand = list(defs.on_demand.values())
        pinned = {r.view: r for r in info.sources}
        inputs, reads, _ = self._read_views(defs, plan, pinned)
        for read in reads:
            if read.digest != pinned[read.view].digest:
                raise NotFound(
                    f"{read.product} {read.version} changed since the training set was made",
                    {"fix": "recreate the training set"},
                )
        with self.ctx.blobs.local_path(info.entities_digest) as path:
            table = pq.read_table(path)
        return self._join(table, inputs, info.timestamp_column, self._on_demand_inputs(defs, plan))

    def list_training_sets(self, name: str | None = None) -> list[TrainingSetInfo]:
        """The training sets the caller may read: those whose every source domain its
        roles allow `features.read` in (all of them with a platform-scope role)."""
        with self.ctx.db.read() as conn:
            found = store.list_training_sets(conn, name)
        if not found or self._may("features.read", []):
            self.ctx.authorize("features.read")
            return found
        return [i for i in found if self._may("features.read", _source_domains(i), every=True)]

    # --- online ------------------------------------------------------------------------

    def materialize(
        self,
        views: list[str] | None = None,
        *,
        end: datetime | None = None,
        full: bool = False,
        progress: Progress | None = None,
    ) -> list[MaterializeResult]:
        """Bring the online store up to date, incrementally (see materialize.py)."""
        defs = self.definitions(fresh=True)
        names = views or [v.name for v in defs.views.values() if v.online]
        end = utc(end) if end else utcnow()
        online = open_online_store(self.ctx.home)
        results = []
        for name in names:
            view = defs.view(name)
            self.ctx.authorize("features.materialize", view.domain)
            results.append(
                self._materialize_view(
                    defs, view, end=end, full=full, online=online, progress=progress
                )
            )
        return results

    def _materialize_view(
        self, defs: Definitions, view: FeatureView, *, end: datetime, full: bool, online: Any,
        progress: Progress | None,
    ) -> MaterializeResult:  # fmt: skip
        started = time.perf_counter()
        version = self.source.describe(view.source)
        with self.ctx.db.read() as conn:
            mark = None if full else store.get_watermark(conn, view.name)
        if mark and mark.digest == version.digest and mark.event_time and end <= mark.event_time:
            return MaterializeResult(
                view=view.name, product=version.product, version=version.version, rows_read=0,
                rows_written=0, skipped=True, reason="up to date", watermark=mark.event_time,
            )  # fmt: skip
        window = Window(
            end=end,
            event_after=mark.event_time if mark else None,
            created_after=mark.created_time if mark else None,
        )
        keys = defs.join_keys(view)
        columns = list(dict.fromkeys([
            *keys, view.event_time, *([view.created_time] if view.created_time else []),
            *(f.source_column for f in view.features),
        ]))  # fmt: skip
        table = self._store_source().read(view.source, version, columns)
        stats = materialize_table(view, keys, table, online, window, progress=progress)
        created = max(
            [t for t in (stats.max_created_time, mark.created_time if mark else None) if t],
            default=None,
        )
        with self.ctx.db.begin() as conn:
            store.set_watermark(
                conn,
                Watermark(view=view.name, version=version.version, digest=version.digest,
                          event_time=end, created_time=created,
                          rows=(mark.rows if mark else 0) + stats.rows_written,
                          updated_at=utcnow()),
            )  # fmt: skip
            lineage.add_edge(conn, version.urn, view_urn(view.name), "materialized_into")
            self.ctx.audit(
                conn, "features.materialize", view_urn(view.name),
                detail={"version": version.version, "rows": stats.rows_written,
                        "end": end.isoformat()},
            )  # fmt: skip
        return MaterializeResult(
            view=view.name, product=version.product, version=version.version,
            rows_read=stats.rows_read, rows_written=stats.rows_written, watermark=end,
            seconds=time.perf_counter() - started,
        )  # fmt: skip

    def online(
        self,
        entity_rows: Sequence[dict[str, Any]],
        features: list[str] | str | None = None,
        *,
        service: str | None = None,
        full_names: bool = False,
        now: datetime | None = None,
    ) -> OnlineResponse:
        """The latest materialized values for each entity row (nulls + status when absent
        or older than the view's TTL), plus on-demand features computed from them."""
        features = asked_features(features, service)
        defs = self.definitions()
        snapshot_epoch = _snapshot_of(self.ctx.home).epoch
        plan = resolve_cached(defs, features, full_names)
        self._authorize_plan(defs, plan)
        self._check_online_use(defs, plan, features, full_names)
        # The epoch `definitions()` just checked: the guard's plans are trusted for it.
        guard = self._online_guard(defs, plan, features, full_names, snapshot_epoch)
        now_micros = _micros(now or datetime.now(UTC))
        online = open_online_store(self.ctx.home)
        rows = [OnlineRow(values={}, status="ok") for _ in entity_rows]
        served: dict[str, int] = {}
        for name, wanted in plan.views.items():
            view = defs.views[name]
            keys = defs.join_keys(view)
            try:
                lookup = [entity_key([row[k] for k in keys]) for row in entity_rows]
            except KeyError as exc:
                raise InvalidInput(
                    f"an entity row lacks join key {exc.args[0]!r} of feature view {name!r}",
                    {"field": "entity_rows", "fix": f"give {keys} in every row"},
                ) from None
            stored = online.read(name, lookup)
            ttl_micros = view.ttl_seconds * 1_000_000 if view.ttl_seconds else None
            for row, found in zip(rows, stored, strict=True):
                fresh = (
                    found is not None
                    and found.event_micros <= now_micros
                    and (ttl_micros is None or now_micros - found.event_micros <= ttl_micros)
                )
                if found is None:
                    row.missing.append(name)
                elif not fresh:
                    row.stale.append(name)
                row.event_times[name] = from_epoch_micros(found.event_micros) if found else None
                for feature, output in wanted:
                    row.values[output] = found.values.get(feature.name) if fresh else None  # type: ignore[union-attr]
                served[name] = served.get(name, 0) + (1 if fresh else 0)
            self._mask_online(guard, name, rows)
        self._record_online(guard, served)
        for row, request in zip(rows, entity_rows, strict=True):
            row.status = _status(row, len(plan.views))
            for odf in plan.on_demand:
                row.values[odf.name] = self._on_demand_value(odf, plan, row.values, request)
        names = plan.outputs
        for row in rows:
            row.values = {n: row.values.get(n) for n in names}
        return OnlineResponse(features=names, rows=rows)

    def _online_guard(
        self,
        defs: Definitions,
        plan: Plan,
        features: list[str] | str,
        full_names: bool,
        epoch: int,
    ) -> _OnlineGuard:
        """The read guard's plans for this lookup (grant, masks, like an offline read of
        the product versions the online values came from), made once per change epoch per
        (principal, token scopes, features asked); a refusal is kept and raised likewise."""
        snapshot = _snapshot_of(self.ctx.home)
        key = (*self._decision_key(features, full_names), self.ctx.actor.scopes)
        found = snapshot.guards.get(key)
        if found is not None and not found.current(epoch):
            found = self._renewed(snapshot, found, epoch)
            if found is not None:
                snapshot.guards[key] = found
        if found is None:
            head = self._audit_head(snapshot, epoch)  # read before the plan's reads
            found = self._plan_online(defs, plan, epoch, snapshot.materialized)
            found = dataclasses.replace(found, audit_head=head)
            if len(snapshot.guards) >= MAX_CACHED_GUARDS:
                snapshot.guards.clear()
            snapshot.guards[key] = found
        if found.refusal is not None:
            # A fresh exception each time (re-raising one object would grow its traceback).
            refusal = found.refusal
            raise type(refusal)(refusal.message, refusal.detail)
        return found

    def _renewed(self, snapshot: _Snapshot, found: _OnlineGuard, epoch: int) -> _OnlineGuard | None:
        """`found` again for `epoch` when nothing audited happened since it was made (the
        usage events online lookups write move the epoch every second, and planning again
        each time cost tens of milliseconds per lookup shape); None when it must be redone."""
        if found.until is not None and utcnow() >= found.until:
            return None
        head = self._audit_head(snapshot, epoch)
        if head is None or head != found.audit_head:
            return None
        return dataclasses.replace(found, epoch=epoch)

    def _audit_head(self, snapshot: _Snapshot, epoch: int) -> str | None:
        read_in, head = snapshot.head
        if read_in != epoch:
            from meshops.kernel.audit import audit_head

            with self.ctx.db.read() as conn:
                query = select(audit_head.c.hash).where(audit_head.c.id == 1)
                head = conn.execute(query).scalar()
            snapshot.head = (epoch, head)
        return head

    def _plan_online(
        self, defs: Definitions, plan: Plan, epoch: int, materialized: dict[str, str]
    ) -> _OnlineGuard:
        requests, plans, until = {}, {}, None
        try:
            for name, wanted in plan.views.items():
                source = defs.views[name].source
                version = materialized.get(name)
                ref = SourceRef(product=source.product, port=source.port, version=version)
                described = self.source.describe(ref if version else source)
                request = ReadRequest(
                    product=described.product, domain=described.domain,
                    version=described.version, port=described.port,
                    columns=tuple(dict.fromkeys(f.source_column for f, _ in wanted)),
                    classification={c.name: c.classification or "" for c in described.columns},
                    owners=described.owners, interface="features", purpose="online",
                )  # fmt: skip
                found = self.ctx.home.read_guard.plan(self.ctx, request)
                if found.row_filter:
                    # Online values are per entity, not rows a SQL predicate can filter.
                    raise Forbidden(
                        f"your grant on {request.product} port {request.port} filters rows "
                        "(row_filter), which online lookups cannot apply",
                        {"product": request.product, "grant": found.grant_id,
                         "fix": "read offline (training sets), or ask for a grant without "
                         "a row filter"},
                    )  # fmt: skip
                requests[name], plans[name] = request, found
                if found.valid_until is not None:
                    until = min(until or found.valid_until, found.valid_until)
        except (Forbidden, NotFound) as refused:
            return _OnlineGuard(epoch, None, {}, {}, refused)
        hidden, masked = _masking_of(plan, plans)
        return _OnlineGuard(epoch, until, requests, plans, hidden=hidden, masked=masked)

    def _mask_online(self, guard: _OnlineGuard, view: str, rows: list[OnlineRow]) -> None:
        """Mask the classified values the plan masks, exactly as an offline read does (and
        blank any column the plan leaves out, as an offline read would not return it)."""
        hidden, masked = guard.hidden.get(view), guard.masked.get(view)
        for row in rows if hidden else ():
            row.values.update(dict.fromkeys(hidden or ()))
        if not masked:
            return
        masker = ports.VALUE_MASKER.get()
        key = masker.key(self.ctx.home)
        for output, method, kind in masked:
            values = [_typed(row.values.get(output), kind) for row in rows]
            for row, value in zip(rows, masker.mask(values, method, key, kind), strict=True):
                row.values[output] = value

    def _record_online(self, guard: _OnlineGuard, served: dict[str, int]) -> None:
        """One usage event per view per lookup (batched by a governed guard)."""
        read_guard = self.ctx.home.read_guard
        record = getattr(read_guard, "record_buffered", read_guard.record)
        for name, request in guard.requests.items():
            usage = ReadUsage(request=request, plan=guard.plans[name], rows=served.get(name, 0))
            record(self.ctx, usage)

    def _check_online_use(
        self, defs: Definitions, plan: Plan, features: list[str] | str, full_names: bool
    ) -> None:
        """`feature.use` for this consumer, decided once per (actor, features asked) while
        the facts of the snapshot hold (evaluated and recorded like a training set's, with
        purpose "serving", over the product versions the online values came from)."""
        snapshot = _snapshot_of(self.ctx.home)
        key = self._decision_key(features, full_names)
        # No lock to read: a refresh in between is caught by the identity checks below.
        decisions, materialized = snapshot.decisions, snapshot.materialized
        if key in decisions:
            decision = decisions[key]
        else:
            decision = self._decide_online_use(defs, plan, materialized)
            with snapshot.lock:
                # A refresh that changed the facts (or the definitions) since starts anew.
                if snapshot.decisions is decisions and snapshot.definitions is defs:
                    decisions[key] = decision
        if decision is not None:
            raise PolicyViolation(decision.message, decision.detail)

    def _decision_key(self, features: list[str] | str, full_names: bool) -> tuple[Any, ...]:
        actor = self.ctx.actor
        asked = features if isinstance(features, str) else tuple(features)
        return (actor.name, actor.kind, asked, full_names)

    def online_is_local(
        self,
        features: list[str] | str | None,
        *,
        service: str | None = None,
        full_names: bool = False,
    ) -> bool:
        """Whether `online` for this actor and features reads only memory and a local file:
        the feature.use decision is made (nothing to evaluate and record) and the online
        store is the SQLite file. An event loop may then call it inline rather than pay a
        thread hop, most of the cost of a served lookup (the snapshot is refreshed first,
        so the answer holds for the call that follows)."""
        features = asked_features(features, service)
        self.definitions()
        snapshot = _snapshot_of(self.ctx.home)
        key = self._decision_key(features, full_names)
        guard = snapshot.guards.get((*key, self.ctx.actor.scopes))
        decided = key in snapshot.decisions
        planned = guard is not None and guard.current(snapshot.epoch)
        return decided and planned and open_online_store(self.ctx.home).name == "sqlite"

    def _decide_online_use(
        self, defs: Definitions, plan: Plan, materialized: dict[str, str]
    ) -> PolicyViolation | None:
        versions = {}
        for name in plan.views:
            source = defs.views[name].source
            version = materialized.get(name)
            ref = SourceRef(product=source.product, port=source.port, version=version)
            versions[name] = self.source.describe(ref if version else source)
        try:
            self._check_feature_use(
                plan, defs, versions, purpose="serving", model=plan.service or ONLINE_MODEL
            )
        except PolicyViolation as violation:
            return violation
        return None

    def _on_demand_value(
        self, odf: OnDemandFeature, plan: Plan, values: dict[str, Any], request: dict[str, Any]
    ) -> Any:
        arguments = {}
        for ref in odf.inputs:
            view_name, _, feature_name = ref.partition(":")
            output = next(o for f, o in plan.views[view_name] if f.name == feature_name)
            arguments[_argument_name(ref)] = values.get(output)
        for field in odf.request:
            if field not in request:
                raise InvalidInput(
                    f"on-demand feature {odf.name!r} needs request field {field!r}",
                    {"field": field, "fix": f"add {field!r} to every entity row"},
                )
            arguments[field] = request[field]
        return _function(odf, self.ctx.home)(arguments)

    # --- freshness and statistics ------------------------------------------------------

    def status(self, view_name: str) -> ViewStatus:
        """Freshness (newest event time vs TTL, materialization watermark) and per-feature
        statistics of the view's latest product version."""
        import pyarrow.compute as pc

        defs = self.definitions(fresh=True)
        view = defs.view(view_name)
        self.ctx.authorize("features.read", view.domain)
        version = self.source.describe(view.source)
        keys = defs.join_keys(view)
        columns = list(
            dict.fromkeys([*keys, view.event_time, *(f.source_column for f in view.features)])
        )
        table = self.source.read(view.source, version, columns)
        with self.ctx.db.read() as conn:
            mark = store.get_watermark(conn, view.name)
        times = pc.cast(table.column(view.event_time), pa.timestamp("us", tz="UTC"))
        newest, oldest = pc.max(times).as_py(), pc.min(times).as_py()
        age = (utcnow() - newest).total_seconds() if newest else None
        stats = []
        for feature in view.features:
            col = table.column(feature.source_column)
            numeric = pa.types.is_integer(col.type) or pa.types.is_floating(col.type)
            minmax = (
                pc.min_max(col).as_py() if col.null_count < len(col) else {"min": None, "max": None}
            )
            stats.append(FeatureStats(
                name=feature.name, type=feature.type, nulls=col.null_count, count=len(col),
                min=_plain(minmax["min"]), max=_plain(minmax["max"]),
                mean=pc.mean(col).as_py() if numeric else None,
                distinct=pc.count_distinct(col).as_py(),
            ))  # fmt: skip
        entities = table.select(keys).group_by(keys).aggregate([]).num_rows
        return ViewStatus(
            view=view.name, product=version.product, latest_version=version.version,
            materialized_version=mark.version if mark else None, rows=table.num_rows,
            entities=entities, newest_event_time=newest, oldest_event_time=oldest,
            materialized_at=mark.updated_at if mark else None, age_seconds=age,
            ttl_seconds=view.ttl_seconds,
            fresh=(age <= view.ttl_seconds) if (age is not None and view.ttl_seconds) else None,
            features=stats,
        )  # fmt: skip


def asked_features(features: list[str] | str | None, service: str | None) -> list[str] | str:
    """What an online lookup asks for: `features` (references, or a feature service's
    name) or `service` (a feature service's name), exactly one of the two."""
    if service is not None and features is not None:
        raise InvalidInput(
            "give either features or service, not both",
            {"field": "service", "fix": "ask for a feature service by `service` alone, or "
             "list the features as 'view:feature' in `features`"},
        )  # fmt: skip
    if service is not None:
        return service
    if features is None:
        raise InvalidInput(
            "name the features to look up",
            {"field": "features", "fix": "give \"features\": [\"view:feature\", ...] or "
             "\"service\": \"<feature service>\""},
        )  # fmt: skip
    return features


def _single(domains: list[str]) -> str | None:
    return domains[0] if len(domains) == 1 else None


def _source_domains(info: TrainingSetInfo) -> list[str]:
    return sorted({s.product.split(".", 1)[0] for s in info.sources})


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _masking_of(
    plan: Plan, plans: dict[str, ReadPlan]
) -> tuple[dict[str, tuple[str, ...]], dict[str, tuple[tuple[str, MaskMethod, pa.DataType], ...]]]:
    """Per view: the outputs its read plan leaves out, and those it masks (with how)."""
    from meshops.features.types import arrow_type

    hidden, masked = {}, {}
    for name, found in plans.items():
        wanted = plan.views[name]
        hidden[name] = tuple(o for f, o in wanted if f.source_column not in found.columns)
        masked[name] = tuple(
            (o, found.masks[f.source_column], arrow_type(f.type))
            for f, o in wanted
            if f.source_column in found.masks
        )
    return hidden, masked


def _typed(value: Any, kind: pa.DataType) -> Any:
    """An online value as Arrow takes it for `kind` (the store keeps times as ISO text)."""
    if isinstance(value, str) and (pa.types.is_timestamp(kind) or pa.types.is_date(kind)):
        parsed = datetime.fromisoformat(value)
        return parsed.date() if pa.types.is_date(kind) else parsed
    return value


def _micros(value: datetime) -> int:
    from meshops.features.types import epoch_micros

    return epoch_micros(value)


def _status(row: OnlineRow, views: int) -> Any:
    if views and len(row.missing) == views:
        return "missing"
    if row.missing:
        return "partial"
    if row.stale:
        return "stale"
    return "ok"
