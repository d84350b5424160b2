"""Small step outputs live inline in the step-run record (no blob file, no fsync); large
ones in the blob store. Either way the digest, cache, lineage and artifact fetch agree (B9)."""

from __future__ import annotations

import hashlib
import json

from meshops.client import Platform
from meshops.pipelines import pipeline, step
from meshops.pipelines.models import INLINE_MAX_BYTES, RunStatus, StepStatus
from meshops.pipelines.remote import run_host


@step
def small(seed: int) -> dict[str, int]:
    return {"seed": seed}


@step
def big(value: dict[str, int]) -> list[int]:
    return [value["seed"]] * (INLINE_MAX_BYTES // 2)  # serialises beyond the inline limit


@step
def total(values: list[int], value: dict[str, int]) -> int:
    return sum(values) + value["seed"]


@pipeline
def mixed(seed: int = 3) -> object:
    first = small(seed)
    return total(big(first), first)


def _dump(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def test_small_outputs_inline_large_in_blobs(platform: Platform) -> None:
    first = platform.pipelines.run(mixed, {"seed": 3})
    assert first.run.status == RunStatus.SUCCEEDED, first.run.error
    steps = {s.node: s for s in first.steps}
    out_small, out_big, out_total = (steps[n].outputs[0] for n in ("small", "big", "total"))
    assert out_small.inline is not None and out_total.inline is not None
    assert out_big.inline is None and out_big.size > INLINE_MAX_BYTES
    # The digest is the sha256 of the bytes either way, and downstream steps saw the values.
    assert out_small.digest == hashlib.sha256(_dump({"seed": 3})).hexdigest()
    assert out_total.inline_bytes() == _dump(3 * (INLINE_MAX_BYTES // 2) + 3)
    assert steps["big"].inputs == {"value": out_small.digest}
    # Fetching by digest works for both kinds (inline ones come from the step-run record).
    assert run_host(platform.pipelines).get_artifact(out_small.digest) == _dump({"seed": 3})
    assert json.loads(run_host(platform.pipelines).get_artifact(out_big.digest)) == [3] * (
        INLINE_MAX_BYTES // 2
    )

    again = platform.pipelines.run(mixed, {"seed": 3})
    assert {s.status for s in again.steps} == {StepStatus.CACHED}
    assert {s.node: s.outputs for s in again.steps} == {s.node: s.outputs for s in first.steps}
