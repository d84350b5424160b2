"""The applied definitions as one immutable snapshot, and feature references resolved
against it (pure logic, shared by the offline and the online path).

A reference is `view:feature`, `view:*`, or the name of an on-demand feature; a bare name
given instead of a list names a feature service.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from meshops.features.models import (
    Entity,
    Feature,
    FeatureServiceDef,
    FeatureView,
    OnDemandFeature,
)
from meshops.kernel.errors import InvalidInput, NotFound


@dataclass(frozen=True)
class Definitions:
    entities: dict[str, Entity] = field(default_factory=dict)
    views: dict[str, FeatureView] = field(default_factory=dict)
    services: dict[str, FeatureServiceDef] = field(default_factory=dict)
    on_demand: dict[str, OnDemandFeature] = field(default_factory=dict)
    # Resolved feature lists, memoised on this immutable snapshot (the online hot path).
    plans: dict[tuple[object, bool], Plan] = field(default_factory=dict, compare=False)

    def view(self, name: str) -> FeatureView:
        try:
            return self.views[name]
        except KeyError:
            raise NotFound(
                f"no feature view {name!r}",
                {"field": "features", "known": sorted(self.views),
                 "fix": "apply its definition with `meshops features apply`"},
            ) from None  # fmt: skip

    def service(self, name: str) -> FeatureServiceDef:
        try:
            return self.services[name]
        except KeyError:
            raise NotFound(
                f"no feature service {name!r}",
                {"field": "features", "known": sorted(self.services),
                 "fix": "apply its definition or list features as 'view:feature'"},
            ) from None  # fmt: skip

    def views_of(self, refs: list[str]) -> set[str]:
        """The feature views references read (on-demand features through their inputs);
        unknown names are left out (they are reported where references are resolved)."""
        found: set[str] = set()
        for ref in refs:
            if ":" in ref:
                found.add(ref.partition(":")[0])
            elif ref in self.on_demand:
                found |= {r.partition(":")[0] for r in self.on_demand[ref].inputs if ":" in r}
        return {name for name in found if name in self.views}

    def domains_of(self, kind: str, name: str) -> list[str]:
        """The domains whose roles govern a definition: a view's product domain; an entity's
        or a feature service's declared `domain`, else the domains of the views that use
        it (entities) or that it uses (services, on-demand features). Empty: none (a
        platform-scope role governs it)."""
        if kind == "feature_view":
            return [self.view(name).domain]
        if kind == "entity":
            entity = self.entities.get(name)
            if entity is not None and entity.domain:
                return [entity.domain]
            return sorted({v.domain for v in self.views.values() if name in v.entities})
        if kind == "feature_service":
            service = self.services.get(name)
            if service is None:
                return []
            if service.domain:
                return [service.domain]
            return sorted({self.views[v].domain for v in self.views_of(service.features)})
        if kind == "on_demand_feature":
            return sorted({self.views[v].domain for v in self.views_of([name])})
        return []

    def join_keys(self, view: FeatureView) -> list[str]:
        keys: list[str] = []
        for name in view.entities:
            entity = self.entities.get(name)
            if entity is None:
                raise NotFound(
                    f"feature view {view.name!r} names unknown entity {name!r}",
                    {"field": "entities", "fix": "define the entity in the same apply"},
                )
            keys += [k for k in entity.join_keys if k not in keys]
        return keys


@dataclass
class Plan:
    """What a retrieval computes: per view the features and their output names, the
    on-demand features, and the output column order."""

    views: dict[str, list[tuple[Feature, str]]] = field(default_factory=dict)
    on_demand: list[OnDemandFeature] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    service: str | None = None

    def add(self, view: FeatureView, feature: Feature, full_names: bool) -> None:
        output = f"{view.name}__{feature.name}" if full_names else feature.name
        wanted = self.views.setdefault(view.name, [])
        if any(f.name == feature.name for f, _ in wanted):
            return
        if output in self.outputs:
            raise InvalidInput(
                f"two features would both be named {output!r}",
                {"field": "features", "fix": "pass full_names=True to get view__feature names"},
            )
        wanted.append((feature, output))
        self.outputs.append(output)


def resolve_cached(defs: Definitions, features: list[str] | str, full_names: bool) -> Plan:
    """`resolve`, remembered per snapshot of the definitions (do not modify the plan)."""
    key = (features if isinstance(features, str) else tuple(features), full_names)
    plan = defs.plans.get(key)
    if plan is None:
        plan = defs.plans[key] = resolve(defs, features, full_names)
    return plan


def resolve(defs: Definitions, features: list[str] | str, full_names: bool = False) -> Plan:
    plan = Plan()
    refs: list[str]
    if isinstance(features, str):
        plan.service = features
        refs = defs.service(features).features
    else:
        refs = list(features)
    if not refs:
        raise InvalidInput(
            "no features asked for",
            {"field": "features", "fix": "name features as 'view:feature' or a feature service"},
        )
    for ref in refs:
        if ":" not in ref:
            odf = defs.on_demand.get(ref)
            if odf is None:
                raise InvalidInput(
                    f"{ref!r} is not a feature reference",
                    {"field": "features", "token": ref,
                     "fix": "write 'view:feature', 'view:*' or an on-demand feature's name"},
                )  # fmt: skip
            for needed in odf.inputs:
                _add_ref(defs, plan, needed, full_names)
            if odf not in plan.on_demand:
                plan.on_demand.append(odf)
                plan.outputs.append(odf.name)
            continue
        _add_ref(defs, plan, ref, full_names)
    return plan


def _add_ref(defs: Definitions, plan: Plan, ref: str, full_names: bool) -> None:
    view_name, _, feature_name = ref.partition(":")
    view = defs.view(view_name)
    if feature_name == "*":
        for feature in view.features:
            plan.add(view, feature, full_names)
    else:
        plan.add(view, view.feature(feature_name), full_names)
