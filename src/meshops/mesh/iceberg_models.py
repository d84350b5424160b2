"""What a compaction of a product's Iceberg ports reports (kept apart from mesh/iceberg.py,
which imports Arrow: the Mesh Protocol imports this for its return type)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class TableMaintenance(BaseModel):
    table: str  # <domain>.<name>__<port>__v<major>
    port: str
    compacted_files: int = 0  # data files of the current snapshot rewritten into one set
    expired_snapshots: int = 0
    expired_versions: list[str] = Field(default_factory=list)  # past the SLA's retention
    removed_files: int = 0
    removed_bytes: int = 0


class CompactionReport(BaseModel):
    product: str
    retention_seconds: float | None = None
    kept_versions: list[str] = Field(default_factory=list)
    tables: list[TableMaintenance] = Field(default_factory=list)
