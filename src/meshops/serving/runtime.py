"""The serving data plane in one process: loaded endpoints, reloads, scoring and logging.

One `Runtime` per `Home` per process (`runtime_for(home)`), shared by the HTTP router, the
standalone app and the embedded `ServingService.predict`. Endpoints load on first use.

Reloads. Every change that can alter what an endpoint serves emits an outbox event in its
transaction (the registry's alias moves and version registrations, serving's own traffic
changes), so the outbox's highest id is a change counter for the whole platform. A watcher
thread reads it (one primary-key read) every `MESHOPS_SERVING_POLL_SECONDS` (default 2 s),
which is how a standalone server in another process sees a change; in this process it is
also woken right after any write transaction on the home's database commits, so a change
made here (`meshops server` moving an alias) is served at once. Only when the counter moved
does it check each loaded endpoint's generation and the versions its routes resolve to;
when something changed it loads the new models in that thread and swaps the deployment in
one assignment. Requests in flight finish on the object they started with, so a reload
never fails a request. On PostgreSQL a transaction holding a lower event id can commit
after a higher one was seen, so the poll after a change checks once more, and a full check
runs every `FULL_CHECK_SECONDS` whatever the counter says.

Shadow routes are scored off the request path: the request enqueues a job on a bounded
queue and returns; one worker thread scores the shadows and logs their rows. When the
queue is full the request scores its shadows inline (slower, never dropped), so memory
stays bounded and every shadow prediction is still logged. `flush()` drains the queue
before writing the log, so windows and rolls see every shadow row.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import event

from meshops.kernel import lineage
from meshops.kernel.errors import MeshopsError, NotFound
from meshops.serving import metrics, routing
from meshops.serving.batching import Batcher, batch_rows
from meshops.serving.models import Endpoint, Prediction, check_request_id
from meshops.serving.predlog import PredictionLogWriter, dumps, now
from meshops.serving.scoring import (
    Route,
    checked_rows,
    logged_output,
    route_of,
    score,
    score_rows,
)

if TYPE_CHECKING:
    from sqlalchemy import Connection, Engine

    from meshops.kernel.home import Context, Home

log = logging.getLogger(__name__)
POLL_ENV = "MESHOPS_SERVING_POLL_SECONDS"
FULL_CHECK_SECONDS = 60.0
# A burst of commits in this process wakes the watcher at most this often.
MIN_WAKE_GAP_SECONDS = 0.05
FAILURE_LOG_SECONDS = 60.0
_WROTE = "meshops_serving_wrote"  # DBAPI connection info key: a write committed on it


@dataclass(frozen=True)
class Deployment:
    endpoint: Endpoint
    primary: Route
    canary: Route | None
    shadows: tuple[Route, ...]

    @property
    def key(self) -> tuple[Any, ...]:
        routes = [self.primary, self.canary, *self.shadows]
        return (self.endpoint.generation, *(r.version if r else None for r in routes))


class Runtime:
    def __init__(
        self, home: Home, poll_seconds: float | None = None, *, watch: bool = True
    ) -> None:
        """`watch=False`: no watcher thread; reloads happen only when `poll()` is called."""
        self.home = home
        self.watch = watch
        self.poll_seconds = poll_seconds or float(os.environ.get(POLL_ENV, "2.0"))
        self.log = PredictionLogWriter(home)
        self.shadows = ShadowScorer(self.log)
        self.batcher = Batcher(self, batch_rows(home.settings))
        self._deployments: dict[str, Deployment] = {}
        # The change counter each loaded endpoint was last known current at.
        self._checked: dict[str, int] = {}
        self._recheck = False
        self._last_full_check = time.monotonic()
        self._load_lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._watcher: threading.Thread | None = None
        self._hooked: Engine | None = None
        self.reloads = 0
        self.polls = 0

    # --- deployments -------------------------------------------------------------------------

    def is_loaded(self, name: str) -> bool:
        return name in self._deployments

    def deployment(self, name: str) -> Deployment:
        found = self._deployments.get(name)
        if found is not None:
            return found
        with self._load_lock:
            found = self._deployments.get(name)
            if found is None:
                seen = self._change_counter()  # before loading: a change during it is seen
                found = self._load(name)
                self._deployments[name] = found
                self._checked[name] = seen
                self._start_watcher()
        return found

    def _load(self, name: str) -> Deployment:
        from meshops.registry.service import RegistryService
        from meshops.serving import store

        ctx = self.home.system_context()
        with ctx.db.read() as conn:
            endpoint = store.get_endpoint(conn, name)
        if endpoint is None:
            raise NotFound(
                f"no endpoint {name!r}",
                {"field": "endpoint", "fix": "see `meshops endpoints list`"},
            )
        # The data plane loads as the system: whoever configured the endpoint was
        # authorised to read these models then; callers are authorised per request.
        registry = RegistryService(ctx)

        trust = endpoint.trust_model_code  # set explicitly (and audited) on the endpoint

        def load(uri: str, role: str) -> Route:
            from meshops.serving.trust import check_may_load

            # A pickled model's code runs only where the process may run it (trust.py).
            check_may_load(self.home, uri, registry.resolve(uri), trust)
            return route_of(name, uri, registry.load_model(uri, trust=trust), role)

        deployment = Deployment(
            endpoint=endpoint,
            primary=load(endpoint.model, "primary"),
            canary=load(endpoint.canary, "canary") if endpoint.canary else None,
            shadows=tuple(load(uri, "shadow") for uri in endpoint.shadows),
        )
        self._record_lineage(ctx, deployment)
        return deployment

    def _record_lineage(self, ctx: Context, deployment: Deployment) -> None:
        routes = [deployment.primary, deployment.canary, *deployment.shadows]
        edges = [(r.model.version.urn, deployment.endpoint.urn, "deployed_to") for r in routes if r]
        with ctx.db.begin() as conn:
            lineage.add_edges(conn, edges)

    def forget(self, name: str) -> None:
        """Drop a loaded endpoint (deleted, or to force a reload on next use)."""
        with self._load_lock:
            self._deployments.pop(name, None)
            self._checked.pop(name, None)

    # --- reloads -----------------------------------------------------------------------------

    def poll(self) -> int:
        """The watcher's step: read the change counter and check the loaded endpoints it
        may concern; returns how many were swapped."""
        self.polls += 1
        counter = self._change_counter()
        full = self._recheck or time.monotonic() - self._last_full_check >= FULL_CHECK_SECONDS
        stale = [n for n, seen in list(self._checked.items()) if full or seen < counter]
        if not stale:
            return 0
        self._recheck = not full  # a change was seen: look once more next time
        if full:
            self._last_full_check = time.monotonic()
        return self.refresh(stale, counter)

    def refresh(self, names: list[str] | None = None, counter: int | None = None) -> int:
        """Reload every loaded endpoint (of `names`) whose config or resolved versions
        changed; returns how many were swapped."""
        if counter is None:
            counter = self._change_counter()
        swapped = 0
        for name in names if names is not None else list(self._deployments):
            current = self._deployments.get(name)
            if current is None:
                continue
            try:
                fresh = None if self._current_key(current) == current.key else self._load(name)
            except NotFound:
                self.forget(name)
                continue
            except Exception:
                # Keep serving what is loaded; the next full check tries again.
                log.exception("reloading endpoint %s failed", name)
                self._recheck = True
                continue
            with self._load_lock:
                if name not in self._deployments:
                    continue  # forgotten meanwhile
                self._checked[name] = max(self._checked.get(name, 0), counter)
                if fresh is not None:
                    self._deployments[name] = fresh  # one assignment: the atomic swap
                    swapped += 1
                    self.reloads += 1
        return swapped

    def _change_counter(self) -> int:
        from meshops.serving import store

        with self.home.db.read() as conn:
            return store.change_counter(conn)

    def _current_key(self, current: Deployment) -> tuple[Any, ...]:
        from meshops.registry.service import RegistryService
        from meshops.serving import store

        ctx = self.home.system_context()
        with ctx.db.read() as conn:
            generation = store.generations(conn, [current.endpoint.name]).get(current.endpoint.name)
        if generation is None:
            raise NotFound(f"endpoint {current.endpoint.name!r} was deleted")
        if generation != current.endpoint.generation:
            return (generation,)
        registry = RegistryService(ctx)
        routes = [current.primary, current.canary, *current.shadows]
        return (generation, *(registry.resolve(r.uri).version if r else None for r in routes))

    def _start_watcher(self) -> None:
        if self.watch and self._watcher is None:
            self._hook_commits()
            self._watcher = threading.Thread(
                target=self._watch, name="meshops-serving-watch", daemon=True
            )
            self._watcher.start()

    def _watch(self) -> None:
        failing = _Failures()
        while not self._stop.is_set():
            self._wake.wait(self.poll_seconds)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.poll()
            except Exception as exc:
                failing.failed(exc)
            else:
                failing.succeeded()
            self._stop.wait(MIN_WAKE_GAP_SECONDS)

    def _hook_commits(self) -> None:
        """Wake the watcher when a write transaction of this process has committed. The
        "commit" event fires before the database commits, so it only marks the connection;
        the wake comes when the connection returns to the pool, after the commit."""
        engine = self.home.db.engine
        event.listen(engine, "commit", _mark_write)
        event.listen(engine, "checkin", self._on_checkin)  # the pool's, kept across dispose()
        self._hooked = engine

    def _unhook_commits(self) -> None:
        engine, self._hooked = self._hooked, None
        if engine is None:
            return
        for name, listener in (("commit", _mark_write), ("checkin", self._on_checkin)):
            if event.contains(engine, name, listener):
                event.remove(engine, name, listener)

    def _on_checkin(self, _dbapi_connection: Any, record: Any) -> None:
        if record is not None and record.info.pop(_WROTE, False):
            self._wake.set()

    # --- predictions -------------------------------------------------------------------------

    def predict(
        self,
        ctx: Context,
        name: str,
        records: list[dict[str, Any]],
        request_id: str | None = None,
        *,
        proba: bool = False,
    ) -> Prediction:
        """Score `records` on the endpoint; `proba`: each prediction is an object with the
        label (`prediction`) and one `proba_<class>` per class of the classifier."""
        served = self.serve(ctx, name, records, request_id, proba=proba)
        # Built from checked values: pydantic's validation would only repeat the checks.
        return Prediction.model_construct(
            request_id=served.request_id,
            endpoint=name,
            model=served.route.model.name,
            model_version=served.route.version,
            predictions=served.outputs,
        )

    def serve(
        self,
        ctx: Context,
        name: str,
        records: list[dict[str, Any]],
        request_id: str | None = None,
        *,
        proba: bool = False,
    ) -> Served:
        """`predict` without building its pydantic answer (the HTTP data plane encodes the
        answer straight to JSON)."""
        pending = self.begin(ctx, name, records, request_id, proba=proba)
        self.score([pending])
        answered = self.finish([pending])[0]
        if isinstance(answered, MeshopsError):
            raise answered
        return answered

    # A predict request in three steps, so that the data plane can score many requests in
    # one model call (batching.py): `begin` each, `score` them together, `finish` them.

    def begin(
        self,
        ctx: Context,
        name: str,
        records: list[dict[str, Any]],
        request_id: str | None = None,
        *,
        proba: bool = False,
    ) -> Pending:
        """Check, authorise, enrich and route one request, and check its records against
        the route's signature. Raises MeshopsError for a refused request."""
        started = time.perf_counter()
        request_id = check_request_id(request_id) if request_id else new_request_id()
        try:
            deployment = self.deployment(name)
            ctx.authorize("serving.predict", deployment.endpoint.domain)
            added = self._enrich(ctx, deployment, records)
            merged = [{**a, **r} for a, r in zip(added, records, strict=True)] if added else records
            canary = deployment.canary
            pct = deployment.endpoint.canary_percent
            route = canary if canary and routing.goes_to_canary(request_id, pct) else None
            role = "canary" if route else "primary"
            route = route or deployment.primary
            rows = checked_rows(route, merged)
        except MeshopsError as exc:
            metrics.ERRORS.labels(name, exc.error).inc()
            raise
        return Pending(
            request_id, name, deployment, route, role, records, merged, added, rows, proba, started
        )

    def score(self, pendings: list[Pending], max_rows: int = 1) -> None:
        """Score begun requests: those of one route (and `proba`) in one model call of at
        most `max_rows` rows when there are several, each on its own if that call fails or
        its output cannot be split back (so a failure is the failing request's alone)."""
        for group in _batches(pendings, max_rows):
            if len(group) == 1 or not _score_together(group):
                for pending in group:
                    _score_alone(pending)

    def finish(self, pendings: list[Pending]) -> list[Served | MeshopsError]:
        """Log, shadow and count scored requests; per request, what it is answered with.
        The log comes first: when it refuses the rows (backpressure, shutdown), nothing of
        these requests was shadowed or counted as served."""
        answers: list[Served | MeshopsError] = []
        scored: list[Pending] = []
        rows: list[tuple[Any, ...]] = []
        at = now()
        for pending in pendings:
            if pending.error is not None:
                metrics.ERRORS.labels(pending.name, pending.error.error).inc()
                answers.append(pending.error)
                continue
            route, outputs = pending.route, pending.outputs
            served = Scored(
                pending.name, route, pending.role, outputs, pending.elapsed, pending.proba
            )
            rows.extend(_log_rows(pending.request_id, served, pending.records, pending.added, at))
            scored.append(pending)
            answers.append(Served(pending.request_id, route, outputs))
        if rows:
            self.log.append(rows)
        for pending in scored:
            if pending.deployment.shadows:
                self.shadows.submit(_shadow_job(pending, at))
            metrics.TALLY.served(pending.route.counts, time.perf_counter() - pending.started)
        return answers

    def _enrich(
        self, ctx: Context, deployment: Deployment, records: list[dict[str, Any]]
    ) -> list[dict[str, Any]] | None:
        spec = deployment.endpoint.enrichment
        if spec is None:
            return None
        keyed = [i for i, r in enumerate(records) if all(k in r for k in spec.entity_keys)]
        if not keyed:
            return None
        from meshops.features.service import FeatureStoreService

        entity_rows = [{k: records[i][k] for k in spec.entity_keys} for i in keyed]
        response = FeatureStoreService(ctx).online(entity_rows, spec.features)
        added: list[dict[str, Any]] = [{} for _ in records]
        for i, row in zip(keyed, response.rows, strict=True):
            added[i] = dict(row.values)
        return added

    def flush(self) -> None:
        """Score the queued shadows, then write every buffered log row."""
        self.shadows.drain()
        self.log.flush()

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        self._unhook_commits()
        self.shadows.close()
        self.log.close()
        metrics.TALLY.flush()  # a scrape after shutdown sees every answered request


class _Failures:
    """The watcher's log while its polls fail (the database is down, say): the first
    failure with its traceback, then one line at most every FAILURE_LOG_SECONDS, and a line
    when a poll succeeds again: a poll every two seconds must not flood the log."""

    def __init__(self) -> None:
        self.count = 0
        self._logged = 0.0

    def failed(self, exc: Exception) -> None:
        self.count += 1
        now_ = time.monotonic()
        if self.count == 1:
            log.exception("endpoint watcher failed; serving what is loaded, polling on")
        elif now_ - self._logged >= FAILURE_LOG_SECONDS:
            log.warning("endpoint watcher still failing (%d polls): %s", self.count, exc)
        else:
            return
        self._logged = now_

    def succeeded(self) -> None:
        if self.count:
            log.warning("endpoint watcher recovered after %d failed polls", self.count)
        self.count = 0


@dataclass(frozen=True, slots=True)
class Served:
    """What one predict request was answered with."""

    request_id: str
    route: Route
    outputs: list[Any]


@dataclass(slots=True)
class Pending:
    """A predict request between `Runtime.begin` and `Runtime.finish`."""

    request_id: str
    name: str
    deployment: Deployment
    route: Route
    role: str
    records: list[dict[str, Any]]  # as the client sent them (what the log keeps)
    merged: list[dict[str, Any]]  # with the enrichment (what the model sees)
    added: list[dict[str, Any]] | None
    rows: list[Any]  # `merged` checked against the route's signature
    proba: bool
    started: float
    outputs: list[Any] = field(default_factory=list)
    elapsed: float = 0.0  # seconds from `begin` to the model's answer (the log's latency)
    error: MeshopsError | None = None


def _batches(pendings: list[Pending], max_rows: int) -> list[list[Pending]]:
    """The requests of each route (and `proba`) in runs of at most `max_rows` rows."""
    open_: dict[tuple[int, bool], list[Pending]] = {}
    rows: dict[tuple[int, bool], int] = {}
    done: list[list[Pending]] = []
    for pending in pendings:
        key = (id(pending.route), pending.proba)
        n = len(pending.rows)
        if key in open_ and rows[key] + n > max_rows:
            done.append(open_.pop(key))
        if key not in open_:
            open_[key], rows[key] = [], 0
        open_[key].append(pending)
        rows[key] += n
    return done + list(open_.values())


def _shadow_job(pending: Pending, at: datetime) -> ShadowJob:
    shadows = pending.deployment.shadows
    return ShadowJob(
        pending.request_id,
        pending.name,
        shadows,
        pending.records,
        pending.merged,
        pending.added,
        at,
        pending.proba,
    )


def _score_alone(pending: Pending) -> None:
    try:
        outputs = score_rows(pending.route, pending.rows, proba=pending.proba)
    except MeshopsError as exc:
        pending.error = exc
        return
    assert outputs is not None
    pending.outputs, pending.elapsed = outputs, time.perf_counter() - pending.started


def _score_together(group: list[Pending]) -> bool:
    """One model call for the rows of every request of `group` (one route, one `proba`);
    False when it failed or its output is not one value per row."""
    first = group[0]
    rows = [row for pending in group for row in pending.rows]
    try:
        outputs = score_rows(first.route, rows, proba=first.proba, per_row=True)
    except MeshopsError:
        return False
    if outputs is None:
        return False
    done = time.perf_counter()
    at = 0
    for pending in group:
        n = len(pending.rows)
        pending.outputs, pending.elapsed = outputs[at : at + n], done - pending.started
        at += n
    return True


class RequestIds:
    """Request ids: 128 random bits as 32 hex digits (the form of `uuid4().hex`), cut from
    blocks of OS randomness, one system call per 256 ids rather than one per request. A
    forked child starts a fresh block: it never repeats its parent's ids."""

    BLOCK = 16 * 256

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._block = b""
        self._at = 0
        os.register_at_fork(after_in_child=self._reset)

    def __call__(self) -> str:
        with self._lock:
            at = self._at
            if at >= len(self._block):
                self._block, at = os.urandom(self.BLOCK), 0
            self._at = at + 16
            block = self._block
        return block[at : at + 16].hex()

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._block, self._at = b"", 0


new_request_id = RequestIds()


@dataclass(frozen=True)
class ShadowJob:
    request_id: str
    endpoint: str
    routes: tuple[Route, ...]
    records: list[dict[str, Any]]  # as the client sent them (what the log keeps)
    merged: list[dict[str, Any]]  # with the enrichment (what the models see)
    added: list[dict[str, Any]] | None
    at: datetime  # the request's log time, shared by its primary and shadow rows
    proba: bool = False


class ShadowScorer:
    """Scores shadow routes on one background thread fed by a bounded queue.

    A full queue does not drop work: `submit` then scores inline on the caller's thread
    (counted in `inline`), which bounds memory at `max_pending` jobs."""

    def __init__(self, log: PredictionLogWriter, max_pending: int = 1_000) -> None:
        self.log = log
        self._queue: queue.Queue[ShadowJob | None] = queue.Queue(maxsize=max_pending)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = False
        self.inline = 0

    def submit(self, job: ShadowJob) -> None:
        if self._closed:
            self.run(job)
            return
        self._start()
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            self.inline += 1
            self.run(job)

    def run(self, job: ShadowJob) -> None:
        rows: list[tuple[Any, ...]] = []
        for route in job.routes:
            started = time.perf_counter()
            try:
                # A shadow without probabilities still logs its labels.
                wants = job.proba and route.model.classes is not None
                outputs = score(route, job.merged, proba=wants)
            except Exception as exc:
                # A failing shadow must never fail (or stop) anything else.
                metrics.ERRORS.labels(job.endpoint, f"shadow_{type(exc).__name__}").inc()
                continue
            elapsed = time.perf_counter() - started
            metrics.TALLY.served(route.counts, elapsed)
            scored = Scored(job.endpoint, route, "shadow", outputs, elapsed, wants)
            rows.extend(_log_rows(job.request_id, scored, job.records, job.added, job.at))
        if rows:
            self.log.append(rows)

    def drain(self, timeout: float = 60.0) -> None:
        """Return once every job submitted so far has been scored and appended."""
        done = self._queue.all_tasks_done
        with done:
            if not done.wait_for(lambda: self._queue.unfinished_tasks == 0, timeout):
                raise MeshopsError(f"shadow scoring did not catch up within {timeout} s")

    def close(self) -> None:
        with self._lock:
            self._closed = True
            thread = self._thread
        if thread is not None:
            self._queue.put(None)  # after every queued job: they are scored first
            thread.join(60.0)

    @property
    def pending(self) -> int:
        return self._queue.unfinished_tasks

    def _start(self) -> None:
        if self._thread is not None:
            return
        with self._lock:
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(
                    target=self._work, name="meshops-serving-shadows", daemon=True
                )
                self._thread.start()

    def _work(self) -> None:
        while True:
            job = self._queue.get()
            try:
                if job is None:
                    return
                self.run(job)
            except Exception:
                log.exception("shadow scoring failed")
            finally:
                self._queue.task_done()


@dataclass(frozen=True)
class Scored:
    endpoint: str
    route: Route
    role: str
    outputs: list[Any]
    elapsed: float
    proba: bool = False


def _log_rows(
    request_id: str,
    scored: Scored,
    records: list[dict[str, Any]],
    added: list[dict[str, Any]] | None,
    at: datetime,
) -> list[tuple[Any, ...]]:
    endpoint, role = scored.endpoint, scored.role
    model = scored.route.model.name
    version = scored.route.version
    ms = scored.elapsed * 1000.0
    # Encoded now, not by the writer thread: an SDK caller may reuse its dicts.
    return [
        (
            request_id,
            i,
            endpoint,
            model,
            version,
            role,
            dumps(record),
            dumps(added[i]) if added else "{}",
            dumps(logged_output(output) if scored.proba else output),
            ms,
            at,
        )
        for i, (record, output) in enumerate(zip(records, scored.outputs, strict=True))
    ]


def _mark_write(conn: Connection) -> None:
    # Read transactions commit too; only the write transactions of `Database.begin()`
    # (which set this option) can change what an endpoint serves.
    if conn.get_execution_options().get("meshops_write"):
        conn.info[_WROTE] = True


_RUNTIMES: dict[int, Runtime] = {}
_RUNTIMES_LOCK = threading.Lock()


def runtime_for(home: Home) -> Runtime:
    found = _RUNTIMES.get(id(home))
    if found is not None and found.home is home:
        return found
    with _RUNTIMES_LOCK:
        found = _RUNTIMES.get(id(home))
        if found is None or found.home is not home:
            found = Runtime(home)
            _RUNTIMES[id(home)] = found
            home.on_close(lambda: close_runtime(home))  # its threads stop with the home
        return found


def existing_runtime(home: Home) -> Runtime | None:
    found = _RUNTIMES.get(id(home))
    return found if found is not None and found.home is home else None


def close_runtime(home: Home) -> None:
    """Stop the watcher and write every buffered prediction (graceful shutdown)."""
    with _RUNTIMES_LOCK:
        found = _RUNTIMES.pop(id(home), None)
    if found is not None and found.home is home:
        found.close()


def close_all_runtimes() -> None:
    """Close every runtime of this process (tests, interpreter exit)."""
    with _RUNTIMES_LOCK:
        found = list(_RUNTIMES.values())
        _RUNTIMES.clear()
    for runtime in found:
        runtime.close()
