"""`platform.project` over HTTP: plan, apply and check run here (where the repository is)
against the server's areas through the platform's remote clients; records, approvals,
promotion and deliveries are calls to the server."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from meshops.kernel.http import HttpTransport
from meshops.project import check as check_module
from meshops.project.apply import apply as apply_plan
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

if TYPE_CHECKING:
    from meshops.project.interface import AppliedRecords, Areas


class _PlatformAreas:
    """A platform's area clients plus the project records (the `Areas` Protocol)."""

    def __init__(self, platform: Any, records: AppliedRecords) -> None:
        self._platform = platform
        self.records = records

    def __getattr__(self, name: str) -> Any:
        return getattr(self._platform, name)


class RemoteProject:
    def __init__(self, http: HttpTransport, platform: Any) -> None:
        self.http = http
        self._platform = platform

    def _areas(self) -> Areas:
        areas: Areas = _PlatformAreas(self._platform, self)
        return areas

    def applied(self, project: str | None = None) -> list[AppliedObject]:
        body = self.http.get("/v1/project/applied", **({"project": project} if project else {}))
        return [AppliedObject.model_validate(o) for o in body]

    def record_applied(
        self,
        project: str,
        commit: str | None,
        records: list[AppliedRecord],
        removed: list[str] | None = None,
        dirty: bool = False,
    ) -> list[AppliedObject]:
        body = self.http.post(
            "/v1/project/applied",
            {
                "project": project,
                "commit": commit,
                "records": [r.model_dump(mode="json") for r in records],
                "removed": removed or [],
                "dirty": dirty,
            },
        )
        return [AppliedObject.model_validate(o) for o in body]

    def plan(self, root: str | Path = ".") -> Plan:
        return make_plan(self._areas(), root)

    def apply(self, root: str | Path = ".", *, allow_dirty: bool = True) -> ApplyResult:
        if not allow_dirty:
            from meshops.kernel.errors import Conflict
            from meshops.project.repo import git_info

            if git_info(root).dirty:
                raise Conflict(f"{root} has uncommitted changes", {"fix": "commit them first"})
        return apply_plan(self._areas(), root)

    def check(self, root: str | Path = ".", *, run_tests: bool = True) -> CheckReport:
        return check_module.check(self._areas(), root, run_tests=run_tests)

    def approve(self, model: str, version: int, comment: str = "") -> Approval:
        body = self.http.post(
            f"/v1/project/models/{model}/versions/{version}/approvals", {"comment": comment}
        )
        return Approval.model_validate(body)

    def approvals(self, model: str, version: int) -> list[Approval]:
        body = self.http.get(f"/v1/project/models/{model}/versions/{version}/approvals")
        return [Approval.model_validate(a) for a in body]

    def gate(self, model: str, alias: str, version: int | None = None) -> GateReport:
        params: dict[str, Any] = {"alias": alias}
        if version is not None:
            params["version"] = version
        return GateReport.model_validate(
            self.http.get(f"/v1/project/models/{model}/gate", **params)
        )

    def promote(
        self, model: str, to: str = "production", version: int | None = None, reason: str = ""
    ) -> PromotionResult:
        body = self.http.post(
            f"/v1/project/models/{model}/promote",
            {"to": to, "version": version, "reason": reason},
        )
        return PromotionResult.model_validate(body)

    def deliveries(self, limit: int = 100) -> list[WebhookDelivery]:
        body = self.http.get("/v1/project/deliveries", limit=limit)
        return [WebhookDelivery.model_validate(d) for d in body]
