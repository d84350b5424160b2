"""Contract tests of an output port, run by DuckDB over an Arrow table or a Parquet file.

The rules come from the port's ODCS contract:
  schema   every declared column exists, has the declared logical (and physical) type, no
           undeclared columns; `required` (no nulls), `unique`, `primaryKey` (unique + not null)
  quality  library metrics nullValues, missingValues, invalidValues, duplicateValues,
           rowCount with the mustBe* operators, and `sql` rules (a query returning one number,
           run in the kernel's sandbox: one SELECT over the port's table, nothing else)
  sla      freshness / latency with an `element` column: the newest value is recent enough

Column-level metrics are exact counts (contract_scan.py): Parquet statistics, Arrow compute
over row groups in parallel, and one DuckDB aggregate scan for what has no faster exact
path; each sql rule is one query.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from meshops.kernel.errors import InvalidInput
from meshops.kernel.sandbox import Relation, Sandbox, parquet_source
from meshops.mesh.contract_scan import (
    Duplicates,
    Invalid,
    Measure,
    Missing,
    NullCount,
    RowCount,
    measure_all,
)

# reads.py and builds.py quote SQL through this module: re-exported explicitly
from meshops.mesh.contract_scan import literal as literal  # noqa: PLC0414
from meshops.mesh.contract_scan import quote as quote  # noqa: PLC0414
from meshops.mesh.models import ColumnProfile, ColumnSpec, ContractReport, RuleResult

LOGICAL_TYPES: dict[str, tuple[str, ...]] = {
    "string": ("string", "large_string", "string_view"),
    "integer": ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"),
    "number": (
        "int8",
        "int16",
        "int32",
        "int64",
        "uint8",
        "uint16",
        "uint32",
        "uint64",
        "halffloat",
        "float",
        "double",
        "decimal",
    ),
    "boolean": ("bool",),
    "date": ("date32", "date64"),
    "timestamp": ("timestamp",),
    "time": ("time32", "time64"),
    "object": ("struct", "map"),
    "array": ("list", "large_list", "fixed_size_list"),
}
METRICS = ("nullValues", "missingValues", "invalidValues", "duplicateValues", "rowCount")
OPERATORS = (
    "mustBe",
    "mustNotBe",
    "mustBeGreaterThan",
    "mustBeGreaterOrEqualTo",
    "mustBeLessThan",
    "mustBeLessOrEqualTo",
    "mustBeBetween",
    "mustNotBeBetween",
)
# Aliases of DuckDB type names accepted in physicalType.
_PHYSICAL_ALIASES = {
    "varchar": "varchar",
    "string": "varchar",
    "text": "varchar",
    "char": "varchar",
    "bigint": "bigint",
    "int8": "bigint",
    "long": "bigint",
    "int64": "bigint",
    "integer": "integer",
    "int": "integer",
    "int4": "integer",
    "int32": "integer",
    "smallint": "smallint",
    "int2": "smallint",
    "tinyint": "tinyint",
    "double": "double",
    "float8": "double",
    "float64": "double",
    "float": "float",
    "real": "float",
    "float4": "float",
    "float32": "float",
    "boolean": "boolean",
    "bool": "boolean",
    "date": "date",
    "timestamp": "timestamp",
    "datetime": "timestamp",
    "timestamp with time zone": "timestamp with time zone",
    "timestamptz": "timestamp with time zone",
}


def arrow_type_family(dtype: pa.DataType) -> str:
    if pa.types.is_decimal(dtype):
        return "decimal"
    if pa.types.is_timestamp(dtype):
        return "timestamp"
    if pa.types.is_dictionary(dtype):
        return arrow_type_family(dtype.value_type)
    if pa.types.is_struct(dtype):
        return "struct"
    if pa.types.is_map(dtype):
        return "map"
    if pa.types.is_list(dtype) or pa.types.is_large_list(dtype):
        return "list"
    return str(dtype)


def _physical(name: str) -> str:
    base = re.sub(r"\(.*\)", "", name.strip().lower())
    return _PHYSICAL_ALIASES.get(base, base)


def fetch_one(con: duckdb.DuckDBPyConnection, sql: str) -> tuple[Any, ...] | None:
    """The first row of `sql`; DuckDB 2 wants every result fetched to the end."""
    rows = con.execute(sql).fetchall()
    return tuple(rows[0]) if rows else None


# --- sources ---


@contextmanager
def relation(source: pa.Table | str, name: str = "data") -> Iterator[duckdb.DuckDBPyConnection]:
    """A DuckDB connection where `source` is the view `name` (and `data`)."""
    con = duckdb.connect()
    try:
        if isinstance(source, pa.Table):
            con.register("__source", source)
            con.execute(f"CREATE VIEW {quote(name)} AS SELECT * FROM __source")
        else:
            con.execute(
                f"CREATE VIEW {quote(name)} AS SELECT * FROM read_parquet({literal(source)})"
            )
        if name != "data":
            con.execute(f"CREATE VIEW data AS SELECT * FROM {quote(name)}")
        yield con
    finally:
        con.close()


def arrow_schema(source: pa.Table | str) -> pa.Schema:
    return source.schema if isinstance(source, pa.Table) else pq.read_schema(source)


def duckdb_types(con: duckdb.DuckDBPyConnection, name: str) -> dict[str, str]:
    rows = con.execute(f"DESCRIBE {quote(name)}").fetchall()
    return {str(r[0]): str(r[1]) for r in rows}


# --- operators ---


def check_operator(rule: dict[str, Any], value: float, default_zero: bool) -> tuple[bool, str]:
    """Apply the rule's mustBe* operator(s) to `value`; returns (passed, expectation text)."""
    used = [op for op in OPERATORS if rule.get(op) is not None]
    if not used:
        if default_zero:
            return value == 0, "mustBe 0"
        raise InvalidInput(
            f"quality rule {rule.get('name') or rule.get('metric') or rule.get('type')} has no "
            "operator",
            {"field": "quality", "fix": f"add one of {list(OPERATORS)}, e.g. mustBeGreaterThan: 0"},
        )
    passed = True
    texts = []
    for op in used:
        bound = rule[op]
        texts.append(f"{op} {bound}")
        if op == "mustBe":
            passed &= value == float(bound)
        elif op == "mustNotBe":
            passed &= value != float(bound)
        elif op == "mustBeGreaterThan":
            passed &= value > float(bound)
        elif op == "mustBeGreaterOrEqualTo":
            passed &= value >= float(bound)
        elif op == "mustBeLessThan":
            passed &= value < float(bound)
        elif op == "mustBeLessOrEqualTo":
            passed &= value <= float(bound)
        elif op == "mustBeBetween":
            passed &= float(bound[0]) <= value <= float(bound[1])
        elif op == "mustNotBeBetween":
            passed &= not (float(bound[0]) <= value <= float(bound[1]))
    return passed, ", ".join(texts)


# --- the test ---


def _metric_measure(metric: str, column: str | None, rule: dict[str, Any]) -> Measure:
    args = rule.get("arguments") or {}
    if metric == "rowCount":
        return RowCount()
    if metric == "duplicateValues":
        if column:
            return Duplicates((column,))
        return Duplicates(tuple(str(p) for p in args.get("properties") or []), count_rows=True)
    if column is None:
        raise InvalidInput(
            f"metric {metric} needs a column",
            {"field": "quality", "fix": "declare the rule under the property it checks"},
        )
    if metric == "nullValues":
        return NullCount(column)
    if metric == "missingValues":
        return Missing(column, tuple(v for v in args.get("missingValues", []) if v is not None))
    if metric == "invalidValues":
        if args.get("validValues") is None and not args.get("pattern"):
            raise InvalidInput(
                "invalidValues needs arguments.validValues or arguments.pattern",
                {"field": "quality.arguments", "fix": "add validValues: [..] or pattern: '^...$'"},
            )
        valid = args.get("validValues")
        return Invalid(
            column,
            tuple(valid) if valid is not None else None,
            str(args["pattern"]) if args.get("pattern") else None,
        )
    raise InvalidInput(
        f"unknown quality metric {metric!r}",
        {"field": "quality.metric", "fix": f"use one of {list(METRICS)}"},
    )


def _rule_id(port: str, column: str | None, rule: dict[str, Any], index: int) -> str:
    label = (
        rule.get("name")
        or rule.get("id")
        or rule.get("metric")
        or rule.get("rule")
        or rule.get("type")
    )
    return ".".join(str(p) for p in ("quality", port, column or "*", label, index) if p is not None)


def rule_relations(source: pa.Table | str, port: str) -> list[Relation]:
    """What a contract's `sql` rules may read: the port's table, as `<port>` and `data`."""
    if isinstance(source, pa.Table):
        names = dict.fromkeys([port, "data"])
        return [Relation(name, table=source, label=port) for name in names]
    view = Relation(
        port, select=f"SELECT * FROM {parquet_source(source)}", files=(source,), label=port
    )
    return (
        [view]
        if port == "data"
        else [view, Relation("data", select=f"SELECT * FROM {quote(port)}")]
    )


def _sql_rules(source: pa.Table | str, port: str, rules: list[dict[str, Any]]) -> Iterator[float]:
    """Each rule's query (one number) in the kernel's sandbox: a contract is written by a
    data engineer, and it runs in the server at publish time, so it can read the port's
    table and nothing else."""
    if not rules:
        return
    with Sandbox(rule_relations(source, port)) as box:
        for rule in rules:
            yield _sql_rule(box, port, rule)


def _sql_rule(box: Sandbox, port: str, rule: dict[str, Any]) -> float:
    query = str(rule.get("query") or "")
    for placeholder in ("${object}", "{object}", "${table}", "{table}", "{model}", "${model}"):
        query = query.replace(placeholder, quote(port))
    try:
        table = box.run_user_sql(query, "quality.query")
    except InvalidInput as exc:
        name = f" {rule['name']!r}" if rule.get("name") else ""
        raise InvalidInput(
            f"sql quality rule{name} failed: {exc.message}",
            {
                **exc.detail,
                "field": "quality.query",
                "query": query,
                "fix": f"one SELECT returning one number, over the table {port} (or data)",
            },
        ) from exc
    row = table.slice(0, 1).to_pylist()[0] if table.num_rows else {}
    value = next(iter(row.values()), None) if row else None
    try:
        return float(value) if value is not None else 0.0
    except (TypeError, ValueError) as exc:
        raise InvalidInput(
            f"sql quality rule returned {value!r}, not a number",
            {"field": "quality.query", "query": query, "fix": "select one number, e.g. count(*)"},
        ) from exc


def _freshness_limit(prop: dict[str, Any]) -> float:
    unit = str(prop.get("unit") or "d").lower().rstrip("s")
    seconds = {
        "d": 86400,
        "day": 86400,
        "h": 3600,
        "hour": 3600,
        "m": 60,
        "min": 60,
        "minute": 60,
        "s": 1,
        "second": 1,
        "y": 31536000,
        "year": 31536000,
    }
    return float(prop.get("value") or 0) * seconds.get(unit, 86400)


def _as_datetime(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    return None


# A rule judged on one measure: (measure, rule id, kind, column, expectation), where the
# expectation is the text of a schema rule (passes at 0) or the quality rule itself.
_Judged = tuple[Measure, str, str, str | None, "str | dict[str, Any]"]


def run_contract_test(
    source: pa.Table | str,
    port: str,
    columns: list[ColumnSpec],
    schema_object: dict[str, Any],
    sla_properties: list[dict[str, Any]] | None = None,
    *,
    now: datetime | None = None,
) -> ContractReport:
    """Test `source` (Arrow table or Parquet path) against the port's contract."""
    started = time.perf_counter()
    schema = arrow_schema(source)
    present = {f.name: f.type for f in schema}
    with relation(source, port) as con:
        physical = duckdb_types(con, port)
        results: list[RuleResult] = []
        for column in columns:
            results.extend(_schema_type_checks(port, column, present, physical))
        results.extend(_undeclared(port, columns, present))
        quality = _collect_quality(port, schema_object, present)
        judged = _schema_measures(port, columns, present) + _quality_measures(quality)
        values = measure_all(source, con, port, schema, [RowCount(), *(j[0] for j in judged)])
        row_count = values[RowCount()]
        results.extend(_verdict(j, values[j[0]], row_count) for j in judged)
        sql_rules = [(i, c, r) for i, c, r in quality if r.get("type") == "sql"]
        values_of_rules = _sql_rules(source, port, [r for _, _, r in sql_rules])
        for (rule_id, column_name, rule), value in zip(sql_rules, values_of_rules, strict=True):
            results.append(_judge(rule_id, column_name, rule, value, row_count))
        results.extend(_sla_checks(con, port, present, sla_properties or [], now))
    return ContractReport(
        port=port, rows=row_count, results=results, seconds=time.perf_counter() - started
    )


def _undeclared(
    port: str, columns: list[ColumnSpec], present: dict[str, pa.DataType]
) -> list[RuleResult]:
    declared = {c.name for c in columns}
    return [
        RuleResult(
            rule=f"schema.{port}.{extra}.declared",
            kind="schema",
            column=extra,
            passed=False,
            expected="declared in the contract",
            message=f"column {extra!r} is not in the contract",
        )
        for extra in sorted(set(present) - declared)
    ]


def _schema_measures(
    port: str, columns: list[ColumnSpec], present: dict[str, pa.DataType]
) -> list[_Judged]:
    judged: list[_Judged] = []
    single_key = sum(c.primary_key for c in columns) == 1
    for column in columns:
        if column.name not in present:
            continue
        base = f"schema.{port}.{column.name}"
        if column.required or column.primary_key:
            judged.append(
                (NullCount(column.name), f"{base}.required", "schema", column.name, "no nulls")
            )
        if column.unique or (column.primary_key and single_key):
            judged.append(
                (
                    Duplicates((column.name,)),
                    f"{base}.unique",
                    "schema",
                    column.name,
                    "no duplicates",
                )
            )
    keys = [c.name for c in columns if c.primary_key]
    if len(keys) > 1 and all(k in present for k in keys):
        judged.append(
            (
                Duplicates(tuple(keys), count_rows=True),
                f"schema.{port}.primary_key",
                "schema",
                None,
                f"unique ({', '.join(keys)})",
            )
        )
    return judged


def _quality_measures(quality: list[tuple[str, str | None, dict[str, Any]]]) -> list[_Judged]:
    judged: list[_Judged] = []
    for rule_id, column_name, rule in quality:
        kind = rule.get("type") or ("library" if rule.get("metric") or rule.get("rule") else "text")
        if kind == "library":
            metric = str(rule.get("metric") or rule.get("rule"))
            measure = _metric_measure(metric, column_name, rule)
            judged.append((measure, rule_id, "quality", column_name, rule))
    return judged


def _verdict(judged: _Judged, count: int, rows: int) -> RuleResult:
    _, rule_id, kind, column_name, expectation = judged
    value = float(count)
    if not isinstance(expectation, str):
        return _judge(rule_id, column_name, expectation, value, rows)
    return RuleResult(
        rule=rule_id,
        kind=kind,
        column=column_name,
        passed=value == 0,
        observed=value,
        expected=expectation,
        message="" if value == 0 else f"{int(value)} offending rows",
    )


def _judge(
    rule_id: str, column: str | None, rule: dict[str, Any], value: float, rows: int
) -> RuleResult:
    metric = rule.get("metric") or rule.get("rule")
    observed = value
    if str(rule.get("unit", "")).lower() == "percent" and metric != "rowCount":
        observed = 100.0 * value / rows if rows else 0.0
    passed, expected = check_operator(rule, observed, default_zero=metric not in (None, "rowCount"))
    return RuleResult(
        rule=rule_id,
        kind="quality",
        column=column,
        passed=passed,
        observed=observed,
        expected=expected,
        severity=str(rule.get("severity") or "error").lower()
        if str(rule.get("severity") or "error").lower() in ("error", "warning", "info")
        else "error",
        message="" if passed else f"{metric or 'sql'} = {observed:g}, expected {expected}",
    )


def _collect_quality(
    port: str, schema_object: dict[str, Any], present: dict[str, pa.DataType]
) -> list[tuple[str, str | None, dict[str, Any]]]:
    rules: list[tuple[str, str | None, dict[str, Any]]] = []
    for i, rule in enumerate(schema_object.get("quality") or []):
        rules.append((_rule_id(port, None, rule, i), None, rule))
    for prop in schema_object.get("properties") or []:
        for i, rule in enumerate(prop.get("quality") or []):
            if prop.get("name") in present:
                rules.append((_rule_id(port, str(prop["name"]), rule, i), str(prop["name"]), rule))
    return rules


def _schema_type_checks(
    port: str, column: ColumnSpec, present: dict[str, pa.DataType], physical: dict[str, str]
) -> list[RuleResult]:
    base = f"schema.{port}.{column.name}"
    if column.name not in present:
        return [
            RuleResult(
                rule=f"{base}.present",
                kind="schema",
                column=column.name,
                passed=False,
                expected="present",
                message=f"column {column.name!r} is missing",
            )
        ]
    family = arrow_type_family(present[column.name])
    ok = family in LOGICAL_TYPES.get(column.logical_type, ())
    results = [
        RuleResult(
            rule=f"{base}.present",
            kind="schema",
            column=column.name,
            passed=True,
            expected="present",
        ),
        RuleResult(
            rule=f"{base}.type",
            kind="schema",
            column=column.name,
            passed=ok,
            observed=family,
            expected=f"logicalType {column.logical_type}",
            message="" if ok else f"{column.name} is {family}, contract says {column.logical_type}",
        ),
    ]
    if column.physical_type:
        actual = _physical(physical.get(column.name, ""))
        wanted = _physical(column.physical_type)
        same = actual == wanted
        results.append(
            RuleResult(
                rule=f"{base}.physical_type",
                kind="schema",
                column=column.name,
                passed=same,
                observed=physical.get(column.name),
                expected=f"physicalType {column.physical_type}",
                message="" if same else f"{column.name} is {actual}, contract says {wanted}",
            )
        )
    return results


def _sla_checks(
    con: duckdb.DuckDBPyConnection,
    port: str,
    present: dict[str, pa.DataType],
    properties: list[dict[str, Any]],
    now: datetime | None,
) -> list[RuleResult]:
    results = []
    for prop in properties:
        name = str(prop.get("property") or "")
        if name not in ("freshness", "latency") or not prop.get("element"):
            continue
        element = str(prop["element"])
        obj, _, column = element.rpartition(".")
        if obj and obj != port:
            continue
        if column not in present:
            results.append(
                RuleResult(
                    rule=f"sla.{port}.{name}",
                    kind="sla",
                    column=column,
                    passed=False,
                    expected=f"column {column} exists",
                    message=f"{name} element {element} not found",
                )
            )
            continue
        newest = fetch_one(con, f"SELECT max({quote(column)}) FROM {quote(port)}")
        newest_at = _as_datetime(newest[0] if newest else None)
        limit = _freshness_limit(prop)
        age = ((now or datetime.now(UTC)) - newest_at).total_seconds() if newest_at else None
        passed = age is not None and age <= limit
        results.append(
            RuleResult(
                rule=f"sla.{port}.{name}",
                kind="sla",
                column=column,
                passed=passed,
                observed=age,
                expected=f"newest {column} at most {prop.get('value')}{prop.get('unit', 'd')} old",
                message=""
                if passed
                else f"newest {column} is {age if age is None else round(age)} s old",
            )
        )
    return results


# --- profile ---


def profile(source: pa.Table | str, port: str, bins: int = 10) -> list[ColumnProfile]:
    """Per column: nulls, (approximate) distinct count, min/max; numeric histograms."""
    schema = arrow_schema(source)
    profiles: list[ColumnProfile] = []
    with relation(source, port) as con:
        exprs = []
        for f in schema:
            col = quote(f.name)
            comparable = not (pa.types.is_nested(f.type) or pa.types.is_binary(f.type))
            exprs.append(f"count(*) - count({col})")
            exprs.append(f"approx_count_distinct({col})" if comparable else "NULL")
            exprs.append(f"min({col})" if comparable else "NULL")
            exprs.append(f"max({col})" if comparable else "NULL")
        if not exprs:
            return []
        row = fetch_one(con, f"SELECT {', '.join(exprs)} FROM {quote(port)}")
        assert row is not None
        for i, f in enumerate(schema):
            nulls, distinct, low, high = row[4 * i : 4 * i + 4]
            histogram: list[dict[str, Any]] = []
            numeric = pa.types.is_integer(f.type) or pa.types.is_floating(f.type)
            if numeric and low is not None and high is not None and high > low:
                width = (float(high) - float(low)) / bins
                col = quote(f.name)
                counts = con.execute(
                    f"SELECT least(floor(({col} - {float(low)!r}) / {width!r})::INT, "
                    f"{bins - 1}) AS b, "
                    f"count(*) FROM {quote(port)} WHERE {col} IS NOT NULL GROUP BY b ORDER BY b"
                ).fetchall()
                histogram = [
                    {
                        "lower": float(low) + int(b) * width,
                        "upper": float(low) + (int(b) + 1) * width,
                        "count": int(c),
                    }
                    for b, c in counts
                ]
            profiles.append(
                ColumnProfile(
                    name=f.name,
                    type=str(f.type),
                    nulls=int(nulls or 0),
                    distinct=int(distinct or 0),
                    min=_jsonable(low),
                    max=_jsonable(high),
                    histogram=histogram,
                )
            )
    return profiles


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)
