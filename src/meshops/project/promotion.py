"""The model promotion gate: `model.promote` policies, champion/challenger comparison with
the current holder of the alias on the same evaluation data, and approvals by role (never by
the author).

The registry's default gate (bound to the kernel's PROMOTION_GATE port by
`meshops.assembly`), it guards moves of the protected aliases;
`platform.project.promote` always goes through it. Settings, `[promotion]` of meshops.toml
(none is needed):

    protected_aliases = ["production", "champion"]
    stages = {champion = "production"}      # alias -> target_stage of the policy document
    metric = "roc_auc"                      # the declared primary metric of comparisons
    tolerance = 0.0                         # how much worse than the holder is still allowed
    approvals_required = 1
    approver_roles = ["business_stakeholder"]

Moving a protected alias away from a holder needs a comparison recorded by
`platform.registry.compare` (server state: `registry.record_comparison` checked that it
names exactly this challenger and the current holder, and it must be newer than the
holder's move): the gate refuses when the challenger is worse by more than the tolerance,
or when no such comparison exists. An approval of the challenger by someone other than its
author (`platform.project.approve`) overrides that refusal; the override is in the audit
record. A home that declares `metric` and has no comparison yet falls back to the versions'
recorded metrics (`direction`, `min_improvement`), as before comparisons existed.

Every decision, pass or refusal, is written to the audit log (`model.promotion_gate`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from meshops.kernel.errors import PolicyViolation
from meshops.kernel.home import Context
from meshops.kernel.urn import Urn
from meshops.project import store
from meshops.project.models import GateReport, PolicyOutcome
from meshops.registry.comparison import METRICS, promotion_tolerance, worse_by
from meshops.registry.models import ModelVersion
from meshops.tracking.metrics_direction import configured_directions, direction_of

if TYPE_CHECKING:
    from meshops.registry.service import RegistryService

DEFAULT_PROTECTED = ("production", "champion")


def _fix(report: GateReport, version: ModelVersion, alias: str) -> str:
    if report.current_version is not None and report.comparison is None and report.metric is None:
        return (
            f"score both versions on the same labelled data first: "
            f"platform.registry.compare({version.name!r}, {version.version}, alias={alias!r}, "
            "data=holdout_table, label='<label column>') (the training template does it); "
            f"or have someone other than {version.created_by} approve the version "
            f"(meshops models approve / platform.project.approve) to override"
        )
    if report.comparison is not None and not report.comparison.allowed:
        return (
            "train a better challenger, raise [promotion] tolerance, or have someone other "
            f"than {version.created_by} approve v{version.version} to override the comparison"
        )
    return (
        "record better evaluation metrics, collect the approvals, or "
        "change the model so the model.promote policies pass"
    )


def promotion_settings(ctx: Context) -> dict[str, Any]:
    return ctx.home.settings.section("promotion")


class GovernedPromotionGate:
    """A `kernel.ports.PromotionGate`, constructed with the Home."""

    def __init__(self, home: Any = None, *, always: bool = False) -> None:
        self.home = home
        self.always = always
        self.last_report: GateReport | None = None

    def protected(self, ctx: Context) -> list[str]:
        return [str(a) for a in promotion_settings(ctx).get("protected_aliases", DEFAULT_PROTECTED)]

    def check(self, ctx: Context, version: ModelVersion, alias: str, current: int | None) -> None:
        if not self.always and alias not in self.protected(ctx):
            return
        report = self.evaluate(ctx, version, alias, current)
        self.last_report = report
        with ctx.db.begin() as conn:
            ctx.audit(
                conn,
                "model.promotion_gate",
                version.urn,
                detail=report.model_dump(mode="json"),
            )
        if not report.allowed:
            raise PolicyViolation(
                f"promotion of {version.name} v{version.version} to {alias!r} refused: "
                + "; ".join(report.reasons),
                {"gate": report.model_dump(mode="json"), "fix": _fix(report, version, alias)},
            )

    def evaluate(
        self, ctx: Context, version: ModelVersion, alias: str, current: int | None
    ) -> GateReport:
        from meshops.governance.service import GovernanceService
        from meshops.registry.service import OpenGate, RegistryService

        cfg = promotion_settings(ctx)
        registry = RegistryService(ctx, gate=OpenGate())
        domain = registry.get_model(version.name).domain
        ctx.authorize("registry.promote", domain)
        stages = {"champion": "production", **cfg.get("stages", {})}
        report = GateReport(
            model=version.name,
            version=version.version,
            alias=alias,
            target_stage=str(stages.get(alias, alias)),
            allowed=True,
            current_version=current,
        )
        with ctx.db.read() as conn:
            approvals = store.approvals(conn, version.name, version.version)
        # 1. the model.promote policies (recorded by governance as evaluations)
        system = ctx.home.system_context()
        document = {
            "model": {
                "name": version.name,
                "version": str(version.version),
                "stage": alias,
                "domain": domain or "",
            },
            "target_stage": report.target_stage,
            "metrics": version.metrics,
            "inputs": self._inputs(system, version),
            "approvals": [
                {"by": a.approver, "role": a.role, "at": a.at.isoformat(), "comment": a.comment}
                for a in approvals
            ],
        }
        decision = GovernanceService(system).evaluate(
            "model.promote", document, domain, version.urn
        )
        report.policies = [PolicyOutcome(**r.model_dump()) for r in decision.results]
        report.reasons += [f"policy {r.policy_id}: {r.explanation}" for r in decision.violations]
        # 2. champion/challenger: both scored on the same data (a recorded comparison)
        required = int(cfg.get("approvals_required", 0))
        roles = [str(r) for r in cfg.get("approver_roles", [])]
        valid = [
            a
            for a in approvals
            if a.approver != version.created_by and (not roles or a.role in roles)
        ]
        comparison_reasons = self._compare(
            ctx,
            registry=registry,
            report=report,
            version=version,
            alias=alias,
            current=current,
            cfg=cfg,
        )
        if comparison_reasons and valid and alias in self.protected(ctx):
            # An approval by someone other than the author overrides the comparison; the
            # override is part of the audited report.
            approval = valid[-1]
            report.override = {
                "approver": approval.approver,
                "role": approval.role,
                "comment": approval.comment,
                "at": approval.at.isoformat(),
                "overridden": comparison_reasons,
                "comparison_id": report.comparison.id if report.comparison else None,
            }
        else:
            report.reasons += comparison_reasons
        # 3. approvals by role, never by the author
        report.approvals = valid
        report.approvals_required = required
        if len(valid) < required:
            who = f" by {' or '.join(roles)}" if roles else ""
            report.reasons.append(
                f"needs {required} approval(s){who} other than the author "
                f"{version.created_by}; has {len(valid)}"
            )
        report.allowed = not report.reasons
        return report

    def _compare(
        self,
        ctx: Context,
        *,
        registry: RegistryService,
        report: GateReport,
        version: ModelVersion,
        alias: str,
        current: int | None,
        cfg: dict[str, Any],
    ) -> list[str]:
        """Why the challenger may not replace the holder on its scores ([] if it may): the
        newest comparison recorded by `record_comparison` for exactly this challenger and
        the current holder, after the holder got the alias. Without one, a home that
        declares `[promotion] metric` falls back to the versions' recorded metrics."""
        if current is None or current == version.version:
            return []  # a first version (no holder)
        protected = alias in self.protected(ctx)
        if not protected and not self.always:
            return []  # an unprotected alias moved with set_alias
        comparison = registry.comparison_for_move(version.name, version.version, alias, current)
        if comparison is not None:
            report.comparison = comparison
            report.metric = comparison.metric
            report.direction = comparison.direction
            report.candidate_value = comparison.challenger_score
            report.current_value = comparison.champion_score
            declared = str(cfg.get("metric") or "")
            if declared in METRICS and comparison.metric != declared:
                return [
                    f"the comparison of v{version.version} with v{current} was scored on "
                    f"{comparison.metric}, the declared metric is {declared}: compare again"
                ]
            # The verdict under the home's tolerance now (it may have changed since).
            report.tolerance = promotion_tolerance(ctx.home.settings)
            if comparison.champion_score is None:
                return []
            gap = worse_by(
                comparison.metric, comparison.challenger_score, comparison.champion_score
            )
            if gap <= report.tolerance:
                return []
            return [
                f"{comparison.metric} {comparison.challenger_score:.6g} of v{version.version} "
                f"is worse than {comparison.champion_score:.6g} of the current {alias} "
                f"v{current} by {gap:.6g} ({'higher' if comparison.direction == 'max' else 'lower'}"
                f" is better, tolerance {report.tolerance:g}) on the same "
                f"{comparison.evaluated_rows} rows (comparison {comparison.id})"
            ]
        metric = cfg.get("metric")
        if metric:
            return self._recorded_metric(
                registry,
                report=report,
                version=version,
                alias=alias,
                current=current,
                cfg=cfg,
                settings=registry.ctx.home.settings,
            )
        if not protected:
            return []  # `promote` to an unprotected alias: a comparison is not required
        return [
            f"no comparison of v{version.version} with the current {alias} v{current} on the "
            "same data is recorded"
        ]

    @staticmethod
    def _recorded_metric(
        registry: RegistryService,
        *,
        report: GateReport,
        version: ModelVersion,
        alias: str,
        current: int,
        cfg: dict[str, Any],
        settings: Any,
    ) -> list[str]:
        """The versions' own recorded metric (each measured on its own data): the gate of
        homes that declared `[promotion] metric` before comparisons existed."""
        metric = str(cfg["metric"])
        report.metric = metric
        report.candidate_value = version.metrics.get(metric)
        if report.candidate_value is None:
            return [f"v{version.version} has no recorded metric {metric!r}"]
        holder = registry.get_version(version.name, current)
        report.current_value = holder.metrics.get(metric)
        if report.current_value is None:
            return []
        margin = float(cfg.get("min_improvement", 0.0))
        direction = cfg.get("direction") or direction_of(metric, configured_directions(settings))
        if direction is None:
            # Guessing "higher is better" would promote a worse model for a loss-like metric.
            return [
                f"the direction of {metric!r} is not known: set [promotion] direction = "
                '"max" or "min" (or [metrics] directions) in meshops.toml'
            ]
        lower_is_better = str(direction) == "min"
        report.direction = "min" if lower_is_better else "max"
        delta = report.candidate_value - report.current_value
        if (-delta if lower_is_better else delta) >= margin:
            return []
        return [
            f"{metric} {report.candidate_value:g} of v{version.version} is not "
            f"better than {report.current_value:g} of the current {alias} "
            f"v{current} ({'lower' if lower_is_better else 'higher'} is "
            f"better, margin {margin:g})"
        ]

    @staticmethod
    def _inputs(ctx: Context, version: ModelVersion) -> list[dict[str, str]]:
        from meshops.kernel.errors import NotFound
        from meshops.kernel.lineage import LineageService
        from meshops.mesh.service import MeshService

        mesh = MeshService(ctx)
        inputs = []
        seen: set[str] = set()
        for edge in LineageService(ctx).upstream(version.urn, depth=10):
            if edge.upstream in seen:
                continue
            seen.add(edge.upstream)
            urn = Urn.parse(edge.upstream)
            if urn.kind != "dataproduct":
                continue  # runs, datasets, training sets: not data products
            try:
                status = str(mesh.get_product(urn.parts[0]).status)
            except NotFound:
                status = "unknown"
            inputs.append({"urn": edge.upstream, "kind": urn.kind, "status": str(status)})
        return inputs
