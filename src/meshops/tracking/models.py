"""Tracking types shared by the service, the store, the HTTP API and the remote client."""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, Field

from meshops.kernel.bounds import (
    MAX_METRIC_VALUES_PER_RUN,
    MAX_PARAMS_PER_RUN,
    JsonObject,
)
from meshops.kernel.errors import InvalidInput
from meshops.kernel.urn import run_urn

DEFAULT_EXPERIMENT = "default"


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
    lifecycle_stage: str = "active"  # or "deleted" (restorable)


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
    lifecycle_stage: str = "active"  # or "deleted" (restorable)

    @property
    def urn(self) -> str:
        return run_urn(self.id)


class RunSpec(BaseModel):
    """One run of a batch (`Tracking.create_runs`), made whole in one go: an import of a
    run that ran elsewhere, or a run described after the fact. A terminal status without
    an `end_time` ends at the time of the request (as `end_run` does); a RUNNING run takes
    further values through the per-call methods."""

    experiment: str = DEFAULT_EXPERIMENT  # name or id; created on first use
    name: str | None = None
    status: RunStatus = RunStatus.FINISHED
    start_time: datetime | None = None  # the time of the request when left out
    end_time: datetime | None = None
    error: str | None = None
    tags: dict[str, str] = Field(default_factory=dict, max_length=MAX_PARAMS_PER_RUN)
    params: Annotated[JsonObject, Field(max_length=MAX_PARAMS_PER_RUN)] = Field(
        default_factory=dict
    )
    metrics: list[Metric] = Field(default_factory=list, max_length=MAX_METRIC_VALUES_PER_RUN)


class RunPage(BaseModel):
    runs: list[Run]
    next_page_token: str | None = None


# Validation rules (documented in docs/tracking.md) ------------------------------------

KEY_PATTERN = re.compile(r"^[A-Za-z0-9_\-./ :]{1,250}$")
KEY_RULE = "1-250 characters: letters, digits, '_', '-', '.', '/', ' ' and ':'"
NAME_MAX = 256
PARAM_VALUE_MAX = 6000
TAG_VALUE_MAX = 8000
ERROR_MAX = 20_000


def as_text(value: object) -> str:
    """A param or tag value as stored: text as it is, None as `null`, others by `str`."""
    return value if isinstance(value, str) else "null" if value is None else str(value)


def check_key(key: object, field: str) -> str:
    """Param, metric and tag keys; also refuses path tricks like '..' segments."""
    if not isinstance(key, str) or not KEY_PATTERN.match(key) or ".." in key.split("/"):
        raise InvalidInput(
            f"invalid {field} key {key!r}: keys are {KEY_RULE}",
            {"field": field, "value": str(key)[:300], "fix": f"rename the key ({KEY_RULE})"},
        )
    return key


def check_name(name: str, field: str) -> str:
    if not name.strip() or len(name) > NAME_MAX or any(ord(c) < 32 for c in name):
        raise InvalidInput(
            f"invalid {field} {name[:300]!r}: names are 1-{NAME_MAX} printable characters",
            {"field": field, "fix": f"use a non-empty name of at most {NAME_MAX} characters"},
        )
    return name


def check_value(value: str, field: str, key: str, limit: int) -> str:
    if len(value) > limit:
        raise InvalidInput(
            f"{field} {key!r} is {len(value)} characters long; the limit is {limit}",
            {
                "field": f"{field}.{key}",
                "size": len(value),
                "limit": limit,
                "fix": "log long text as an artifact instead",
            },
        )
    return value


def check_artifact_path(path: str) -> str:
    """A relative POSIX path inside the run's artifact tree."""
    parts = path.split("/")
    if (
        not path
        or len(path) > 1000
        or path.startswith("/")
        or any(p in ("", ".", "..") for p in parts)
        or "\\" in path
    ):
        raise InvalidInput(
            f"invalid artifact path {path!r}",
            {
                "field": "artifact_path",
                "fix": "use a relative path like 'model/weights.bin' without '..' or empty parts",
            },
        )
    return path
