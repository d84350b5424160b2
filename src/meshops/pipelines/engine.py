"""The engine: walks a planned DAG, consults the cache, hands ready steps to an executor,
retries with backoff, skips what depends on a failure, and records step runs in bulk.

Recording is batched (one write per `FLUSH_EVERY` step runs or `FLUSH_SECONDS`, plus one
cache query per wave of ready steps) so the per-step overhead stays around a millisecond;
nothing is dropped: every step run is written before the run finishes.
"""

from __future__ import annotations

import heapq
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from meshops.kernel.db import utcnow
from meshops.pipelines import dag
from meshops.pipelines.artifacts import StoreSpec
from meshops.pipelines.cache import cache_key
from meshops.pipelines.dsl import Graph, Node
from meshops.pipelines.executors.base import Executor, StepResult, StepTask
from meshops.pipelines.models import (
    DONE_STEP_STATUSES,
    OutputRef,
    RunStatus,
    StepRun,
    StepStatus,
)

FLUSH_EVERY = 500
FLUSH_SECONDS = 1.0
MAX_WAIT_SECONDS = 0.5


class Recorder(Protocol):
    """What the engine needs from the platform (both transports provide it)."""

    def lookup_cache(self, keys: list[str]) -> dict[str, StepRun]: ...

    def record_step_runs(self, run_id: str, steps: list[StepRun], owner: str | None) -> None: ...


class LeaseLost(Exception):
    """Another worker took over the run; this one must stop recording."""


@dataclass
class Outcome:
    status: RunStatus
    error: str | None
    steps: dict[str, StepRun] = field(default_factory=dict)


def new_id() -> str:
    return uuid.uuid4().hex


class Engine:
    def __init__(
        self,
        run_id: str,
        graph: Graph,
        executor: Executor,
        store: StoreSpec,
        recorder: Recorder,
        *,
        prior: dict[str, StepRun] | None = None,
        owner: str | None = None,
        still_owner: Callable[[], bool] | None = None,
        use_cache: bool = True,
        step_env: dict[str, str | None] | None = None,
    ) -> None:
        self.use_cache = use_cache
        self.step_env = step_env or {}
        self.run_id = run_id
        self.graph = graph
        self.plan = dag.plan(graph)
        self.executor = executor
        self.store = store
        self.recorder = recorder
        self.prior = prior or {}
        self.owner = owner
        self.still_owner = still_owner
        self.records: dict[str, StepRun] = {}
        self.buffer: list[StepRun] = []
        self.last_flush = time.monotonic()
        self.waiting = {n: len(d) for n, d in self.plan.deps.items()}
        self.ready: deque[str] = deque()
        self.delayed: list[tuple[float, str, int]] = []
        self.inflight: dict[str, tuple[str, dict[str, Any], dict[str, str]]] = {}
        # The id each executed step's run is recorded under, assigned when the step is
        # first submitted (the step sees it as `current_step().step_run_id` and links what
        # it creates to it) and kept by its retries: one step run, many attempts.
        self.step_run_ids: dict[str, str] = {}

    # --- the loop ---------------------------------------------------------------------------

    def run(self) -> Outcome:
        try:
            self._adopt_prior()
            while self.ready or self.inflight or self.delayed:
                self._dispatch_ready()
                self._submit_due_retries()
                if self.inflight:
                    for result in self.executor.wait(self._wait_timeout()):
                        self._on_result(result)
                elif self.delayed and not self.ready:
                    time.sleep(max(0.0, min(self.delayed[0][0] - time.monotonic(), 0.5)))
                self._maybe_flush()
            self._flush()
        finally:
            self.executor.close()
        failed = [n for n, s in self.records.items() if s.status == StepStatus.FAILED]
        if failed:
            first = self.records[failed[0]]
            reason = (first.error or "").split("\n", 1)[0]
            error = f"step {failed[0]} failed: {reason}"
            return Outcome(RunStatus.FAILED, error, self.records)
        return Outcome(RunStatus.SUCCEEDED, None, self.records)

    def _wait_timeout(self) -> float:
        if self.ready:
            return 0.0
        if self.delayed:
            return max(0.0, min(self.delayed[0][0] - time.monotonic(), MAX_WAIT_SECONDS))
        return MAX_WAIT_SECONDS

    # --- prior work (a resumed run, or this run before its worker died) ---------------------

    def _adopt_prior(self) -> None:
        for node_id in self.plan.order:
            prior = self.prior.get(node_id)
            node = self.graph.nodes[node_id]
            deps_done = all(d in self.records for d in node.deps)
            if (
                prior
                and prior.status in DONE_STEP_STATUSES
                and deps_done
                and (prior.step == node.step.name)
            ):
                if prior.run_id == self.run_id:
                    self.records[node_id] = prior  # already recorded by this run
                else:
                    self._record(self._reused(node, prior))
                for child in self.plan.dependents[node_id]:
                    self.waiting[child] -= 1
        for node_id in self.plan.order:
            if node_id not in self.records and self.waiting[node_id] == 0:
                self.ready.append(node_id)

    def _reused(self, node: Node, prior: StepRun) -> StepRun:
        now = utcnow()
        return prior.model_copy(
            update={
                "id": new_id(),
                "run_id": self.run_id,
                "status": StepStatus.REUSED,
                "attempts": 0,
                "started_at": now,
                "finished_at": now,
                "cache_hit_of": prior.cache_hit_of or prior.id,
                "logs": "",
                "tracking_run_id": None,
            }
        )

    # --- dispatch -------------------------------------------------------------------------

    def _inputs(self, node: Node) -> dict[str, OutputRef]:
        return {arg: self.records[h.node].outputs[h.index] for arg, h in node.inputs.items()}

    def _dispatch_ready(self) -> None:
        while self.ready:
            wave = list(self.ready)
            self.ready.clear()
            keyed = []
            for node_id in wave:
                node = self.graph.nodes[node_id]
                inputs = self._inputs(node)
                digests = {arg: ref.digest for arg, ref in inputs.items()}
                key = cache_key(node.step.code_digest, node.params, digests)
                keyed.append((node, inputs, digests, key))
            lookup = [k for node, _, _, k in keyed if self._cached(node)]
            hits = self.recorder.lookup_cache(lookup) if lookup else {}
            for node, inputs, digests, key in keyed:
                hit = hits.get(key) if self._cached(node) else None
                if hit is not None:
                    self._record(self._cache_hit(node, hit, digests, key))
                    self._release(node.id)
                else:
                    self.inflight[node.id] = (key, node.params, digests)
                    self.step_run_ids[node.id] = new_id()
                    self._submit(node, inputs, attempt=1)

    def _cached(self, node: Node) -> bool:
        return self.use_cache and node.step.options.cache

    def _submit(self, node: Node, inputs: dict[str, OutputRef], attempt: int) -> None:
        task = StepTask(
            node.id,
            node.step,
            node.params,
            inputs,
            attempt,
            self.store,
            run_id=self.run_id,
            step_run_id=self.step_run_ids[node.id],
            env=self.step_env,
        )
        self.executor.submit(task)

    def _submit_due_retries(self) -> None:
        now = time.monotonic()
        while self.delayed and self.delayed[0][0] <= now:
            _, node_id, attempt = heapq.heappop(self.delayed)
            node = self.graph.nodes[node_id]
            self._submit(node, self._inputs(node), attempt)

    def _cache_hit(self, node: Node, hit: StepRun, digests: dict[str, str], key: str) -> StepRun:
        now = utcnow()
        return StepRun(
            id=new_id(),
            run_id=self.run_id,
            node=node.id,
            step=node.step.name,
            status=StepStatus.CACHED,
            code_digest=node.step.code_digest,
            cache_key=key,
            params=node.params,
            inputs=digests,
            outputs=hit.outputs,
            attempts=0,
            started_at=now,
            finished_at=now,
            cache_hit_of=hit.id,
        )

    # --- results --------------------------------------------------------------------------

    def _on_result(self, result: StepResult) -> None:
        node = self.graph.nodes[result.node]
        if not result.ok and result.attempt <= node.step.options.retries:
            backoff = node.step.options.retry_backoff * 2 ** (result.attempt - 1)
            heapq.heappush(self.delayed, (time.monotonic() + backoff, node.id, result.attempt + 1))
            return
        key, params, digests = self.inflight.pop(node.id)
        record = StepRun(
            id=self.step_run_ids.pop(node.id),
            run_id=self.run_id,
            node=node.id,
            step=node.step.name,
            status=StepStatus.SUCCEEDED if result.ok else StepStatus.FAILED,
            code_digest=node.step.code_digest,
            cache_key=key,
            params=params,
            inputs=digests,
            outputs=result.outputs,
            attempts=result.attempt,
            started_at=result.started_at,
            finished_at=result.finished_at,
            error=result.error,
            logs=result.logs,
        )
        self._record(record)
        if result.ok:
            self._release(node.id)
        else:
            self._skip_downstream(node.id)

    def _release(self, node_id: str) -> None:
        for child in self.plan.dependents[node_id]:
            self.waiting[child] -= 1
            if self.waiting[child] == 0:
                self.ready.append(child)

    def _skip_downstream(self, failed: str) -> None:
        now = utcnow()
        for node_id in self.plan.downstream([failed]) - {failed}:
            if node_id in self.records:
                continue
            node = self.graph.nodes[node_id]
            self._record(
                StepRun(
                    id=new_id(),
                    run_id=self.run_id,
                    node=node_id,
                    step=node.step.name,
                    status=StepStatus.SKIPPED,
                    code_digest=node.step.code_digest,
                    cache_key="",
                    params=node.params,
                    started_at=now,
                    finished_at=now,
                    error=f"upstream step {failed} failed",
                )
            )

    # --- recording ------------------------------------------------------------------------

    def _record(self, step_run: StepRun) -> None:
        self.records[step_run.node] = step_run
        self.buffer.append(step_run)

    def _maybe_flush(self) -> None:
        if len(self.buffer) >= FLUSH_EVERY or (
            self.buffer and time.monotonic() - self.last_flush >= FLUSH_SECONDS
        ):
            self._flush()

    def _flush(self) -> None:
        if self.still_owner is not None and not self.still_owner():
            raise LeaseLost(f"run {self.run_id}: another worker holds the lease now")
        if self.buffer:
            self.recorder.record_step_runs(self.run_id, self.buffer, self.owner)
            self.buffer = []
        self.last_flush = time.monotonic()
