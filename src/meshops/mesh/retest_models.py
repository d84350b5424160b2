"""What a re-run of a published version's contract test reports (`Mesh.test_version`; kept
apart from the service, which imports Arrow: the Mesh Protocol imports this for its return
type)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from meshops.mesh.models import RuleResult


class RuleVerdict(RuleResult):
    """One rule's outcome now, beside what the version's publish recorded for it."""

    # Answered from the Iceberg snapshot's manifests (record counts, null counts, bounds
    # proving a range empty): no value of the rows was read for it.
    from_metadata: bool = False
    # The verdict stored when the version was published (None: the rule was not judged then).
    passed_at_publish: bool | None = None


class PortTestReport(BaseModel):
    port: str
    format: Literal["parquet", "iceberg"]
    rows: int
    passed: bool  # no failed rule of severity error
    seconds: float = 0.0  # reading the stored rows and testing them
    results: list[RuleVerdict] = Field(default_factory=list)

    @property
    def failures(self) -> list[RuleVerdict]:
        return [r for r in self.results if not r.passed and r.severity == "error"]


class VersionTestReport(BaseModel):
    product: str
    version: str
    urn: str
    tested_at: datetime
    tested_by: str
    passed: bool  # every port tested passed
    ports: list[PortTestReport] = Field(default_factory=list)
