"""THE read path: every read of data product data goes through `read_port` (or, for SQL
across products, through `governed_sandbox`), whatever the interface.

For each read: check the lifecycle (deprecated warns, retired fails naming the replacement),
build a `ReadRequest`, ask `ctx.home.read_guard.plan(...)` BEFORE reading, apply the plan
(only `plan.columns`, masks, `plan.row_filter`), then `read_guard.record(...)` AFTER.

Unmasked, unfiltered reads take the fast path (pyarrow reads only the asked columns of the
Parquet snapshot); anything else is one DuckDB query over the snapshot, in the kernel's
sandbox (kernel/sandbox.py, which also defines each masking method once). SQL that a user
wrote runs only in a sandbox whose relations are the governed views of `governed_sandbox`.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq

from meshops.kernel.access import Interface, ReadPlan, ReadRequest, ReadUsage
from meshops.kernel.errors import Forbidden, InvalidInput, NotFound
from meshops.kernel.home import Context
from meshops.kernel.sandbox import (
    SYSTEM_SCHEMAS,
    Relation,
    Sandbox,
    TableRef,
    check_predicate,
    governed_select,
    key_texts,
    masking_key,
    parquet_source,
    refused,
)
from meshops.mesh.models import (
    DataProduct,
    DataProductVersion,
    DeprecatedProductWarning,
    OutputPortVersion,
)


def lifecycle_warnings(product: DataProduct) -> list[str]:
    """Raise for a retired product; return the warning for a deprecated one."""
    replacement = f" Use {product.replacement} instead." if product.replacement else ""
    if product.status == "retired":
        raise NotFound(
            f"{product.product} is retired and can no longer be read.{replacement}",
            {
                "product": product.product,
                "replacement": product.replacement,
                "fix": f"read {product.replacement}" if product.replacement else "ask the owners",
            },
        )
    if product.status == "deprecated":
        sunset = f" (sunset {product.sunset.isoformat()})" if product.sunset else ""
        return [f"{product.product} is deprecated{sunset}.{replacement}"]
    return []


def build_request(
    version: DataProductVersion,
    port: OutputPortVersion,
    columns: list[str] | None,
    interface: Interface,
    purpose: str = "",
) -> ReadRequest:
    known = [c.name for c in port.columns]
    if columns:
        unknown = [c for c in columns if c not in known]
        if unknown:
            raise InvalidInput(
                f"{version.product}:{port.name} has no column(s) {unknown}",
                {"field": "columns", "fix": f"choose from {known}"},
            )
    return ReadRequest(
        product=version.product,
        domain=version.domain,
        version=version.version,
        port=port.name,
        columns=tuple(columns or known),
        classification={c.name: c.classification or "" for c in port.columns},
        owners=tuple(version.owners),
        interface=interface,
        purpose=purpose,
    )


def plan_read(ctx: Context, request: ReadRequest) -> ReadPlan:
    plan = ctx.home.read_guard.plan(ctx, request)
    allowed = [c for c in request.columns if c in plan.columns]
    if not allowed:
        raise Forbidden(
            f"{ctx.actor.name} may read none of the requested columns of "
            f"{request.product}:{request.port}",
            {"requested": list(request.columns), "fix": "request access to these columns"},
        )
    return plan


def select_sql(source: str, request: ReadRequest, plan: ReadPlan, key: bytes) -> str:
    """The DuckDB SELECT that applies `plan` to `source` (a relation expression), each mask
    the SQL of its one definition (`kernel.sandbox.MASKINGS`), keyed with the home's key."""
    columns = [c for c in request.columns if c in plan.columns]
    if plan.row_filter:  # checked again here: it runs before masking, on clear values
        check_predicate(plan.row_filter)
    return governed_select(source, columns, plan.masks, key, row_filter=plan.row_filter)


def spill_directory(ctx: Context) -> str:
    """Where DuckDB spills large sorts and joins of reads (not the server's working folder)."""
    return str(ctx.home.settings.home / "tmp" / "duckdb")


def hidden_texts(ctx: Context, key: bytes) -> dict[str, str]:
    """What no message to a user may contain: the home's and blob store's paths, the key."""
    settings = ctx.home.settings
    hidden = {str(settings.home): "<home>", **key_texts(key)}
    if settings.blob_url and "://" not in settings.blob_url:
        hidden[settings.blob_url] = "<blobs>"
    return hidden


@contextmanager
def snapshot_path(ctx: Context, digest: str) -> Iterator[str]:
    with ctx.blobs.local_path(digest) as path:
        # Absolute: the sandbox allows exactly this file and scrubs exactly this text.
        yield str(path.resolve())


@contextmanager
def port_source(
    ctx: Context, version: DataProductVersion, port: OutputPortVersion
) -> Iterator[tuple[str, tuple[str, ...]]]:
    """(the relation expression, the local files) of a port's rows in this version: its
    Parquet snapshot, or the data files of its Iceberg snapshot (mesh/iceberg.py)."""
    from meshops.mesh import iceberg

    if iceberg.is_iceberg_ref(port.snapshot_digest):
        settings = ctx.home.settings
        with iceberg.local_data_files(
            settings, version.product, port.name, version.version, port.snapshot_digest
        ) as paths:
            yield iceberg.parquet_files_source(paths), tuple(paths)
        return
    with snapshot_path(ctx, port.snapshot_digest) as path:
        yield parquet_source(path), (path,)


def _warn(messages: list[str] | tuple[str, ...]) -> None:
    for message in messages:
        warnings.warn(message, DeprecatedProductWarning, stacklevel=4)


def read_port(
    ctx: Context,
    product: DataProduct,
    version: DataProductVersion,
    *,
    port_name: str | None,
    columns: list[str] | None,
    interface: Interface,
    purpose: str = "",
) -> tuple[pa.Table, list[str]]:
    """The one governed read of one port; returns the table and the warnings to show."""
    notes = lifecycle_warnings(product)
    port = version.port(port_name)
    request = build_request(version, port, columns, interface, purpose)
    plan = plan_read(ctx, request)
    with port_source(ctx, version, port) as (source, files):
        if not plan.masks and not plan.row_filter:
            allowed = [c for c in request.columns if c in plan.columns]
            table = _read_files(files, allowed)
        else:
            table = _duckdb_read(ctx, source, files, request, plan)
    ctx.home.read_guard.record(ctx, ReadUsage(request=request, plan=plan, rows=table.num_rows))
    notes = [*notes, *plan.warnings]
    _warn(notes)
    return table, notes


def _read_files(files: tuple[str, ...], columns: list[str]) -> pa.Table:
    """The fast path: pyarrow reads only the asked columns of the snapshot, or of an
    Iceberg version's data files in order (a column added later is null in older files)."""
    if len(files) == 1:
        table = pq.read_table(files[0], columns=columns)
    else:
        import pyarrow.dataset as ds

        schema = pa.unify_schemas([pq.read_schema(f) for f in files])
        table = ds.dataset(list(files), schema=schema, format="parquet").to_table(columns=columns)
    if any(f.metadata for f in table.schema):  # Iceberg's field ids stay in the table format
        clean = pa.schema([f.remove_metadata() for f in table.schema], table.schema.metadata)
        table = pa.Table.from_arrays(table.columns, schema=clean)
    return table


def _duckdb_read(
    ctx: Context, source: str, files: tuple[str, ...], request: ReadRequest, plan: ReadPlan
) -> pa.Table:
    """A masked or row-filtered read (or an Iceberg version's files): platform SQL, still run
    walled in (the row filter is SQL a product owner wrote)."""
    key = masking_key(ctx.home.settings)
    snapshot = Relation(
        "snapshot", select=f"SELECT * FROM {source}", files=files, label=request.product,
    )  # fmt: skip
    with Sandbox([snapshot], hide=hidden_texts(ctx, key)) as box:
        try:
            return box.run_platform_sql(select_sql("snapshot", request, plan, key))
        except InvalidInput as exc:
            raise InvalidInput(
                f"the read plan's row filter does not apply to {request.product}: {exc.message}",
                {"row_filter": plan.row_filter, "fix": "correct the row filter of the grant"},
            ) from exc


@dataclass
class GovernedView:
    request: ReadRequest
    plan: ReadPlan


@contextmanager
def governed_sandbox(
    ctx: Context,
    products: list[tuple[str, DataProduct, DataProductVersion]],
    interface: Interface = "sql",
) -> Iterator[tuple[Sandbox, list[GovernedView]]]:
    """A sandbox whose relations are `<domain>.<name>`, each the governed SELECT (masked,
    row-filtered for the caller) of the product's default port over its snapshot file;
    the caller runs the user's query in it, then calls `record_views`."""
    key = masking_key(ctx.home.settings)
    views: list[GovernedView] = []
    relations: list[Relation] = []
    with ExitStack() as stack:
        notes: list[str] = []
        for _ref, product, version in products:
            notes.extend(lifecycle_warnings(product))
            port = version.port()
            request = build_request(version, port, None, interface)
            plan = plan_read(ctx, request)
            source, files = stack.enter_context(port_source(ctx, version, port))
            select = select_sql(source, request, plan, key)
            relations.append(
                Relation(version.name, version.domain, select=select, files=files,
                         label=version.product)
            )  # fmt: skip
            notes.extend(plan.warnings)
            views.append(GovernedView(request, plan))
        _warn(notes)
        box = stack.enter_context(
            Sandbox(relations, hide=hidden_texts(ctx, key), temp_directory=spill_directory(ctx))
        )
        yield box, views


def record_views(ctx: Context, views: list[GovernedView], rows: int) -> None:
    for view in views:
        ctx.home.read_guard.record(ctx, ReadUsage(request=view.request, plan=view.plan, rows=rows))


def product_ref(table: TableRef, field_name: str = "query") -> str:
    """The `domain.name` a table of a user's query names; refuses anything else (a file,
    a DuckDB system table, a catalog-qualified name)."""
    if table.catalog or not table.schema or table.schema.lower() in SYSTEM_SCHEMAS:
        raise refused(
            table.construct,
            field_name,
            "name data products as <domain>.<name>, e.g. sales.orders",
        )
    return f"{table.schema}.{table.name}"
