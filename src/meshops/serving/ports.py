"""The serving area's side of the kernel's ports (bound by `meshops.assembly`): the monitor
sources it provides (`prediction_log`: an endpoint's served predictions and labels)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

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
