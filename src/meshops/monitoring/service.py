"""Monitoring use cases: define monitors and rules, run them, keep history, manage alerts."""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from sqlalchemy import Connection, update

from meshops.kernel import lineage, wire
from meshops.kernel.db import utcnow
from meshops.kernel.errors import Conflict, Forbidden, InvalidInput, NotFound
from meshops.kernel.home import Context
from meshops.monitoring import alerts, store
from meshops.monitoring.models import (
    Alert,
    AlertRule,
    AlertRuleSpec,
    FeatureResult,
    Monitor,
    MonitorResult,
    MonitorSpec,
    builtin_rules,
    parse_duration,
)

if TYPE_CHECKING:
    import pyarrow as pa

    from meshops.monitoring.monitors import Data, Evaluation

# Statistics (scipy, scikit-learn), plotting and Arrow datasets are imported inside the
# methods that use them: opening a platform must stay cheap for every CLI command.

MAX_FLOAT = 1.7976931348623157e308


def next_run(schedule: str | None, after: datetime) -> datetime | None:
    """When a monitor with `schedule` ('1h' or a cron expression) next runs after `after`."""
    if schedule is None:
        return None
    try:
        return after + parse_duration(schedule)
    except ValueError:
        from croniter import croniter

        nxt: datetime = croniter(schedule, after).get_next(datetime)
        return nxt


def finite(value: float) -> float:
    """JSON (and so JSONB) has no NaN/Infinity: clamp infinities, NaN becomes -1."""
    if math.isnan(value):
        return -1.0
    return max(-MAX_FLOAT, min(MAX_FLOAT, value))


class MonitoringService:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    # ------------------------------------------------------------------ monitors

    def create_monitor(self, spec: MonitorSpec, reference: pa.Table | None = None) -> Monitor:
        self.ctx.authorize("monitoring.write", spec.domain)
        # Blob first, metadata after: an aborted create leaves only an unreferenced blob.
        blob = (
            self.ctx.blobs.put_bytes(wire.to_parquet(reference)) if reference is not None else None
        )
        now = utcnow()
        monitor_id = uuid.uuid4().hex
        row = {
            "id": monitor_id,
            "name": spec.name,
            "kind": spec.kind,
            "domain": spec.domain,
            "endpoint": spec.endpoint,
            "model": spec.model,
            "spec": spec.model_dump(mode="json"),
            "reference_blob": blob,
            "reference_rows": reference.num_rows if reference is not None else None,
            "enabled": True,
            "next_run_at": next_run(spec.schedule, now),
            "last_run_at": None,
            "created_at": now,
            "created_by": self.ctx.actor.name,
        }
        with self.ctx.db.begin() as conn:
            if store.monitor_row(conn, spec.name) is not None:
                raise Conflict(
                    f"a monitor named {spec.name!r} already exists",
                    {"field": "name", "fix": "choose another name or use the existing monitor"},
                )
            conn.execute(store.monitors.insert().values(**row))
            urn = f"meshops:monitor:{monitor_id}"
            if spec.endpoint:
                lineage.add_edge(conn, f"meshops:endpoint:{spec.endpoint}", urn, "monitored_by")
            self.ctx.audit(conn, "monitoring.create_monitor", urn, after=row["spec"])
        return _monitor(row)

    def get_monitor(self, name_or_id: str) -> Monitor:
        with self.ctx.db.read() as conn:
            monitor = self._load(conn, name_or_id)
        self.ctx.authorize("monitoring.read", monitor.domain)
        return monitor

    def list_monitors(self, endpoint: str | None = None) -> list[Monitor]:
        self.ctx.authorize("monitoring.read")
        with self.ctx.db.read() as conn:
            return [_monitor(r) for r in store.list_monitor_rows(conn, endpoint)]

    def set_reference(self, monitor: str, reference: pa.Table) -> Monitor:
        current = self.get_monitor(monitor)
        self.ctx.authorize("monitoring.write", current.domain)
        blob = self.ctx.blobs.put_bytes(wire.to_parquet(reference))
        with self.ctx.db.begin() as conn:
            conn.execute(
                update(store.monitors)
                .where(store.monitors.c.id == current.id)
                .values(reference_blob=blob, reference_rows=reference.num_rows)
            )
            self.ctx.audit(
                conn,
                "monitoring.set_reference",
                current.urn,
                before=current.reference_blob,
                after=blob,
            )
            return self._load(conn, current.id)

    def set_enabled(self, monitor: str, enabled: bool) -> Monitor:
        current = self.get_monitor(monitor)
        self.ctx.authorize("monitoring.write", current.domain)
        with self.ctx.db.begin() as conn:
            values: dict[str, Any] = {"enabled": enabled}
            if enabled and current.next_run_at is None:
                values["next_run_at"] = next_run(current.spec.schedule, utcnow())
            conn.execute(
                update(store.monitors).where(store.monitors.c.id == current.id).values(**values)
            )
            self.ctx.audit(conn, "monitoring.set_enabled", current.urn, after=enabled)
            return self._load(conn, current.id)

    # --------------------------------------------------------------------- rules

    def add_rule(self, monitor: str, rule: AlertRuleSpec) -> AlertRule:
        current = self.get_monitor(monitor)
        self.ctx.authorize("monitoring.write", current.domain)
        with self.ctx.db.begin() as conn:
            if any(r["name"] == rule.name for r in store.rule_rows(conn, current.id)):
                raise Conflict(
                    f"monitor {current.name!r} already has a rule named {rule.name!r}",
                    {"field": "name", "fix": "choose another rule name"},
                )
            values = {**rule.model_dump(), "monitor_id": current.id, "created_at": utcnow()}
            inserted = conn.execute(store.monitor_rules.insert().values(**values))
            key = inserted.inserted_primary_key
            assert key is not None
            self.ctx.audit(
                conn, "monitoring.add_rule", current.urn, after=rule.model_dump(mode="json")
            )
            return AlertRule(**values, id=int(key[0]))

    def list_rules(self, monitor: str) -> list[AlertRule]:
        """The rules in effect: those added, or the built-in ones (`builtin: true`) of a
        drift monitor that has none of its own."""
        current = self.get_monitor(monitor)
        with self.ctx.db.read() as conn:
            return _rules_in_effect(conn, current)[0]

    # ---------------------------------------------------------------------- runs

    def run_monitor(
        self,
        monitor: str,
        current: pa.Table | None = None,
        reference: pa.Table | None = None,
        labels: pa.Table | None = None,
        now: datetime | None = None,
    ) -> MonitorResult:
        from meshops.monitoring.monitors import EvaluationError, evaluate, rows_of
        from meshops.monitoring.sources import source_reader

        target = self.get_monitor(monitor)
        self.ctx.authorize("monitoring.write", target.domain)
        now = now or utcnow()
        window_start = window_end = None
        current_data: Data | None = current
        reference_data: Data | None = reference
        if current_data is None:
            window_start, window_end = now - target.spec.window_delta, now
            data = source_reader(target.spec.source).read(
                self.ctx, target.spec, window_start, window_end
            )
            current_data, labels = data.current, labels if labels is not None else data.labels
            reference_data = reference_data if reference_data is not None else data.reference
        with ExitStack() as stack:
            if reference_data is None and target.spec.uses_reference:
                reference_data = stack.enter_context(self._stored_reference(target))
            started = utcnow()
            try:
                evaluation = evaluate(target.spec, current_data, reference_data, labels)
            except EvaluationError as exc:
                raise InvalidInput(str(exc), {"monitor": target.name}) from exc
            reference_rows = rows_of(reference_data) if reference_data is not None else 0
        return self._record(
            target,
            evaluation,
            reference_rows=reference_rows,
            current_rows=rows_of(current_data),
            window=(window_start, window_end),
            started=started,
            scheduled=False,
        )

    def due_monitors(self, now: datetime | None = None) -> list[Monitor]:
        self.ctx.authorize("monitoring.read")
        with self.ctx.db.read() as conn:
            return [_monitor(r) for r in store.due_monitor_rows(conn, now or utcnow())]

    def run_due(self, now: datetime | None = None) -> list[MonitorResult]:
        now = now or utcnow()
        results = []
        for monitor in self.due_monitors(now):
            results.append(self._run_scheduled(monitor, now))
        return results

    def _run_scheduled(self, monitor: Monitor, now: datetime) -> MonitorResult:
        """A scheduled run records its failure as an `error` result instead of raising, so
        one broken monitor does not stop the others, and its schedule still advances."""
        import pyarrow as pa

        from meshops.monitoring.monitors import Evaluation, EvaluationError, evaluate, rows_of
        from meshops.monitoring.sources import source_reader

        self.ctx.authorize("monitoring.write", monitor.domain)
        started = utcnow()
        window = (now - monitor.spec.window_delta, now)
        reference_rows = current_rows = 0
        try:
            with ExitStack() as stack:
                data = source_reader(monitor.spec.source).read(self.ctx, monitor.spec, *window)
                reference = data.reference
                if reference is None and monitor.spec.uses_reference:
                    reference = stack.enter_context(self._stored_reference(monitor))
                reference_rows = rows_of(reference) if reference is not None else 0
                current_rows = rows_of(data.current)
                evaluation = evaluate(monitor.spec, data.current, reference, data.labels)
        except (
            EvaluationError,
            InvalidInput,
            NotFound,
            Forbidden,
            OSError,
            pa.ArrowException,
        ) as exc:
            message = (
                exc.message if isinstance(exc, InvalidInput | NotFound | Forbidden) else str(exc)
            )
            evaluation = Evaluation({}, f"run failed: {message}", details={"error": message})
        return self._record(
            monitor,
            evaluation,
            reference_rows=reference_rows,
            current_rows=current_rows,
            window=window,
            started=started,
            scheduled=True,
            now=now,
        )

    @contextmanager
    def _stored_reference(self, monitor: Monitor) -> Iterator[Data]:
        """The stored reference, left on disk: drift monitors read it in batches (a
        reference stored as an Arrow stream, not Parquet, is read whole)."""
        from meshops.monitoring.streams import ParquetData

        if monitor.reference_blob is None:
            raise InvalidInput(
                f"monitor {monitor.name!r} has no reference dataset",
                {
                    "field": "reference",
                    "fix": "set one with `meshops monitors reference NAME FILE.parquet` "
                    "(platform.monitoring.set_reference) or pass it with the run",
                },
            )
        with self.ctx.blobs.local_path(monitor.reference_blob) as path:
            if _is_parquet(path):
                yield ParquetData.open(str(path))
            else:
                yield wire.decode_table(path.read_bytes(), "reference")

    def _record(
        self,
        monitor: Monitor,
        evaluation: Evaluation,
        *,
        reference_rows: int,
        current_rows: int,
        window: tuple[datetime | None, datetime | None],
        started: datetime,
        scheduled: bool,
        now: datetime | None = None,
    ) -> MonitorResult:
        """Store the result, its features, rule outcomes and events in one transaction;
        then call the webhooks of newly opened alerts."""
        metrics = {k: finite(float(v)) for k, v in evaluation.metrics.items()}
        failed = "error" in evaluation.details
        finished = utcnow()
        with self.ctx.db.begin() as conn:
            result_id = self._insert_result(
                conn,
                monitor,
                evaluation,
                metrics,
                reference_rows,
                current_rows,
                window,
                started,
                finished,
                failed,
            )
            rules, retired = _rules_in_effect(conn, monitor)
            opened = (
                []
                if failed
                else alerts.apply_rules(
                    self.ctx,
                    conn,
                    monitor,
                    rules=rules,
                    retired=retired,
                    result_id=result_id,
                    metrics=metrics,
                    now=finished,
                )
            )
            status = (
                "error" if failed else ("alert" if self._has_open_alerts(conn, monitor) else "ok")
            )
            conn.execute(
                update(store.monitor_results)
                .where(store.monitor_results.c.id == result_id)
                .values(status=status)
            )
            schedule_values: dict[str, Any] = {"last_run_at": finished}
            if scheduled:
                schedule_values["next_run_at"] = next_run(monitor.spec.schedule, now or finished)
            conn.execute(
                update(store.monitors)
                .where(store.monitors.c.id == monitor.id)
                .values(**schedule_values)
            )
            result_urn = f"meshops:monitorresult:{result_id}"
            lineage.add_edge(conn, monitor.urn, result_urn, "produced")
            self.ctx.audit(
                conn,
                "monitoring.run",
                result_urn,
                detail={"monitor": monitor.name, "status": status, "scheduled": scheduled},
            )
        for alert in opened:
            if alert.webhook_url:
                outcome = alerts.notify_webhook(alert.webhook_url, alert.payload)
                with self.ctx.db.begin() as conn:
                    store.update_alert(conn, alert.alert_id, webhook_status=outcome)
        return self.get_result(result_id)

    def _insert_result(  # noqa: PLR0917 - one call site, keeps _record readable
        self,
        conn: Connection,
        monitor: Monitor,
        evaluation: Evaluation,
        metrics: dict[str, float],
        reference_rows: int,
        current_rows: int,
        window: tuple[datetime | None, datetime | None],
        started: datetime,
        finished: datetime,
        failed: bool,
    ) -> int:
        inserted = conn.execute(
            store.monitor_results.insert().values(
                monitor_id=monitor.id,
                status="error" if failed else "ok",
                summary=evaluation.summary,
                metrics=metrics,
                details=_json_safe(evaluation.details),
                window_start=window[0],
                window_end=window[1],
                reference_rows=reference_rows,
                current_rows=current_rows,
                started_at=started,
                finished_at=finished,
                report_blob=None,
            )
        ).inserted_primary_key
        assert inserted is not None
        result_id = int(inserted[0])
        rows = [
            {
                "result_id": result_id,
                "monitor_id": monitor.id,
                "feature": f.feature,
                "kind": f.kind,
                "method": f.method,
                "score": finite(f.score),
                "threshold": f.threshold,
                "drifted": f.drifted,
                "reference_rows": f.reference_rows,
                "current_rows": f.current_rows,
                "histogram": _json_safe(f.histogram.to_json()),
                "at": finished,
            }
            for f in evaluation.features
        ]
        if rows:
            conn.execute(store.monitor_feature_results.insert(), rows)
        return result_id

    def _has_open_alerts(self, conn: Connection, monitor: Monitor) -> bool:
        return bool(store.alert_rows(conn, ["open", "acknowledged"], monitor.id, 1))

    # ------------------------------------------------------------------- history

    def list_results(self, monitor: str, limit: int = 50) -> list[MonitorResult]:
        target = self.get_monitor(monitor)
        with self.ctx.db.read() as conn:
            return [_result(r, target, []) for r in store.result_rows(conn, target.id, limit)]

    def get_result(self, result_id: int) -> MonitorResult:
        with self.ctx.db.read() as conn:
            row = store.result_row(conn, result_id)
            if row is None:
                raise NotFound(
                    f"monitor result {result_id} does not exist",
                    {"fix": "list results with `meshops monitors show NAME`"},
                )
            monitor = self._load(conn, row["monitor_id"])
            features = [_feature(f) for f in store.feature_rows_of_result(conn, result_id)]
            alert_ids = [
                a["id"]
                for a in store.alert_rows(conn, None, monitor.id, 1000)
                if a["first_result_id"] <= result_id <= a["last_result_id"]
            ]
        self.ctx.authorize("monitoring.read", monitor.domain)
        return _result(row, monitor, features, alert_ids)

    def feature_history(
        self, monitor: str, feature: str | None = None, limit: int = 100
    ) -> list[FeatureResult]:
        target = self.get_monitor(monitor)
        with self.ctx.db.read() as conn:
            rows = store.feature_history_rows(conn, target.id, feature, limit)
        return [_feature({**r, "histogram": {}}) for r in rows]

    def report(self, result_id: int) -> str:
        """Rendered once per run and kept as a blob (content-addressed), then served."""
        result = self.get_result(result_id)
        with self.ctx.db.read() as conn:
            row = store.result_row(conn, result_id)
        assert row is not None
        if row["report_blob"]:
            return self.ctx.blobs.get_bytes(row["report_blob"]).decode()
        monitor = self.get_monitor(result.monitor_id)
        history = [r for r in self.list_results(monitor.id, 100) if r.id <= result_id]
        feature_history = [
            f for f in self.feature_history(monitor.id, limit=100) if f.result_id <= result_id
        ]
        from meshops.monitoring.reports import render_report

        html = render_report(monitor, result, history, feature_history)
        blob = self.ctx.blobs.put_bytes(html.encode())
        with self.ctx.db.begin() as conn:
            conn.execute(
                update(store.monitor_results)
                .where(store.monitor_results.c.id == result_id)
                .values(report_blob=blob)
            )
        return html

    # -------------------------------------------------------------------- alerts

    def list_alerts(
        self, state: str | None = None, monitor: str | None = None, limit: int = 100
    ) -> list[Alert]:
        self.ctx.authorize("monitoring.read")
        states = _states(state)
        with self.ctx.db.read() as conn:
            monitor_id = self._load(conn, monitor).id if monitor else None
            rows = store.alert_rows(conn, states, monitor_id, limit)
            return [self._alert(conn, r) for r in rows]

    def get_alert(self, alert_id: int) -> Alert:
        with self.ctx.db.read() as conn:
            alert = self._alert(conn, self._alert_row(conn, alert_id))
        self.ctx.authorize("monitoring.read", self._domain_of(alert.monitor_id))
        return alert

    def acknowledge_alert(self, alert_id: int, note: str = "") -> Alert:
        alert = self.get_alert(alert_id)
        self.ctx.authorize("monitoring.write", self._domain_of(alert.monitor_id))
        if alert.state != "open":
            raise Conflict(
                f"alert {alert_id} is {alert.state}; only open alerts can be acknowledged",
                {"state": alert.state},
            )
        now = utcnow()
        with self.ctx.db.begin() as conn:
            store.update_alert(
                conn,
                alert_id,
                state="acknowledged",
                acknowledged_at=now,
                acknowledged_by=self.ctx.actor.name,
                note=_append(alert.note, note),
            )
            self.ctx.audit(
                conn,
                "monitoring.alert_acknowledge",
                alert.urn,
                before=alert.state,
                after="acknowledged",
                detail={"note": note},
            )
            return self._alert(conn, self._alert_row(conn, alert_id))

    def resolve_alert(self, alert_id: int, note: str = "") -> Alert:
        alert = self.get_alert(alert_id)
        self.ctx.authorize("monitoring.write", self._domain_of(alert.monitor_id))
        if alert.state == "resolved":
            raise Conflict(f"alert {alert_id} is already resolved", {"state": alert.state})
        with self.ctx.db.begin() as conn:
            store.update_alert(
                conn,
                alert_id,
                state="resolved",
                resolved_at=utcnow(),
                resolved_by=self.ctx.actor.name,
                note=_append(alert.note, note),
                open_key=None,
            )
            self.ctx.audit(
                conn,
                "monitoring.alert_resolve",
                alert.urn,
                before=alert.state,
                after="resolved",
                detail={"note": note},
            )
            return self._alert(conn, self._alert_row(conn, alert_id))

    # ------------------------------------------------------------------- helpers

    def _load(self, conn: Connection, name_or_id: str) -> Monitor:
        row = store.monitor_row(conn, name_or_id)
        if row is None:
            raise NotFound(
                f"monitor {name_or_id!r} does not exist",
                {"fix": "list monitors with `meshops monitors list`"},
            )
        return _monitor(row)

    def _alert_row(self, conn: Connection, alert_id: int) -> dict[str, Any]:
        row = store.alert_row(conn, alert_id)
        if row is None:
            raise NotFound(
                f"alert {alert_id} does not exist",
                {"fix": "list alerts with `meshops alerts list`"},
            )
        return row

    def _alert(self, conn: Connection, row: dict[str, Any]) -> Alert:
        monitor = self._load(conn, row["monitor_id"])
        fields = {k: v for k, v in row.items() if k != "open_key"}
        return Alert(
            **fields,
            monitor_name=monitor.name,
            endpoint=monitor.endpoint,
            model=monitor.model,
        )

    def _domain_of(self, monitor_id: str) -> str | None:
        with self.ctx.db.read() as conn:
            return self._load(conn, monitor_id).domain


def _is_parquet(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(4) == wire.PARQUET_MAGIC


def _rules_in_effect(conn: Connection, monitor: Monitor) -> tuple[list[AlertRule], list[AlertRule]]:
    """(the rules a run applies, built-in rules replaced by added ones): added rules
    replace the built-in ones, whose open alerts then resolve at the next run."""
    added = [AlertRule(**r) for r in store.rule_rows(conn, monitor.id)]
    builtin = builtin_rules(monitor.id, monitor.spec, monitor.created_at)
    return (added, builtin) if added else (builtin, [])


def _states(state: str | None) -> list[str] | None:
    if state is None or state == "all":
        return None
    if state == "active":
        return ["open", "acknowledged"]
    if state not in ("open", "acknowledged", "resolved"):
        raise InvalidInput(
            f"unknown alert state {state!r}",
            {"field": "state", "fix": "use open, acknowledged, resolved, active or all"},
        )
    return [state]


def _append(note: str, line: str) -> str:
    return f"{note}\n{line}".strip() if line else note


def _json_safe(value: Any) -> Any:
    if isinstance(value, float):
        return finite(value)
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def _monitor(row: dict[str, Any]) -> Monitor:
    try:
        spec = MonitorSpec.model_validate(row["spec"])
    except ValidationError as exc:  # a stored spec that no longer validates is a bug
        raise InvalidInput(f"stored monitor {row['name']!r} is invalid: {exc}") from exc
    return Monitor(**{k: v for k, v in row.items() if k != "spec"}, spec=spec)


def _feature(row: dict[str, Any]) -> FeatureResult:
    return FeatureResult(**{k: v for k, v in row.items() if k != "id"})


def _result(
    row: dict[str, Any],
    monitor: Monitor,
    features: list[FeatureResult],
    alert_ids: list[int] | None = None,
) -> MonitorResult:
    return MonitorResult(
        **{k: v for k, v in row.items() if k != "report_blob"},
        monitor_name=monitor.name,
        kind=monitor.kind,
        features=features,
        alerts=alert_ids or [],
    )
