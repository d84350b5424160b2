"""What a running pipeline step may know about itself, readable from every area, and the
one place that links what a step creates to the step.

The pipelines executors set it around each attempt (inline, process pool and Ray alike),
with the id the step run will be recorded under (assigned when the engine submits the
step; retries keep it). It lives in the kernel so that lower areas (mesh publishes,
tracking runs, registry versions, feature builds, OpenLineage events) can link what they
create to the step and its pipeline run without importing `meshops.pipelines`:

    from meshops.kernel.steps import current_step

    here = current_step()        # None when the code runs outside a pipeline
    if here is not None:
        print(here.run_id, here.node, here.attempt, here.step_run_urn)

Over HTTP the SDK sends the step in the `x-meshops-step` header (`kernel/http.py`); the API
server verifies it against its own state (the pipeline run exists, is running, and the
caller is the identity the run acts as: `pipelines/steps.py`) and only then sets it for
the request (`api/deps.py`), so on the server too `current_step()` is the step the request
was made from, and nothing a client merely claims. A service that creates an object calls
`Context.link_to_step(conn, urn)` in the transaction that creates it: `link` below.
"""

from __future__ import annotations

import contextvars
import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from meshops.kernel.errors import InvalidInput
from meshops.kernel.urn import Urn

if TYPE_CHECKING:
    from sqlalchemy import Connection

# The request header that carries the step context from the SDK to the API server.
HEADER = "x-meshops-step"
MAX_HEADER_CHARS = 1024
_ID = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
MAX_NODE_CHARS = 200
MAX_ATTEMPT = 1000

# How an object relates to the step that links it: `produced` (steprun -produced-> object,
# what the step created) or `consumed` (object -input_to-> steprun, what it read).
StepRelation = Literal["produced", "consumed"]
STEP_RELATIONS: tuple[str, ...] = ("produced", "consumed")


@dataclass(frozen=True)
class StepContext:
    run_id: str
    node: str
    attempt: int
    # The id the step run will be recorded under; "" when the executor did not assign one.
    step_run_id: str = ""

    @property
    def run_urn(self) -> str:
        """The URN of the pipeline run (the lineage node of the whole run)."""
        return str(Urn.of("pipelinerun", self.run_id))

    @property
    def step_run_urn(self) -> str | None:
        """The URN of this step's run, when the executor assigned its id up front."""
        return str(Urn.of("steprun", self.step_run_id)) if self.step_run_id else None

    def header(self) -> str:
        """This context as the value of the `x-meshops-step` request header (ASCII JSON)."""
        return json.dumps(
            {
                "run_id": self.run_id,
                "node": self.node,
                "attempt": self.attempt,
                "step_run_id": self.step_run_id,
            },
            separators=(",", ":"),
        )


_current: contextvars.ContextVar[StepContext | None] = contextvars.ContextVar(
    "meshops_current_step", default=None
)


def current_step() -> StepContext | None:
    return _current.get()


def enter(context: StepContext | None) -> contextvars.Token[StepContext | None]:
    """Make `context` the current step (None: no step) until `leave` with the token."""
    return _current.set(context)


def leave(token: contextvars.Token[StepContext | None]) -> None:
    _current.reset(token)


def parse_header(text: str) -> StepContext:
    """The step context a request claims (not yet verified: see `pipelines/steps.py`)."""

    def bad(why: str) -> InvalidInput:
        return InvalidInput(
            f"malformed {HEADER} header: {why}",
            {
                "field": HEADER,
                "fix": "let the meshops SDK send it (it does inside a pipeline step); "
                "do not set it by hand",
            },
        )

    if len(text) > MAX_HEADER_CHARS:
        raise bad(f"longer than {MAX_HEADER_CHARS} characters")
    try:
        value = json.loads(text)
    except ValueError:
        raise bad("not JSON") from None
    if not isinstance(value, dict):
        raise bad("not a JSON object")
    run_id, node = value.get("run_id"), value.get("node")
    attempt, step_run_id = value.get("attempt"), value.get("step_run_id")
    if not isinstance(run_id, str) or not _ID.match(run_id):
        raise bad("run_id must be a run id")
    if not isinstance(step_run_id, str) or not _ID.match(step_run_id):
        raise bad("step_run_id must be a step run id")
    if not isinstance(node, str) or not 0 < len(node) <= MAX_NODE_CHARS:
        raise bad(f"node must be a step name of 1 to {MAX_NODE_CHARS} characters")
    if not isinstance(attempt, int) or isinstance(attempt, bool):
        raise bad("attempt must be an integer")
    if not 1 <= attempt <= MAX_ATTEMPT:
        raise bad(f"attempt must be between 1 and {MAX_ATTEMPT}")
    return StepContext(run_id, node, attempt, step_run_id)


def link(conn: Connection, urn: str, relation: str = "produced") -> bool:
    """Link `urn` to the current step in the caller's transaction: `steprun -produced-> urn`
    (or `urn -input_to-> steprun` for `consumed`), plus `pipelinerun -contains-> steprun`.
    Outside a step (or with a step whose run id was not assigned) it does nothing and
    returns False. On the API server the current step is only ever a verified one."""
    here = current_step()
    step_urn = here.step_run_urn if here is not None else None
    if here is None or step_urn is None:
        return False
    if relation not in STEP_RELATIONS:
        raise InvalidInput(
            f"unknown step relation {relation!r}",
            {"field": "relation", "fix": f"use one of {', '.join(STEP_RELATIONS)}"},
        )
    from meshops.kernel.lineage import add_edges  # lineage imports this module

    Urn.parse(urn)
    edge = (urn, step_urn, "input_to") if relation == "consumed" else (step_urn, urn, "produced")
    add_edges(conn, [(here.run_urn, step_urn, "contains"), edge])
    return True
