"""Tracking use cases over a home: one transaction per call, authorised, audited."""

from __future__ import annotations

import base64
import json
import math
import time
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    and_,
    false,
    func,
    literal_column,
    not_,
    or_,
    select,
    true,
)

from meshops.kernel import lineage, openlineage, outbox
from meshops.kernel.bounds import MAX_OFFSET
from meshops.kernel.db import insert_ignoring_conflicts, utcnow
from meshops.kernel.errors import Conflict, InvalidInput, NotFound
from meshops.kernel.home import Context
from meshops.kernel.steps import current_step
from meshops.kernel.urn import Urn, run_urn
from meshops.tracking import batch, environment, store
from meshops.tracking.active import ActiveRun, MetricBuffer
from meshops.tracking.artifacts import artifact_files, select_artifacts, write_artifacts
from meshops.tracking.events import RunFinished
from meshops.tracking.models import (
    DEFAULT_EXPERIMENT,
    ERROR_MAX,
    PARAM_VALUE_MAX,
    TAG_VALUE_MAX,
    Artifact,
    DatasetInput,
    Experiment,
    Metric,
    Run,
    RunPage,
    RunSpec,
    RunStatus,
    as_text,
    check_artifact_path,
    check_key,
    check_name,
    check_value,
)
from meshops.tracking.search import (
    TIME_ATTRIBUTES,
    BoolOp,
    Comparison,
    Expr,
    Field,
    OrderKey,
    parse_filter,
    parse_order_by,
)

MAX_RESULTS_LIMIT = 50_000
TERMINAL = {RunStatus.FINISHED, RunStatus.FAILED, RunStatus.KILLED}
# The pipeline run a run was created in (set by the platform inside a step).
PIPELINE_RUN_TAG = "meshops.pipeline_run"


def new_id() -> str:
    return uuid.uuid4().hex


class TrackingService:
    """The embedded implementation of `Tracking`."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.metric_buffer = MetricBuffer(self.log_metric_rows)

    # experiments ---------------------------------------------------------------------
    def create_experiment(
        self, name: str, description: str = "", tags: dict[str, str] | None = None
    ) -> Experiment:
        self.ctx.authorize("tracking.write")
        check_name(name, "experiment name")
        clean_tags = _check_tags(tags or {})
        with self.ctx.db.begin() as conn:
            if _experiment_row(conn, name) is not None:
                raise Conflict(
                    f"experiment {name!r} already exists",
                    {"field": "name", "fix": "pick another name or use the existing experiment"},
                )
            experiment = _insert_experiment(conn, name, description, clean_tags)
            self.ctx.audit(
                conn,
                "tracking.create_experiment",
                str(Urn.of("experiment", experiment.id)),
                after=experiment.model_dump(mode="json"),
            )
        return experiment

    def get_experiment(self, name_or_id: str) -> Experiment:
        self.ctx.authorize("tracking.read")
        with self.ctx.db.read() as conn:
            row = _experiment_row(conn, name_or_id)
        if row is None:
            raise _experiment_not_found(name_or_id)
        return _experiment(row)

    def list_experiments(self) -> list[Experiment]:
        self.ctx.authorize("tracking.read")
        with self.ctx.db.read() as conn:
            rows = conn.execute(select(store.experiments).order_by(store.experiments.c.name))
            return [_experiment(r) for r in rows.mappings()]

    # runs ------------------------------------------------------------------------------
    def create_run(
        self,
        experiment: str = DEFAULT_EXPERIMENT,
        name: str | None = None,
        parent_run_id: str | None = None,
        tags: dict[str, str] | None = None,
        capture_environment: bool = True,
    ) -> Run:
        self.ctx.authorize("tracking.write")
        check_name(experiment, "experiment")
        if name is not None:
            check_name(name, "run name")
        all_tags: dict[str, str] = {}
        packages: Artifact | None = None
        if capture_environment:
            env = environment.capture()
            all_tags.update(env.tags)
            # The blob is written before the transaction that references it.
            digest = self.ctx.blobs.put_bytes(env.packages)
            packages = Artifact(
                path=environment.PACKAGES_ARTIFACT, digest=digest, size=len(env.packages)
            )
        all_tags.update(_check_tags(tags or {}))
        all_tags.update(_pipeline_tags())
        run_id = new_id()
        with self.ctx.db.begin() as conn:
            exp = _experiment_row(conn, experiment)
            experiment_id = exp["id"] if exp else _ensure_experiment(conn, experiment)
            if parent_run_id is not None:
                _run_row(conn, parent_run_id)
            row = {
                "id": run_id,
                "experiment_id": experiment_id,
                "name": name or f"run-{run_id[:8]}",
                "status": RunStatus.RUNNING.value,
                "user": self.ctx.actor.name,
                "start_time": utcnow(),
                "end_time": None,
                "parent_run_id": parent_run_id,
                "error": None,
            }
            conn.execute(store.runs.insert().values(**row))
            _write_tags(conn, run_id, all_tags)
            if packages is not None:
                _write_artifacts(conn, run_id, [packages])
            if parent_run_id is not None:
                lineage.add_edge(conn, run_urn(parent_run_id), run_urn(run_id), "parent_of")
            self.ctx.link_to_step(conn, run_urn(run_id))  # inside a pipeline step
            self.ctx.audit(conn, "tracking.create_run", run_urn(run_id), after=_jsonable(row))
            created = _load_runs(conn, [row])[0]
            exp_name = exp["name"] if exp else experiment
        _ol_run(self.ctx, "START", exp_name, run_id, parent_run_id=parent_run_id)
        return created

    def start_run(
        self,
        experiment: str = DEFAULT_EXPERIMENT,
        name: str | None = None,
        parent_run_id: str | None = None,
        tags: dict[str, str] | None = None,
        capture_environment: bool = True,
    ) -> ActiveRun:
        run = self.create_run(experiment, name, parent_run_id, tags, capture_environment)
        return ActiveRun(self, run, self.metric_buffer)

    def create_runs(self, runs: list[RunSpec]) -> list[str]:
        """Many whole runs in one transaction: all are written or none (a bad run raises
        InvalidInput naming `runs[i]` and its field). Returns the new ids in order."""
        self.ctx.authorize("tracking.write")
        if not runs:
            return []
        # Ids grouped per batch and ascending: the batch's rows reach each run-id index in
        # one place and in key order (batch.new_ids).
        ids = batch.new_ids(len(runs))
        prepared = batch.prepare(runs, ids, self.ctx.actor.name, _pipeline_tags())
        with self.ctx.db.begin() as conn:
            experiment_ids = {
                name: _experiment_or_new(conn, name) for name in dict.fromkeys(prepared.experiments)
            }
            batch.write(conn, prepared, experiment_ids)
            if current_step() is not None:
                for run_id in ids:
                    self.ctx.link_to_step(conn, run_urn(run_id))
            first = str(Urn.of("experiment", experiment_ids[prepared.experiments[0]]))
            detail = {
                "count": len(ids),
                "experiments": sorted(set(experiment_ids.values())),
                "run_ids": ids[:100],
            }
            self.ctx.audit(conn, "tracking.create_runs", first, detail=detail)
        # Batches come back to back (an import): empty the WAL after each, or it grows
        # without bound on SQLite and slows every read (Database.checkpoint_wal).
        self.ctx.db.checkpoint_wal()
        return ids

    def get_run(self, run_id: str) -> Run:
        self.ctx.authorize("tracking.read")
        with self.ctx.db.read() as conn:
            return _load_runs(conn, [_run_row(conn, run_id)])[0]

    def resolve_run_id(self, id_or_prefix: str) -> str:
        """The whole id of the run `id_or_prefix` names: its id, or a unique prefix of it
        (tables print ids short); an ambiguous prefix is an error listing the candidates."""
        self.ctx.authorize("tracking.read")
        with self.ctx.db.read() as conn:
            return resolve_id_prefix(
                conn, store.runs.c.id, id_or_prefix, "run", "meshops runs list"
            )

    def end_run(self, run_id: str, status: str = "FINISHED", error: str | None = None) -> Run:
        self.ctx.authorize("tracking.write")
        final = _check_status(status)
        if error is not None and len(error) > ERROR_MAX:
            error = error[: ERROR_MAX - 20] + "\n... (truncated)"
        self.metric_buffer.flush()
        with self.ctx.db.begin() as conn:
            row = _running_row(conn, run_id)
            values = {"status": final.value, "end_time": utcnow(), "error": error}
            conn.execute(store.runs.update().where(store.runs.c.id == run_id).values(**values))
            payload = {"run_id": run_id, "experiment_id": row["experiment_id"], "status": final}
            outbox.emit(conn, run_urn(run_id), RunFinished(**payload), self.ctx.actor.name)
            self.ctx.audit(
                conn,
                "tracking.end_run",
                run_urn(run_id),
                before={"status": row["status"]},
                after={"status": final.value, "error": error},
            )
            ended = _load_runs(conn, [{**row, **values}])[0]
            exp = _experiment_row(conn, row["experiment_id"])
        state = _OL_END.get(final, "OTHER")
        exp_name = exp["name"] if exp else ""
        parent = row["parent_run_id"]
        inputs = [i.urn for i in ended.inputs]  # what the run logged with log_input
        _ol_run(self.ctx, state, exp_name, run_id, parent_run_id=parent, error=error, inputs=inputs)
        return ended

    # params, tags, metrics -------------------------------------------------------------
    def log_params(self, run_id: str, params: dict[str, Any]) -> None:
        self.ctx.authorize("tracking.write")
        clean = {
            check_key(k, "param"): check_value(as_text(v), "param", k, PARAM_VALUE_MAX)
            for k, v in params.items()
        }
        with self.ctx.db.begin() as conn:
            _running_row(conn, run_id)
            existing = store.key_values(conn, store.params, [run_id])[run_id]
            changed = {k: (existing[k], v) for k, v in clean.items() if existing.get(k, v) != v}
            if changed:
                key, (old, new) = next(iter(changed.items()))
                raise Conflict(
                    f"param {key!r} of run {run_id} is already {old!r}; params are immutable",
                    {
                        "field": f"params.{key}",
                        "logged": old,
                        "new": new,
                        "fix": "log the new value under another key, or use a tag or metric",
                    },
                )
            rows = [{"run_id": run_id, "key": k, "value": v} for k, v in clean.items()]
            insert_ignoring_conflicts(conn, store.params, rows, ["run_id", "key"])

    def set_tags(self, run_id: str, tags: dict[str, str]) -> None:
        """Tags annotate a run at any time, also after it ended (e.g. `reviewed=yes`)."""
        self.ctx.authorize("tracking.write")
        clean = _check_tags(tags)
        with self.ctx.db.begin() as conn:
            _run_row(conn, run_id)
            _write_tags(conn, run_id, clean)

    def log_metric(
        self, run_id: str, key: str, value: float, step: int = 0, timestamp: float | None = None
    ) -> None:
        """Buffered: sent with the next batch (`flush()`, run end, or every 50k values)."""
        check_key(key, "metric")
        ts = time.time() if timestamp is None else timestamp
        self.metric_buffer.add((run_id, key, float(value), int(step), ts))

    def flush(self) -> None:
        self.metric_buffer.flush()

    def log_metrics(self, run_id: str, metrics: Iterable[Metric]) -> None:
        self.log_metric_rows([(run_id, m.key, m.value, m.step, m.timestamp) for m in metrics])

    def log_metric_rows(self, rows: Sequence[Sequence[Any]]) -> None:
        """Append (run_id, key, value, step, timestamp) rows in one transaction."""
        self.ctx.authorize("tracking.write")
        if not rows:
            return
        batch = _check_metric_rows(rows)
        with self.ctx.db.begin() as conn:
            for run_id in batch.run_ids:
                _running_row(conn, run_id)
            store.insert_metric_columns(conn, batch)

    def metric_history(self, run_id: str, key: str) -> list[Metric]:
        self.ctx.authorize("tracking.read")
        with self.ctx.db.read() as conn:
            _run_row(conn, run_id)
            values, steps, stamps = store.metric_history(conn, run_id, key)
        return [
            Metric(key=key, value=v, step=s, timestamp=t)
            for v, s, t in zip(values.tolist(), steps.tolist(), stamps.tolist(), strict=True)
        ]

    # artifacts and inputs ----------------------------------------------------------
    def log_artifact(
        self, run_id: str, local_path: str | Path, artifact_path: str | None = None
    ) -> list[Artifact]:
        self.ctx.authorize("tracking.write")
        files = artifact_files(local_path, artifact_path)
        with self.ctx.db.read() as conn:
            _running_row(conn, run_id)
        stored = [
            Artifact(path=path, digest=self.ctx.blobs.put_file(file), size=file.stat().st_size)
            for file, path in files
        ]
        return self._record_artifacts(run_id, stored)

    def log_artifact_bytes(self, run_id: str, artifact_path: str, data: bytes) -> Artifact:
        self.ctx.authorize("tracking.write")
        check_artifact_path(artifact_path)
        with self.ctx.db.read() as conn:
            _running_row(conn, run_id)
        digest = self.ctx.blobs.put_bytes(data)
        return self._record_artifacts(
            run_id, [Artifact(path=artifact_path, digest=digest, size=len(data))]
        )[0]

    def _record_artifacts(self, run_id: str, stored: list[Artifact]) -> list[Artifact]:
        with self.ctx.db.begin() as conn:
            _running_row(conn, run_id)
            _write_artifacts(conn, run_id, stored)
            self.ctx.audit(
                conn,
                "tracking.log_artifact",
                run_urn(run_id),
                detail={"paths": [a.path for a in stored][:100], "count": len(stored)},
            )
        return stored

    def list_artifacts(self, run_id: str, prefix: str = "") -> list[Artifact]:
        self.ctx.authorize("tracking.read")
        a = store.artifacts.c
        with self.ctx.db.read() as conn:
            _run_row(conn, run_id)
            query = select(a.path, a.digest, a.size).where(a.run_id == run_id).order_by(a.path)
            if prefix:
                query = query.where(a.path.startswith(prefix, autoescape=True))
            return [Artifact(path=p, digest=d, size=s) for p, d, s in conn.execute(query)]

    def read_artifact(self, run_id: str, path: str) -> bytes:
        return self.ctx.blobs.get_bytes(self._artifact(run_id, path).digest)

    def _artifact(self, run_id: str, path: str) -> Artifact:
        found = [a for a in self.list_artifacts(run_id, path) if a.path == path]
        if not found:
            raise NotFound(
                f"run {run_id} has no artifact {path!r}",
                {"field": "path", "fix": f"see `meshops runs show {run_id}` for its artifacts"},
            )
        return found[0]

    def download_artifacts(self, run_id: str, path: str, dest: str | Path) -> Path:
        """Copy one artifact file, or every file under a folder path, into `dest`."""
        matches = select_artifacts(self.list_artifacts(run_id, path), path, run_id)
        return write_artifacts(matches, path, dest, self.ctx.blobs.get_bytes)

    def log_input(self, run_id: str, dataset: DatasetInput) -> None:
        self.ctx.authorize("tracking.write")
        Urn.parse(dataset.urn)
        with self.ctx.db.begin() as conn:
            _running_row(conn, run_id)
            row = {"run_id": run_id, **dataset.model_dump()}
            insert_ignoring_conflicts(conn, store.inputs, [row], ["run_id", "urn"])
            lineage.add_edge(
                conn, dataset.urn, run_urn(run_id), "input_to", {"digest": dataset.digest}
            )
            self.ctx.link_to_step(conn, run_urn(run_id))  # inside a pipeline step
            self.ctx.link_to_step(conn, dataset.urn, "consumed")
            self.ctx.audit(conn, "tracking.log_input", run_urn(run_id), detail=row)

    # search --------------------------------------------------------------------------
    def search_runs(
        self,
        experiments: list[str] | None = None,
        filter: str = "",
        order_by: list[str] | None = None,
        max_results: int = 100,
        page_token: str | None = None,
    ) -> RunPage:
        return self.search_runs_in_view(
            experiments, parse_filter(filter), order_by, max_results, page_token
        )

    def search_runs_in_view(
        self,
        experiments: list[str] | None,
        expr: Expr | None,
        order_by: list[str] | None = None,
        max_results: int = 100,
        page_token: str | None = None,
        *,
        view: str = "active",
        order: list[OrderKey] | None = None,
    ) -> RunPage:
        """`search_runs` with a parsed filter (and optionally parsed `order`) and the
        lifecycle view: "active" (the default everywhere), "deleted" or "all"."""
        self.ctx.authorize("tracking.read")
        if not 1 <= max_results <= MAX_RESULTS_LIMIT:
            raise InvalidInput(
                f"max_results must be between 1 and {MAX_RESULTS_LIMIT}",
                {"field": "max_results", "fix": "page through results with page_token"},
            )
        stage = _stage_of_view(view)
        if order is None:
            order = parse_order_by(order_by or [])
        offset = _decode_token(page_token)
        with self.ctx.db.read() as conn:
            experiment_ids = [_experiment_id(conn, e) for e in experiments or []]
            rows = _search_rows(
                conn,
                experiment_ids,
                expr,
                order,
                offset=offset,
                limit=max_results + 1,
                stage=stage,
            )
            more = len(rows) > max_results
            runs = _load_runs(conn, rows[:max_results])
        token = _encode_token(offset + max_results) if more else None
        return RunPage(runs=runs, next_page_token=token)

    def latest_metric_steps(self, run_ids: list[str]) -> dict[str, dict[str, tuple[int, float]]]:
        """{run id: {key: (step, timestamp)}} of each metric's latest value."""
        self.ctx.authorize("tracking.read")
        with self.ctx.db.read() as conn:
            return store.latest_metric_details(conn, run_ids)

    # lifecycle: delete, restore, rename, untag ----------------------------------------
    def delete_experiment(self, name_or_id: str) -> Experiment:
        """Mark an experiment deleted (restorable): it leaves listings, its runs stay."""
        return self._set_experiment_stage(name_or_id, "deleted")

    def restore_experiment(self, name_or_id: str) -> Experiment:
        return self._set_experiment_stage(name_or_id, "active")

    def _set_experiment_stage(self, name_or_id: str, stage: str) -> Experiment:
        self.ctx.authorize("tracking.write")
        with self.ctx.db.begin() as conn:
            row = _experiment_row(conn, name_or_id)
            if row is None:
                raise _experiment_not_found(name_or_id)
            if row["name"] == DEFAULT_EXPERIMENT and stage == "deleted":
                raise InvalidInput(
                    "the default experiment cannot be deleted",
                    {"field": "experiment", "fix": "delete its runs instead"},
                )
            values = {
                "lifecycle_stage": stage,
                "deleted_at": utcnow() if stage == "deleted" else None,
            }
            e = store.experiments.c
            conn.execute(store.experiments.update().where(e.id == row["id"]).values(**values))
            action = "delete" if stage == "deleted" else "restore"
            self.ctx.audit(
                conn,
                f"tracking.{action}_experiment",
                str(Urn.of("experiment", row["id"])),
                before={"lifecycle_stage": row["lifecycle_stage"]},
                after={"lifecycle_stage": stage},
            )
            return _experiment({**row, **values})

    def update_experiment(
        self,
        name_or_id: str,
        new_name: str | None = None,
        tags: dict[str, str] | None = None,
    ) -> Experiment:
        """Rename an experiment and/or set tags on it (existing tags are kept)."""
        self.ctx.authorize("tracking.write")
        if new_name is not None:
            check_name(new_name, "experiment name")
        clean = _check_tags(tags or {})
        with self.ctx.db.begin() as conn:
            row = _experiment_row(conn, name_or_id)
            if row is None:
                raise _experiment_not_found(name_or_id)
            values: dict[str, Any] = {"tags": {**(row["tags"] or {}), **clean}}
            if new_name is not None and new_name != row["name"]:
                if row["name"] == DEFAULT_EXPERIMENT:
                    raise InvalidInput(
                        "the default experiment cannot be renamed",
                        {"field": "new_name", "fix": "create another experiment"},
                    )
                if _experiment_row(conn, new_name) is not None:
                    raise Conflict(
                        f"experiment {new_name!r} already exists",
                        {"field": "new_name", "fix": "pick another name"},
                    )
                values["name"] = new_name
            e = store.experiments.c
            conn.execute(store.experiments.update().where(e.id == row["id"]).values(**values))
            self.ctx.audit(
                conn,
                "tracking.update_experiment",
                str(Urn.of("experiment", row["id"])),
                before={"name": row["name"], "tags": row["tags"]},
                after=values,
            )
            return _experiment({**row, **values})

    def list_experiments_in_view(self, view: str = "active") -> list[Experiment]:
        self.ctx.authorize("tracking.read")
        query = select(store.experiments).order_by(store.experiments.c.created_at)
        stage = store.experiments.c.lifecycle_stage
        if view in ("active", "deleted"):
            query = query.where(stage == view)
        with self.ctx.db.read() as conn:
            return [_experiment(r) for r in conn.execute(query).mappings()]

    def delete_run(self, run_id: str) -> Run:
        """Mark a run deleted (restorable): it leaves searches, nothing is erased."""
        return self._set_run_stage(run_id, "deleted")

    def restore_run(self, run_id: str) -> Run:
        return self._set_run_stage(run_id, "active")

    def _set_run_stage(self, run_id: str, stage: str) -> Run:
        self.ctx.authorize("tracking.write")
        with self.ctx.db.begin() as conn:
            row = _run_row(conn, run_id)
            values = {
                "lifecycle_stage": stage,
                "deleted_at": utcnow() if stage != "active" else None,
            }
            conn.execute(store.runs.update().where(store.runs.c.id == run_id).values(**values))
            action = "delete" if stage == "deleted" else "restore"
            self.ctx.audit(
                conn,
                f"tracking.{action}_run",
                run_urn(run_id),
                before={"lifecycle_stage": row["lifecycle_stage"]},
                after={"lifecycle_stage": stage},
            )
            return _load_runs(conn, [{**row, **values}])[0]

    def update_run(self, run_id: str, name: str | None = None, status: str | None = None) -> Run:
        """Rename a run; end it (FINISHED/FAILED/KILLED), or reopen an ended run (RUNNING,
        as MLflow's client does when it resumes a run)."""
        self.ctx.authorize("tracking.write")
        if name is not None:
            check_name(name, "run name")
        if status is not None and status.upper() != RunStatus.RUNNING:
            if name is not None:
                self.update_run(run_id, name=name)
            current = self.get_run(run_id)
            if current.status != RunStatus.RUNNING:
                return current  # already ended: ending again changes nothing
            return self.end_run(run_id, status)
        with self.ctx.db.begin() as conn:
            row = _run_row(conn, run_id)
            values: dict[str, Any] = {}
            if name is not None:
                values["name"] = name
            if status is not None:  # RUNNING: reopen
                values.update(status=RunStatus.RUNNING.value, end_time=None, error=None)
            if values:
                conn.execute(store.runs.update().where(store.runs.c.id == run_id).values(**values))
                self.ctx.audit(
                    conn,
                    "tracking.update_run",
                    run_urn(run_id),
                    before={k: _jsonable(row).get(k) for k in values},
                    after=values,
                )
            return _load_runs(conn, [{**row, **values}])[0]

    def delete_tag(self, run_id: str, key: str) -> None:
        self.ctx.authorize("tracking.write")
        check_key(key, "tag")
        with self.ctx.db.begin() as conn:
            _run_row(conn, run_id)
            t = store.tags.c
            deleted = conn.execute(
                store.tags.delete().where(t.run_id == run_id, t.key == key)
            ).rowcount
            if not deleted:
                raise NotFound(
                    f"run {run_id} has no tag {key!r}",
                    {"field": "key", "fix": f"see `meshops runs show {run_id}` for its tags"},
                )
            self.ctx.audit(conn, "tracking.delete_tag", run_urn(run_id), detail={"key": key})


# helpers -----------------------------------------------------------------------------


def _stage_of_view(view: str) -> str | None:
    """The lifecycle stage a run view keeps (None: every run). A separate condition on
    the run row, not part of the filter: an unfiltered search keeps its query plan."""
    if view == "all":
        return None
    if view not in ("active", "deleted"):
        raise InvalidInput(
            f"unknown run view {view!r}",
            {"field": "view", "fix": "use 'active', 'deleted' or 'all'"},
        )
    return view


def _pipeline_tags() -> dict[str, str]:
    """Inside a pipeline step (on the server, a verified one): run tables can say which
    pipeline run, and thereby which trigger or schedule, started a run."""
    here = current_step()
    if here is not None and here.step_run_urn is not None:
        return {PIPELINE_RUN_TAG: here.run_id}
    return {}


def _check_tags(tags: dict[str, str]) -> dict[str, str]:
    return {
        check_key(k, "tag"): check_value(as_text(v), "tag", k, TAG_VALUE_MAX)
        for k, v in tags.items()
    }


def _check_status(status: str) -> RunStatus:
    try:
        final = RunStatus(status.upper())
    except ValueError:
        final = RunStatus.RUNNING
    if final not in TERMINAL:
        raise InvalidInput(
            f"a run ends as FINISHED, FAILED or KILLED, not {status!r}",
            {"field": "status", "fix": "pass status='FINISHED', 'FAILED' or 'KILLED'"},
        )
    return final


def _check_metric_rows(rows: Sequence[Sequence[Any]]) -> store.MetricColumns:
    """Checks every row (vectorised); keys and run ids once per distinct value."""
    try:
        batch = store.to_columns(rows)
    except (TypeError, ValueError, OverflowError) as exc:
        raise InvalidInput(
            f"metric rows are (run_id, key, value, step, timestamp) with numbers: {exc}",
            {"field": "metrics", "fix": "send numeric value, integer step and epoch seconds"},
        ) from exc
    for key in batch.keys:
        check_key(key, "metric")
    if any(not isinstance(run_id, str) for run_id in batch.run_ids):
        raise InvalidInput("metric rows need a run_id string", {"field": "run_id"})
    return batch


def _experiment_not_found(name_or_id: str) -> NotFound:
    return NotFound(
        f"no experiment named or with id {name_or_id!r}",
        {"field": "experiment", "fix": "see `meshops experiments list`"},
    )


def _experiment_row(conn: Connection, name_or_id: str) -> Any:
    e = store.experiments.c
    query = select(store.experiments).where(or_(e.name == name_or_id, e.id == name_or_id))
    return conn.execute(query).mappings().first()


def _experiment_id(conn: Connection, name_or_id: str) -> str:
    row = _experiment_row(conn, name_or_id)
    if row is None:
        raise _experiment_not_found(name_or_id)
    return str(row["id"])


def _insert_experiment(
    conn: Connection, name: str, description: str, tags: dict[str, str]
) -> Experiment:
    experiment = Experiment(
        id=new_id(), name=name, description=description, tags=tags, created_at=utcnow()
    )
    conn.execute(store.experiments.insert().values(**experiment.model_dump()))
    return experiment


def _ensure_experiment(conn: Connection, name: str) -> str:
    """Create the experiment on first use; concurrent creators end up with one row."""
    row = {
        "id": new_id(),
        "name": name,
        "description": "",
        "tags": {},
        "created_at": utcnow(),
    }
    insert_ignoring_conflicts(conn, store.experiments, [row], ["name"])
    return _experiment_id(conn, name)


def _experiment_or_new(conn: Connection, name_or_id: str) -> str:
    """The id of the experiment named (or with the id) `name_or_id`; created on first use."""
    row = _experiment_row(conn, name_or_id)
    return str(row["id"]) if row is not None else _ensure_experiment(conn, name_or_id)


def _experiment(row: Any) -> Experiment:
    return Experiment(
        id=row["id"],
        name=row["name"],
        description=row["description"],
        tags=dict(row["tags"] or {}),
        created_at=row["created_at"],
        lifecycle_stage=row.get("lifecycle_stage") or "active",
    )


ID_PREFIX_MIN = 4  # shorter prefixes match too much to be worth a lookup
ID_PREFIX_SHOWN = 10  # candidates listed when a prefix is ambiguous


def resolve_id_prefix(conn: Connection, column: Any, value: str, noun: str, listing: str) -> str:
    """The one id of `column` equal to `value` or starting with it; NotFound when none,
    InvalidInput listing the candidates when several start with it."""
    if conn.execute(select(column).where(column == value)).first() is not None:
        return value
    if len(value) < ID_PREFIX_MIN or not value.isalnum():
        raise NotFound(
            f"{noun} {value} does not exist",
            {
                "field": "run_id",
                "fix": f"give the whole id or at least {ID_PREFIX_MIN} of its first "
                f"characters (see `{listing}`)",
            },
        )
    query = select(column).where(column.startswith(value)).order_by(column)
    matches = [row[0] for row in conn.execute(query.limit(ID_PREFIX_SHOWN + 1))]
    if not matches:
        raise NotFound(
            f"{noun} {value} does not exist (no {noun} id starts with {value!r})",
            {"field": "run_id", "fix": f"see `{listing}` for {noun} ids"},
        )
    if len(matches) > 1:
        more = " ..." if len(matches) > ID_PREFIX_SHOWN else ""
        raise InvalidInput(
            f"{value!r} is the start of several {noun} ids: "
            f"{', '.join(matches[:ID_PREFIX_SHOWN])}{more}",
            {"field": "run_id", "fix": "give more characters of the id"},
        )
    return str(matches[0])


def _run_row(conn: Connection, run_id: str) -> dict[str, Any]:
    row = conn.execute(select(store.runs).where(store.runs.c.id == run_id)).mappings().first()
    if row is None:
        raise NotFound(
            f"no run with id {run_id!r}",
            {"field": "run_id", "fix": "see `meshops runs list` for run ids"},
        )
    return dict(row)


def _running_row(conn: Connection, run_id: str) -> dict[str, Any]:
    row = _run_row(conn, run_id)
    if row["status"] != RunStatus.RUNNING:
        raise Conflict(
            f"run {run_id} is {row['status']}; an ended run takes no more params, metrics, "
            "artifacts or inputs",
            {"run_id": run_id, "status": row["status"], "fix": "start a new run"},
        )
    return row


def _write_tags(conn: Connection, run_id: str, tags: dict[str, str]) -> None:
    rows = [{"run_id": run_id, "key": k, "value": v} for k, v in tags.items()]
    store.upsert(conn, store.tags, rows, ["run_id", "key"], ["value"])


def _write_artifacts(conn: Connection, run_id: str, stored: list[Artifact]) -> None:
    rows = [{"run_id": run_id, **a.model_dump()} for a in stored]
    store.upsert(conn, store.artifacts, rows, ["run_id", "path"], ["digest", "size"])


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in row.items()}


def _load_runs(conn: Connection, rows: list[dict[str, Any]]) -> list[Run]:
    """Runs with their params, latest metrics, tags and inputs (four queries in all)."""
    ids = [r["id"] for r in rows]
    params = store.key_values(conn, store.params, ids)
    metrics = store.key_values(conn, store.latest_metrics, ids)
    tags = store.key_values(conn, store.tags, ids)
    inputs: dict[str, list[DatasetInput]] = {run_id: [] for run_id in ids}
    if ids:
        i = store.inputs.c
        for row in conn.execute(select(store.inputs).where(i.run_id.in_(ids))).mappings():
            inputs[row["run_id"]].append(
                DatasetInput(
                    urn=row["urn"], digest=row["digest"], name=row["name"], context=row["context"]
                )
            )
    return [
        Run(
            id=r["id"],
            experiment_id=r["experiment_id"],
            name=r["name"],
            status=RunStatus(r["status"]),
            user=r["user"],
            start_time=r["start_time"],
            end_time=r["end_time"],
            parent_run_id=r["parent_run_id"],
            error=r["error"],
            params=params[r["id"]],
            metrics={k: math.nan if v is None else v for k, v in metrics[r["id"]].items()},
            tags=tags[r["id"]],
            inputs=inputs[r["id"]],
            lifecycle_stage=r.get("lifecycle_stage") or "active",
        )
        for r in rows
    ]


# filter compilation -------------------------------------------------------------------


def compile_filter(expr: Expr, probe: ColumnElement[Any] | None = None) -> ColumnElement[bool]:
    """The parsed filter as a SQLAlchemy expression; every value is a bound parameter.

    Conditions on params, tags and metrics become `runs.id IN (SELECT run_id ...)` over
    the (key, value) indexes; SQLite drives the query from the first such list, so the
    conditions most likely to be selective (param/tag equality) go first. With `probe` (a
    run id column of the driving table) they become correlated `EXISTS (... WHERE run_id
    = <probe> AND key = ...)`: one primary-key lookup per candidate run, for queries
    driven by another index; SQLite checks them before it even reads the run's row.
    (Param/tag equalities stay `<probe> IN (SELECT ...)`, see `_compile_comparison`.)"""
    if isinstance(expr, BoolOp):
        items = sorted(expr.items, key=_selectivity_rank) if expr.op == "and" else expr.items
        parts = [compile_filter(item, probe) for item in items]
        return and_(*parts) if expr.op == "and" else or_(*parts)
    return _compile_comparison(expr, probe)


def _selectivity_rank(expr: Expr) -> int:
    if isinstance(expr, BoolOp):
        return 4
    if expr.field.kind in ("param", "tag") and expr.op in ("=", "IN"):
        return 0
    if expr.field.kind == "metric" and expr.op == "=":
        return 1
    return 2 if expr.field.kind != "attribute" else 3


def _compare(column: Any, op: str, value: Any) -> ColumnElement[bool]:
    if op == "IN":
        return column.in_(list(value)) if value else false()
    if op == "NOT IN":
        return not_(column.in_(list(value))) if value else true()
    if op == "LIKE":
        return column.like(value)  # type: ignore[no-any-return]
    if op == "ILIKE":
        return column.ilike(value)  # type: ignore[no-any-return]
    operators = {
        "=": column.__eq__,
        "!=": column.__ne__,
        "<": column.__lt__,
        "<=": column.__le__,
        ">": column.__gt__,
        ">=": column.__ge__,
    }
    return operators[op](value)  # type: ignore[no-any-return]


_KEY_VALUE_TABLES = {
    "metric": store.latest_metrics,
    "param": store.params,
    "tag": store.tags,
}


def _compile_comparison(
    cmp: Comparison, probe: ColumnElement[Any] | None = None
) -> ColumnElement[bool]:
    field = cmp.field
    if field.kind == "attribute":
        value: Any = cmp.value
        if field.key in TIME_ATTRIBUTES:
            value = (
                tuple(_as_time(v) for v in value) if isinstance(value, tuple) else _as_time(value)
            )
        return _compare(store.runs.c[field.key], cmp.op, value)
    table = _KEY_VALUE_TABLES[field.kind]
    if probe is not None and not (field.kind in ("param", "tag") and cmp.op in ("=", "IN")):
        probed = table.alias(f"probe_{field.kind}")
        return (
            select(probed.c.run_id)
            .where(
                probed.c.run_id == probe,
                probed.c.key == field.key,
                _compare(probed.c.value, cmp.op, cmp.value),
            )
            .exists()
        )
    matching = select(table.c.run_id).where(
        table.c.key == field.key, *_value_conditions(table, cmp)
    )
    # Probing, a param/tag equality is still a list (built once from the (key, value)
    # index, then one in-memory lookup per candidate): cheaper on SQLite than a probe of
    # the (run_id, key) primary key plus a read of the row for its value.
    return (store.runs.c.id if probe is None else probe).in_(matching)


def _value_conditions(table: Any, cmp: Comparison) -> list[ColumnElement[bool]]:
    """The comparison on a key/value table's value. An equality (or IN) on params with
    short literals also says `length(value) < 1000`: it holds for every match, and it lets
    PostgreSQL use the partial (key, value) index (`ix_tracking_params_key_value` covers
    short values only), instead of reading every row of the key (B2 at 1M runs)."""
    conditions = [_compare(table.c.value, cmp.op, cmp.value)]
    values = cmp.value if isinstance(cmp.value, tuple) else (cmp.value,)
    short = all(isinstance(v, str) and len(v) < store.SHORT_PARAM_VALUE for v in values)
    if table is store.params and cmp.op in ("=", "IN") and values and short:
        # A literal, not a bound parameter: the planner proves the index's predicate from it.
        limit: ColumnElement[int] = literal_column(str(store.SHORT_PARAM_VALUE))
        conditions.append(func.length(table.c.value) < limit)
    return conditions


def _as_time(value: Any) -> datetime:
    """Numbers are epoch milliseconds (as in MLflow); text is an ISO 8601 timestamp."""
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value / 1000, UTC)
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError as exc:
        raise InvalidInput(
            f"not a time: {value!r}",
            {"field": "filter", "token": str(value), "fix": "use ISO 8601 or epoch ms"},
        ) from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _apply_order(query: Select[Any], order: list[OrderKey], first: int = 0) -> Select[Any]:
    clauses: list[Any] = []
    for index, key in enumerate(order[first:], start=first):
        column = _order_column(key.field, index)
        if key.field.kind != "attribute":
            table = column.table
            query = query.outerjoin(
                table,
                and_(table.c.run_id == store.runs.c.id, table.c.key == key.field.key),
            )
        clauses.append((column.desc() if key.descending else column.asc()).nulls_last())
    clauses += [store.runs.c.start_time.desc(), store.runs.c.id]
    return query.order_by(*clauses)


def _order_column(field: Field, index: int) -> Any:
    if field.kind == "attribute":
        return store.runs.c[field.key]
    table = {"metric": store.latest_metrics, "param": store.params, "tag": store.tags}[field.kind]
    return table.alias(f"order_{index}").c.value


# search plans -------------------------------------------------------------------------

# A filter whose most selective condition matches fewer runs than this is evaluated first
# (its runs sorted); otherwise a search ordered by a metric walks that metric's
# (key, value) index in order and probes each candidate's conditions by primary key.
DRIVE_BY_FILTER_BELOW = 5_000


def _search_rows(
    conn: Connection,
    experiment_ids: list[str],
    expr: Expr | None,
    order: list[OrderKey],
    *,
    offset: int,
    limit: int,
    stage: str | None = None,
) -> list[dict[str, Any]]:
    """The `limit` runs from `offset` on, in order (as mappings of `runs` rows), of the
    lifecycle `stage` (None: any)."""
    if order and order[0].field.kind == "metric" and _filter_is_broad(conn, expr, offset + limit):
        return _search_by_metric_index(
            conn, experiment_ids, expr, order, offset=offset, limit=limit, stage=stage
        )
    query = select(store.runs)
    if stage is not None:
        query = query.where(store.runs.c.lifecycle_stage == stage)
    if experiment_ids:
        query = query.where(_experiment_in(conn, experiment_ids, expr is not None))
    if expr is not None:
        query = query.where(compile_filter(expr))
    query = _apply_order(query, order).offset(offset).limit(limit)
    return _row_dicts(conn.execute(query))


def _experiment_in(
    conn: Connection, experiment_ids: list[str], filtered: bool
) -> ColumnElement[bool]:
    experiment: ColumnElement[Any] = store.runs.c.experiment_id
    if filtered and conn.dialect.name == "sqlite":
        # `experiment_id || ''` keeps SQLite from driving the query by the experiment
        # index (all of its runs) instead of the filter's or the order key's index.
        # Not on PostgreSQL: there it hides the column's statistics, the planner takes the
        # experiment for a few runs and hash-joins all of them instead of walking the
        # order key's index (B2 at 1M runs: 4.5 s instead of tens of ms).
        experiment = experiment + ""
    return experiment.in_(experiment_ids)


def _filter_is_broad(conn: Connection, expr: Expr | None, wanted: int) -> bool:
    """False when a condition every match must meet (an equality on a param, tag or
    metric) matches few runs: then driving the search from it is cheaper than walking
    the order key's index. Counting stops at the threshold, so the check is bounded."""
    if expr is None or DRIVE_BY_FILTER_BELOW <= 0:
        return True
    items = expr.items if isinstance(expr, BoolOp) and expr.op == "and" else (expr,)
    threshold = max(DRIVE_BY_FILTER_BELOW, 20 * wanted)
    for item in items:
        if not isinstance(item, Comparison) or _selectivity_rank(item) > 1:
            continue
        table = _KEY_VALUE_TABLES[item.field.kind]
        matching = (
            select(table.c.run_id)
            .where(table.c.key == item.field.key, *_value_conditions(table, item))
            .limit(threshold)
            .subquery()
        )
        if conn.execute(select(func.count()).select_from(matching)).scalar_one() < threshold:
            return False
    return True


def _search_by_metric_index(
    conn: Connection,
    experiment_ids: list[str],
    expr: Expr | None,
    order: list[OrderKey],
    *,
    offset: int,
    limit: int,
    stage: str | None = None,
) -> list[dict[str, Any]]:
    """Ordered by a metric: runs with a (non-NaN) value of it, walked in the order of the
    (key, value) index with each condition a correlated EXISTS (a primary-key probe on
    (run_id, key)) so the scan stops after `limit` matches; then, if the page reaches past
    them, the runs without a value (NULLS LAST), ordered by the remaining keys."""
    first = order[0]
    ordered = store.latest_metrics.alias("order_0")
    conditions: list[ColumnElement[bool]] = [
        ordered.c.key == first.field.key,
        ordered.c.value.is_not(None),
    ]
    if experiment_ids:
        conditions.append(_experiment_in(conn, experiment_ids, True))
    if stage is not None:
        conditions.append(store.runs.c.lifecycle_stage == stage)
    if expr is not None:
        conditions.append(compile_filter(expr, probe=ordered.c.run_id))
    base = (
        select(store.runs)
        .select_from(ordered)
        .join(store.runs, store.runs.c.id == ordered.c.run_id)
        .where(*conditions)
    )
    value = ordered.c.value.desc() if first.descending else ordered.c.value.asc()
    query = _apply_order(base.order_by(value), order, first=1)
    rows = _row_dicts(conn.execute(query.offset(offset).limit(limit)))
    if len(rows) == limit:
        return rows
    # The page reaches past the runs with a value: the rest come from those without one.
    if rows:
        with_value = offset + len(rows)
    else:
        counted = base.with_only_columns(store.runs.c.id).subquery()
        with_value = conn.execute(select(func.count()).select_from(counted)).scalar_one()
    has_value = (
        select(ordered.c.run_id)
        .where(
            ordered.c.run_id == store.runs.c.id,
            ordered.c.key == first.field.key,
            ordered.c.value.is_not(None),
        )
        .exists()
    )
    rest = select(store.runs).where(not_(has_value))
    if stage is not None:
        rest = rest.where(store.runs.c.lifecycle_stage == stage)
    if experiment_ids:
        rest = rest.where(_experiment_in(conn, experiment_ids, expr is not None))
    if expr is not None:
        rest = rest.where(compile_filter(expr))
    rest = _apply_order(rest, order, first=1)
    rest = rest.offset(max(0, offset - with_value)).limit(limit - len(rows))
    return rows + _row_dicts(conn.execute(rest))


def _row_dicts(result: Any) -> list[dict[str, Any]]:
    """Rows as dicts, the column names read once (a RowMapping looks them up per row)."""
    names = list(result.keys())
    return [dict(zip(names, row, strict=True)) for row in result]


def _encode_token(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode()


def _decode_token(token: str | None) -> int:
    if not token:
        return 0
    try:
        offset = json.loads(base64.urlsafe_b64decode(token.encode()))["offset"]
        if not isinstance(offset, int) or not 0 <= offset <= MAX_OFFSET:
            raise ValueError(offset)
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        raise InvalidInput(
            "malformed page token",
            {"field": "page_token", "fix": "pass next_page_token of the previous page as is"},
        ) from exc
    return offset


# --- OpenLineage (kernel.openlineage): a tracking run is a run of the job
# `tracking.<experiment>`; its parent is the run it is nested in, else the pipeline step.
_OL_END: dict[RunStatus, openlineage.State] = {
    RunStatus.FINISHED: "COMPLETE",
    RunStatus.FAILED: "FAIL",
    RunStatus.KILLED: "ABORT",
}


def _ol_run(
    ctx: Context,
    state: openlineage.State,
    experiment: str,
    run_id: str,
    *,
    parent_run_id: str | None = None,
    error: str | None = None,
    inputs: list[str] | None = None,
) -> None:
    reporter = openlineage.Reporter(ctx)
    if not reporter.enabled:
        return
    job = f"tracking.{experiment}"
    parent = reporter.parent()
    if parent_run_id is not None:
        parent = openlineage.RunRef(reporter.namespace, job, openlineage.run_id_of(parent_run_id))
    reporter.emit(
        state,
        job,
        openlineage.run_id_of(run_id),
        job_type="TRAINING",
        inputs=[openlineage.urn_dataset(ctx, urn) for urn in inputs or []],
        parent=parent,
        error=error,
        after_commit=True,
    )
