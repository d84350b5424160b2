"""Tracking types shared by the service, the store, the HTTP API and the remote client."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

from meshops.kernel.urn import run_urn


class RunStatus(StrEnum):
    RUNNING = "RUNNING"
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    KILLED = "KILLED"


class Experiment(BaseModel):
    id: str
    name: str
    description: str = ""
    tags: dict[str, str] = Field(default_factory=dict)
    created_at: datetime


class Metric(BaseModel):
    key: str
    value: float
    step: int = 0
    timestamp: float  # seconds since the epoch


class Artifact(BaseModel):
    path: str  # relative path inside the run's artifact tree
    digest: str  # sha256 of the bytes in the blob store
    size: int


class DatasetInput(BaseModel):
    urn: str
    digest: str
    name: str = ""
    context: str = "training"


class Run(BaseModel):
    id: str
    experiment_id: str
    name: str
    status: RunStatus
    user: str
    start_time: datetime
    end_time: datetime | None = None
    parent_run_id: str | None = None
    error: str | None = None
    params: dict[str, str] = Field(default_factory=dict)
    metrics: dict[str, float] = Field(default_factory=dict)  # latest value per key
    tags: dict[str, str] = Field(default_factory=dict)
    inputs: list[DatasetInput] = Field(default_factory=list)

    @property
    def urn(self) -> str:
        return run_urn(self.id)


class RunPage(BaseModel):
    runs: list[Run]
    next_page_token: str | None = None


def to_metric(key: str, value: Any, step: int, timestamp: float) -> Metric:
    return Metric(key=key, value=float(value), step=step, timestamp=timestamp)
