"""Pipeline types shared by the engine, the store, the HTTP API and the remote client."""

from __future__ import annotations

import base64
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field, computed_field

from meshops.kernel.bounds import Count, Size
from meshops.kernel.urn import Urn


class RunStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


FINAL_RUN_STATUSES = frozenset({RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED})


class StepStatus(StrEnum):
    SUCCEEDED = "succeeded"  # executed, outputs produced by this step run
    CACHED = "cached"  # skipped: an earlier step run with the same cache key is reused
    REUSED = "reused"  # skipped on resume: the resumed run's output is reused
    FAILED = "failed"
    SKIPPED = "skipped"  # not run because an upstream step failed


# Step runs whose outputs downstream steps (and a later resume) may use.
DONE_STEP_STATUSES = frozenset({StepStatus.SUCCEEDED, StepStatus.CACHED, StepStatus.REUSED})


class Resources(BaseModel):
    """What one execution of a step needs; honoured by the Ray executor (and the process
    pool for cpus: a step never gets more processes than the pool has)."""

    cpus: float = 1.0
    gpus: float = 0.0
    memory: int | None = None  # bytes


INLINE_MAX_BYTES = 4096  # outputs this small live in the step-run record, not the blob store


class OutputRef(BaseModel):
    """An artifact a step produced, named by the sha256 of its bytes: in the blob store, or,
    when small (at most `INLINE_MAX_BYTES`), inline in the step-run record (`inline`, base64)
    so a trivial step costs no file write and fsync; the digest is the same either way."""

    name: str
    digest: str
    materializer: str
    type: str
    size: Size
    inline: str | None = None

    def inline_bytes(self) -> bytes | None:
        return None if self.inline is None else base64.b64decode(self.inline)

    @property
    def urn(self) -> str:
        return artifact_urn(self.digest)


class CodeVersion(BaseModel):
    """Where a pipeline's code came from when it ran: the git commit of the repository
    holding the pipeline's module, whether the working tree had uncommitted changes, and how
    to import the module again from a checkout of that commit."""

    repo: str  # the working tree's root at run time (absolute)
    commit: str
    dirty: bool = False
    diff_sha256: str | None = None  # of `git diff HEAD` when dirty
    path: str  # the pipeline module's file, relative to `repo` (POSIX separators)
    import_root: str | None = None  # for `package.module` refs: the sys.path entry, relative


class PipelineRun(BaseModel):
    id: str
    pipeline: str
    ref: str
    params: dict[str, Any] = Field(default_factory=dict)
    status: RunStatus
    executor: str
    created_by: str
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: str | None = None
    resumed_from: str | None = None
    reproduces: str | None = None
    origin: dict[str, Any] = Field(default_factory=dict)  # manual, schedule or trigger
    tracking_run_id: str | None = None
    claims: int = 0
    lease_owner: str | None = None
    lease_expires_at: datetime | None = None
    code: CodeVersion | None = None  # git commit of the pipeline's code, when in a repository

    @property
    def urn(self) -> str:
        return pipeline_run_urn(self.id)


class StepRun(BaseModel):
    id: str
    run_id: str
    node: str
    step: str
    status: StepStatus
    code_digest: str
    cache_key: str
    params: dict[str, Any] = Field(default_factory=dict)
    inputs: dict[str, str] = Field(default_factory=dict)  # argument name -> artifact digest
    outputs: list[OutputRef] = Field(default_factory=list)
    attempts: Count = 0
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: str | None = None
    cache_hit_of: str | None = None  # id of the step run whose outputs were reused
    logs: str = ""
    tracking_run_id: str | None = None

    @property
    def urn(self) -> str:
        return step_run_urn(self.id)


class RunDetail(BaseModel):
    run: PipelineRun
    steps: list[StepRun]


class Schedule(BaseModel):
    name: str
    cron: str
    ref: str
    params: dict[str, Any] = Field(default_factory=dict)
    executor: str = "process"
    enabled: bool = True
    next_fire_at: datetime
    last_fire_at: datetime | None = None
    created_by: str
    created_at: datetime


DEFAULT_MAX_PENDING = 100


class Trigger(BaseModel):
    name: str
    topic: str
    ref: str
    params: dict[str, Any] = Field(default_factory=dict)
    executor: str = "process"
    match: dict[str, Any] = Field(default_factory=dict)  # payload field -> expected value
    expression: str | None = None  # CEL over `event` (topic, subject, payload, actor)
    max_concurrent: int = 1
    # Matched events waiting for a free slot, at most; a newer one over it is dropped.
    max_pending: int = DEFAULT_MAX_PENDING
    # A newer event for the same subject supersedes the ones still waiting (as CI systems
    # skip intermediate builds of a branch): only the latest version gets a run.
    coalesce_pending: bool = False
    enabled: bool = True
    created_by: str
    created_at: datetime


class TriggerEventStatus(StrEnum):
    PENDING = "pending"  # matched, waiting for the trigger's concurrency limit to allow it
    STARTED = "started"  # a run was queued for it (`run_id`)
    COALESCED = "coalesced"  # superseded by a newer event for the same subject
    DROPPED = "dropped"  # never started: the backlog was full, or the trigger was deleted


class TriggerEvent(BaseModel):
    """One outbox event a trigger matched, and what became of it."""

    id: str
    trigger_name: str
    event_id: int
    topic: str
    subject: str
    status: TriggerEventStatus
    received_at: datetime
    decided_at: datetime | None = None
    run_id: str | None = None
    superseded_by: int | None = None  # the newer event that coalesced this one
    reason: str | None = None


class TriggerState(BaseModel):
    """A trigger with its active runs and what happened to the events it matched."""

    trigger: Trigger
    active_runs: int = 0
    events: dict[str, int] = Field(default_factory=dict)  # event status -> count


class DispatchReport(BaseModel):
    events: int = 0
    runs: list[str] = Field(default_factory=list)
    pending: int = 0  # matched events now waiting for a slot (kept, start later)
    coalesced: int = 0  # waiting events superseded by a newer one for the same subject
    dropped: int = 0  # matched events refused because the trigger's backlog was full

    @computed_field  # type: ignore[prop-decorator]
    @property
    def skipped(self) -> int:
        """Matched events that will never start a run (coalesced or dropped)."""
        return self.coalesced + self.dropped


class ReproducedCode(BaseModel):
    """Which code a reproduction ran, and why."""

    source: str  # "commit": a checkout of the recorded commit; "current": the code as it is
    commit: str | None = None  # the commit the rerun's code came from, when known
    recorded: CodeVersion | None = None  # what the original run recorded
    loaded_from: str | None = None  # the file the pipeline was imported from
    note: str = ""


class ReproduceReport(BaseModel):
    original: str
    rerun: str
    matches: bool
    steps: list[dict[str, Any]]
    code: ReproducedCode | None = None


def pipeline_urn(name: str) -> str:
    return str(Urn.of("pipeline", name))


def pipeline_run_urn(run_id: str) -> str:
    return str(Urn.of("pipelinerun", run_id))


def step_run_urn(step_run_id: str) -> str:
    return str(Urn.of("steprun", step_run_id))


def artifact_urn(digest: str) -> str:
    return str(Urn.of("artifact", digest))
