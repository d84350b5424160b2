"""Project use cases over a home: applied objects, plan/apply/check with the in-process area
services, approvals and promotion, webhooks."""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from meshops.kernel import outbox
from meshops.kernel.auth import Actor
from meshops.kernel.codetrust import is_api_server
from meshops.kernel.db import utcnow
from meshops.kernel.errors import Conflict, Forbidden, InvalidInput, MeshopsError
from meshops.kernel.home import Context
from meshops.mesh.builds import BuildLimits
from meshops.project import check as check_module
from meshops.project import store, webhooks
from meshops.project.apply import Prepared
from meshops.project.apply import apply as apply_plan
from meshops.project.apply import write as write_prepared
from meshops.project.events import WebhookReceived
from meshops.project.interface import AppliedRecords, LineageReader
from meshops.project.models import (
    AppliedObject,
    AppliedRecord,
    ApplyResult,
    Approval,
    CheckReport,
    GateReport,
    Plan,
    PromotionResult,
    WebhookDelivery,
)
from meshops.project.plan import plan as make_plan
from meshops.project.promotion import GovernedPromotionGate
from meshops.project.repo import run_git

WEBHOOK_ACTOR = Actor("webhook", "system")


@dataclass
class LocalAreas:
    """The in-process area services plan/apply/check talk to (the `Areas` Protocol)."""

    mesh: Any
    governance: Any
    features: Any
    pipelines: Any
    registry: Any
    lineage: LineageReader
    records: AppliedRecords

    @classmethod
    def of(cls, ctx: Context, records: AppliedRecords) -> LocalAreas:
        from meshops.features.service import FeatureStoreService
        from meshops.governance.service import GovernanceService
        from meshops.kernel.lineage import LineageService
        from meshops.mesh.service import MeshService
        from meshops.pipelines.service import PipelinesService
        from meshops.registry.service import RegistryService

        return cls(
            mesh=MeshService(ctx),
            governance=GovernanceService(ctx),
            features=FeatureStoreService(ctx),
            pipelines=PipelinesService(ctx),
            registry=RegistryService(ctx),
            lineage=LineageService(ctx),
            records=records,
        )


class ProjectService:
    """The embedded implementation of `meshops.project.interface.Project`."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def _areas(self) -> LocalAreas:
        return LocalAreas.of(self.ctx, self)

    # --- applied objects (the C2 link) ---------------------------------------------------------

    def applied(self, project: str | None = None) -> list[AppliedObject]:
        self.ctx.authorize("project.read")
        with self.ctx.db.read() as conn:
            return store.applied(conn, project)

    def record_applied(
        self,
        project: str,
        commit: str | None,
        records: list[AppliedRecord],
        removed: list[str] | None = None,
        dirty: bool = False,
    ) -> list[AppliedObject]:
        self.ctx.authorize("project.apply")
        now = utcnow()
        out = []
        with self.ctx.db.begin() as conn:
            for record in records:
                before = store.get_applied(conn, project, record.urn)
                obj = AppliedObject(
                    project=project,
                    urn=record.urn,
                    kind=record.kind,
                    name=record.name,
                    digest=record.digest,
                    commit=commit,
                    applied_at=now,
                    applied_by=self.ctx.actor.name,
                    detail={**record.detail, "dirty": dirty},
                )
                store.put_applied(conn, obj)
                self.ctx.audit(
                    conn,
                    "project.apply",
                    record.urn,
                    before=before.model_dump(mode="json") if before else None,
                    after=obj.model_dump(mode="json"),
                    detail={"project": project, "commit": commit, "digest": record.digest},
                )
                out.append(obj)
            for urn in removed or []:
                before = store.get_applied(conn, project, urn)
                store.delete_applied(conn, project, urn)
                self.ctx.audit(
                    conn,
                    "project.remove",
                    urn,
                    before=before.model_dump(mode="json") if before else None,
                    detail={"project": project, "commit": commit},
                )
        return out

    # --- plan, apply, check --------------------------------------------------------------------

    def plan(self, root: str | Path = ".") -> Plan:
        self.ctx.authorize("project.plan")
        return make_plan(self._areas(), root)

    def apply(self, root: str | Path = ".", *, allow_dirty: bool = True) -> ApplyResult:
        self.ctx.authorize("project.apply")
        if not allow_dirty:
            from meshops.project.repo import git_info

            if git_info(root).dirty:
                raise Conflict(
                    f"{root} has uncommitted changes",
                    {"fix": "commit them so the applied objects link to a commit"},
                )
        return self._apply(root)

    def _apply(self, root: str | Path) -> ApplyResult:
        return apply_plan(
            self._areas(), root, transaction=self._unit_of_work, limits=self._build_limits(root)
        )

    def apply_prepared(self, prepared: Prepared) -> ApplyResult:
        """Write what a client planned, built and checked where its repository is (the
        HTTP half of `apply`): in one unit of work, with the caller's permissions, each
        write authorised and validated by its area as if called alone."""
        self.ctx.authorize("project.apply")
        return write_prepared(self._areas(), prepared, transaction=self._unit_of_work)

    def _build_limits(self, root: str | Path) -> BuildLimits | None:
        """In the API server a checkout's builds run without user Python (see BuildLimits),
        unless the admin trusts the repository's authors."""
        home = self.ctx.home
        if not is_api_server(home) or home.settings.section("project").get("trusted_builds"):
            return None
        return BuildLimits(Path(root).resolve())

    @contextmanager
    def _unit_of_work(self) -> Iterator[None]:
        """The apply's writes in one transaction of the metadata database. In-process caches
        may have read the unit's own writes; after a rollback they are refreshed so they
        cannot serve objects that never committed."""
        try:
            with self.ctx.db.unit_of_work():
                yield
        except BaseException:
            areas = self._areas()
            areas.governance.refresh_caches()
            areas.features.definitions(fresh=True)
            raise

    def check(self, root: str | Path = ".", *, run_tests: bool = True) -> CheckReport:
        self.ctx.authorize("project.plan")
        return check_module.check(self._areas(), root, run_tests=run_tests)

    # --- approvals and promotion ---------------------------------------------------------------

    def approve(self, model: str, version: int, comment: str = "") -> Approval:
        from meshops.governance.roles import ROLES
        from meshops.governance.service import GovernanceService
        from meshops.registry.service import OpenGate, RegistryService

        registry = RegistryService(self.ctx, gate=OpenGate())
        target = registry.get_version(model, version)
        domain = registry.get_model(model).domain
        self.ctx.authorize("registry.approve", domain)
        if self.ctx.actor.name == target.created_by:
            raise Forbidden(
                f"{self.ctx.actor.name} registered {target.uri} and may not approve it",
                {"fix": "ask someone else (e.g. a business stakeholder) to approve"},
            )
        system = GovernanceService(self.ctx.home.system_context())
        bindings = [
            b.role
            for b in system.list_bindings(self.ctx.actor.name)
            if b.scope in ("platform", domain)
        ]
        wanted = [
            str(r) for r in self.ctx.home.settings.section("promotion").get("approver_roles", [])
        ]
        if wanted:
            roles = [r for r in bindings if r in wanted]
            if not roles:
                raise Forbidden(
                    f"{self.ctx.actor.name} holds none of the approver roles {wanted}",
                    {"fix": f"bind one of {wanted} to {self.ctx.actor.name}"},
                )
        else:
            roles = [r for r in bindings if r in ROLES and ROLES[r].allows("registry.approve")]
        approval = Approval(
            model=model,
            version=version,
            approver=self.ctx.actor.name,
            role=roles[0] if roles else "",
            comment=comment,
            at=utcnow(),
        )
        with self.ctx.db.begin() as conn:
            if not store.add_approval(conn, approval):
                raise Conflict(
                    f"{approval.approver} already approved {target.uri}",
                    {"fix": "an approver counts once"},
                )
            self.ctx.audit(
                conn, "model.approve", target.urn, after=approval.model_dump(mode="json")
            )
        return approval

    def approvals(self, model: str, version: int) -> list[Approval]:
        self.ctx.authorize("registry.read")
        with self.ctx.db.read() as conn:
            return store.approvals(conn, model, version)

    def _target(self, model: str, version: int | None) -> Any:
        from meshops.registry.service import OpenGate, RegistryService

        registry = RegistryService(self.ctx, gate=OpenGate())
        if version is None:
            latest = registry.get_model(model).latest_version
            if latest is None:
                raise InvalidInput(f"model {model!r} has no versions", {"field": "version"})
            version = latest
        return registry, registry.get_version(model, version)

    def gate(self, model: str, alias: str, version: int | None = None) -> GateReport:
        registry, target = self._target(model, version)
        current = registry.get_model(model).aliases.get(alias)
        return GovernedPromotionGate(self.ctx.home).evaluate(self.ctx, target, alias, current)

    def promote(
        self, model: str, to: str = "production", version: int | None = None, reason: str = ""
    ) -> PromotionResult:
        from meshops.registry.service import RegistryService

        _, target = self._target(model, version)
        gate = GovernedPromotionGate(self.ctx.home, always=True)
        move = RegistryService(self.ctx, gate=gate).set_alias(
            model, to, target.version, reason or "meshops models promote"
        )
        assert gate.last_report is not None
        return PromotionResult(
            model=model,
            version=target.version,
            alias=to,
            from_version=move.from_version,
            gate=gate.last_report,
        )

    # --- webhooks ------------------------------------------------------------------------------

    def deliveries(self, limit: int = 100) -> list[WebhookDelivery]:
        self.ctx.authorize("project.read")
        with self.ctx.db.read() as conn:
            return store.deliveries(conn, limit)

    def _webhook_settings(self) -> dict[str, Any]:
        return self.ctx.home.settings.section("webhooks")

    def _record_delivery(
        self, delivery_id: str | None, source: str, event: str, summary: dict[str, Any]
    ) -> None:
        if not delivery_id:
            raise InvalidInput("missing delivery id", {"fix": "send the delivery id header"})
        with self.ctx.db.begin() as conn:
            if not store.claim_delivery(conn, delivery_id, source, event, utcnow()):
                raise Conflict(
                    f"delivery {delivery_id} was already received; replays are refused",
                    {"field": "delivery", "fix": "send a new delivery"},
                )
            received = WebhookReceived(**summary, delivery=delivery_id)
            outbox.emit(conn, f"webhook:{source}:{delivery_id}", received, self.ctx.actor.name)
            self.ctx.audit(
                conn,
                "webhook.receive",
                f"webhook:{source}",
                detail={"delivery": delivery_id, "event": event},
            )

    def _finish(
        self, delivery_id: str, source: str, event: str, status: str, detail: dict[str, Any]
    ) -> WebhookDelivery:
        with self.ctx.db.begin() as conn:
            store.finish_delivery(conn, delivery_id, status, detail)
        return WebhookDelivery(
            delivery_id=delivery_id,
            source=source,
            event=event,
            received_at=utcnow(),
            status=status,
            detail=detail,
        )

    def receive_git(self, headers: dict[str, str], body: bytes) -> WebhookDelivery:
        """A GitHub push / pull_request delivery: verified, recorded once, announced as
        `webhook.received`, and acted on (see docs/workflow.md)."""
        headers = {k.lower(): v for k, v in headers.items()}
        cfg = self._webhook_settings()
        secret = cfg.get("git_secret") or os.environ.get("MESHOPS_WEBHOOK_SECRET")
        webhooks.verify(secret, body, headers.get(webhooks.GITHUB_SIGNATURE))
        event = headers.get(webhooks.GITHUB_EVENT, "")
        delivery_id = headers.get(webhooks.GITHUB_DELIVERY)
        payload = webhooks.parse_json(body)
        summary = webhooks.summarize_github(event, payload)
        self._record_delivery(delivery_id, "github", event, summary)
        assert delivery_id is not None
        status, detail = "recorded", dict(summary)
        checkout = cfg.get("checkout")
        branch = str(cfg.get("branch", "main"))
        try:
            if event == "push" and checkout and summary.get("branch") == branch:
                if summary.get("deleted"):
                    status = "ignored"
                else:
                    result = self._apply_commit(Path(checkout), str(summary["commit"]))
                    status = "applied"
                    detail["applied"] = [f"{c.action} {c.kind} {c.name}" for c in result.applied]
                    detail["removed"] = result.removed
            elif (
                event == "pull_request"
                and checkout
                and summary.get("action")
                in (
                    "opened",
                    "synchronize",
                    "reopened",
                )
            ):
                plan = self._plan_commit(Path(checkout), str(summary["commit"]))
                status = "planned"
                detail["plan"] = [f"{c.action} {c.kind} {c.name}" for c in plan.pending]
                detail["blocked"] = [c.name for c in plan.blocked]
            elif event == "ping":
                status = "ignored"
        except MeshopsError as exc:
            status, detail["error"] = "failed", exc.message
            detail["error_detail"] = exc.detail
        return self._finish(delivery_id, "github", event, status, detail)

    def _apply_commit(self, checkout: Path, commit: str) -> ApplyResult:
        run_git(checkout, "fetch", "--quiet", "origin")
        run_git(checkout, "checkout", "--quiet", "--detach", commit)
        return self._apply(checkout)

    def _plan_commit(self, checkout: Path, commit: str) -> Plan:
        run_git(checkout, "fetch", "--quiet", "origin", commit)
        with tempfile.TemporaryDirectory(prefix="meshops-pr-") as tmp:
            worktree = Path(tmp) / "tree"
            run_git(checkout, "worktree", "add", "--quiet", "--detach", str(worktree), commit)
            try:
                return make_plan(self._areas(), worktree)
            finally:
                run_git(checkout, "worktree", "remove", "--force", str(worktree))

    def receive_generic(self, name: str, headers: dict[str, str], body: bytes) -> WebhookDelivery:
        """A signed delivery from another system: verified (signature, age), recorded once and
        announced as `webhook.received` with `source` = name for pipeline triggers."""
        headers = {k.lower(): v for k, v in headers.items()}
        cfg = self._webhook_settings()
        secrets = cfg.get("generic", {})
        entry = secrets.get(name) if isinstance(secrets, dict) else None
        secret = entry.get("secret") if isinstance(entry, dict) else entry
        webhooks.verify_generic(
            str(secret) if secret else None,
            body,
            headers.get(webhooks.GENERIC_SIGNATURE),
            headers.get(webhooks.GENERIC_TIMESTAMP),
            now=time.time(),
            tolerance=float(cfg.get("tolerance_seconds", webhooks.DEFAULT_TOLERANCE)),
        )
        payload = webhooks.parse_json(body)
        event = headers.get(webhooks.GENERIC_EVENT) or str(payload.get("event", "event"))
        delivery_id = headers.get(webhooks.GENERIC_DELIVERY)
        summary = {"source": name, "event": event, "payload": payload}
        self._record_delivery(delivery_id, name, event, summary)
        assert delivery_id is not None
        return self._finish(delivery_id, name, event, "recorded", {"event": event})
