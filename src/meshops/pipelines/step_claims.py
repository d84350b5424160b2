"""The API server's check of the step a request says it comes from (`x-meshops-step`).

A step that talks to a server sends its step context with every request (`kernel/http.py`)
so that what the server creates for it is linked to the step run. The header is the
client's word; this decides, from the server's own state, whether to believe it:

- the pipeline run exists here (a run of another home, e.g. a local run whose step reads
  from this server, is no claim about this server: the request goes on without a step);
- it is running (a finished run's steps are done: 409);
- the caller is the identity the run acts as: its submitter (`created_by`, whom an
  in-process worker lends the steps, see `worker.run_identity`) or the principal whose
  worker claimed it last (an HTTP worker hands its steps its own token). Anyone else
  naming the run is refused (403): a forged header never creates an edge;
- the step run id is not already recorded for another run or node (403).
"""

from __future__ import annotations

import logging

from sqlalchemy import select

from meshops.kernel.errors import Conflict, Forbidden, NotFound
from meshops.kernel.home import Context
from meshops.kernel.steps import HEADER, StepContext
from meshops.pipelines import store
from meshops.pipelines.models import RunStatus, pipeline_run_urn

log = logging.getLogger("meshops.steps")


def verify(ctx: Context, claimed: StepContext) -> StepContext | None:
    """`claimed` if the server's state confirms it; None if the run is not one of this
    server's; raises (Forbidden, Conflict) if the run is here and the claim is false."""
    with ctx.db.read() as conn:
        try:
            run = store.get_run(conn, claimed.run_id)
        except NotFound:
            log.info("%s names run %s, unknown here: ignored", HEADER, claimed.run_id)
            return None
        actor = ctx.actor.name
        acts_for_run = actor == run.created_by or (
            store.last_claimer(conn, pipeline_run_urn(run.id)) == actor
        )
        if not acts_for_run:
            raise Forbidden(
                f"{actor} does not act for pipeline run {run.id}: its steps act as "
                f"{run.created_by} (or the worker that claimed it)",
                {
                    "field": HEADER,
                    "run": run.id,
                    "fix": "connect from a step with the identity its run acts as, or do "
                    "not send the step header",
                },
            )
        if run.status != RunStatus.RUNNING:
            raise Conflict(
                f"pipeline run {run.id} is {run.status.value}: its steps cannot act any more",
                {"field": HEADER, "run": run.id, "status": run.status.value},
            )
        recorded = conn.execute(
            select(store.step_runs.c.run_id, store.step_runs.c.node).where(
                store.step_runs.c.id == claimed.step_run_id
            )
        ).first()
    if recorded is not None and (recorded.run_id, recorded.node) != (run.id, claimed.node):
        raise Forbidden(
            f"step run {claimed.step_run_id} is not step {claimed.node} of run {run.id}",
            {"field": HEADER, "run": run.id, "fix": "let the SDK send the step header"},
        )
    return claimed
