"""OpenLineage out: one mapping from meshops operations to OpenLineage RunEvents.

Every area that runs something (mesh publishes, pipeline runs and their steps, tracking
runs, registry versions, serving's batch scoring) reports it here, so the naming, the
facets and the transport are decided once (docs/openlineage.md). It sits in the kernel
because every area may import the kernel and none may import another area; the events
are built with the openlineage-python client's models and sent with its transports.

Configured in `meshops.toml` (nothing is imported or sent without a `transport`):

    [openlineage]
    transport = "file"                 # "file" (JSON lines) or "http" (Marquez, meshops, ...)
    path = "lineage/events.jsonl"      # file transport: one JSON event per line (appended)
    url = "http://marquez:5000"        # http transport (POST {url}/{endpoint})
    endpoint = "api/v1/lineage"        # http transport (default)
    api_key = "..."                    # http transport: sent as `Authorization: Bearer ...`
    namespace = "meshops://prod"       # this home's namespace (default: meshops://home-<id>)

Naming (https://openlineage.io/docs/spec/naming): one namespace per home (`namespace`), in
which jobs are named `<domain>.<product>.build`, `<pipeline>` and `<pipeline>.<node>`,
`tracking.<experiment>`, `registry.<model>`, `<domain>.<product>.batch_score`; a data
product port is the dataset `<domain>.<product>.<port>` of that namespace whatever its
version (the version is a `version` facet), so what one job publishes is, by name, what
the next one reads; local files are namespace `file` with the absolute path as name.

Sending never fails the operation it reports: a transport error is logged.
"""

from __future__ import annotations

import contextvars
import hashlib
import logging
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from meshops.kernel.errors import InvalidInput
from meshops.kernel.steps import StepContext, current_step

if TYPE_CHECKING:
    from meshops.kernel.config import Settings
    from meshops.kernel.home import Context

log = logging.getLogger(__name__)

PRODUCER = "https://github.com/meshops/meshops"
ICEBERG_CATALOG = "meshops"  # the name of the home's Iceberg catalog (mesh/iceberg.py)
INTEGRATION = "MESHOPS"
State = Literal["START", "RUNNING", "COMPLETE", "ABORT", "FAIL", "OTHER"]
TRANSPORTS = ("file", "http")
_UUID_NAMESPACE = uuid.UUID("7b0e3c1a-5a51-4f4e-9d2c-6d6573686f70")


# --- naming ------------------------------------------------------------------------------------


def settings_section(settings: Settings) -> dict[str, Any]:
    return settings.section("openlineage")


def enabled(settings: Settings) -> bool:
    return bool(settings_section(settings).get("transport"))


def namespace(settings: Settings) -> str:
    """This home's namespace: `[openlineage] namespace`, else `meshops://home-<id>` where
    the id is derived from the database URL (without its password), so an embedded home and
    the server over the same database name their jobs and datasets alike."""
    configured = settings_section(settings).get("namespace")
    if configured:
        return str(configured)
    url = re.sub(r"://([^:/@]+):[^@]*@", r"://\1@", settings.database_url)
    return f"meshops://home-{hashlib.sha256(url.encode()).hexdigest()[:12]}"


def port_dataset_name(product: str, port: str) -> str:
    """The dataset name of a product port: `<domain>.<product>.<port>` (no version)."""
    return f"{product}.{port}"


def file_dataset(path: str | Path) -> tuple[str, str]:
    """A local file or glob: namespace `file`, name its absolute path."""
    return "file", str(Path(path).expanduser().resolve())


def run_id_of(meshops_id: str) -> str:
    """The OpenLineage runId (a UUID) of a meshops run id: the id itself when it is a UUID
    (hex or canonical), else a UUID derived from it, stable across events of one run."""
    try:
        return str(uuid.UUID(meshops_id))
    except ValueError:
        return str(uuid.uuid5(_UUID_NAMESPACE, meshops_id))


def step_job_name(pipeline: str, node: str) -> str:
    return f"{pipeline}.{node}"


# --- datasets ----------------------------------------------------------------------------------


@dataclass
class Dataset:
    """An input or output dataset with its facets (openlineage-python facet objects)."""

    namespace: str
    name: str
    facets: dict[str, Any] = field(default_factory=dict)
    io_facets: dict[str, Any] = field(default_factory=dict)  # inputFacets / outputFacets


def schema_facet(columns: list[tuple[str, str, str | None]]) -> Any:
    """`schema` from (name, type, description) triples."""
    from openlineage.client.facet_v2 import schema_dataset

    return schema_dataset.SchemaDatasetFacet(
        fields=[
            schema_dataset.SchemaDatasetFacetFields(
                name=name, type=kind or None, description=description or None
            )
            for name, kind, description in columns
        ],
        producer=PRODUCER,
    )


def datasource_facet(ns: str) -> Any:
    from openlineage.client.facet_v2 import datasource_dataset

    return datasource_dataset.DatasourceDatasetFacet(name=ns, uri=ns, producer=PRODUCER)


def version_facet(version: str) -> Any:
    from openlineage.client.facet_v2 import dataset_version_dataset

    return dataset_version_dataset.DatasetVersionDatasetFacet(
        datasetVersion=version, producer=PRODUCER
    )


def quality_facet(assertions: list[dict[str, Any]]) -> Any:
    """`dataQualityAssertions` from dicts with assertion, success, column, severity,
    expected, actual, description."""
    from openlineage.client.facet_v2 import data_quality_assertions_dataset as dq

    return dq.DataQualityAssertionsDatasetFacet(
        assertions=[
            dq.Assertion(
                assertion=str(a["assertion"]),
                success=bool(a["success"]),
                column=a.get("column"),
                severity=a.get("severity"),
                description=a.get("description") or None,
                expected=a.get("expected") or None,
                actual=None if a.get("actual") is None else str(a["actual"]),
            )
            for a in assertions
        ],
        producer=PRODUCER,
    )


def column_lineage_facet(fields: dict[str, list[tuple[str, str, str]]]) -> Any:
    """`columnLineage`: output column -> [(namespace, name, input column)], each a copy
    (transformation DIRECT/IDENTITY)."""
    from openlineage.client.facet_v2 import column_lineage_dataset as cl

    return cl.ColumnLineageDatasetFacet(
        fields={
            out: cl.Fields(
                inputFields=[
                    cl.InputField(
                        namespace=ns,
                        name=name,
                        field=column,
                        transformations=[cl.Transformation(type="DIRECT", subtype="IDENTITY")],
                    )
                    for ns, name, column in sources
                ]
            )
            for out, sources in fields.items()
        },
        producer=PRODUCER,
    )


def row_count_facet(rows: int) -> Any:
    from openlineage.client.facet_v2 import output_statistics_output_dataset as stats

    return stats.OutputStatisticsOutputDatasetFacet(rowCount=rows, producer=PRODUCER)


def location_dataset(url: str) -> tuple[str, str]:
    """(namespace, name) of a storage location as OpenLineage names it: a local path is
    (file, /absolute/path), an object store key (s3://bucket, path/in/bucket)."""
    if url.startswith("file:") or "://" not in url:
        path = url.removeprefix("file://").removeprefix("file:")
        return "file", str(Path(path).resolve())
    scheme, _, rest = url.partition("://")
    bucket, _, key = rest.partition("/")
    return f"{scheme}://{bucket}", key or "/"


def iceberg_facets(table: str, location: str, warehouse: str) -> dict[str, Any]:
    """The facets that say a port is the Iceberg table `table` (`<namespace>.<table>` of the
    home's catalog `meshops`) at `location`: `symlinks` (the catalog's TABLE identifier and
    the table's LOCATION), `storage` (iceberg, parquet files) and `catalog` (Iceberg's JDBC
    catalog layout over the metadata database; its URL is not sent, it may hold a password).
    The dataset's `version` facet is the version, which is also the snapshot's tag."""
    from openlineage.client.facet_v2 import catalog_dataset, storage_dataset, symlinks_dataset

    location_ns, location_name = location_dataset(location)
    identifiers = [
        symlinks_dataset.Identifier(namespace=warehouse, name=table, type="TABLE"),
        symlinks_dataset.Identifier(namespace=location_ns, name=location_name, type="LOCATION"),
    ]
    return {
        "symlinks": symlinks_dataset.SymlinksDatasetFacet(
            identifiers=identifiers, producer=PRODUCER
        ),
        "storage": storage_dataset.StorageDatasetFacet(
            storageLayer="iceberg", fileFormat="parquet", producer=PRODUCER
        ),
        "catalog": catalog_dataset.CatalogDatasetFacet(
            framework="iceberg",
            type="jdbc",
            name=ICEBERG_CATALOG,
            warehouseUri=warehouse,
            source="meshops",
            producer=PRODUCER,
        ),
    }


def port_dataset(
    settings: Settings,
    product: str,
    port: str,
    version: str | None = None,
    columns: list[tuple[str, str, str | None]] | None = None,
) -> Dataset:
    """A data product port as a dataset of this home's namespace."""
    ns = namespace(settings)
    facets: dict[str, Any] = {"dataSource": datasource_facet(ns)}
    if columns is not None:
        facets["schema"] = schema_facet(columns)
    if version:
        facets["version"] = version_facet(version)
    return Dataset(ns, port_dataset_name(product, port), facets)


def model_dataset(settings: Settings, model: str, version: int | str | None = None) -> Dataset:
    """A registered model as a dataset of this home: `model.<name>`, its version a facet."""
    ns = namespace(settings)
    facets: dict[str, Any] = {"dataSource": datasource_facet(ns)}
    if version is not None:
        facets["version"] = version_facet(str(version))
    return Dataset(ns, f"model.{model}", facets)


def default_port(ctx: Context, product: str, version: str) -> str | None:
    """The port a reader of `product` gets when naming none (the mesh's PRODUCT_FACTS)."""
    from meshops.kernel import ports

    try:
        return ports.PRODUCT_FACTS.get().port_facts(ctx, product, None, version).port
    except Exception as exc:  # not published here, or not readable: no port to name
        log.debug("OpenLineage: no default port of %s %s: %s", product, version, exc)
        return None


def storage_facets(ctx: Context, product: str, port: str, version: str) -> dict[str, Any]:
    """How the port's version is stored (the Iceberg table it is a snapshot of; nothing
    for Parquet), from the mesh through the LINEAGE_FACETS port."""
    from meshops.kernel import ports

    try:
        return ports.LINEAGE_FACETS.get().port_facets(ctx, product, port, version)
    except Exception as exc:  # the event goes out without them
        log.warning("OpenLineage: no storage facets of %s %s %s: %s", product, port, version, exc)
        return {}


def stored_port_dataset(
    ctx: Context,
    product: str,
    port: str,
    version: str,
    columns: list[tuple[str, str, str | None]] | None = None,
) -> Dataset:
    """`port_dataset` with the facets saying how the version is stored, as the mesh's own
    publish events name it (an Iceberg port names its table)."""
    dataset = port_dataset(ctx.home.settings, product, port, version, columns)
    dataset.facets.update(storage_facets(ctx, product, port, version))
    return dataset


def urn_dataset(ctx: Context, urn: str, port: str | None = None) -> Dataset:
    """The dataset a meshops URN names: a product version's `port` (default: the port a
    reader gets), a model version, else `<kind>.<parts>` in this home."""
    from meshops.kernel.urn import Urn

    settings = ctx.home.settings
    try:
        parsed = Urn.parse(urn)
    except InvalidInput:  # e.g. a URI logged as a tracking input: named as it is
        return Dataset(namespace(settings), urn)
    if parsed.kind == "dataproduct" and len(parsed.parts) >= 2:
        key, version = parsed.parts[0], parsed.parts[1]
        port = port or default_port(ctx, key, version)
        if port:
            return stored_port_dataset(ctx, key, port, version)
        return Dataset(namespace(settings), key, {"version": version_facet(version)})
    if parsed.kind == "model" and len(parsed.parts) == 2:
        return model_dataset(settings, parsed.parts[0], parsed.parts[1])
    return Dataset(namespace(settings), ".".join((parsed.kind, *parsed.parts)))


def report_instant(
    ctx: Context,
    job: str,
    *,
    job_type: str,
    inputs: list[Dataset] | None = None,
    outputs: list[Dataset] | None = None,
    run_id: str | None = None,
) -> None:
    """START and COMPLETE of an operation done in one transaction (a model version's
    registration), sent once the caller's unit of work commits."""
    reporter = Reporter(ctx)
    if not reporter.enabled:
        return
    ol_run_id = run_id_of(run_id) if run_id else str(uuid.uuid4())
    parent = reporter.parent()
    for state in ("START", "COMPLETE"):
        reporter.emit(
            state,
            job,
            ol_run_id,
            job_type=job_type,
            inputs=inputs,
            outputs=outputs if state == "COMPLETE" else None,
            parent=parent,
            after_commit=True,
        )


def report_registration(ctx: Context, model: str, version: int, input_urns: list[str]) -> None:
    """A model version's registration: job `registry.<model>`, the training inputs in, the
    model version (`model.<name>`, version facet) out."""
    if not enabled(ctx.home.settings):
        return
    settings = ctx.home.settings
    report_instant(
        ctx,
        f"registry.{model}",
        job_type="MODEL_REGISTRATION",
        inputs=[urn_dataset(ctx, urn) for urn in input_urns],
        outputs=[model_dataset(settings, model, version)],
    )


def record_batch_scoring(
    ctx: Context, running: Running, source: Any, port: str | None, out: Any
) -> None:
    """A batch scoring's datasets: the scored product port and the model version in, the
    predictions product out; a column copied from the input (`keep_columns`) has identity
    column lineage; an Iceberg port, in or out, names its table. `source` and `out` are mesh
    DataProductVersions (read duck-typed)."""
    source_port = source.port(port)
    read = stored_port_dataset(ctx, source.product, source_port.name, source.version)
    running.inputs = [read, *(urn_dataset(ctx, u) for u in out.inputs[1:])]
    copied = {c.name for c in source_port.columns}
    for out_port in out.ports:
        columns = [(c.name, c.physical_type or c.logical_type, c.description or None)
                   for c in out_port.columns]  # fmt: skip
        dataset = stored_port_dataset(ctx, out.product, out_port.name, out.version, columns)
        lineage = {
            name: [(read.namespace, read.name, name)] for name, _, _ in columns if name in copied
        }
        if lineage:
            dataset.facets["columnLineage"] = column_lineage_facet(lineage)
        running.outputs.append(dataset)


# --- parents -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunRef:
    """A run as a parent: its job and its OpenLineage runId."""

    namespace: str
    job: str
    run_id: str
    root: RunRef | None = None


_current: contextvars.ContextVar[RunRef | None] = contextvars.ContextVar(
    "meshops_openlineage_run", default=None
)


def current_run() -> RunRef | None:
    """The meshops operation reporting right now in this thread/task (e.g. a batch scoring
    around its publish), the parent of what it starts."""
    return _current.get()


def step_parent(ctx: Context, step: StepContext) -> RunRef | None:
    """The step's run as a parent (rooted at its pipeline run). The pipeline's name comes
    from the lineage graph (pipeline --ran--> run, recorded when the run starts)."""
    if not step.step_run_id:
        return None
    from sqlalchemy import text

    run_urn = step.run_urn
    with ctx.db.read() as conn:
        row = conn.execute(
            text("SELECT upstream FROM lineage_edges WHERE downstream = :urn AND relation = 'ran'"),
            {"urn": run_urn},
        ).first()
    if row is None:
        return None
    pipeline = str(row[0]).split(":", 2)[2]
    ns = namespace(ctx.home.settings)
    root = RunRef(ns, pipeline, run_id_of(step.run_id))
    return RunRef(ns, step_job_name(pipeline, step.node), run_id_of(step.step_run_id), root)


def parent_of_new_run(ctx: Context) -> RunRef | None:
    """What a run started now belongs to: the enclosing meshops operation, else the
    pipeline step running this code (in-process, or the client's step over HTTP)."""
    enclosing = current_run()
    if enclosing is not None:
        return enclosing
    step = current_step()
    if step is not None:
        try:
            return step_parent(ctx, step)
        except Exception as exc:  # the parent link is best effort, the event is not
            log.warning("OpenLineage: cannot resolve the parent step of %s: %s", step, exc)
    return None


def parent_facet(parent: RunRef) -> Any:
    from openlineage.client.facet_v2 import parent_run

    root = None
    if parent.root is not None:
        root = parent_run.Root(
            run=parent_run.RootRun(runId=parent.root.run_id),
            job=parent_run.RootJob(namespace=parent.root.namespace, name=parent.root.job),
        )
    return parent_run.ParentRunFacet(
        run=parent_run.Run(runId=parent.run_id),
        job=parent_run.Job(namespace=parent.namespace, name=parent.job),
        root=root,
        producer=PRODUCER,
    )


# --- events ------------------------------------------------------------------------------------


def run_event(
    state: State,
    ns: str,
    job: str,
    run_id: str,
    *,
    job_type: str,
    inputs: list[Dataset] | None = None,
    outputs: list[Dataset] | None = None,
    parent: RunRef | None = None,
    error: str | None = None,
    run_facets: dict[str, Any] | None = None,
    event_time: datetime | None = None,
) -> Any:
    """One RunEvent (openlineage-python `event_v2.RunEvent`)."""
    from openlineage.client.event_v2 import (
        InputDataset,
        Job,
        OutputDataset,
        Run,
        RunEvent,
        RunState,
    )
    from openlineage.client.facet_v2 import error_message_run, job_type_job

    facets: dict[str, Any] = dict(run_facets or {})
    if parent is not None:
        facets["parent"] = parent_facet(parent)
    if error:
        facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
            message=error[:4000], programmingLanguage="PYTHON", producer=PRODUCER
        )
    when = (event_time or datetime.now(UTC)).astimezone(UTC)
    return RunEvent(
        eventType=RunState[state],
        eventTime=when.isoformat(),
        producer=PRODUCER,
        run=Run(runId=run_id, facets=facets),
        job=Job(
            namespace=ns,
            name=job,
            facets={
                "jobType": job_type_job.JobTypeJobFacet(
                    processingType="BATCH",
                    integration=INTEGRATION,
                    jobType=job_type,
                    producer=PRODUCER,
                )
            },
        ),
        inputs=[
            InputDataset(
                namespace=d.namespace, name=d.name, facets=d.facets, inputFacets=d.io_facets
            )
            for d in inputs or []
        ],
        outputs=[
            OutputDataset(
                namespace=d.namespace, name=d.name, facets=d.facets, outputFacets=d.io_facets
            )
            for d in outputs or []
        ],
    )


def to_json(event: Any) -> str:
    from openlineage.client.serde import Serde

    return str(Serde.to_json(event))


def check_settings(section: dict[str, Any]) -> None:
    kind = section.get("transport")
    if kind and kind not in TRANSPORTS:
        raise InvalidInput(
            f"unknown OpenLineage transport {kind!r}",
            {"field": "openlineage.transport", "fix": "use 'file' or 'http'"},
        )
    for needed, when in (("path", "file"), ("url", "http")):
        if kind == when and not section.get(needed):
            raise InvalidInput(
                f"the {when} OpenLineage transport needs `{needed}`",
                {"field": f"openlineage.{needed}", "fix": f"set [openlineage] {needed}"},
            )


def transport_for(section: dict[str, Any]) -> Any:
    """The openlineage-python transport `[openlineage]` configures."""
    check_settings(section)
    kind = section["transport"]
    if kind == "file":
        from openlineage.client.transport.file import FileConfig, FileTransport

        return FileTransport(FileConfig(log_file_path=str(section["path"]), append=True))
    from openlineage.client.transport.http import ApiKeyTokenProvider, HttpConfig, HttpTransport

    config = HttpConfig(
        url=str(section["url"]),
        endpoint=str(section.get("endpoint", "api/v1/lineage")),
        timeout=float(section.get("timeout", 5.0)),
    )
    if section.get("api_key"):
        config.auth = ApiKeyTokenProvider({"apiKey": str(section["api_key"])})
    return HttpTransport(config)


def send(section: dict[str, Any], event: Any) -> bool:
    """Send `event` through the configured transport; False when none is configured or
    sending failed (logged: lineage export never undoes the operation it reports)."""
    if not section.get("transport"):
        return False
    try:
        from openlineage.client import OpenLineageClient

        OpenLineageClient(transport=transport_for(section)).emit(event)
    except Exception as exc:
        log.warning("OpenLineage emit failed for %s: %s", getattr(event, "job", event), exc)
        return False
    return True


# --- what areas call ---------------------------------------------------------------------------


class Reporter:
    """What an area calls: `start`, then `finish` with the final state, for one run of a
    job; events go out now (START) or once the caller's unit of work commits (the end)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.section = settings_section(ctx.home.settings)
        self.enabled = bool(self.section.get("transport"))
        self.namespace = namespace(ctx.home.settings) if self.enabled else ""

    def emit(
        self,
        state: State,
        job: str,
        run_id: str,
        *,
        job_type: str,
        after_commit: bool = False,
        **kwargs: Any,
    ) -> None:
        if not self.enabled:
            return
        try:
            event = run_event(state, self.namespace, job, run_id, job_type=job_type, **kwargs)
        except Exception as exc:  # reporting never fails the operation it reports
            log.warning("OpenLineage: cannot build the %s event of %s: %s", state, job, exc)
            return
        if after_commit:
            self.ctx.db.after_commit(lambda: self._send(event))
        else:
            self._send(event)

    def _send(self, event: Any) -> None:
        send(self.section, event)

    def parent(self) -> RunRef | None:
        return parent_of_new_run(self.ctx) if self.enabled else None


@dataclass
class Running:
    """The run `reporting` opened: set `outputs` (and more `inputs`) before it ends;
    `abort()` ends it ABORT (e.g. nothing new was done) instead of COMPLETE."""

    ref: RunRef
    job_type: str
    parent: RunRef | None
    inputs: list[Dataset] = field(default_factory=list)
    outputs: list[Dataset] = field(default_factory=list)
    aborted: bool = False
    run_facets: dict[str, Any] = field(default_factory=dict)

    def abort(self) -> None:
        self.aborted = True


@contextmanager
def reporting(
    ctx: Context,
    job: str,
    *,
    job_type: str,
    inputs: list[Dataset] | None = None,
    run_id: str | None = None,
) -> Iterator[Running | None]:
    """START now, then COMPLETE (after the commit), FAIL (with the error) or ABORT for the
    code inside; yields None when no transport is configured. What starts inside (e.g. the
    publish of a batch scoring) names this run as its parent."""
    reporter = Reporter(ctx)
    if not reporter.enabled:
        yield None
        return
    ol_run_id = run_id_of(run_id) if run_id else str(uuid.uuid4())
    running = Running(
        RunRef(reporter.namespace, job, ol_run_id), job_type, reporter.parent(), list(inputs or [])
    )
    reporter.emit(
        "START",
        job,
        ol_run_id,
        job_type=job_type,
        inputs=running.inputs,
        parent=running.parent,
    )
    token = _current.set(running.ref)
    try:
        yield running
    except BaseException as exc:
        _current.reset(token)
        reporter.emit(
            "FAIL",
            job,
            ol_run_id,
            job_type=job_type,
            inputs=running.inputs,
            parent=running.parent,
            error=f"{type(exc).__name__}: {exc}",
        )
        raise
    _current.reset(token)
    reporter.emit(
        "ABORT" if running.aborted else "COMPLETE",
        job,
        ol_run_id,
        job_type=job_type,
        inputs=running.inputs,
        outputs=running.outputs,
        parent=running.parent,
        run_facets=running.run_facets,
        after_commit=True,
    )
