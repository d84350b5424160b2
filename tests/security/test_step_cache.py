"""Step-cache poisoning: anyone with `pipelines.run` can record a step run under any cache
key, pointing at an artifact of its choosing (a pickle, loaded by the victim's materializer).
A lookup over HTTP is offered only executions its caller recorded itself or that were
recorded in-process (an embedded run, a worker on the home)."""

from __future__ import annotations

import base64
import hashlib
import uuid

from meshops.client import Platform
from meshops.kernel.db import utcnow
from meshops.pipelines.models import OutputRef, RunStatus, StepRun, StepStatus
from meshops.pipelines.remote import run_host
from tests.security.conftest import SecurityHome


def _record(platform: Platform, key: str, payload: bytes) -> str:
    pipelines = run_host(platform.pipelines)
    run = pipelines.start_run("poison", "tests.flows:nothing", {}, "inline")
    digest = hashlib.sha256(payload).hexdigest()
    step = StepRun(
        id=uuid.uuid4().hex,
        run_id=run.id,
        node="train",
        step="train",
        status=StepStatus.SUCCEEDED,
        code_digest="0" * 64,
        cache_key=key,
        outputs=[
            OutputRef(
                name="model",
                digest=digest,
                materializer="pickle",
                type="builtins.object",
                size=len(payload),
                inline=base64.b64encode(payload).decode(),
            )
        ],
        started_at=utcnow(),
        finished_at=utcnow(),
    )
    pipelines.record_step_runs(run.id, [step], None)
    pipelines.finish_run(run.id, RunStatus.SUCCEEDED, None, None)
    return step.id


def test_a_strangers_step_run_is_no_cache_hit(sec: SecurityHome) -> None:
    key = hashlib.sha256(b"the victim's next step").hexdigest()
    sec.new_user("cache-attacker", "ml_engineer")
    sec.new_user("cache-victim", "ml_engineer")
    attacker = sec.remote("cache-attacker")
    victim = sec.remote("cache-victim")
    try:
        planted = _record(attacker, key, b"cos\nsystem\n(S'touch /tmp/pwned'\ntR.")
        assert run_host(victim.pipelines).lookup_cache([key]) == {}
        # The recorder itself still reuses its own work.
        assert run_host(attacker.pipelines).lookup_cache([key])[key].id == planted
        # So does the victim, once it has recorded the step itself.
        own = _record(victim, key, b"victim's own bytes")
        assert run_host(victim.pipelines).lookup_cache([key])[key].id == own
    finally:
        attacker.close()
        victim.close()


def test_in_process_records_stay_shared(sec: SecurityHome) -> None:
    key = hashlib.sha256(b"recorded by a worker on the home").hexdigest()
    sec.new_user("cache-reader", "ml_engineer")
    worker = sec.embedded("alice")
    reader = sec.remote("cache-reader")
    try:
        recorded = _record(worker, key, b"a worker's output")
        assert run_host(reader.pipelines).lookup_cache([key])[key].id == recorded
    finally:
        worker.close()
        reader.close()
