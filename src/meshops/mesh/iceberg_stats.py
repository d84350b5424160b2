"""Exact statistics of an Iceberg snapshot from its manifests, for contract tests (#21).

Every data file of a snapshot is listed in a manifest with its record count and, per column,
its null count and lower and upper bounds. Where those are exact for the whole snapshot, a
contract test takes them instead of counting the rows:

  rows         the sum of the files' record counts, exact when the snapshot has no delete
               files (meshops writes none; a snapshot with some gets no statistics at all)
  nulls        a column's null count, when every file records one for it (a file written
               before the column was added, or with metrics turned off, records none: the
               column is then counted from its values)
  bounds       for integer and floating-point columns, the least lower bound and greatest
               upper bound over the files that hold a non-null value, when each of them
               records both and (floats) records no NaN (pyiceberg 0.12 writes no NaN
               counts: its float columns get no bounds). Iceberg's bounds are true bounds
               (numbers are never truncated), not necessarily the extreme values: they can
               prove that no value is out of a contract's range, never count the ones that are

The statistics only answer; the verdicts are those a scan of the same rows gives (tested
against one in tests/mesh/iceberg/test_iceberg_stats.py). `run_snapshot_test` also says
which rules they answered (`answered_rules`), for the re-test of a published version
(`Mesh.test_version`, retest_service.py), which marks them `from_metadata`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from meshops.mesh.contract_scan import Measure, NullCount, OutOfRange, RowCount, StoredStatistics

if TYPE_CHECKING:
    import pyarrow as pa
    from pyiceberg.table import Table

    from meshops.mesh.models import ContractReport
    from meshops.mesh.specs import PortContract


@dataclass
class _ColumnTotals:
    """One column's figures summed over the files seen so far (None: not exact)."""

    nulls: int | None = 0
    least: float | None = None
    greatest: float | None = None
    bounded: bool = True


@dataclass
class _Totals:
    rows: int = 0
    columns: dict[int, _ColumnTotals] = field(default_factory=dict)


def snapshot_statistics(table: Table, snapshot_id: int) -> StoredStatistics | None:
    """The exact statistics of the snapshot's rows, or None when its data files alone do
    not describe them (delete files)."""
    tasks = list(table.scan(snapshot_id=snapshot_id).plan_files())
    if any(task.delete_files for task in tasks):
        return None
    fields = _top_level_fields(table, snapshot_id)
    totals = _Totals(columns={field_id: _ColumnTotals() for field_id in fields})
    for task in tasks:
        _add_file(totals, task.file, fields)
    nulls: dict[str, int] = {}
    bounds: dict[str, tuple[float, float]] = {}
    for field_id, column in totals.columns.items():
        name, _ = fields[field_id]
        if column.nulls is not None:
            nulls[name] = column.nulls
        if column.bounded and column.least is not None and column.greatest is not None:
            bounds[name] = (column.least, column.greatest)
    return StoredStatistics(totals.rows, nulls, bounds)


def _top_level_fields(table: Table, snapshot_id: int) -> dict[int, tuple[str, Any]]:
    """Field id -> (column name, Iceberg type) of the snapshot's schema's top-level columns."""
    snapshot = table.snapshot_by_id(snapshot_id)
    schema_id = snapshot.schema_id if snapshot is not None else None
    schema = next((s for s in table.schemas().values() if s.schema_id == schema_id), None)
    schema = schema or table.schema()
    return {f.field_id: (f.name, f.field_type) for f in schema.fields}


def _add_file(totals: _Totals, data_file: Any, fields: dict[int, tuple[str, Any]]) -> None:
    rows = int(data_file.record_count)
    totals.rows += rows
    null_counts: dict[int, int] = data_file.null_value_counts or {}
    for field_id, column in totals.columns.items():
        file_nulls = null_counts.get(field_id)
        if file_nulls is None or column.nulls is None:
            column.nulls = None
        else:
            column.nulls += int(file_nulls)
        _, iceberg_type = fields[field_id]
        _add_bounds(column, data_file, field_id, iceberg_type, rows)


def _add_bounds(
    column: _ColumnTotals, data_file: Any, field_id: int, iceberg_type: Any, rows: int
) -> None:
    kind = _numeric_kind(iceberg_type)
    if kind is None:
        column.bounded = False
        return
    nulls = (data_file.null_value_counts or {}).get(field_id)
    if nulls is not None and int(nulls) == rows:
        return  # no value in this file: nothing to bound
    lower = (data_file.lower_bounds or {}).get(field_id)
    upper = (data_file.upper_bounds or {}).get(field_id)
    nans = (data_file.nan_value_counts or {}).get(field_id)
    if lower is None or upper is None or (kind == "float" and nans != 0):
        column.bounded = False
        return
    from pyiceberg.conversions import from_bytes

    # integers stay Python ints: exact beyond 2**53
    convert = int if kind == "integer" else float
    least = convert(from_bytes(iceberg_type, lower))
    greatest = convert(from_bytes(iceberg_type, upper))
    column.least = least if column.least is None else min(column.least, least)
    column.greatest = greatest if column.greatest is None else max(column.greatest, greatest)


def _numeric_kind(iceberg_type: Any) -> str | None:
    from pyiceberg.types import DoubleType, FloatType, IntegerType, LongType

    if isinstance(iceberg_type, IntegerType | LongType):
        return "integer"
    if isinstance(iceberg_type, FloatType | DoubleType):
        return "float"
    return None


@dataclass(frozen=True)
class SnapshotTest:
    """A snapshot's contract test, and the rules its statistics answered (no value read)."""

    report: ContractReport
    from_metadata: frozenset[str]


def contract_test_snapshot(table: Table, snapshot_id: int, port: PortContract) -> ContractReport:
    """The port's contract test of the snapshot's rows, with the snapshot's statistics
    answering row counts, null counts and the range checks they prove."""
    return run_snapshot_test(table, snapshot_id, port).report


def run_snapshot_test(table: Table, snapshot_id: int, port: PortContract) -> SnapshotTest:
    """`contract_test_snapshot`, telling which rules the snapshot's statistics answered."""
    from meshops.mesh.contracts import run_port_contract_test

    rows = table.scan(snapshot_id=snapshot_id).to_arrow()
    statistics = snapshot_statistics(table, snapshot_id)
    report = run_port_contract_test(rows, port, statistics)
    answered = answered_rules(port, rows.schema, statistics) if statistics else frozenset()
    return SnapshotTest(report, answered)


def answered_rules(
    port: PortContract, schema: pa.Schema, statistics: StoredStatistics
) -> frozenset[str]:
    """Ids of the port's rules whose one measure `statistics` answer in `measure_all`: the
    row count, a null count it records, a range its bounds prove empty. The rules' measures
    come from the contract test's own planning, so the two cannot disagree on a rule."""
    from meshops.mesh import contracts

    present = {f.name: f.type for f in schema}
    props = contracts._properties(port.columns, port.schema_object)
    judged = contracts._schema_measures(port.port, props, present)
    judged += contracts._plan_quality(port.port, port.schema_object, props, present).measured
    return frozenset(rule for measure, rule, *_ in judged if _answers(statistics, measure))


def _answers(statistics: StoredStatistics, measure: Measure) -> bool:
    if isinstance(measure, RowCount):
        return True
    if isinstance(measure, NullCount):
        return measure.column in statistics.nulls
    if isinstance(measure, OutOfRange):
        return statistics.out_of_range(measure) is not None
    return False  # duplicates and value sets are counted from the values
