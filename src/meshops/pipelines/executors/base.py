"""What every executor shares: the task, its result, and running one attempt of a step
(load inputs, call with a timeout, capture output, materialize results into the store)."""

from __future__ import annotations

import base64
import contextlib
import contextvars
import hashlib
import io
import os
import signal
import threading
import traceback
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from meshops.kernel.db import utcnow
from meshops.pipelines import context, materializers
from meshops.pipelines.artifacts import ArtifactStore, StoreSpec, open_store
from meshops.pipelines.dsl import StepDefinition
from meshops.pipelines.models import INLINE_MAX_BYTES, OutputRef

MAX_LOG_CHARS = 64_000


@dataclass
class StepTask:
    node: str
    step: StepDefinition
    params: dict[str, Any]
    inputs: dict[str, OutputRef]
    attempt: int
    store: StoreSpec
    run_id: str = ""  # the pipeline run, exposed to the step by `context.current_step()`
    # The id the step run will be recorded under, assigned by the engine when it first
    # submits the step and kept by its retries: what the step creates links to it.
    step_run_id: str = ""
    # Environment variables set while the step runs (None: unset), in whichever process
    # runs it: whom the step's `meshops.connect()` acts as (see `worker.run_identity`).
    env: dict[str, str | None] = field(default_factory=dict)


@dataclass
class StepResult:
    node: str
    ok: bool
    attempt: int
    started_at: datetime
    finished_at: datetime
    outputs: list[OutputRef] = field(default_factory=list)
    error: str | None = None
    logs: str = ""
    timed_out: bool = False


class Executor(Protocol):
    name: str

    def submit(self, task: StepTask) -> None: ...

    def wait(self, timeout: float | None) -> list[StepResult]:
        """Results of tasks that finished; blocks up to `timeout` for at least one."""
        ...

    def close(self) -> None: ...


class StepTimeout(Exception):
    pass


class ObjectCache:
    """Recently produced values by digest, so an in-process consumer skips a load."""

    def __init__(self, size: int = 64) -> None:
        self.size = size
        self.values: OrderedDict[str, Any] = OrderedDict()

    def get(self, digest: str) -> Any:
        value = self.values.get(digest, _MISSING)
        if value is not _MISSING:
            self.values.move_to_end(digest)
        return value

    def put(self, digest: str, value: Any) -> None:
        self.values[digest] = value
        if len(self.values) > self.size:
            self.values.popitem(last=False)


_MISSING = object()


def run_task(task: StepTask, objects: ObjectCache | None = None) -> StepResult:
    """One attempt of a step, in whatever process the executor chose."""
    store = open_store(task.store)
    started = utcnow()
    logs = io.StringIO()
    here = context.StepContext(task.run_id, task.node, task.attempt, task.step_run_id)
    token = context.enter(here)
    try:
        with (
            _environment(task.env),
            contextlib.redirect_stdout(logs),
            contextlib.redirect_stderr(logs),
        ):
            kwargs = dict(task.params)
            for arg, ref in task.inputs.items():
                kwargs[arg] = _load(store, ref, objects)
            value = call_with_timeout(task.step, kwargs, task.step.options.timeout)
            outputs = _materialize(task.step, value, store, objects)
    except StepTimeout as exc:
        return _failure(task, started, logs, f"StepTimeout: {exc}", timed_out=True)
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
        detail = "".join(traceback.format_exception(exc)[-8:])
        return _failure(task, started, logs, f"{type(exc).__name__}: {exc}\n{detail}")
    finally:
        context.leave(token)
    return StepResult(task.node, True, task.attempt, started, utcnow(), outputs, logs=_tail(logs))


@contextlib.contextmanager
def _environment(values: dict[str, str | None]) -> Iterator[None]:
    """Set (or unset, for None) environment variables around a step, then restore them.
    Executors run one run's steps at a time per process, so no other step sees them."""
    before = {name: os.environ.get(name) for name in values}
    _apply(values)
    try:
        yield
    finally:
        _apply(before)


def _apply(values: dict[str, str | None]) -> None:
    for name, value in values.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def _failure(
    task: StepTask, started: datetime, logs: io.StringIO, error: str, timed_out: bool = False
) -> StepResult:
    return StepResult(
        task.node,
        False,
        task.attempt,
        started,
        utcnow(),
        error=error,
        logs=_tail(logs),
        timed_out=timed_out,
    )


def _tail(logs: io.StringIO) -> str:
    text = logs.getvalue()
    return text[-MAX_LOG_CHARS:]


def _load(store: ArtifactStore, ref: OutputRef, objects: ObjectCache | None) -> Any:
    if objects is not None:
        value = objects.get(ref.digest)
        if value is not _MISSING:
            return value
    data = ref.inline_bytes()
    if data is None:
        data = store.get_bytes(ref.digest)
    value = materializers.by_name(ref.materializer).load(data)
    if objects is not None:
        objects.put(ref.digest, value)
    return value


def _materialize(
    step_def: StepDefinition, value: Any, store: ArtifactStore, objects: ObjectCache | None
) -> list[OutputRef]:
    names = step_def.outputs
    if len(names) == 1:
        values = [value]
    elif isinstance(value, tuple | list) and len(value) == len(names):
        values = list(value)
    else:
        raise TypeError(f"step {step_def.name} must return {len(names)} values ({names})")
    refs = []
    for name, item in zip(names, values, strict=True):
        materializer = materializers.for_value(item)
        data = materializer.dump(item)
        inline = None
        if len(data) <= INLINE_MAX_BYTES:
            # Small outputs ride in the step-run record (written in the engine's batched
            # transaction) instead of one blob file + fsync each.
            digest = hashlib.sha256(data).hexdigest()
            inline = base64.b64encode(data).decode("ascii")
        else:
            digest = store.put_bytes(data)
        if objects is not None:
            objects.put(digest, item)
        refs.append(
            OutputRef(
                name=name,
                digest=digest,
                materializer=materializer.name,
                type=materializers.type_name(item),
                size=len(data),
                inline=inline,
            )
        )
    return refs


def call_with_timeout(
    step_def: StepDefinition, kwargs: dict[str, Any], timeout: float | None
) -> Any:
    """Call the step, interrupting it after `timeout` seconds.

    In a main thread (process-pool children, Ray workers, the CLI) SIGALRM interrupts the
    step wherever it is in Python code. Elsewhere the step runs in a helper thread and is
    abandoned (reported as timed out) when the time is up; Python cannot kill a thread.
    """
    if timeout is None:
        return step_def.fn(**kwargs)
    if threading.current_thread() is threading.main_thread():
        return _call_with_alarm(step_def, kwargs, timeout)
    return _call_in_thread(step_def, kwargs, timeout)


def _call_with_alarm(step_def: StepDefinition, kwargs: dict[str, Any], timeout: float) -> Any:
    def on_alarm(_signum: int, _frame: Any) -> None:
        raise StepTimeout(f"step {step_def.name} exceeded its timeout of {timeout}s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        return step_def.fn(**kwargs)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _call_in_thread(step_def: StepDefinition, kwargs: dict[str, Any], timeout: float) -> Any:
    box: dict[str, Any] = {}
    here = contextvars.copy_context()  # the helper thread sees the step's context

    def target() -> None:
        try:
            box["value"] = here.run(step_def.fn, **kwargs)
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True, name=f"step-{step_def.name}")
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise StepTimeout(f"step {step_def.name} exceeded its timeout of {timeout}s")
    if "error" in box:
        raise box["error"]
    return box["value"]
