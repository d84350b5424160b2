"""Output ports stored as Apache Iceberg tables (docs/iceberg.md).

A port whose descriptor entry has the customProperty `meshops.format: iceberg` is stored in
an Iceberg table instead of one Parquet snapshot per version:

- the catalog is pyiceberg's SQL catalog in the metadata database (its own `iceberg_*`
  tables), the warehouse is `<blob store>/warehouse` (a local folder or the S3 bucket and
  prefix of the blob store, with its endpoint and credentials);
- one table per product, port and major version: `<domain>.<name>__<port>__v<major>`, so a
  breaking change (which the semver diff admits only in a major) never rewrites a table
  that older versions are read from;
- each published version is one Iceberg snapshot tagged with the version (`1.2.0`): reads
  by version are time travel by tag, and engines outside meshops can name the tag too;
- a version is written as an APPEND (only the new rows' files) when the table's current
  content is the previous version and the new rows begin with exactly the previous
  version's rows (the same multiset of rows: a partitioned or sorted table returns them in
  file order), any column added since being null in them; otherwise as an OVERWRITE;
- an added optional column (a minor change) is `update_schema().union_by_name(...)`.

The port row of a version keeps `iceberg:<snapshot id>` where a Parquet port keeps its
blob digest; the version digest is taken over the rows' content (`content_digest`), so a
republished identical version is recognised as before.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from meshops.kernel import openlineage
from meshops.kernel.errors import InvalidInput, NotFound
from meshops.mesh import odps

if TYPE_CHECKING:
    from pyiceberg.catalog.sql import SqlCatalog
    from pyiceberg.table import Table

    from meshops.kernel.config import Settings
    from meshops.mesh.specs import PortContract, ProductSpec

FORMAT_PROPERTY = "meshops.format"
PARTITION_PROPERTY = "meshops.partitionBy"
SORT_PROPERTY = "meshops.sortBy"
FORMATS = ("parquet", "iceberg")
REF_PREFIX = "iceberg:"
COMPACTION_OF = "meshops.compaction-of"
ROWS_DIGEST = "meshops.rows-sha256"
DIGEST_BATCH_ROWS = 1 << 20
PARTITION_TRANSFORMS = ("identity", "year", "month", "day", "hour")
_PARTITION_ITEM = re.compile(r"^(?:(identity|year|month|day|hour)\((\w+)\)|(\w+))$")


# --- the port's settings --------------------------------------------------------------------


@dataclass(frozen=True)
class Partition:
    column: str
    transform: str = "identity"


@dataclass(frozen=True)
class IcebergLayout:
    """How a port is stored: its format, partitioning and sort order."""

    format: str = "parquet"
    partition_by: tuple[Partition, ...] = ()
    sort_by: tuple[str, ...] = ()

    @property
    def is_iceberg(self) -> bool:
        return self.format == "iceberg"


def _descriptor_port(descriptor: dict[str, Any], port: str) -> dict[str, Any]:
    for item in descriptor.get("outputPorts") or []:
        if isinstance(item, dict) and str(item.get("name")) == port:
            return item
    return {}


def _names(value: Any, field_name: str) -> list[str]:
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    if not all(isinstance(i, str) and i for i in items):
        raise InvalidInput(
            f"{field_name} must be a column name or a list of them, not {value!r}",
            {"field": field_name, "fix": "e.g. `value: [order_date]`"},
        )
    return [str(i) for i in items]


def _parse_partition(item: str, field_name: str) -> Partition:
    match = _PARTITION_ITEM.match(item.strip())
    if match is None:
        raise InvalidInput(
            f"{field_name}: {item!r} is not a column or <transform>(<column>)",
            {"field": field_name, "fix": f"use a column, or one of {PARTITION_TRANSFORMS}(col)"},
        )
    if match.group(3):
        return Partition(match.group(3))
    return Partition(match.group(2), match.group(1))


def _contract_partitions(port: PortContract) -> list[Partition]:
    """ODCS `partitioned: true` properties, ordered by `partitionKeyPosition`."""
    keyed = [
        (int(p.get("partitionKeyPosition") or 0), i, str(p.get("name")))
        for i, p in enumerate(port.schema_object.get("properties") or [])
        if isinstance(p, dict) and p.get("partitioned")
    ]
    return [Partition(name) for _, _, name in sorted(keyed)]


def layout_of(descriptor: dict[str, Any], port: PortContract) -> IcebergLayout:
    """The port's layout: `meshops.format` (parquet|iceberg), `meshops.partitionBy` (columns
    or `day(col)`-style transforms; else the contract's `partitioned` properties) and
    `meshops.sortBy` (columns, ascending), each a customProperty of the descriptor's port."""
    item = _descriptor_port(descriptor, port.port)
    where = f"outputPorts[{port.port}].customProperties"
    fmt = str(odps.custom_property(item, FORMAT_PROPERTY) or "parquet").lower()
    if fmt not in FORMATS:
        raise InvalidInput(
            f"{where} {FORMAT_PROPERTY}: {fmt!r} is not a format meshops stores",
            {"field": FORMAT_PROPERTY, "fix": f"use one of {FORMATS}"},
        )
    partition_field = f"{where} {PARTITION_PROPERTY}"
    declared = _names(odps.custom_property(item, PARTITION_PROPERTY), partition_field)
    partitions = [_parse_partition(p, partition_field) for p in declared]
    partitions = partitions or _contract_partitions(port)
    sort_by = _names(odps.custom_property(item, SORT_PROPERTY), f"{where} {SORT_PROPERTY}")
    known = {c.name for c in port.columns}
    for name in [p.column for p in partitions] + sort_by:
        if name not in known:
            raise InvalidInput(
                f"{where}: {name!r} is not a column of the port's contract",
                {"field": PARTITION_PROPERTY, "fix": f"choose from {sorted(known)}"},
            )
    if fmt != "iceberg" and (partitions or sort_by):
        raise InvalidInput(
            f"{where}: partitioning and sort order apply to Iceberg ports only",
            {"field": FORMAT_PROPERTY, "fix": f"add `{FORMAT_PROPERTY}: iceberg`"},
        )
    return IcebergLayout(fmt, tuple(partitions), tuple(sort_by))


def is_iceberg_ref(snapshot_digest: str) -> bool:
    return snapshot_digest.startswith(REF_PREFIX)


def snapshot_ref(snapshot_id: int) -> str:
    return f"{REF_PREFIX}{snapshot_id}"


def snapshot_id_of(snapshot_digest: str) -> int:
    return int(snapshot_digest[len(REF_PREFIX) :])


def table_identifier(product: str, port: str, version: str) -> str:
    """`<domain>.<name>__<port>__v<major>`: one table per major version of a port."""
    domain, name = product.split(".", 1)
    major = int(version.split(".", 1)[0])
    return f"{domain}.{name}__{port.replace('-', '_')}__v{major}"


# --- the catalog ----------------------------------------------------------------------------

_catalogs: dict[tuple[str, str], SqlCatalog] = {}
_catalogs_lock = threading.Lock()


def warehouse_url(settings: Settings) -> str:
    blob_url = settings.blob_url.rstrip("/")
    if "://" in blob_url and not blob_url.startswith("file://"):
        return f"{blob_url}/warehouse"
    local = Path(blob_url.removeprefix("file://")).resolve()
    return f"file://{local.parent / 'warehouse'}"


def _io_properties(settings: Settings) -> dict[str, str]:
    """The blob store's S3 endpoint and credentials as pyiceberg FileIO properties."""
    options = settings.blob_options
    client = options.get("client_kwargs") or {}
    mapping = {
        "s3.access-key-id": options.get("key"),
        "s3.secret-access-key": options.get("secret"),
        "s3.session-token": options.get("token"),
        "s3.endpoint": client.get("endpoint_url") or options.get("endpoint_url"),
        "s3.region": client.get("region_name") or "us-east-1",
    }
    return {k: str(v) for k, v in mapping.items() if v}


def _catalog_uri(database_url: str) -> str:
    # SQLite: wait for meshops's own writers instead of failing with "database is locked".
    if database_url.startswith("sqlite") and "timeout=" not in database_url:
        return f"{database_url}{'&' if '?' in database_url else '?'}timeout=30"
    return database_url


def catalog(settings: Settings) -> SqlCatalog:
    """The home's Iceberg catalog (one per metadata database and warehouse per process)."""
    try:
        from pyiceberg.catalog.sql import SqlCatalog
    except ImportError as exc:  # the `iceberg` extra is not installed
        raise InvalidInput(
            "Iceberg ports need pyiceberg, which is not installed here",
            {"field": FORMAT_PROPERTY, "fix": "pip install 'meshops[iceberg]'"},
        ) from exc

    key = (settings.database_url, warehouse_url(settings))
    with _catalogs_lock:
        found = _catalogs.get(key)
        if found is None:
            found = SqlCatalog(
                openlineage.ICEBERG_CATALOG,
                uri=_catalog_uri(settings.database_url),
                warehouse=key[1],
                **_io_properties(settings),
            )
            # No pool: a cached catalog holds no idle database connection for a home that
            # has closed (meshops's own engine pools; Iceberg commits are few).
            from sqlalchemy import create_engine
            from sqlalchemy.pool import NullPool

            found.engine.dispose()
            found.engine = create_engine(_catalog_uri(settings.database_url), poolclass=NullPool)
            _catalogs[key] = found
        return found


def load_table(settings: Settings, identifier: str) -> Table:
    from pyiceberg.exceptions import NoSuchTableError

    try:
        return catalog(settings).load_table(identifier)
    except NoSuchTableError as exc:
        raise NotFound(
            f"the Iceberg table {identifier} does not exist",
            {"fix": "publish a version of the port first"},
        ) from exc


def find_table(settings: Settings, identifier: str) -> Table | None:
    try:
        return load_table(settings, identifier)
    except NotFound:
        return None


def lineage_facets(settings: Settings, product: str, port: str, version: str) -> dict[str, Any]:
    """The OpenLineage facets that name the Iceberg table a port's version is a snapshot of
    (kernel.openlineage.iceberg_facets); none when the table is gone."""
    identifier = table_identifier(product, port, version)
    table = find_table(settings, identifier)
    if table is None:
        return {}
    return openlineage.iceberg_facets(identifier, table.location(), warehouse_url(settings))


# --- writing a version ----------------------------------------------------------------------


@dataclass
class Written:
    snapshot_id: int
    mode: str  # append | overwrite | unchanged
    added_files: list[str] = field(default_factory=list)
    total_bytes: int = 0


class _HashSink:
    def __init__(self, digest: Any) -> None:
        self.digest = digest

    def write(self, data: Any) -> int:
        view = memoryview(data)
        self.digest.update(view)
        return len(view)

    def flush(self) -> None: ...

    def close(self) -> None: ...

    @property
    def closed(self) -> bool:
        return False


def _fixed_width(dtype: pa.DataType) -> bool:
    if pa.types.is_dictionary(dtype):
        return False
    try:
        dtype.bit_width  # noqa: B018 - raises for variable-size and nested types
    except ValueError:
        return False
    return True


def _hash_column(digest: Any, column: pa.ChunkedArray) -> None:
    """Feed the column's values to `digest`, the same bytes whatever its chunking or the
    size of the buffers a slice shares with its source."""
    dtype = column.type
    if _fixed_width(dtype) and dtype.bit_width % 8 == 0 and column.null_count == 0:
        width = dtype.bit_width // 8
        for chunk in column.chunks:  # exactly the values' bytes
            values = memoryview(chunk.buffers()[1])
            digest.update(values[chunk.offset * width : (chunk.offset + len(chunk)) * width])
        return
    # Anything else as a one-column IPC stream of a concatenated (so compact) copy.
    array = pa.concat_arrays(column.chunks) if column.chunks else pa.array([], dtype)
    sink = pa.PythonFile(_HashSink(digest), mode="w")
    batch = pa.record_batch([array], names=["c"])
    with pa.ipc.new_stream(sink, batch.schema) as writer:
        writer.write_batch(batch)


def _column_digest(column: pa.ChunkedArray) -> bytes:
    digest = hashlib.sha256()
    _hash_column(digest, column)
    return digest.digest()


class RowsDigest:
    """sha256 of a table's rows, whatever its chunking and metadata: over the schema's
    names and types, the row count, and the sha256 of each column's values in each batch
    of `DIGEST_BATCH_ROWS` rows. The version digest's part for an Iceberg port, and each
    snapshot's `meshops.rows-sha256`; the digest of a prefix (`prefix`) reuses the whole
    batches' hashes and hashes only the rows of its last, partial batch."""

    def __init__(self, table: pa.Table) -> None:
        self.table = table
        self.whole = table.num_rows // DIGEST_BATCH_ROWS
        self.batches = [
            {f.name: _column_digest(c) for f, c in zip(table.schema, part.columns, strict=True)}
            for part in (
                table.slice(i * DIGEST_BATCH_ROWS, DIGEST_BATCH_ROWS) for i in range(self.whole)
            )
        ]

    def prefix(self, count: int, names: list[str]) -> str:
        """The digest of the first `count` rows of the columns `names`."""
        fields = [self.table.schema.field(n) for n in names]
        digest = hashlib.sha256()
        schema = ";".join(f"{f.name}:{f.type}:{f.nullable}" for f in fields)
        digest.update(f"{schema}|{count}|".encode())
        whole = count // DIGEST_BATCH_ROWS
        for batch in self.batches[:whole]:
            for name in names:
                digest.update(batch[name])
        rest = self.table.slice(whole * DIGEST_BATCH_ROWS, count - whole * DIGEST_BATCH_ROWS)
        if rest.num_rows:
            for name in names:
                digest.update(_column_digest(rest.column(name)))
        return digest.hexdigest()

    @property
    def hex(self) -> str:
        return self.prefix(self.table.num_rows, self.table.column_names)


def content_digest(table: pa.Table) -> str:
    """The rows' digest (`RowsDigest`) as hex."""
    return RowsDigest(table).hex


def iceberg_ready(table: pa.Table) -> pa.Table:
    """Iceberg stores timestamps in microseconds: nanosecond columns are cast (refused when
    that would lose precision)."""
    fields = []
    for f in table.schema:
        if pa.types.is_timestamp(f.type) and f.type.unit == "ns":
            fields.append(pa.field(f.name, pa.timestamp("us", f.type.tz), f.nullable))
        else:
            fields.append(f)
    schema = pa.schema(fields)
    if schema == table.schema:
        return table
    try:
        return table.cast(schema, safe=True)
    except pa.ArrowInvalid as exc:
        raise InvalidInput(
            f"a nanosecond timestamp does not fit an Iceberg table: {exc}",
            {"field": "tables", "fix": "round timestamps to microseconds"},
        ) from exc


def _partition_spec(schema: Any, layout: IcebergLayout) -> Any:
    from pyiceberg.partitioning import PartitionField, PartitionSpec
    from pyiceberg.transforms import (
        DayTransform,
        HourTransform,
        IdentityTransform,
        MonthTransform,
        YearTransform,
    )

    transforms = {
        "identity": IdentityTransform,
        "year": YearTransform,
        "month": MonthTransform,
        "day": DayTransform,
        "hour": HourTransform,
    }
    fields = [
        PartitionField(
            source_id=schema.find_field(p.column).field_id,
            field_id=1000 + i,
            transform=transforms[p.transform](),
            name=p.column if p.transform == "identity" else f"{p.column}_{p.transform}",
        )
        for i, p in enumerate(layout.partition_by)
    ]
    return PartitionSpec(*fields)


def _sort_order(schema: Any, layout: IcebergLayout) -> Any:
    from pyiceberg.table.sorting import SortField, SortOrder
    from pyiceberg.transforms import IdentityTransform

    fields = [
        SortField(source_id=schema.find_field(c).field_id, transform=IdentityTransform())
        for c in layout.sort_by
    ]
    return SortOrder(*fields)


def _create_table(settings: Settings, identifier: str, arrow: pa.Schema, layout: IcebergLayout,
                  properties: dict[str, str]) -> Table:  # fmt: skip
    from pyiceberg.io.pyarrow import _ConvertToIcebergWithoutIDs, visit_pyarrow
    from pyiceberg.schema import Schema, assign_fresh_schema_ids

    cat = catalog(settings)
    cat.create_namespace_if_not_exists(identifier.split(".", 1)[0])
    schema = assign_fresh_schema_ids(visit_pyarrow(arrow, _ConvertToIcebergWithoutIDs()))
    assert isinstance(schema, Schema)
    return cat.create_table(
        identifier,
        schema=schema,
        partition_spec=_partition_spec(schema, layout),
        sort_order=_sort_order(schema, layout),
        properties=properties,
    )


def _arrow(table: Table, snapshot_id: int) -> pa.Table:
    """The snapshot's rows in the order they were written (a plain scan starts with the
    newest file)."""
    from pyiceberg.expressions import AlwaysTrue
    from pyiceberg.io.pyarrow import ArrowScan

    scan = table.scan(snapshot_id=snapshot_id)
    reader = ArrowScan(table.metadata, table.io, scan.projection(), AlwaysTrue())
    result: pa.Table = reader.to_table(_ordered_tasks(table, snapshot_id))
    return result


def _append_offset(
    table: Table, previous: int | None, rows: pa.Table, digest: RowsDigest
) -> int | None:
    """How many leading rows of `rows` are the previous version's rows, when `rows` are
    those followed by new ones (see the module doc); None when the version is not an append."""
    current = table.current_snapshot()
    if previous is None or current is None:
        return None
    compacted_from = current.summary[COMPACTION_OF] if current.summary is not None else None
    if current.snapshot_id != previous and compacted_from != str(previous):
        return None  # the table moved on (a rollback, an outside writer): rewrite it
    snapshot = table.snapshot_by_id(previous)
    assert snapshot is not None and snapshot.summary is not None
    count = int(snapshot.summary["total-records"] or 0)
    schema_id = snapshot.schema_id if snapshot.schema_id is not None else table.schema().schema_id
    names = [f.name for f in table.schemas()[schema_id].fields]
    if count > rows.num_rows or any(n not in rows.column_names for n in names):
        return None
    prefix = rows.slice(0, count)
    added = [c for c in prefix.column_names if c not in names]
    if any(prefix.column(c).null_count != prefix.num_rows for c in added):
        return None
    recorded = snapshot.summary[ROWS_DIGEST]
    if recorded is not None:  # written by meshops: the digest of its rows decides
        return count if digest.prefix(count, names) == recorded else None
    before = _arrow(table, previous)  # written by another engine: compare the rows
    if not same_rows(before, prefix.select(before.column_names)):
        return None
    return count


def same_rows(left: pa.Table, right: pa.Table) -> bool:
    """The same multiset of rows (order aside): DuckDB's EXCEPT ALL on equal counts."""
    import duckdb

    if left.num_rows != right.num_rows:
        return False
    if left.num_rows == 0:
        return True
    try:
        if left.equals(right.cast(left.schema)):
            return True  # the same order: no need to compare as multisets
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return False
    con = duckdb.connect()
    try:
        con.register("l", left)
        con.register("r", right.cast(left.schema))
        found = con.execute("SELECT count(*) FROM (FROM l EXCEPT ALL FROM r)").fetchone()
    finally:
        con.close()
    return found is not None and found[0] == 0


def _evolve(table: Table, arrow: pa.Schema) -> Table:
    """Add the new (optional) columns; the semver diff has refused anything else."""
    existing = {f.name for f in table.schema().fields}
    if all(name in existing for name in arrow.names):
        return table
    with table.update_schema() as update:
        update.union_by_name(arrow)
    return table


def _sorted(rows: pa.Table, layout: IcebergLayout) -> pa.Table:
    if not layout.sort_by:
        return rows
    return rows.sort_by([(c, "ascending") for c in layout.sort_by])


def write_version(
    settings: Settings,
    spec: ProductSpec,
    port: PortContract,
    rows: pa.Table,
    previous_version: str | None,
    *,
    digest: RowsDigest | None = None,
) -> Written:
    """Commit `rows` as the snapshot of `spec.version` and tag it; append or overwrite.
    `digest` is `RowsDigest(rows)` when the caller has it already."""
    layout = layout_of(spec.descriptor, port)
    identifier = table_identifier(spec.key, port.port, spec.version)
    ready = iceberg_ready(rows)
    if ready is not rows or digest is None or digest.table is not rows:
        rows, digest = ready, RowsDigest(ready)
    rows_digest = digest.hex
    table = find_table(settings, identifier)
    if table is None:
        properties = {"meshops.product": spec.key, "meshops.port": port.port}
        table = _create_table(settings, identifier, rows.schema, layout, properties)
    existing = table.refs().get(spec.version)
    if existing is not None:  # an earlier attempt committed it; its record did not follow
        tagged = table.snapshot_by_id(existing.snapshot_id)
        recorded = tagged.summary if tagged is not None else None
        if recorded is not None and recorded[ROWS_DIGEST] == rows_digest:
            return _written(table, existing.snapshot_id, "unchanged", set())
        # Other rows under an unrecorded tag (a recorded version with other content was
        # refused before this): the stale tag goes.
        table.manage_snapshots().remove_tag(spec.version).commit()
    previous = None
    if previous_version is not None:
        ref = table.refs().get(previous_version)
        previous = ref.snapshot_id if ref is not None else None
    before = _file_set(table, table.current_snapshot())
    table = _evolve(table, rows.schema)
    offset = _append_offset(table, previous, rows, digest)
    summary = {ROWS_DIGEST: rows_digest}
    if offset is not None:
        mode = "append"
        table.append(_sorted(rows.slice(offset), layout), snapshot_properties=summary)
    elif table.current_snapshot() is None:  # a new table: nothing to replace
        mode = "append"
        table.append(_sorted(rows, layout), snapshot_properties=summary)
    else:
        mode = "overwrite"
        table.overwrite(_sorted(rows, layout), snapshot_properties=summary)
    snapshot = table.current_snapshot()
    assert snapshot is not None
    table.manage_snapshots().create_tag(snapshot.snapshot_id, spec.version).commit()
    return _written(table, snapshot.snapshot_id, mode, before)


def _file_set(table: Table, snapshot: Any) -> set[str]:
    if snapshot is None:
        return set()
    return {path for path, _ in data_files(table, snapshot.snapshot_id)}


def _written(table: Table, snapshot_id: int, mode: str, before: set[str]) -> Written:
    files = data_files(table, snapshot_id)
    added = [path for path, _ in files if path not in before]
    return Written(snapshot_id, mode, added, sum(size for _, size in files))


def untag(settings: Settings, product: str, port: str, version: str) -> None:
    """Undo `write_version` when the version's metadata could not be recorded: drop the tag
    and put the table's main branch back where it was (best effort; the files stay until
    `compact` expires the snapshot)."""
    table = find_table(settings, table_identifier(product, port, version))
    if table is None or version not in table.refs():
        return
    snapshot = table.snapshot_by_name(version)
    table.manage_snapshots().remove_tag(version).commit()
    current = table.current_snapshot()
    if snapshot is None or current is None or current.snapshot_id != snapshot.snapshot_id:
        return
    if snapshot.parent_snapshot_id is not None:
        table.manage_snapshots().set_current_snapshot(snapshot.parent_snapshot_id).commit()


# --- reading a version ----------------------------------------------------------------------


def data_files(table: Table, snapshot_id: int) -> list[tuple[str, int]]:
    """The snapshot's data files (path, bytes) in the order they were written (oldest
    first): what a read of the version reads."""
    return [(t.file.file_path, int(t.file.file_size_in_bytes))
            for t in _ordered_tasks(table, snapshot_id)]  # fmt: skip


def _ordered_tasks(table: Table, snapshot_id: int) -> list[Any]:
    """The snapshot's scan tasks, oldest file first (data sequence number, then the
    writer's task number). Delete files are refused: meshops writes none, and a table an
    outside engine changed that way is not read around them."""
    tasks = list(table.scan(snapshot_id=snapshot_id).plan_files())
    if any(t.delete_files for t in tasks):
        raise InvalidInput(
            f"the Iceberg snapshot {snapshot_id} has delete files, which meshops does not read",
            {"fix": "compact the table with an engine that applies deletes"},
        )
    snapshot = table.snapshot_by_id(snapshot_id)
    assert snapshot is not None
    sequence: dict[str, int] = {}
    for manifest in snapshot.manifests(table.io):
        for entry in manifest.fetch_manifest_entry(table.io, discard_deleted=True):
            sequence[entry.data_file.file_path] = entry.sequence_number or 0

    def written(task: Any) -> tuple[int, int, str]:
        path = str(task.file.file_path)
        return sequence.get(path, 0), _task_number(path), path

    return sorted(tasks, key=written)


def _task_number(path: str) -> int:
    match = re.search(r"/\d+-(\d+)-[^/]*$", path)
    return int(match.group(1)) if match else 0


def resolve_snapshot(settings: Settings, product: str, port: str, version: str,
                     snapshot_digest: str) -> tuple[Table, int]:  # fmt: skip
    """The table and snapshot of a published version: time travel by its tag."""
    table = load_table(settings, table_identifier(product, port, version))
    ref = table.refs().get(version)
    if ref is None:
        raise NotFound(
            f"{product} {version} ({port}) is no longer readable: its Iceberg snapshot was "
            "expired (the contract's retention)",
            {"fix": "read a later version"},
        )
    if ref.snapshot_id != snapshot_id_of(snapshot_digest):
        raise NotFound(
            f"the Iceberg tag {version} of {product} ({port}) was moved outside meshops",
            {"fix": f"tag snapshot {snapshot_id_of(snapshot_digest)} as {version} again"},
        )
    return table, ref.snapshot_id


@contextmanager
def local_data_files(settings: Settings, product: str, port: str, version: str,
                     snapshot_digest: str) -> Iterator[list[str]]:  # fmt: skip
    """The version's data files as local absolute paths (downloaded from object storage),
    for the sandbox, which reads only the local files it is given."""
    table, snapshot_id = resolve_snapshot(settings, product, port, version, snapshot_digest)
    files = [path for path, _ in data_files(table, snapshot_id)]
    if files and all(f.startswith("file://") or f.startswith("/") for f in files):
        yield [str(Path(f.removeprefix("file://")).resolve()) for f in files]
        return
    folder = tempfile.mkdtemp(prefix="meshops-iceberg-")
    try:
        local = []
        if not files:  # an empty version: one empty file with the version's columns
            import pyarrow.parquet as pq

            local.append(str(Path(folder, "empty.parquet")))
            pq.write_table(_arrow(table, snapshot_id), local[0])
        for i, remote in enumerate(files):
            target = Path(folder, f"{i:06d}.parquet")
            with table.io.new_input(remote).open() as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
            local.append(str(target))
        yield local
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def parquet_files_source(paths: list[str]) -> str:
    """The relation expression reading a version's data files (platform SQL only): by name,
    so files written before a column was added read it as NULL."""
    listed = ", ".join("'" + p.replace("'", "''") + "'" for p in paths)
    return f"read_parquet([{listed}], union_by_name = true)"


# --- compaction and expiry ------------------------------------------------------------------


@dataclass
class Maintenance:
    table: str
    compacted_files: int = 0
    expired_snapshots: int = 0
    expired_versions: list[str] = field(default_factory=list)
    removed_files: int = 0
    removed_bytes: int = 0


def compact(
    settings: Settings,
    identifier: str,
    *,
    keep_versions: list[str],
    min_files: int = 2,
) -> Maintenance:
    """Compact the table's current content into one sorted file set (a new, untagged
    snapshot whose summary names the snapshot it compacts, so the next version still appends
    to it), drop the tags of versions not in `keep_versions`, expire every snapshot no tag or
    branch holds, and delete the data files only expired snapshots referenced (exactly
    those: a file a concurrent publish is writing is in no snapshot and is not touched)."""
    table = load_table(settings, identifier)
    report = Maintenance(identifier)
    for name, ref in table.refs().items():
        if name != "main" and name not in keep_versions and ref.snapshot_ref_type == "tag":
            table.manage_snapshots().remove_tag(name).commit()
            report.expired_versions.append(name)
    current = table.current_snapshot()
    if current is not None:
        files = data_files(table, current.snapshot_id)
        if len(files) >= min_files:
            rows = _arrow(table, current.snapshot_id)
            order = [
                table.schema().find_column_name(f.source_id) for f in table.sort_order().fields
            ]
            if order:
                rows = rows.sort_by([(str(n), "ascending") for n in order])
            table.overwrite(rows, snapshot_properties={COMPACTION_OF: str(current.snapshot_id)})
            report.compacted_files = len(files)
    before = {s.snapshot_id: s for s in table.snapshots()}
    table.maintenance.expire_snapshots().older_than(datetime.now(UTC) + timedelta(1)).commit()
    table = load_table(settings, identifier)
    kept = {s.snapshot_id for s in table.snapshots()}
    expired = [sid for sid in before if sid not in kept]
    report.expired_snapshots = len(expired)
    _remove_files_of(table, [before[sid] for sid in expired], report)
    return report


def _snapshot_files(table: Table, snapshot: Any) -> dict[str, int]:
    """Every data file a snapshot references, from its manifests (expired snapshots too)."""
    found: dict[str, int] = {}
    for manifest in snapshot.manifests(table.io):
        for entry in manifest.fetch_manifest_entry(table.io, discard_deleted=True):
            found[entry.data_file.file_path] = int(entry.data_file.file_size_in_bytes)
    return found


def _remove_files_of(table: Table, expired: list[Any], report: Maintenance) -> None:
    """Delete the data files the expired snapshots referenced and no kept snapshot does."""
    referenced: set[str] = set()
    for snapshot in table.snapshots():
        referenced.update(_snapshot_files(table, snapshot))
    doomed: dict[str, int] = {}
    for snapshot in expired:
        doomed.update(_snapshot_files(table, snapshot))
    for path, size in doomed.items():
        if path in referenced:
            continue
        table.io.delete(path)
        report.removed_files += 1
        report.removed_bytes += size


def retention_of(contract_model: dict[str, Any]) -> float | None:
    """A contract's SLA `retention` in seconds, when it declares one."""
    from meshops.mesh.contract_sla import duration_seconds, sla_property_name

    for prop in contract_model.get("slaProperties") or []:
        if isinstance(prop, dict) and sla_property_name(prop) == "retention":
            return duration_seconds(prop.get("value"), prop.get("unit"))
    return None


# --- the exported descriptor ----------------------------------------------------------------

TABLE_PROPERTY = "meshops.icebergTable"
LOCATION_PROPERTY = "meshops.tableLocation"
METADATA_PROPERTY = "meshops.metadataLocation"
TAG_PROPERTY = "meshops.icebergTag"


def with_table_locations(
    settings: Settings, descriptor: dict[str, Any], product: str, version: str,
    snapshots: dict[str, str],
) -> dict[str, Any]:  # fmt: skip
    """The descriptor with, on each Iceberg port, where an engine finds the version: the
    catalog's table identifier, the table and metadata locations, and the tag to read."""
    ports = []
    for item in descriptor.get("outputPorts") or []:
        name = str(item.get("name"))
        if name not in snapshots or not is_iceberg_ref(snapshots[name]):
            ports.append(item)
            continue
        identifier = table_identifier(product, name, version)
        table = find_table(settings, identifier)
        facts = {TABLE_PROPERTY: identifier, TAG_PROPERTY: version}
        if table is not None:
            facts[LOCATION_PROPERTY] = table.location()
            facts[METADATA_PROPERTY] = str(table.metadata_location)
        kept = [p for p in item.get("customProperties") or [] if p.get("property") not in facts]
        custom = kept + [{"property": k, "value": v} for k, v in facts.items()]
        ports.append({**item, "customProperties": custom})
    return {**descriptor, "outputPorts": ports}
