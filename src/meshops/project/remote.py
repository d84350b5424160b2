"""What `platform.project` does differently over HTTP; records, approvals, promotion and
deliveries are derived from the declarations in `project.interface`.

Plan and check run here, where the repository is, against the server's areas through the
platform's remote clients. Apply prepares here too (plans, builds the products with the
repository's transforms, runs every check) and then sends the prepared writes, a document
and the built tables, to the server, which writes them in one unit of work: a failure
midway leaves nothing applied.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from meshops.kernel.errors import Conflict
from meshops.kernel.http import HttpTransport
from meshops.kernel.rpc import RemoteArea
from meshops.project import check as check_module
from meshops.project.apply import Prepared, prepare
from meshops.project.models import ApplyResult, CheckReport, Plan
from meshops.project.plan import plan as make_plan
from meshops.project.repo import git_info

if TYPE_CHECKING:
    import pyarrow as pa

    from meshops.project.interface import AppliedRecords, Areas

APPLY_PREPARED = "/v1/project/apply/prepared"


class _PlatformAreas:
    """A platform's area clients plus the project records (the `Areas` Protocol)."""

    def __init__(self, platform: Any, records: AppliedRecords) -> None:
        self._platform = platform
        self.records = records

    def __getattr__(self, name: str) -> Any:
        return getattr(self._platform, name)


class RemoteProjectBase(RemoteArea):
    def __init__(self, http: HttpTransport, platform: Any) -> None:
        super().__init__(http)
        self._platform = platform

    def _areas(self) -> Areas:
        records: AppliedRecords = self  # type: ignore[assignment]  # with its derived half
        areas: Areas = _PlatformAreas(self._platform, records)
        return areas

    def plan(self, root: str | Path = ".") -> Plan:
        return make_plan(self._areas(), root)

    def apply(self, root: str | Path = ".", *, allow_dirty: bool = True) -> ApplyResult:
        if not allow_dirty and git_info(root).dirty:
            raise Conflict(f"{root} has uncommitted changes", {"fix": "commit them first"})
        return self.apply_prepared(prepare(self._areas(), root))

    def apply_prepared(self, prepared: Prepared) -> ApplyResult:
        """Send prepared writes; the server writes them all in one transaction, or none.
        Each table is a file part in the kernel's wire codec, named in the document."""
        writes = prepared.writes.model_copy(deep=True)
        tables: dict[str, pa.Table] = {}
        for product in writes.products:
            for port, table in prepared.tables[product.key].items():
                part = f"table-{len(tables)}"
                product.parts[port] = part
                tables[part] = table
        fields = {"writes": writes.model_dump_json()}
        body = self.http.call("POST", APPLY_PREPARED, multipart=(fields, tables))
        return ApplyResult.model_validate(body)

    def check(self, root: str | Path = ".", *, run_tests: bool = True) -> CheckReport:
        return check_module.check(self._areas(), root, run_tests=run_tests)
