"""The model promotion gate: `model.promote` policies, comparison with the current holder of
the alias on a recorded evaluation metric, and approvals by role (never by the author).

The registry's default gate (bound to the kernel's PROMOTION_GATE port by
`meshops.assembly`), it guards moves of the protected aliases;
`platform.project.promote` always goes through it. Settings, `[promotion]` of meshops.toml:

    protected_aliases = ["production", "champion"]
    stages = {champion = "production"}      # alias -> target_stage of the policy document
    metric = "accuracy"                     # compared with the alias's current holder
    direction = "max"                       # or "min" (e.g. for rmse)
    min_improvement = 0.0                   # required margin over the current holder
    approvals_required = 1
    approver_roles = ["business_stakeholder"]

Every decision, pass or refusal, is written to the audit log (`model.promotion_gate`).
"""

from __future__ import annotations

from typing import Any

from meshops.kernel.errors import PolicyViolation
from meshops.kernel.home import Context
from meshops.kernel.urn import Urn
from meshops.project import store
from meshops.project.models import GateReport, PolicyOutcome
from meshops.registry.models import ModelVersion

DEFAULT_PROTECTED = ("production", "champion")


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
                {
                    "gate": report.model_dump(mode="json"),
                    "fix": "record better evaluation metrics, collect the approvals, or "
                    "change the model so the model.promote policies pass",
                },
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
        # 2. the current holder of the alias, on the recorded evaluation metric
        metric = cfg.get("metric")
        if metric:
            report.metric = str(metric)
            report.candidate_value = version.metrics.get(report.metric)
            if report.candidate_value is None:
                report.reasons.append(f"v{version.version} has no recorded metric {metric!r}")
            elif current is not None and current != version.version:
                holder = registry.get_version(version.name, current)
                report.current_value = holder.metrics.get(report.metric)
                if report.current_value is not None:
                    margin = float(cfg.get("min_improvement", 0.0))
                    lower_is_better = str(cfg.get("direction", "max")) == "min"
                    delta = report.candidate_value - report.current_value
                    better = (-delta if lower_is_better else delta) >= margin
                    if not better:
                        report.reasons.append(
                            f"{metric} {report.candidate_value:g} of v{version.version} is not "
                            f"better than {report.current_value:g} of the current {alias} "
                            f"v{current} ({'lower' if lower_is_better else 'higher'} is "
                            f"better, margin {margin:g})"
                        )
        # 3. approvals by role, never by the author
        required = int(cfg.get("approvals_required", 0))
        roles = [str(r) for r in cfg.get("approver_roles", [])]
        valid = [
            a
            for a in approvals
            if a.approver != version.created_by and (not roles or a.role in roles)
        ]
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
