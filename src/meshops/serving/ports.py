"""The serving area's side of the kernel's ports (bound by `meshops.assembly`): the monitor
sources it provides (`prediction_log`: an endpoint's served predictions and labels) and the
labelled feedback windows champion/challenger comparisons read."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from meshops.kernel.errors import Forbidden
from meshops.kernel.home import Context
from meshops.kernel.ports import MonitorWindowSource

_SOURCES = ("prediction_log",)


class ServingMonitorSources:
    def names(self) -> list[str]:
        return list(_SOURCES)

    def factory(self, name: str) -> Callable[[dict[str, Any]], MonitorWindowSource] | None:
        if name not in _SOURCES:
            return None
        from meshops.serving.monitor_source import PredictionLogSource

        return PredictionLogSource


class ServingFeedbackWindows:
    """The labelled rows of the prediction logs of the endpoints whose primary route serves
    `model` (any version): their inputs and `label`, for the caller's grants only."""

    def labelled(self, ctx: Context, model: str, since: Any) -> Any:
        import pyarrow as pa
        import pyarrow.compute as pc

        from meshops.serving.models import model_name_of
        from meshops.serving.service import ServingService

        service = ServingService(ctx)
        try:
            endpoints = [e for e in service.list_endpoints() if model_name_of(e.model) == model]
        except Forbidden:
            return None
        tables = []
        for endpoint in endpoints:
            try:
                window = service.prediction_window(endpoint.name, start=since)
            except Forbidden:
                continue
            if "label" in window.column_names and window.num_rows:
                tables.append(window.filter(pc.is_valid(window.column("label"))))
        tables = [t for t in tables if t.num_rows]
        if not tables:
            return None
        return pa.concat_tables(tables, promote_options="permissive")
