"""An OpenLineage RunEvent for every build/publish, built with the openlineage-python models.

Sent when `meshops.toml` configures it:

    [openlineage]
    transport = "file"                 # or "http"
    path = "lineage/events.jsonl"      # file transport: one JSON event per line (appended)
    url = "http://marquez:5000"        # http transport
    namespace = "meshops"              # job namespace (default "meshops")
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from meshops.mesh.builds import InputData
from meshops.mesh.models import ColumnSpec

PRODUCER = "https://github.com/meshops/meshops/mesh"


def _schema_facet(columns: list[ColumnSpec]) -> Any:
    from openlineage.client.facet_v2 import schema_dataset

    return schema_dataset.SchemaDatasetFacet(
        fields=[
            schema_dataset.SchemaDatasetFacetFields(
                name=c.name,
                type=c.physical_type or c.logical_type,
                description=c.description or None,
                ordinal_position=i + 1,
            )
            for i, c in enumerate(columns)
        ],
        producer=PRODUCER,
    )


def run_event(
    product: str,
    version: str,
    inputs: list[InputData],
    outputs: dict[str, tuple[list[ColumnSpec], int]],
    *,
    event_type: str = "COMPLETE",
    namespace: str = "meshops",
    run_id: str | None = None,
) -> Any:
    """The RunEvent of one build: input datasets, output ports with schema and row count."""
    from openlineage.client.event_v2 import (
        InputDataset,
        Job,
        OutputDataset,
        Run,
        RunEvent,
        RunState,
    )
    from openlineage.client.facet_v2 import output_statistics_output_dataset as stats

    return RunEvent(
        eventType=RunState[event_type],
        eventTime=datetime.now(UTC).isoformat(),
        producer=PRODUCER,
        run=Run(runId=run_id or str(uuid.uuid4())),
        job=Job(namespace=namespace, name=f"{product}.build"),
        inputs=[InputDataset(namespace=i.namespace, name=i.dataset) for i in inputs],
        outputs=[
            OutputDataset(
                namespace="meshops",
                name=f"{product}.{port}@{version}",
                facets={"schema": _schema_facet(columns)},
                outputFacets={
                    "outputStatistics": stats.OutputStatisticsOutputDatasetFacet(
                        rowCount=rows, producer=PRODUCER
                    )
                },
            )
            for port, (columns, rows) in outputs.items()
        ],
    )


def to_json(event: Any) -> str:
    from openlineage.client.serde import Serde

    return str(Serde.to_json(event))


def emit(settings_section: dict[str, Any], event: Any) -> bool:
    """Send `event` through the configured transport; returns False when none is configured."""
    kind = settings_section.get("transport")
    if not kind:
        return False
    from openlineage.client import OpenLineageClient

    if kind == "file":
        from openlineage.client.transport.file import FileConfig, FileTransport

        transport: Any = FileTransport(
            FileConfig(log_file_path=str(settings_section["path"]), append=True)
        )
    elif kind == "http":
        from openlineage.client.transport.http import HttpConfig, HttpTransport

        transport = HttpTransport(
            HttpConfig(
                url=str(settings_section["url"]),
                endpoint=settings_section.get("endpoint", "api/v1/lineage"),
            )
        )
    else:
        from meshops.kernel.errors import InvalidInput

        raise InvalidInput(
            f"unknown OpenLineage transport {kind!r}",
            {"field": "openlineage.transport", "fix": "use 'file' or 'http'"},
        )
    OpenLineageClient(transport=transport).emit(event)
    return True
