"""THE read path: every read of data product data goes through `read_port` (or, for SQL
across products, through `governed_views`), whatever the interface.

For each read: check the lifecycle (deprecated warns, retired fails naming the replacement),
build a `ReadRequest`, ask `ctx.home.read_guard.plan(...)` BEFORE reading, apply the plan
(only `plan.columns`, masks, `plan.row_filter`), then `read_guard.record(...)` AFTER.

Unmasked, unfiltered reads take the fast path (pyarrow reads only the asked columns of the
Parquet snapshot); anything else is one DuckDB query over the snapshot.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from meshops.kernel.access import Interface, ReadPlan, ReadRequest, ReadUsage
from meshops.kernel.errors import Forbidden, InvalidInput, NotFound
from meshops.kernel.home import Context
from meshops.mesh.contracts import literal, quote
from meshops.mesh.models import DataProduct, DataProductVersion, OutputPortVersion


class DeprecatedProductWarning(UserWarning):
    """Reading a deprecated data product: move to its replacement before the sunset date."""


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


def select_sql(source: str, request: ReadRequest, plan: ReadPlan, types: dict[str, str]) -> str:
    """The DuckDB SELECT that applies `plan` to `source` (a relation expression)."""
    exprs = []
    for column in request.columns:
        if column not in plan.columns:
            continue
        col = quote(column)
        mask = plan.masks.get(column)
        if mask == "hash":
            exprs.append(f"sha256(CAST({col} AS VARCHAR)) AS {col}")
        elif mask == "redact":
            exprs.append(f"CASE WHEN {col} IS NULL THEN NULL ELSE '****' END AS {col}")
        elif mask == "null":
            exprs.append(f"CAST(NULL AS {types.get(column, 'VARCHAR')}) AS {col}")
        else:
            exprs.append(col)
    where = f" WHERE {plan.row_filter}" if plan.row_filter else ""
    return f"SELECT {', '.join(exprs)} FROM {source}{where}"


@contextmanager
def snapshot_path(ctx: Context, digest: str) -> Iterator[str]:
    with ctx.blobs.local_path(digest) as path:
        yield str(path)


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
    with snapshot_path(ctx, port.snapshot_digest) as path:
        if not plan.masks and not plan.row_filter:
            allowed = [c for c in request.columns if c in plan.columns]
            table = pq.read_table(path, columns=allowed)
        else:
            table = _duckdb_read(path, request, plan)
    ctx.home.read_guard.record(ctx, ReadUsage(request=request, plan=plan, rows=table.num_rows))
    notes = [*notes, *plan.warnings]
    _warn(notes)
    return table, notes


def _duckdb_read(path: str, request: ReadRequest, plan: ReadPlan) -> pa.Table:
    con = duckdb.connect()
    try:
        source = f"read_parquet({literal(path)})"
        types = {
            str(r[0]): str(r[1]) for r in con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()
        }
        try:
            return con.sql(select_sql(source, request, plan, types)).to_arrow_table()
        except duckdb.Error as exc:
            raise InvalidInput(
                f"the read plan's row filter does not apply to {request.product}: {exc}",
                {"row_filter": plan.row_filter, "fix": "correct the row filter of the grant"},
            ) from exc
    finally:
        con.close()


@dataclass
class GovernedView:
    request: ReadRequest
    plan: ReadPlan


@contextmanager
def governed_views(
    ctx: Context,
    con: duckdb.DuckDBPyConnection,
    products: list[tuple[str, DataProduct, DataProductVersion]],
    interface: Interface = "sql",
) -> Iterator[list[GovernedView]]:
    """Create `<domain>.<name>` views in `con`, each the governed SELECT of the product's
    default port; the caller runs its query, then calls `record_views`."""
    views: list[GovernedView] = []
    with ExitStack() as stack:
        notes: list[str] = []
        for _ref, product, version in products:
            notes.extend(lifecycle_warnings(product))
            port = version.port()
            request = build_request(version, port, None, interface)
            plan = plan_read(ctx, request)
            path = stack.enter_context(snapshot_path(ctx, port.snapshot_digest))
            source = f"read_parquet({literal(path)})"
            types = {
                str(r[0]): str(r[1])
                for r in con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()
            }
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(version.domain)}")
            con.execute(
                f"CREATE OR REPLACE VIEW {quote(version.domain)}.{quote(version.name)} AS "
                f"{select_sql(source, request, plan, types)}"
            )
            notes.extend(plan.warnings)
            views.append(GovernedView(request, plan))
        _warn(notes)
        yield views


def record_views(ctx: Context, views: list[GovernedView], rows: int) -> None:
    for view in views:
        ctx.home.read_guard.record(ctx, ReadUsage(request=view.request, plan=view.plan, rows=rows))


_FROM_TARGET = re.compile(r'(?:from|join)\s+"?([A-Za-z_]\w*)"?\s*\.\s*"?([A-Za-z_]\w*)"?', re.I)


def referenced_products(query: str) -> list[str]:
    """`domain.name` tables a SQL query reads (as DuckDB's parser sees them)."""
    try:
        names: list[str] = list(duckdb.get_table_names(query, qualified=True))
    except duckdb.ParserException as exc:
        raise InvalidInput(f"cannot parse the SQL query: {exc}", {"field": "query"}) from exc
    except duckdb.Error:
        # get_table_names also binds some clauses (JOIN ... USING) and fails without the
        # tables; the FROM/JOIN targets are then found lexically.
        names = [f"{d}.{n}" for d, n in _FROM_TARGET.findall(query)]
    refs = set()
    for name in names:
        base = name.split(" AS ")[0].strip().replace('"', "")
        if base.count(".") == 1:
            refs.add(base)
    return sorted(refs)


def to_format(table: pa.Table, fmt: str) -> Any:
    """pandas / polars / arrow conversions on request."""
    if fmt == "arrow":
        return table
    if fmt == "pandas":
        return table.to_pandas()
    if fmt == "polars":
        import importlib

        return importlib.import_module("polars").from_arrow(table)
    raise InvalidInput(
        f"unknown format {fmt!r}", {"field": "format", "fix": "arrow, pandas or polars"}
    )
