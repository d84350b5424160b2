"""Where a scheduled monitor run gets its data: a small registry of named sources.

A run needs the current window (and for performance monitors the labels joined by request
id); the reference is stored on the monitor, or read by the source. `parquet` reads Parquet
files (local or any fsspec URL) filtered to the window on a time column, and leaves them on
disk: drift monitors read them in batches (`streams.ParquetData`), so their size is not
bounded by memory. Other areas provide their own through
the kernel's `MONITOR_SOURCES` port (e.g. the serving area's `prediction_log`: an endpoint's
served predictions with their labels), built on first use; `register_source(name, factory)`
adds more at run time.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, cast

from meshops.kernel import ports
from meshops.kernel.codetrust import is_api_server
from meshops.kernel.errors import Forbidden, InvalidInput
from meshops.kernel.home import Context
from meshops.monitoring.models import MonitorSource, MonitorSpec

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.dataset as ds

    from meshops.monitoring.streams import ParquetData


@dataclass(frozen=True)
class WindowData:
    """The current window; the labels to join; a reference when the source has its own
    (it wins over the monitor's stored one, a reference passed to the run wins over both)."""

    current: pa.Table | ParquetData
    labels: pa.Table | None = None
    reference: pa.Table | ParquetData | None = None


class SourceReader(Protocol):
    def read(self, ctx: Context, spec: MonitorSpec, start: datetime, end: datetime) -> WindowData:
        """The rows of [start, end) and, when the source has them, their labels."""
        ...


SourceFactory = Callable[[dict[str, Any]], SourceReader]
_SOURCES: dict[str, SourceFactory] = {}


def register_source(name: str, factory: SourceFactory) -> None:
    _SOURCES[name] = factory


def registered_sources() -> list[str]:
    return sorted({*_SOURCES, *ports.MONITOR_SOURCES.get().names()})


def source_reader(source: MonitorSource) -> SourceReader:
    factory = _SOURCES.get(source.type)
    if factory is None:
        provided = ports.MONITOR_SOURCES.get().factory(source.type)
        if provided is not None:
            factory = _SOURCES.setdefault(source.type, cast(SourceFactory, provided))
    if factory is None:
        raise InvalidInput(
            f"unknown monitor source type {source.type!r}",
            {"field": "source.type", "fix": f"use one of {', '.join(registered_sources())}"},
        )
    return factory(source.options)


class ExplicitSource:
    """No stored source: the caller passes the tables to each run."""

    def __init__(self, options: dict[str, Any]) -> None:
        del options

    def read(self, ctx: Context, spec: MonitorSpec, start: datetime, end: datetime) -> WindowData:
        raise InvalidInput(
            f"monitor {spec.name!r} has no data source, so it cannot run on a schedule",
            {
                "field": "source",
                "fix": "pass the current data to the run (e.g. `meshops monitors run NAME "
                "--current window.parquet`) or define source {type: parquet, options: {path}}",
            },
        )


class ParquetSource:
    """Parquet files (a file, a directory or a glob; local or fsspec URL) with a time
    column (`time_column: null`: no window, every row of the files is the current data);
    labels, if any, come from a second dataset with the id and label columns; the
    reference, if `reference_path` is set, from a third (else the monitor's stored one)."""

    def __init__(self, options: dict[str, Any]) -> None:
        if "path" not in options:
            raise InvalidInput(
                "a parquet monitor source needs options.path",
                {"field": "source.options.path", "fix": "set path to the Parquet file(s)"},
            )
        self.path = str(options["path"])
        self.labels_path = options.get("labels_path")
        self.reference_path = options.get("reference_path")
        time_column = options.get("time_column", "ts")
        self.time_column = str(time_column) if time_column else None

    def read(self, ctx: Context, spec: MonitorSpec, start: datetime, end: datetime) -> WindowData:
        import pyarrow.dataset as ds

        from meshops.monitoring.streams import ParquetData

        for path in (self.path, self.labels_path, self.reference_path):
            if path:
                check_source_path(ctx, str(path))
        current = ParquetData.open(self.path)
        current.filter = self._window(current.schema, start, end)
        labels = ds.dataset(str(self.labels_path)).to_table() if self.labels_path else None
        reference = ParquetData.open(str(self.reference_path)) if self.reference_path else None
        return WindowData(current, labels, reference)

    def _window(self, schema: pa.Schema, start: datetime, end: datetime) -> ds.Expression | None:
        """The filter keeping the rows of [start, end) (None: no time column, every row)."""
        import pyarrow as pa
        import pyarrow.dataset as ds

        if self.time_column is None:
            return None
        if self.time_column not in schema.names:
            raise InvalidInput(
                f"{self.path} has no time column {self.time_column!r}",
                {"field": "source.options.time_column"},
            )
        time_type = schema.field(self.time_column).type
        column = ds.field(self.time_column)
        return (column >= pa.scalar(start, time_type)) & (column < pa.scalar(end, time_type))


def check_source_path(ctx: Context, path: str) -> None:
    """A file path is no way round the read guard: never the home (metadata, snapshots,
    secret key) or its blob store; in the API server only under the folders or URL prefixes
    an admin lists in `[monitoring] source_paths`."""
    settings = ctx.home.settings
    resolved = path if "://" in path else os.path.realpath(path)
    protected = [os.path.realpath(settings.home), settings.blob_url]
    protected = [p if "://" in p else os.path.realpath(p) for p in protected]
    if any(_under(resolved, root) for root in protected):
        raise Forbidden(
            f"monitor source {path!r} is inside the platform's own storage",
            {
                "field": "source.options.path",
                "fix": "monitor a data product by passing its governed read to the run, "
                "or point the source at your own Parquet files",
            },
        )
    if not is_api_server(ctx.home):
        return  # embedded SDK or CLI: the user's own process reads the user's own files
    allowed = [str(p) for p in settings.section("monitoring").get("source_paths", [])]
    allowed = [p if "://" in p else os.path.realpath(p) for p in allowed]
    if not any(_under(resolved, root) for root in allowed):
        raise Forbidden(
            f"the server reads monitor sources only under [monitoring] source_paths; "
            f"{path!r} is not there",
            {
                "field": "source.options.path",
                "fix": "an admin lists the folder or URL prefix in [monitoring] source_paths "
                "of the server's meshops.toml",
            },
        )


def _under(path: str, root: str) -> bool:
    root = root.rstrip("/")
    return path == root or path.startswith(root + "/")


register_source("explicit", ExplicitSource)
register_source("parquet", ParquetSource)
