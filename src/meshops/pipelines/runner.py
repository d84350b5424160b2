"""Running a pipeline somewhere (the caller's process or a worker) while recording it on the
platform through the worker operations (`RunHost`), so both transports share one code path."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from meshops.pipelines.codeversion import code_version_of
from meshops.pipelines.dsl import Graph, PipelineDefinition, load_pipeline
from meshops.pipelines.engine import Engine, LeaseLost
from meshops.pipelines.executors import make_executor
from meshops.pipelines.interface import PipelineWorker, RunHost
from meshops.pipelines.models import (
    CodeVersion,
    PipelineRun,
    RunDetail,
    RunStatus,
    StepRun,
    StepStatus,
)

LOCAL_REF_PREFIX = "local:"


def resolve(pipeline: Any) -> tuple[PipelineDefinition, str]:
    """The pipeline object and the reference a worker could load it by."""
    if isinstance(pipeline, str):
        return load_pipeline(pipeline), pipeline
    if isinstance(pipeline, PipelineDefinition):
        try:
            return pipeline, pipeline.ref
        except Exception:  # defined in a script or a function: runnable here only
            return pipeline, f"{LOCAL_REF_PREFIX}{pipeline.name}"
    raise TypeError(f"expected a @pipeline or a reference string, got {type(pipeline).__name__}")


def run_here(
    pipelines: RunHost,
    pipeline: Any,
    params: dict[str, Any] | None,
    executor: str,
    *,
    tracking: Any = None,
    executor_options: dict[str, Any] | None = None,
    resumed_from: str | None = None,
    reproduces: str | None = None,
    use_cache: bool = True,
    code: CodeVersion | None = None,
    record_ref: str | None = None,
) -> RunDetail:
    """Run here; `code` and `record_ref` override what is recorded about where the code came
    from (a reproduction imports a checkout of a commit from a temporary folder)."""
    definition, ref = resolve(pipeline)
    graph = definition.build(params)  # invalid parameters fail before anything is recorded
    make_executor(executor, **(executor_options or {})).close()  # fail fast on a bad name
    run = pipelines.start_run(
        definition.name,
        record_ref or ref,
        graph.params,
        executor,
        resumed_from=resumed_from,
        reproduces=reproduces,
        code=code or code_version_of(definition),
    )
    prior = _prior_of(pipelines, resumed_from)
    return execute(
        pipelines,
        run,
        graph,
        tracking=tracking,
        executor_options=executor_options,
        prior=prior,
        use_cache=use_cache,
    )


def _prior_of(pipelines: RunHost, run_id: str | None) -> dict[str, StepRun]:
    if run_id is None:
        return {}
    return {s.node: s for s in pipelines.get_run(run_id).steps}


def execute(
    pipelines: RunHost,
    run: PipelineRun,
    graph: Graph,
    *,
    tracking: Any = None,
    executor_options: dict[str, Any] | None = None,
    prior: dict[str, StepRun] | None = None,
    owner: str | None = None,
    still_owner: Callable[[], bool] | None = None,
    use_cache: bool = True,
    step_env: dict[str, str | None] | None = None,
) -> RunDetail:
    """Execute a started (or claimed) run to its end and record the outcome; `step_env` is
    set around each step (a worker: whom the steps act as)."""
    executor = make_executor(run.executor, **(executor_options or {}))
    engine = Engine(
        run.id,
        graph,
        executor,
        pipelines.store_spec(),
        pipelines,
        prior=prior,
        owner=owner,
        still_owner=still_owner,
        use_cache=use_cache,
        step_env=step_env,
    )
    try:
        outcome = engine.run()
        status, error, steps = outcome.status, outcome.error, list(outcome.steps.values())
    except LeaseLost:
        raise
    except Exception as exc:  # the engine itself failed (e.g. store unreachable)
        status, error, steps = RunStatus.FAILED, f"{type(exc).__name__}: {exc}", []
    if tracking is not None and steps:
        record_run_tree(pipelines, tracking, run, graph, steps, status=status)
    pipelines.finish_run(run.id, status, error, owner)
    return pipelines.get_run(run.id)


def record_run_tree(
    pipelines: PipelineWorker,
    tracking: Any,
    run: PipelineRun,
    graph: Graph,
    steps: list[StepRun],
    *,
    status: RunStatus,
) -> None:
    """The run as a tree in the ML metadata store: a parent, one child per step."""
    experiment = f"pipeline:{run.pipeline}"
    parent = tracking.create_run(
        experiment=experiment,
        name=f"{run.pipeline}-{run.id[:8]}",
        tags={"meshops.pipeline": run.pipeline, "meshops.pipeline_run": run.id},
    )
    if graph.params:
        tracking.log_params(parent.id, {k: _param_text(v) for k, v in graph.params.items()})
    for step_run in steps:
        tags = {
            "meshops.pipeline_run": run.id,
            "meshops.step": step_run.step,
            "meshops.step_run": step_run.id,
            "meshops.step_status": step_run.status.value,
            "meshops.code_digest": step_run.code_digest,
        }
        if step_run.cache_hit_of:
            tags["meshops.cache_hit_of"] = step_run.cache_hit_of
        child = tracking.create_run(
            experiment=experiment,
            name=step_run.node,
            parent_run_id=parent.id,
            tags=tags,
            capture_environment=False,
        )
        if step_run.params:
            tracking.log_params(child.id, {k: _param_text(v) for k, v in step_run.params.items()})
        ok = step_run.status != StepStatus.FAILED
        tracking.end_run(child.id, "FINISHED" if ok else "FAILED", step_run.error)
    tracking.end_run(parent.id, "FINISHED" if status == RunStatus.SUCCEEDED else "FAILED")
    pipelines.set_tracking_run(run.id, parent.id)


def _param_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)
