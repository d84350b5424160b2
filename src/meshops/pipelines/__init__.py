"""Pipelines and orchestration: `@step`/`@pipeline`, DAGs from data dependencies, cached
steps, executors (inline, process pool, Ray), a durable queue, schedules and triggers."""

from meshops.pipelines.dsl import pipeline, step
from meshops.pipelines.models import Resources

__all__ = ["Resources", "pipeline", "step"]
