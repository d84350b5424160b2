"""Builds on Ray Data (build.yaml `engine: ray`): the transform runs per block on a Ray
cluster (the local Ray when no `ray_address` is given), and the result comes back to this
process as Arrow, where the normal path conforms, contract-tests and publishes it: contracts,
gates and lineage are the same as for a local build.

The rules (docs/ray.md):
- The first input (or the one `block_input` names) is split into blocks; every other
  input is a side input, read whole in this process (through the same readers as a local
  build: governed reads for products) and given whole to every block (a lookup table).
- Parquet file inputs are read by the Ray workers (`ray.data.read_parquet`); CSV, JSON,
  files with reader options, database queries and products are read here, exactly as a
  local build reads them (same types), then split into blocks of `block_rows` rows (or
  into `blocks` blocks).
- A transform sees one block at a time, with the same signature as locally: SQL over the
  inputs as relations (in the kernel's sandbox, in the worker) or `transform(inputs)` in
  Python. So it must be per row: SQL that aggregates, de-duplicates, windows, limits or
  samples is refused before anything runs (DuckDB's own plan says so), since per block it
  would give another answer than over the whole input; aggregate in a downstream product.
- A block whose transform raises is retried `block_retries` times in its worker (a
  refusal of the platform, e.g. the sandbox's, is not retried); each failure is a step of
  the build report. A block that still fails fails the build: nothing is published.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from meshops.kernel.errors import InvalidInput, MeshopsError
from meshops.kernel.sandbox import Relation, Sandbox, parse
from meshops.mesh import builds
from meshops.mesh.models import (
    MAX_STORED_RETRIES,
    BlockRetry,
    BuildSummary,
    PortBlocks,
)
from meshops.mesh.specs import BuildSpec, InputSpec, ProductSpec, TransformSpec

if TYPE_CHECKING:
    import ray.data

DEFAULT_BLOCK_ROWS = 100_000
Step = Callable[[str], None]


def _ray() -> Any:
    try:
        import ray
        import ray.data
    except ImportError as exc:
        raise InvalidInput(
            "engine: ray needs Ray Data, which is not installed",
            {"field": "engine", "fix": "pip install 'meshops[ray]', or use engine: local"},
        ) from exc
    return ray


@contextlib.contextmanager
def ray_session(address: str | None) -> Iterator[Any]:
    """Ray for the length of a job: the runtime already started in this process (a test's,
    a notebook's), else a new connection to `address` (None: a local Ray), closed after."""
    ray = _ray()
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # progress is reported through the build's steps
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    if ray.is_initialized():
        yield ray
        return
    try:
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        raise InvalidInput(
            f"cannot start or reach Ray at {address or 'a local runtime'}: {exc}",
            {"field": "ray_address", "fix": "give the cluster's address (ray://host:10001)"},
        ) from exc
    try:
        yield ray
    finally:
        ray.shutdown()


# --- blocks: retries in the worker, a log the driver reads -------------------------------


@dataclass(frozen=True)
class BlockFailure:
    block: str
    attempt: int
    error: str
    final: bool  # no attempt follows: the job fails


class BlockLog:
    """A Ray actor the workers tell about each block; the driver reads it for progress and
    for the failures that go into the report."""

    def __init__(self) -> None:
        self.blocks = 0
        self.rows = 0
        self.failures: list[BlockFailure] = []

    def done(self, rows: int) -> None:
        self.blocks += 1
        self.rows += rows

    def failed(self, failure: BlockFailure) -> None:
        self.failures.append(failure)

    def progress(self) -> tuple[int, int]:
        return self.blocks, self.rows

    def failed_blocks(self) -> list[BlockFailure]:
        return list(self.failures)


def new_block_log() -> Any:
    return _ray().remote(num_cpus=0)(BlockLog).remote()


def block_id(batch: pa.Table) -> str:
    """A short name for a block in messages: its row count and first row."""
    first = batch.slice(0, 1).to_pylist()
    digest = hashlib.sha256(repr(first).encode()).hexdigest()[:8]
    return f"{digest} ({batch.num_rows:,} rows)"


def with_retries(call: Callable[[], pa.Table], batch: pa.Table, log: Any, retries: int) -> pa.Table:
    """Run one block, again after a failure, at most `retries` more times."""
    import ray

    for attempt in range(1, retries + 2):
        try:
            out = call()
        except Exception as exc:
            # A refusal of the platform (the sandbox, a bad result) is the same every time.
            final = attempt > retries or isinstance(exc, MeshopsError)
            error = exc.message if isinstance(exc, MeshopsError) else f"{type(exc).__name__}: {exc}"
            ray.get(log.failed.remote(BlockFailure(block_id(batch), attempt, error, final)))
            if final:
                raise
            continue
        ray.get(log.done.remote(batch.num_rows))
        return out
    raise AssertionError("unreachable")


@dataclass
class BlockRun:
    table: pa.Table
    events: list[str] = field(default_factory=list)  # retried failures, for the report
    blocks: int = 0  # transform calls that succeeded
    rows: int = 0  # their input rows
    retried: list[BlockFailure] = field(default_factory=list)  # failures followed by an attempt


def collect(
    dataset: ray.data.Dataset,
    log: Any,
    *,
    what: str,
    total_rows: int | None,
    step: Step,
    field_name: str,
) -> BlockRun:
    """Run `dataset` (mapped blocks) to the end, reporting progress; its blocks as one table.
    InvalidInput when a block fails for good, naming the block and the error."""
    import ray

    parts: list[pa.Table] = []
    total = f"{total_rows:,}" if total_rows is not None else "?"
    blocks = rows = 0
    try:
        for batch in dataset.iter_batches(batch_size=None, batch_format="pyarrow"):
            parts.append(batch)
            blocks, rows = ray.get(log.progress.remote())
            message = f"{what}: {blocks} blocks done, {rows:,}/{total} rows"
            step(builds.ProgressStep(message, rows, total_rows))
    except Exception as exc:
        failures = ray.get(log.failed_blocks.remote())
        final = [f for f in failures if f.final]
        reason = (
            f"block {final[-1].block} failed on attempt {final[-1].attempt}: {final[-1].error}"
            if final
            else f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        )
        raise InvalidInput(
            f"{what} failed, nothing is published: {reason}",
            {
                "field": field_name,
                "failures": [f"{f.block} attempt {f.attempt}: {f.error}" for f in failures],
                "fix": "fix the transform (or the data of that block); a block is retried "
                "`block_retries` times",
            },
        ) from None
    retried = [f for f in ray.get(log.failed_blocks.remote()) if not f.final]
    events = [f"{what}: block {f.block} attempt {f.attempt} failed ({f.error}); retried"
              for f in retried]  # fmt: skip
    for event in events:
        step(event)
    blocks, rows = ray.get(log.progress.remote())  # the last block may end with no rows out
    table = pa.concat_tables(parts, promote_options="permissive") if parts else None
    return BlockRun(table if table is not None else pa.table({}), events, blocks, rows, retried)


def _without_credentials(address: str | None) -> str | None:
    """The cluster's address as stored with a version: no user or token of a URL."""
    if address is None or "@" not in address:
        return address
    scheme, _, rest = address.rpartition("://")
    host = rest.rpartition("@")[2]
    return f"{scheme}://{host}" if scheme else host


def split(table: pa.Table, block_rows: int | None, blocks: int | None) -> list[pa.Table]:
    """`table` as blocks of `block_rows` rows, or as `blocks` blocks of equal size."""
    rows = table.num_rows
    size = -(-rows // blocks) if blocks else (block_rows or DEFAULT_BLOCK_ROWS)
    size = max(size, 1)
    return [table.slice(offset, size) for offset in range(0, max(rows, 1), size)]


# --- builds ------------------------------------------------------------------------------


@dataclass(frozen=True)
class BlockTask:
    """What a worker needs to transform one block (pickled to the workers once)."""

    main: str  # the blocked input's name
    sides: dict[str, Any]  # side input name -> object ref of its table
    sql: str | None
    function: Callable[..., Any] | None  # a Python transform, pickled by value from a file
    ref: str  # how the transform is named in messages
    port: str
    log: Any
    retries: int


def _transform_block(batch: pa.Table, *, task: BlockTask) -> pa.Table:
    import ray

    inputs = {task.main: batch, **{n: ray.get(ref) for n, ref in task.sides.items()}}
    return with_retries(lambda: _apply(task, inputs), batch, task.log, task.retries)


def _apply(task: BlockTask, inputs: dict[str, pa.Table]) -> pa.Table:
    if task.sql is not None:
        return builds.run_sql(task.sql, inputs)
    if task.function is None:  # no transform: the single input passes through
        return inputs[task.main]
    result = task.function(inputs)
    if isinstance(result, dict):
        raise InvalidInput(
            f"the Python transform {task.ref} returned a dict of ports; on Ray each port "
            "has its own transform",
            {"field": "transforms", "fix": f"add `transforms: {{{task.port}: ...}}`"},
        )
    return builds.to_arrow(result, task.ref)


_CROSS_ROW = re.compile(r"group by|aggregate|window|limit|top n|sample|distinct", re.IGNORECASE)
_PLAN_NODE = re.compile(r"╭─ ?([A-Za-z_ ]+?) ?─")


def check_per_block(sql: str, schemas: dict[str, pa.Schema]) -> None:
    """Refuse SQL whose answer depends on rows of other blocks: DuckDB plans it over empty
    tables of the inputs' schemas (in the sandbox; nothing runs) and its plan must have no
    aggregate, window, DISTINCT, LIMIT or SAMPLE."""
    query = parse(sql, "transform.sql")
    relations = [Relation(name, table=schema.empty_table()) for name, schema in schemas.items()]
    with Sandbox(relations) as sandbox:
        sandbox.run_user_sql(query, "transform.sql")  # checks the relations it reads
        plan = sandbox.run_platform_sql(f"EXPLAIN {query.text}", "transform.sql")
    nodes = [
        n for text in plan.column("explain_value").to_pylist() for n in _PLAN_NODE.findall(text)
    ]
    cross = sorted({n for n in nodes if _CROSS_ROW.search(n)})
    if cross:
        raise InvalidInput(
            f"a SQL transform on Ray runs per block; this one needs rows of other blocks "
            f"({', '.join(cross)})",
            {
                "field": "transform.sql",
                "fix": "keep per-row SQL here (filters, projections, joins with side inputs) "
                "and aggregate in a downstream product built with engine: local",
            },
        )


@dataclass
class MainInput:
    dataset: ray.data.Dataset
    data: builds.InputData
    schema: pa.Schema
    rows: int | None
    batch_size: int | None  # rows per call of the transform (None: a whole block)
    blocks: int | None = None  # known when split here (Ray splits Parquet files itself)


@dataclass
class RayRun:
    """What a build on Ray gives back: each port's table, the inputs (lineage) and, for
    the report stored with the version, each port's blocks and its retried failures."""

    tables: dict[str, pa.Table]
    inputs: list[builds.InputData]
    address: str | None
    ports: list[PortBlocks] = field(default_factory=list)
    retried: list[BlockRetry] = field(default_factory=list)

    def add(self, port: str, run: BlockRun, main: MainInput) -> None:
        self.ports.append(PortBlocks(port=port, blocks=run.blocks, total_blocks=main.blocks,
                                     rows=run.rows, total_rows=main.rows))  # fmt: skip
        self.retried += [
            BlockRetry(port=port, block=f.block, attempt=f.attempt, error=f.error[:2_000])
            for f in run.retried
        ]

    def summary(self, seconds: float) -> BuildSummary:
        return BuildSummary(
            engine="ray",
            seconds=seconds,
            ray_address=_without_credentials(self.address),
            blocks=self.ports,
            retries=self.retried[:MAX_STORED_RETRIES],
            retried_blocks=len(self.retried),
        )


def _main_input(
    ray: Any, name: str, spec: InputSpec, product: ProductSpec, *, options: BuildSpec, read: Any
) -> MainInput:
    if spec.path and not spec.options and (spec.format or "parquet") == "parquet":
        match = builds.match_files(name, spec, product.folder)
        if match.format == "parquet":
            filesystem = None
            if not match.local:
                from pyarrow.fs import FSSpecHandler, PyFileSystem

                filesystem = PyFileSystem(FSSpecHandler(match.fs))
            dataset = ray.data.read_parquet(
                match.paths, filesystem=filesystem, override_num_blocks=options.blocks
            )
            schema = dataset.schema(fetch_if_missing=True).base_schema
            data = builds.file_lineage(name, schema.empty_table(), match)
            batch_size = None if options.blocks else (options.block_rows or DEFAULT_BLOCK_ROWS)
            return MainInput(dataset, data, schema, dataset.count(), batch_size)
    data = _read_here(name, spec, product, read)
    parts = split(data.table, options.block_rows, options.blocks)
    dataset = ray.data.from_arrow(parts)
    return MainInput(dataset, data, data.table.schema, data.table.num_rows, None, len(parts))


def _read_here(name: str, spec: InputSpec, product: ProductSpec, read: Any) -> builds.InputData:
    if spec.path:
        return builds.read_files(name, spec, product.folder)
    if spec.url:
        return builds.read_database(name, spec)
    return builds.read_product_input(name, spec, read)


def _block_input(options: BuildSpec) -> str:
    name = options.block_input or next(iter(options.inputs))
    if name not in options.inputs:
        raise InvalidInput(
            f"block_input {name!r} is not an input",
            {"field": "block_input", "fix": f"one of {sorted(options.inputs)}"},
        )
    return name


def _port_transforms(spec: ProductSpec, options: BuildSpec) -> dict[str, TransformSpec | None]:
    first = spec.ports[0].port
    return {first: options.transform, **options.transforms}


def build_tables(
    spec: ProductSpec, options: BuildSpec, read_product: builds.ProductReader, step: Step
) -> RayRun:
    """Each output port's table, transformed per block on Ray, the inputs (lineage) and
    the blocks each port took."""
    if not options.inputs:
        raise InvalidInput(
            f"{spec.key}: a build on Ray needs an input to split into blocks",
            {"file": "build.yaml", "field": "inputs", "fix": "add an input, or engine: local"},
        )
    with ray_session(options.ray_address) as ray:
        main_name = _block_input(options)
        main_spec = options.inputs[main_name]
        others = [(n, i) for n, i in options.inputs.items() if n != main_name]
        step(f"read input {main_name} (ray)")
        main = _main_input(ray, main_name, main_spec, spec, options=options, read=read_product)
        sides = []
        for name, input_spec in others:
            step(f"read input {name} (side input, whole to every block)")
            sides.append(_read_here(name, input_spec, spec, read_product))
        side_refs = {s.name: ray.put(s.table) for s in sides}
        schemas = {main_name: main.schema, **{s.name: s.table.schema for s in sides}}
        outcome = RayRun({}, [main.data, *sides], options.ray_address)
        for port, transform in _port_transforms(spec, options).items():
            task = _task(
                spec,
                options,
                transform,
                port=port,
                main=main_name,
                side_refs=side_refs,
                schemas=schemas,
            )
            step(f"transform {port} (ray, per block)")
            mapped = main.dataset.map_batches(
                functools.partial(_transform_block, task=task),
                batch_format="pyarrow",
                batch_size=main.batch_size,
                zero_copy_batch=True,
                # A lost worker: Ray runs the task again, `block_retries` times (Ray Data's
                # default is forever). Ray 2.60 deprecates `ray_remote_args_fn` and
                # `**ray_remote_args` (removal in 2.64) but has no named `max_retries` to
                # move to: kept until it has one.
                ray_remote_args_fn=functools.partial(dict, max_retries=options.block_retries),
            )
            run = collect(
                mapped,
                task.log,
                what=f"ray {port}",
                total_rows=main.rows,
                step=step,
                field_name="transform",
            )
            table = run.table if run.table.num_columns else _empty_result(task, schemas)
            outcome.tables[port] = table
            outcome.add(port, run, main)
    return outcome


def _task(
    spec: ProductSpec,
    options: BuildSpec,
    transform: TransformSpec | None,
    *,
    port: str,
    main: str,
    side_refs: dict[str, Any],
    schemas: dict[str, pa.Schema],
) -> BlockTask:
    sql = builds.transform_sql(spec, transform) if transform else None
    function = None
    ref = "(pass-through)"
    if transform is None and side_refs:
        raise InvalidInput(
            f"{spec.key} has {len(schemas)} inputs and no transform for port {port!r}",
            {"file": "build.yaml", "field": "transform", "fix": "add `transform: {sql: ...}`"},
        )
    if sql is not None:
        check_per_block(sql, schemas)
        ref = "transform.sql"
    elif transform is not None:
        assert transform.python is not None
        function, ref = builds.load_function(transform.python, spec.folder), transform.python
    return BlockTask(
        main, side_refs, sql, function, ref, port, new_block_log(), options.block_retries
    )


def _empty_result(task: BlockTask, schemas: dict[str, pa.Schema]) -> pa.Table:
    """The transform's answer on an empty input (no block came back), for its columns."""
    import ray

    inputs = {task.main: schemas[task.main].empty_table()}
    inputs.update({n: ray.get(ref) for n, ref in task.sides.items()})
    return _apply(task, inputs)
