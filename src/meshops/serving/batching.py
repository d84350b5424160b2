"""Adaptive batching: the predict requests waiting on one event loop share one model call.

Every predict request over HTTP is checked, authorised, routed and validated on its own
(`Runtime.begin`), then joins the loop's open batch. The first request to join schedules
the batch's scoring as the loop's next callback (`call_soon`), so the batch holds every
request whose bytes the loop had already read when it got there, and nothing waits for
more: a lone request is scored in the very next turn of the loop, a server under load
scores its queue in a few model calls. No timer, no added latency at low load.

Why: a model call has a fixed cost (a scikit-learn estimator's input checks, the array
conversion, numpy's dispatch) that is most of a one-record prediction. Under concurrent
load the requests queue on the loop anyway; scored together they pay that cost once.

What stays per request: the answer, the request id, the canary draw, the signature check
(its error names that request's record), a model failure (a batch call that fails is
retried request by request, so only the failing request gets the error), the log rows,
the shadow job and the latency metric. Rows of one route (and one `proba`) go in one call,
at most `batch_rows` rows a call (a larger request is a call of its own).

`[serving] batch_rows = 1` (or `MESHOPS_SERVING_BATCH_ROWS=1`) turns batching off: for a
model whose answer for a row depends on the other rows of its call, which a served model
should not do, but a user-written one can.
"""

from __future__ import annotations

import asyncio
import os
from typing import TYPE_CHECKING, Any

from meshops.kernel.errors import InvalidInput, MeshopsError
from meshops.serving import metrics

if TYPE_CHECKING:
    from meshops.kernel.config import Settings
    from meshops.kernel.home import Context
    from meshops.serving.runtime import Pending, Runtime, Served

BATCH_ROWS_ENV = "MESHOPS_SERVING_BATCH_ROWS"
DEFAULT_BATCH_ROWS = 512
MAX_BATCH_ROWS = 100_000


def batch_rows(settings: Settings) -> int:
    """`[serving] batch_rows` (or MESHOPS_SERVING_BATCH_ROWS): the most rows one model call
    of a batch takes; 1 turns batching off."""
    given: Any = os.environ.get(BATCH_ROWS_ENV) or settings.section("serving").get("batch_rows")
    if given is None:
        return DEFAULT_BATCH_ROWS
    try:
        rows = int(given)
    except (TypeError, ValueError):
        rows = 0
    if isinstance(given, bool | float) or not 1 <= rows <= MAX_BATCH_ROWS:
        raise InvalidInput(
            f"[serving] batch_rows must be a whole number from 1 to {MAX_BATCH_ROWS:,}, "
            f"not {given!r}",
            {
                "field": "serving.batch_rows",
                "fix": f"e.g. `batch_rows = {DEFAULT_BATCH_ROWS}` in meshops.toml "
                f"(or {BATCH_ROWS_ENV}); 1 turns batching off",
            },
        )
    return rows


class Batcher:
    """The open batch of each event loop serving predict requests of one runtime."""

    def __init__(self, runtime: Runtime, max_rows: int) -> None:
        self.runtime = runtime
        self.max_rows = max_rows
        # Requests waiting for the scheduled scoring, per loop (a test client's loop may run
        # beside the server's); a loop's entry lives from its first request to the scoring.
        self._open: dict[asyncio.AbstractEventLoop, list[tuple[Pending, asyncio.Future[Any]]]]
        self._open = {}
        self.batches = 0  # batches scored (for tests and benchmarks)
        self.batched = 0  # requests in them

    async def serve(
        self,
        ctx: Context,
        name: str,
        records: list[dict[str, Any]],
        request_id: str | None = None,
        *,
        proba: bool = False,
    ) -> Served:
        """Predict for one request, in the loop's batch; raises MeshopsError for a refused
        or failed request (that request's alone)."""
        if self.max_rows <= 1:
            return self.runtime.serve(ctx, name, records, request_id, proba=proba)
        pending = self.runtime.begin(ctx, name, records, request_id, proba=proba)
        loop = asyncio.get_running_loop()
        waiting = self._open.get(loop)
        if waiting is None:
            waiting = self._open[loop] = []
            loop.call_soon(self._score, loop)
        future: asyncio.Future[Any] = loop.create_future()
        waiting.append((pending, future))
        answer = await future
        if isinstance(answer, MeshopsError):
            raise answer
        served: Served = answer
        return served

    def _score(self, loop: asyncio.AbstractEventLoop) -> None:
        # A request whose client went away (its task cancelled) is not scored.
        waiting = [(p, f) for p, f in self._open.pop(loop, []) if not f.done()]
        pendings = [pending for pending, _ in waiting]
        try:
            self.runtime.score(pendings, max_rows=self.max_rows)
            answers = self.runtime.finish(pendings)
        except Exception as exc:  # the log refusing rows (backpressure, shutdown)
            for _, future in waiting:
                if not future.done():
                    future.set_exception(exc)
            return
        self.batches += 1
        self.batched += len(pendings)
        metrics.TALLY.batch(len(pendings))
        for (_, future), answer in zip(waiting, answers, strict=True):
            if not future.done():
                future.set_result(answer)
