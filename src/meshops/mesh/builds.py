"""Builds: read a product's inputs, run its transform, return one Arrow table per port.

Inputs (build.yaml `inputs:`):
  path:    files - CSV, Parquet, JSON; globs; any fsspec URL (read by DuckDB)
  url+query: a SQL database through SQLAlchemy
  product: another data product "domain.name@range" - read through the governed read path
           (interface "pipeline") by the `ProductReader` the caller passes in
Transforms: DuckDB SQL with each input as a named relation, or a Python function
`transform(inputs: dict[str, pa.Table]) -> pa.Table` (pandas/polars frames accepted; a dict
port -> table when the product has several ports). Without a transform, a single input
passes through.

Builds do not touch the metadata database, so the SDK runs them locally over both transports.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import duckdb
import fsspec
import pyarrow as pa

from meshops.kernel.errors import Forbidden, InvalidInput, MeshopsError
from meshops.kernel.sandbox import Relation, run_user_sql
from meshops.kernel.urn import Urn
from meshops.mesh.contracts import literal, run_port_contract_test
from meshops.mesh.models import BuildReport, BuildSummary, ContractReport, PortBuild
from meshops.mesh.specs import InputSpec, ProductSpec, TransformSpec

OnStep = Callable[[str], None]


class ProgressStep(str):
    """A step that also measures progress (a Ray build's rows done of its total): every
    `on_step` takes it as the message it is; the CLI draws a progress bar from it."""

    done: int
    total: int | None

    def __new__(cls, message: str, done: int, total: int | None) -> ProgressStep:
        step = super().__new__(cls, message)
        step.done = done
        step.total = total
        return step


class ProductReader(Protocol):
    def __call__(self, ref: str, port: str | None) -> tuple[pa.Table, str]:
        """Read a product input (governed, interface 'pipeline'); returns (table, version URN)."""
        ...


@dataclass
class InputData:
    name: str
    table: pa.Table
    urn: str  # the upstream version or source URN (lineage)
    namespace: str  # OpenLineage dataset namespace
    dataset: str  # OpenLineage dataset name


@dataclass(frozen=True)
class BuildLimits:
    """What a build may do when the API server runs it (`meshops apply` of the server's
    checkout): its specs come from a repository anyone with push rights wrote, and user
    Python never runs in the API server. So: SQL transforms only (in the sandbox), no
    database connections, and file inputs only inside the checkout `root`."""

    root: Path

    def refuse(self, what: str, field_name: str) -> Forbidden:
        return Forbidden(
            f"{what} is not run by the API server",
            {
                "field": field_name,
                "fix": "run `meshops apply` from CI or a workstation (the client builds), or an "
                "admin sets [project] trusted_builds = true in the server's meshops.toml",
            },
        )

    def check_file(self, name: str, path: str) -> None:
        resolved = Path(path).resolve()
        if resolved != self.root and self.root not in resolved.parents:
            raise Forbidden(
                f"input {name!r}: {path} is outside the project checkout",
                {
                    "field": f"inputs.{name}.path",
                    "fix": "read files inside the repository, or publish the data as a product",
                },
            )


_OPTION_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass
class BuildResult:
    product: str
    version: str
    tables: dict[str, pa.Table]
    inputs: list[InputData]
    seconds: float
    steps: list[str] = field(default_factory=list)
    summary: BuildSummary | None = None  # stored with the version it publishes


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


def _format_of(path: str, declared: str | None) -> str:
    if declared:
        return declared.lower()
    lower = path.lower().split("?")[0]
    for suffix, fmt in (
        (".parquet", "parquet"),
        (".pq", "parquet"),
        (".csv", "csv"),
        (".tsv", "csv"),
        (".json", "json"),
        (".jsonl", "json"),
        (".ndjson", "json"),
    ):
        if lower.endswith(suffix) or lower.endswith(suffix + ".gz"):
            return fmt
    raise InvalidInput(
        f"cannot tell the format of {path}",
        {"field": "inputs.format", "fix": "add `format: csv|parquet|json` to the input"},
    )


@dataclass
class FileMatch:
    """The files an input's `path` names (after the checkout and glob checks)."""

    url: str  # the input's path, made absolute
    fs: Any  # the fsspec filesystem
    files: list[str]  # what to read: local paths or protocol://paths
    paths: list[str]  # the same, as the filesystem names them
    local: bool
    format: str


def match_files(
    name: str, spec: InputSpec, folder: Path | None, limits: BuildLimits | None = None
) -> FileMatch:
    assert spec.path is not None
    url = spec.path
    if "://" not in url and not Path(url).is_absolute() and folder is not None:
        url = str((folder / url).resolve())
    if limits and "://" in url:
        raise limits.refuse(f"input {name!r} from {url.split('://')[0]}://", f"inputs.{name}.path")
    fs, root = fsspec.core.url_to_fs(url)
    matches = (
        sorted(fs.glob(root))
        if any(ch in root for ch in "*?[")
        else ([root] if fs.exists(root) else [])
    )
    if limits:
        for match in matches:
            limits.check_file(name, match)
    if not matches:
        raise InvalidInput(
            f"input {name!r}: no file matches {spec.path}",
            {
                "field": f"inputs.{name}.path",
                "fix": "check the path or glob (relative to the product folder)",
            },
        )
    protocol = fs.protocol[0] if isinstance(fs.protocol, tuple) else fs.protocol
    local = protocol in ("file", "local")
    files = [m if local else f"{protocol}://{m}" for m in matches]
    return FileMatch(url, fs, files, matches, local, _format_of(matches[0], spec.format))


def file_lineage(name: str, table: pa.Table, match: FileMatch) -> InputData:
    """The input with its lineage: a URN from the files' sizes and times, and its
    OpenLineage naming (a local file is (file, absolute path), a remote one (s3://bucket, key))."""
    fs = match.fs
    stamps = [
        f"{m}:{fs.info(m).get('size')}:{fs.info(m).get('mtime', fs.info(m).get('ETag', ''))}"
        for m in match.paths
    ]
    urn = str(Urn.of("source", "files", _digest(*stamps)[:24]))
    if match.local:
        path = match.url.removeprefix("file://")
        return InputData(name, table, urn, "file", str(Path(path).resolve()))
    scheme, _, rest = match.url.partition("://")
    bucket, _, key = rest.partition("/")
    return InputData(name, table, urn, f"{scheme}://{bucket}", key or "/")


def read_files(
    name: str, spec: InputSpec, folder: Path | None, limits: BuildLimits | None = None
) -> InputData:
    bad = [k for k in spec.options if not _OPTION_NAME.fullmatch(str(k))]
    if bad:
        raise InvalidInput(
            f"input {name!r}: reader option names must be identifiers, not {bad}",
            {"field": f"inputs.{name}.options", "fix": "use the reader's option names, e.g. delim"},
        )
    match = match_files(name, spec, folder, limits)
    con = duckdb.connect()
    try:
        if not match.local:
            con.register_filesystem(match.fs)
        options = "".join(f", {k} = {literal(v)}" for k, v in spec.options.items())
        reader = {"csv": "read_csv", "parquet": "read_parquet", "json": "read_json_auto"}.get(
            match.format
        )
        if reader is None:
            raise InvalidInput(
                f"unsupported input format {match.format!r}",
                {"field": f"inputs.{name}.format", "fix": "csv, parquet or json"},
            )
        file_list = "[" + ", ".join(literal(f) for f in match.files) + "]"
        table = con.sql(f"SELECT * FROM {reader}({file_list}{options})").to_arrow_table()
    except duckdb.Error as exc:
        raise InvalidInput(
            f"input {name!r}: cannot read {spec.path}: {exc}",
            {"field": f"inputs.{name}", "fix": "check the file format and reader options"},
        ) from exc
    finally:
        con.close()
    return file_lineage(name, table, match)


def read_database(name: str, spec: InputSpec) -> InputData:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    assert spec.url and spec.query
    try:
        engine = create_engine(spec.url)
        with engine.connect() as conn:
            result = conn.execute(text(spec.query))
            keys = list(result.keys())
            rows = result.fetchall()
        engine.dispose()
    except SQLAlchemyError as exc:
        raise InvalidInput(
            f"input {name!r}: the SQL query failed: {exc}",
            {"field": f"inputs.{name}", "fix": "check the database URL and the query"},
        ) from exc
    table = pa.table({k: [r[i] for r in rows] for i, k in enumerate(keys)})
    safe_url = make_url(spec.url).render_as_string(hide_password=True)
    urn = str(Urn.of("source", "sql", _digest(safe_url, spec.query)[:24]))
    return InputData(name, table, urn, safe_url.split("://")[0] + "://", spec.query)


def read_inputs(
    spec: ProductSpec,
    read_product: ProductReader,
    on_step: OnStep | None = None,
    limits: BuildLimits | None = None,
) -> list[InputData]:
    inputs = []
    for name, input_spec in (spec.build.inputs if spec.build else {}).items():
        if on_step:
            on_step(f"read input {name}")
        if input_spec.path:
            inputs.append(read_files(name, input_spec, spec.folder, limits))
        elif input_spec.url:
            if limits:
                raise limits.refuse(f"database input {name!r}", f"inputs.{name}.url")
            inputs.append(read_database(name, input_spec))
        else:
            inputs.append(read_product_input(name, input_spec, read_product))
    return inputs


def read_product_input(name: str, spec: InputSpec, read_product: ProductReader) -> InputData:
    assert spec.product is not None
    table, urn = read_product(spec.product, spec.port)
    key = spec.product.split("@")[0]  # the port is resolved when lineage is sent
    dataset = f"{key}.{spec.port}" if spec.port else key
    return InputData(name, table, urn, "meshops", dataset)


def to_arrow(value: Any, what: str) -> pa.Table:
    if isinstance(value, pa.Table):
        return value
    if isinstance(value, pa.RecordBatchReader):
        return value.read_all()
    module = type(value).__module__.split(".")[0]
    if module == "pandas":
        return pa.Table.from_pandas(value, preserve_index=False)
    if module == "polars":
        return value.to_arrow()
    if hasattr(value, "to_arrow_table"):
        return value.to_arrow_table()
    raise InvalidInput(
        f"{what} returned {type(value).__name__}, not a table",
        {"fix": "return a pyarrow.Table, a pandas or a polars DataFrame"},
    )


def load_function(ref: str, folder: Path | None) -> Callable[..., Any]:
    target, _, func = ref.partition(":")
    func = func or "transform"
    if target.endswith(".py"):
        path = Path(target) if Path(target).is_absolute() or folder is None else folder / target
        if not path.is_file():
            raise InvalidInput(
                f"transform file {path} does not exist",
                {"field": "transform.python", "fix": "check the path"},
            )
        module_spec = importlib.util.spec_from_file_location(
            f"meshops_transform_{_digest(str(path))[:8]}", path
        )
        assert module_spec and module_spec.loader
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
    else:
        module = importlib.import_module(target)
    fn = getattr(module, func, None)
    if not callable(fn):
        raise InvalidInput(
            f"{target} has no function {func!r}",
            {"field": "transform.python", "fix": "name it file.py:function"},
        )
    return fn  # type: ignore[no-any-return]


def run_sql(sql: str, inputs: dict[str, pa.Table]) -> pa.Table:
    """A SQL transform: one SELECT over the inputs (relations named after them), in the
    kernel's sandbox, so a build run by the server reads its inputs and nothing else."""
    relations = [Relation(name, table=table) for name, table in inputs.items()]
    try:
        return run_user_sql(sql, relations, field_name="transform.sql")
    except InvalidInput as exc:
        raise InvalidInput(
            f"the SQL transform failed: {exc.message}",
            {**exc.detail, "fix": f"one SELECT over the inputs {sorted(inputs)}"},
        ) from exc


def run_transform(
    spec: ProductSpec,
    transform: TransformSpec | None,
    inputs: dict[str, pa.Table],
    limits: BuildLimits | None = None,
) -> pa.Table | dict[str, pa.Table]:
    if transform is None:
        if len(inputs) == 1:
            return next(iter(inputs.values()))
        raise InvalidInput(
            f"{spec.key} has {len(inputs)} inputs and no transform",
            {"file": "build.yaml", "field": "transform", "fix": "add `transform: {sql: ...}`"},
        )
    sql = transform_sql(spec, transform, limits)
    if sql is not None:
        return run_sql(sql, inputs)
    assert transform.python is not None
    if limits:
        raise limits.refuse(f"the Python transform {transform.python}", "transform.python")
    fn = load_function(transform.python, spec.folder)
    return call_python(fn, transform.python, inputs)


def transform_sql(
    spec: ProductSpec, transform: TransformSpec, limits: BuildLimits | None = None
) -> str | None:
    """The SQL of a SQL transform (inline or from `sql_file`); None for a Python one."""
    if transform.sql_file:
        path = (spec.folder or Path(".")) / transform.sql_file
        if not path.is_file():
            raise InvalidInput(
                f"{path} does not exist",
                {"field": "transform.sql_file", "fix": "check the path"},
            )
        if limits:
            limits.check_file("transform.sql_file", str(path))
        return path.read_text()
    return transform.sql or None


def call_python(
    fn: Callable[..., Any], ref: str, inputs: dict[str, pa.Table]
) -> pa.Table | dict[str, pa.Table]:
    """Call a Python transform; its own errors become InvalidInput naming it."""
    try:
        result = fn(inputs)
    except MeshopsError:
        raise
    except Exception as exc:
        raise InvalidInput(
            f"the Python transform {ref} raised {type(exc).__name__}: {exc}",
            {"field": "transform.python", "fix": "fix the transform function"},
        ) from exc
    if isinstance(result, dict):
        return {str(k): to_arrow(v, ref) for k, v in result.items()}
    return to_arrow(result, ref)


def conform(table: pa.Table, column_order: list[str]) -> pa.Table:
    """Put the contract's columns first, in contract order (extra columns stay, and fail the
    contract test with a clear message)."""
    names = table.column_names
    if all(c in names for c in column_order):
        return table.select([*column_order, *[n for n in names if n not in column_order]])
    return table


def build(
    spec: ProductSpec,
    read_product: ProductReader,
    on_step: OnStep | None = None,
    limits: BuildLimits | None = None,
) -> BuildResult:
    started = time.perf_counter()
    steps: list[str] = []

    def step(message: str) -> None:
        steps.append(message)
        if on_step:
            on_step(message)

    build_spec = spec.build
    if build_spec is not None and build_spec.engine == "ray":
        if limits:
            raise limits.refuse("a build on Ray (engine: ray)", "engine")
        from meshops.mesh import ray_builds

        run = ray_builds.build_tables(spec, build_spec, read_product, step)
        built = _result(spec, run.tables, run.inputs, started, steps)
        built.summary = run.summary(built.seconds)
        return built
    inputs = read_inputs(spec, read_product, step, limits)
    by_name = {i.name: i.table for i in inputs}
    tables: dict[str, pa.Table] = {}
    first = spec.ports[0].port
    per_port = build_spec.transforms if build_spec else {}
    step(f"transform {first}")
    result = run_transform(spec, build_spec.transform if build_spec else None, by_name, limits)
    if isinstance(result, dict):
        tables.update(result)
    else:
        tables[first] = result
    for port_name, transform in per_port.items():
        step(f"transform {port_name}")
        out = run_transform(spec, transform, by_name, limits)
        tables[port_name] = out if isinstance(out, pa.Table) else out[port_name]
    return _result(spec, tables, inputs, started, steps)


def _result(
    spec: ProductSpec,
    tables: dict[str, pa.Table],
    inputs: list[InputData],
    started: float,
    steps: list[str],
) -> BuildResult:
    """Every port has a table, its columns in contract order."""
    missing = [p.port for p in spec.ports if p.port not in tables]
    if missing:
        raise InvalidInput(
            f"the build produced no table for port(s) {missing}",
            {"file": "build.yaml", "field": "transforms", "fix": "add a transform per output port"},
        )
    for port in spec.ports:
        tables[port.port] = conform(tables[port.port], [c.name for c in port.columns])
    seconds = time.perf_counter() - started
    return BuildResult(
        spec.key, spec.version, tables, inputs, seconds, steps, BuildSummary(seconds=seconds)
    )


def contract_reports(
    spec: ProductSpec,
    tables: dict[str, pa.Table],
    on_step: OnStep | None,
) -> dict[str, ContractReport]:
    """The contract test of each port's table (InvalidInput when a port has none)."""
    reports = {}
    for port in spec.ports:
        if on_step:
            on_step(f"contract test {port.port}")
        table = tables.get(port.port)
        if table is None:
            raise InvalidInput(
                f"no table given for output port {port.port!r}",
                {"field": "tables", "fix": f"pass tables={{{port.port!r}: <pyarrow.Table>}}"},
            )
        reports[port.port] = run_port_contract_test(table, port)
    return reports


def build_report(result: BuildResult, reports: dict[str, ContractReport]) -> BuildReport:
    return BuildReport(
        product=result.product,
        version=result.version,
        seconds=result.seconds,
        inputs=[i.urn for i in result.inputs],
        ports=[
            PortBuild(port=port, rows=t.num_rows, columns=t.column_names, report=reports[port])
            for port, t in result.tables.items()
            if port in reports
        ],
        steps=result.steps,
        build=result.summary,
    )
