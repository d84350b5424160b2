"""Contract tests of an output port over an Arrow table or a Parquet file, as ODCS 3.0/3.1
define the rules (docs/mesh.md "Contract tests" is the user's description):

  schema   each property found by physicalName (else name); logicalType against the Arrow
           type (nested object properties and array items recursively, timestamp zones per
           logicalTypeOptions.timezone); physicalType by type family after normalising the
           vendor name, or "not checked"; no undeclared columns; required, unique,
           primaryKey
  quality  library metrics (3.1 `metric`, 3.0 `rule` names) with every operator and unit
           percent; `sql` rules with their placeholders in the kernel's sandbox (one SELECT
           over the port's table, nothing else); `custom` and `text` rules reported
           "not evaluated"
  sla      latency / freshness from the element's newest value, endOfSupport / endOfLife
           against today, every other property reported "not checked" with the reason
           (contract_sla.py)

Column-level metrics are exact counts (contract_scan.py): Parquet statistics, Arrow compute
over row groups in parallel, and one DuckDB aggregate scan for what has no faster exact
path; each sql rule is one query.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

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
    OutOfRange,
    RowCount,
    StoredStatistics,
    measure_all,
)

# reads.py and builds.py quote SQL through this module: re-exported explicitly
from meshops.mesh.contract_scan import literal as literal  # noqa: PLC0414
from meshops.mesh.contract_scan import quote as quote  # noqa: PLC0414
from meshops.mesh.models import (
    NOT_CHECKED,
    NOT_EVALUATED,
    ColumnSpec,
    ContractReport,
    RuleResult,
)
from meshops.mesh.odcs import OPERATORS

if TYPE_CHECKING:
    from meshops.mesh.specs import PortContract

# The ODCS logical types (3.0: string, date, number, integer, object, array, boolean; 3.1
# adds timestamp and time) and the Arrow type families each one accepts.
LOGICAL_TYPES: dict[str, tuple[str, ...]] = {
    "string": ("string",),
    "integer": ("integer", "decimal with scale 0"),
    "number": ("integer", "float", "decimal"),
    "boolean": ("boolean",),
    "date": ("date",),
    "timestamp": ("timestamp",),
    "time": ("time",),
    "object": ("object", "map"),
    "array": ("array",),
}
METRICS = ("nullValues", "missingValues", "invalidValues", "duplicateValues", "rowCount")
# The ODCS 3.0 `rule:` names of the 3.0.x docs and examples, as the metric they count.
# between / minCheck (and maxCheck, by analogy) count the values outside the min / max of
# the rule's customProperties; countCheck is rowCount.
RULES_30 = {
    "nullCheck": "nullValues",
    "duplicateCount": "duplicateValues",
    "validValues": "invalidValues",
    "rowCount": "rowCount",
    "countCheck": "rowCount",
    "between": "range",
    "minCheck": "range",
    "maxCheck": "range",
}
# SQL placeholders of the ODCS docs: 3.1 writes {object} / {property} (and {table} /
# {column} in an example), 3.0 ${object} / ${property} (and ${table} / ${column}); {model}
# is datacontract-cli's. Replaced by the quoted table and column names.
OBJECT_PLACEHOLDERS = ("${object}", "${table}", "${model}", "{object}", "{table}", "{model}")
PROPERTY_PLACEHOLDERS = ("${property}", "${column}", "{property}", "{column}")

# physicalType: vendor type names (PostgreSQL, MySQL, SQL Server, Oracle, Snowflake,
# BigQuery, Databricks/Spark, DuckDB, Parquet) by the Arrow family they are stored as.
_PHYSICAL_FAMILIES: dict[str, tuple[str, ...]] = {
    "string": (
        "varchar",
        "char",
        "character",
        "character varying",
        "nvarchar",
        "nchar",
        "text",
        "string",
        "bpchar",
        "clob",
        "nclob",
        "varchar2",
        "nvarchar2",
        "longtext",
        "mediumtext",
        "tinytext",
        "long varchar",
        "str",
        "utf8",
        "large_string",
        "enum",
        "citext",
        "name",
    ),
    "integer": (
        "int",
        "integer",
        "int2",
        "int4",
        "int8",
        "int16",
        "int32",
        "int64",
        "smallint",
        "tinyint",
        "mediumint",
        "bigint",
        "long",
        "short",
        "byte",
        "serial",
        "serial2",
        "serial4",
        "serial8",
        "smallserial",
        "bigserial",
        "uint8",
        "uint16",
        "uint32",
        "uint64",
        "utinyint",
        "usmallint",
        "uinteger",
        "ubigint",
        "hugeint",
        "int128",
        "signed",
        "unsigned",
        "bigint unsigned",
        "int unsigned",
        "integer unsigned",
        "smallint unsigned",
        "tinyint unsigned",
    ),
    "float": (
        "float",
        "float4",
        "float8",
        "float32",
        "float64",
        "real",
        "double",
        "double precision",
        "binary_float",
        "binary_double",
        "halffloat",
        "float16",
    ),
    "decimal": ("decimal", "numeric", "number", "dec", "bignumeric", "bigdecimal", "fixed"),
    "boolean": ("bool", "boolean", "logical"),
    "date": ("date", "date32", "date64"),
    "time": ("time", "time without time zone", "time32", "time64"),
    "timestamp": ("timestamp", "datetime", "datetime2", "smalldatetime"),
    "timestamp with zone": (
        "timestamptz",
        "timestamp with time zone",
        "timestamp_tz",
        "timestamp_ltz",
        "timestamp with local time zone",
        "datetimeoffset",
    ),
    "timestamp without zone": ("timestamp without time zone", "timestamp_ntz"),
    "binary": (
        "bytea",
        "binary",
        "varbinary",
        "blob",
        "bytes",
        "raw",
        "long raw",
        "longblob",
        "mediumblob",
        "tinyblob",
        "image",
        "large_binary",
    ),
    "object": ("struct", "record", "row", "object"),
    "map": ("map",),
    "array": ("array", "list", "large_list"),
    "json": ("json", "jsonb", "variant", "super"),
    "uuid": ("uuid", "uniqueidentifier"),
}
_PHYSICAL_FAMILY = {name: family for family, names in _PHYSICAL_FAMILIES.items() for name in names}
# Which Arrow families a physical family may be stored as.
_PHYSICAL_ACCEPTS: dict[str, tuple[str, ...]] = {
    "timestamp with zone": ("timestamp",),
    "timestamp without zone": ("timestamp",),
    "json": ("string", "object", "map", "array", "binary"),
    "uuid": ("string", "binary"),
}


def arrow_type_family(dtype: pa.DataType) -> str:
    """The family of an Arrow type a contract's types are compared with: string, integer,
    float, decimal, boolean, date, time, timestamp, binary, object (struct), map, array,
    duration, null, or the type's own name."""
    if pa.types.is_dictionary(dtype):
        return arrow_type_family(dtype.value_type)
    if isinstance(dtype, pa.ExtensionType):
        return arrow_type_family(dtype.storage_type)
    checks = (
        ("string", pa.types.is_string(dtype) or pa.types.is_large_string(dtype)),
        ("string", pa.types.is_string_view(dtype)),
        ("integer", pa.types.is_integer(dtype)),
        ("float", pa.types.is_floating(dtype)),
        ("decimal", pa.types.is_decimal(dtype)),
        ("boolean", pa.types.is_boolean(dtype)),
        ("date", pa.types.is_date(dtype)),
        ("time", pa.types.is_time(dtype)),
        ("timestamp", pa.types.is_timestamp(dtype)),
        ("duration", pa.types.is_duration(dtype)),
        ("binary", pa.types.is_binary(dtype) or pa.types.is_large_binary(dtype)),
        ("binary", pa.types.is_fixed_size_binary(dtype) or pa.types.is_binary_view(dtype)),
        ("object", pa.types.is_struct(dtype)),
        ("map", pa.types.is_map(dtype)),
        ("array", pa.types.is_list(dtype) or pa.types.is_large_list(dtype)),
        ("array", pa.types.is_fixed_size_list(dtype) or pa.types.is_list_view(dtype)),
        ("array", pa.types.is_large_list_view(dtype)),
        ("null", pa.types.is_null(dtype)),
    )
    return next((family for family, hit in checks if hit), str(dtype))


def _physical_name(name: str) -> str:
    """A vendor type name normalised: lower case, no arguments (varchar(50) -> varchar),
    `array<...>` / `int[]` -> array, `struct<...>` -> struct, `map<...>` -> map."""
    text = " ".join(str(name).strip().lower().split())
    if text.endswith("[]") or text.startswith(("array<", "array(", "list<")):
        return "array"
    for nested in ("struct", "map", "row", "record"):
        if text.startswith((f"{nested}<", f"{nested}(")):
            return nested
    text = re.sub(r"\s*\([^)]*\)", "", text)  # varchar(50), timestamp(6) with time zone
    return " ".join(text.split())


# Canonical (DuckDB) names of vendor spellings of one type: schema_diff.py compares
# physicalTypes through `_physical`, so `int4` -> `integer` is no type change.
_PHYSICAL_ALIASES = {
    "varchar": "varchar",
    "string": "varchar",
    "text": "varchar",
    "char": "varchar",
    "character": "varchar",
    "character varying": "varchar",
    "bpchar": "varchar",
    "nvarchar": "varchar",
    "bigint": "bigint",
    "int8": "bigint",
    "long": "bigint",
    "int64": "bigint",
    "bigserial": "bigint",
    "serial8": "bigint",
    "integer": "integer",
    "int": "integer",
    "int4": "integer",
    "int32": "integer",
    "serial": "integer",
    "serial4": "integer",
    "smallint": "smallint",
    "int2": "smallint",
    "int16": "smallint",
    "smallserial": "smallint",
    "serial2": "smallint",
    "tinyint": "tinyint",
    "double": "double",
    "float8": "double",
    "float64": "double",
    "double precision": "double",
    "float": "float",
    "real": "float",
    "float4": "float",
    "float32": "float",
    "numeric": "decimal",
    "decimal": "decimal",
    "boolean": "boolean",
    "bool": "boolean",
    "date": "date",
    "timestamp": "timestamp",
    "datetime": "timestamp",
    "timestamp without time zone": "timestamp",
    "timestamp with time zone": "timestamp with time zone",
    "timestamptz": "timestamp with time zone",
}


def _physical(name: str) -> str:
    """A physicalType's canonical name (aliases of one type, arguments dropped)."""
    base = _physical_name(name)
    return _PHYSICAL_ALIASES.get(base, base)


def _physical_scale(name: str) -> int | None:
    """The scale of numeric(p,s) / number(p,s) / decimal(p,s), if written."""
    match = re.search(r"\(\s*\d+\s*,\s*(-?\d+)\s*\)", name)
    return int(match.group(1)) if match else None


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


class LazyRelation:
    """`relation(source, name)` opened on first use: a DuckDB connection costs tens of
    milliseconds, and most contract tests are answered by Arrow alone."""

    def __init__(self, source: pa.Table | str, name: str) -> None:
        self.source, self.name = source, name
        self._stack = ExitStack()
        self._con: duckdb.DuckDBPyConnection | None = None

    def __call__(self) -> duckdb.DuckDBPyConnection:
        if self._con is None:
            self._con = self._stack.enter_context(relation(self.source, self.name))
        return self._con

    def __enter__(self) -> LazyRelation:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()


def arrow_schema(source: pa.Table | str) -> pa.Schema:
    return source.schema if isinstance(source, pa.Table) else pq.read_schema(source)


def duckdb_types(con: duckdb.DuckDBPyConnection, name: str) -> dict[str, str]:
    rows = con.execute(f"DESCRIBE {quote(name)}").fetchall()
    return {str(r[0]): str(r[1]) for r in rows}


# --- operators ---


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not (isinstance(value, float) and math.isnan(value))


def operator_errors(rule: dict[str, Any]) -> list[str]:
    """What is wrong with the rule's operators (bounds that are not numbers)."""
    errors = []
    for op in OPERATORS:
        bound = rule.get(op)
        if bound is None:
            continue
        if op in ("mustBeBetween", "mustNotBeBetween"):
            if not (
                isinstance(bound, list | tuple)
                and len(bound) == 2
                and all(_is_number(b) for b in bound)
            ):
                errors.append(f"{op}: {bound!r} is not a list of two numbers")
        elif not _is_number(bound):
            errors.append(f"{op}: {bound!r} is not a number")
    return errors


def check_operator(rule: dict[str, Any], value: float, default_zero: bool) -> tuple[bool, str]:
    """Apply the rule's mustBe* operator(s) to `value`; returns (passed, expectation text).

    As the ODCS docs define them: mustBe =, mustNotBe ≠, mustBeGreaterThan >,
    mustBeGreaterOrEqualTo ≥, mustBeLessThan <, mustBeLessOrEqualTo ≤; mustBeBetween [a, b]
    is mustBeGreaterThan a and mustBeLessThan b (a < value < b, bounds excluded) and
    mustNotBeBetween [a, b] its negation (value ≤ a or value ≥ b). Several operators on one
    rule must all hold. A boolean (an sql rule's result) is 1 or 0."""
    used = [op for op in OPERATORS if rule.get(op) is not None]
    name = rule.get("id") or rule.get("name") or rule.get("metric") or rule.get("rule")
    if not used:
        if default_zero:
            return value == 0, "mustBe 0"
        raise InvalidInput(
            f"quality rule {name or rule.get('type')} has no operator",
            {"field": "quality", "fix": f"add one of {list(OPERATORS)}, e.g. mustBeGreaterThan: 0"},
        )
    errors = operator_errors(rule)
    if errors:
        raise InvalidInput(
            f"quality rule {name or rule.get('type')}: {'; '.join(errors)}",
            {"field": f"quality.{used[0]}", "fix": "write the bound as a number, e.g. mustBe: 0"},
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
            passed &= float(bound[0]) < value < float(bound[1])
        elif op == "mustNotBeBetween":
            passed &= not (float(bound[0]) < value < float(bound[1]))
    return passed, ", ".join(texts)


# --- properties: where each declared property is in the data ---


@dataclass(frozen=True)
class _Property:
    name: str  # the contract's (logical) name, used in rule ids
    column: str  # the column in the data: physicalName when given, else name
    spec: dict[str, Any]  # the ODCS property
    logical_type: str | None
    physical_type: str | None
    required: bool = False
    unique: bool = False
    primary_key: bool = False


def _properties(columns: list[ColumnSpec], schema_object: dict[str, Any]) -> list[_Property]:
    declared = {
        str(p.get("name")): p for p in schema_object.get("properties") or [] if isinstance(p, dict)
    }
    found = []
    for column in columns:
        spec = declared.get(column.name)
        if spec is None:  # columns given without their document
            logical: str | None = column.logical_type
            spec = {}
        else:
            logical = str(spec["logicalType"]) if spec.get("logicalType") else None
        physical_name = spec.get("physicalName") if spec else None
        found.append(
            _Property(
                name=column.name,
                column=str(physical_name) if physical_name else column.name,
                spec=spec,
                logical_type=logical,
                physical_type=column.physical_type,
                required=column.required,
                unique=column.unique,
                primary_key=column.primary_key,
            )
        )
    return found


# --- the test ---


def _value_kind(values: list[Any], dtype: pa.DataType) -> tuple[tuple[Any, ...], bool]:
    """The contract's values that can equal a value of `dtype` (as Python compares them),
    and whether they are compared with the column's text (dates, times and the like, whose
    values a contract writes as strings). A value of another kind can never match: "" on an
    integer column counts nothing."""
    family = arrow_type_family(dtype)
    real = [v for v in values if v is not None]
    if family == "string":
        return tuple(v for v in real if isinstance(v, str)), False
    if family == "boolean":
        return tuple(v for v in real if isinstance(v, bool)), False
    if family in ("integer", "float", "decimal"):
        numbers = [v for v in real if isinstance(v, int | float) and not isinstance(v, bool)]
        if family == "integer":  # 2.0 equals 2; 2.5 equals no integer
            numbers = [int(v) for v in numbers if float(v).is_integer()]
        return tuple(numbers), False
    return tuple(str(v) for v in real if not isinstance(v, bool | dict | list)), True


def _range_bounds(rule: dict[str, Any], metric: str) -> tuple[float | None, float | None]:
    """min / max of a 3.0 between / minCheck / maxCheck rule, from its customProperties
    (as the official 3.0 examples write them) or its arguments."""
    values: dict[str, Any] = dict(rule.get("arguments") or {})
    for custom in rule.get("customProperties") or []:
        if isinstance(custom, dict) and custom.get("property") in ("min", "max"):
            values[str(custom["property"])] = custom.get("value")
    wanted = {"between": ("min", "max"), "minCheck": ("min",), "maxCheck": ("max",)}[metric]
    bounds: dict[str, float | None] = {"min": None, "max": None}
    for key in wanted:
        raw = values.get(key)
        try:
            bounds[key] = float(raw)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise InvalidInput(
                f"quality rule {metric} needs a numeric {key}, got {raw!r}",
                {
                    "field": "quality.customProperties",
                    "fix": f"add customProperties: [{{property: {key}, value: <number>}}]",
                },
            ) from None
    return bounds["min"], bounds["max"]


def _metric_measure(
    metric: str, prop: _Property | None, rule: dict[str, Any], present: dict[str, pa.DataType]
) -> Measure:
    args = rule.get("arguments") or {}
    column = prop.column if prop else None
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
    dtype = present[column]
    if metric == "nullValues":
        return NullCount(column)
    if metric == "missingValues":
        values, text = _value_kind(list(args.get("missingValues") or []), dtype)
        return Missing(column, values, text)
    if metric == "invalidValues":
        valid = args.get("validValues", rule.get("validValues"))  # 3.0: on the rule itself
        if valid is None and not args.get("pattern"):
            raise InvalidInput(
                "invalidValues needs arguments.validValues or arguments.pattern",
                {"field": "quality.arguments", "fix": "add validValues: [..] or pattern: '^...$'"},
            )
        listed, text = _value_kind(list(valid), dtype) if valid is not None else (None, False)
        return Invalid(column, listed, str(args["pattern"]) if args.get("pattern") else None, text)
    if metric in ("between", "minCheck", "maxCheck"):
        low, high = _range_bounds(rule, metric)
        if arrow_type_family(dtype) not in ("integer", "float", "decimal"):
            raise InvalidInput(
                f"quality rule {metric} on {prop.name if prop else column}: the column is "
                f"{dtype}, not a number",
                {"field": "quality.rule", "fix": "use it on numeric properties only"},
            )
        return OutOfRange(column, low, high)
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


def rule_relations(
    source: pa.Table | str, port: str, aliases: tuple[str, ...] = ()
) -> list[Relation]:
    """What a contract's `sql` rules may read: the port's table, as `<port>`, `data` and
    each alias (the contract object's name and physicalName, which the official examples'
    queries name directly)."""
    names: list[str] = []
    for name in (port, "data", *aliases):  # the sandbox's names are case-insensitive
        if name.lower() not in {n.lower() for n in names}:
            names.append(name)
    if isinstance(source, pa.Table):
        return [Relation(name, table=source, label=port) for name in names]
    view = Relation(
        port, select=f"SELECT * FROM {parquet_source(source)}", files=(source,), label=port
    )
    return [view, *(Relation(n, select=f"SELECT * FROM {quote(port)}") for n in names[1:])]


def sql_query(rule: dict[str, Any], port: str, column: str | None) -> str:
    """The rule's query with its placeholders replaced by quoted identifiers."""
    query = str(rule.get("query") or "")
    for placeholder in OBJECT_PLACEHOLDERS:
        query = query.replace(placeholder, quote(port))
    for placeholder in PROPERTY_PLACEHOLDERS:
        if placeholder in query:
            if column is None:
                raise InvalidInput(
                    f"sql quality rule {rule.get('id') or rule.get('name') or ''} uses "
                    f"{placeholder} but is declared on the object, not on a property",
                    {"field": "quality.query", "fix": "declare it under the property it reads"},
                )
            query = query.replace(placeholder, quote(column))
    return query


def _sql_rules(
    source: pa.Table | str,
    port: str,
    rules: list[tuple[dict[str, Any], str | None]],
    aliases: tuple[str, ...] = (),
) -> list[float | None]:
    """Each rule's query (one number) in the kernel's sandbox: a contract is written by a
    data engineer, and it runs in the server at publish time, so it can read the port's
    table and nothing else."""
    if not rules:
        return []
    with Sandbox(rule_relations(source, port, aliases)) as box:
        return [_sql_rule(box, port, rule, column) for rule, column in rules]


def _sql_rule(box: Sandbox, port: str, rule: dict[str, Any], column: str | None) -> float | None:
    query = sql_query(rule, port, column)
    try:
        table = box.run_user_sql(query, "quality.query")
    except InvalidInput as exc:
        name = f" {rule.get('id') or rule['name']!r}" if rule.get("id") or rule.get("name") else ""
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
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(
            f"sql quality rule returned {value!r}, not a number",
            {"field": "quality.query", "query": query, "fix": "select one number, e.g. count(*)"},
        ) from exc


# A rule judged on one measure: (measure, rule id, kind, column, expectation), where the
# expectation is the text of a schema rule (passes at 0) or the quality rule itself.
_Judged = tuple[Measure, str, str, str | None, "str | dict[str, Any]"]
_T = TypeVar("_T")


@dataclass
class _Quality:
    """A contract's quality rules, sorted by how they are evaluated."""

    measured: list[_Judged] = field(default_factory=list)
    sql: list[tuple[str, _Property | None, dict[str, Any]]] = field(default_factory=list)
    reported: list[RuleResult] = field(default_factory=list)  # not evaluated


def run_contract_test(
    source: pa.Table | str,
    port: str,
    columns: list[ColumnSpec],
    schema_object: dict[str, Any],
    sla_properties: list[dict[str, Any]] | None = None,
    *,
    now: datetime | None = None,
    contract: dict[str, Any] | None = None,
    statistics: StoredStatistics | None = None,
) -> ContractReport:
    """Test `source` (Arrow table or Parquet path) against the port's contract.

    `contract` is the whole ODCS document, when known: it tells an SLA element naming
    another object of the contract from one naming this object by another name, and gives
    the 3.0 slaDefaultElement. `statistics` are exact figures of the same rows kept beside
    them (an Iceberg snapshot's manifests: iceberg_stats.py), used instead of counting."""
    started = time.perf_counter()
    schema = arrow_schema(source)
    present = {f.name: f.type for f in schema}
    props = _properties(columns, schema_object)
    with LazyRelation(source, port) as con:
        results: list[RuleResult] = []
        for prop in props:
            results.extend(_schema_type_checks(port, prop, present))
        results.extend(_undeclared(port, props, present))
        results.extend(_unchecked_options(port, props))
        quality = _plan_quality(port, schema_object, props, present)
        judged = _schema_measures(port, props, present) + quality.measured
        measures = [RowCount(), *(j[0] for j in judged)]
        aliases = tuple(
            str(schema_object[k])
            for k in ("name", "physicalName")
            if schema_object.get(k)
            and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", str(schema_object[k]))
        )
        sql_rules = [(r, p.column if p else None) for _, p, r in quality.sql]
        with _in_background(lambda: _sql_rules(source, port, sql_rules, aliases)) as sql_done:
            values = measure_all(source, con, port, schema, measures, statistics=statistics)
            sql_values = sql_done()
        row_count = values[RowCount()]
        results.extend(_verdict(j, values[j[0]], row_count) for j in judged)
        for (rule_id, on, rule), value in zip(quality.sql, sql_values, strict=True):
            results.append(_judge(rule_id, on.name if on else None, rule, value, row_count))
        results.extend(quality.reported)
        from meshops.mesh.contract_sla import SlaScope, sla_checks  # it builds on this module

        results.extend(
            sla_checks(
                SlaScope(
                    con,
                    port,
                    schema_object,
                    props,
                    present,
                    now or datetime.now(UTC),
                    contract,
                ),
                sla_properties or [],
            )
        )
    return ContractReport(
        port=port, rows=row_count, results=results, seconds=time.perf_counter() - started
    )


def run_port_contract_test(
    source: pa.Table | str,
    contract: PortContract,
    statistics: StoredStatistics | None = None,
) -> ContractReport:
    """`run_contract_test` of `source` against a port's contract as `specs` read it: its
    columns, schema object, SLA properties and whole document."""
    return run_contract_test(
        source,
        contract.port,
        contract.columns,
        contract.schema_object,
        contract.document.get("slaProperties") or [],
        contract=contract.document,
        statistics=statistics,
    )


@contextmanager
def _in_background(task: Callable[[], _T]) -> Iterator[Callable[[], _T]]:
    """Runs `task` on a thread of its own and yields a function that waits for its result
    (raising what it raised). The `sql` rules run this way beside the Arrow pass: DuckDB
    and Arrow both release the GIL, and the sandbox's fixed costs (a database, parsing each
    query) no longer add to the wall time. Leaving the block waits for the task."""
    with ThreadPoolExecutor(1, thread_name_prefix="contract-sql") as pool:
        future = pool.submit(task)
        yield future.result


def _undeclared(
    port: str, props: list[_Property], present: dict[str, pa.DataType]
) -> list[RuleResult]:
    declared = {p.column for p in props}
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
    port: str, props: list[_Property], present: dict[str, pa.DataType]
) -> list[_Judged]:
    judged: list[_Judged] = []
    keys = [p for p in props if p.primary_key]
    single_key = len(keys) == 1
    for prop in props:
        if prop.column not in present:
            continue
        base = f"schema.{port}.{prop.name}"
        if prop.required or prop.primary_key:
            judged.append(
                (NullCount(prop.column), f"{base}.required", "schema", prop.name, "no nulls")
            )
        if prop.unique or (prop.primary_key and single_key):
            judged.append(
                (Duplicates((prop.column,)), f"{base}.unique", "schema", prop.name, "no duplicates")
            )
        judged.extend(_option_measures(base, prop, present[prop.column]))
    if len(keys) > 1 and all(k.column in present for k in keys):
        judged.append(
            (
                Duplicates(tuple(k.column for k in keys), count_rows=True),
                f"schema.{port}.primary_key",
                "schema",
                None,
                f"unique ({', '.join(k.name for k in keys)})",
            )
        )
    return judged


def _number(value: Any) -> float | None:
    return float(value) if _is_number(value) and not isinstance(value, bool) else None


def _option_measures(base: str, prop: _Property, dtype: pa.DataType) -> list[_Judged]:
    """logicalTypeOptions minimum / maximum (bounds included) and exclusiveMinimum /
    exclusiveMaximum (bounds excluded) of an integer or number property: no value outside."""
    options = prop.spec.get("logicalTypeOptions") or {}
    numeric = arrow_type_family(dtype) in ("integer", "float", "decimal")
    if prop.logical_type not in ("integer", "number") or not numeric:
        return []
    judged: list[_Judged] = []
    for keys, is_open, label in (
        (("minimum", "maximum"), False, "range"),
        (("exclusiveMinimum", "exclusiveMaximum"), True, "exclusive_range"),
    ):
        low, high = (_number(options.get(k)) for k in keys)
        if low is None and high is None:
            continue
        parts = []
        if low is not None:
            parts.append(f"{'>' if is_open else '≥'} {low:g}")
        if high is not None:
            parts.append(f"{'<' if is_open else '≤'} {high:g}")
        text = " and ".join(parts)
        measure = OutOfRange(prop.column, low, high, is_open)
        judged.append((measure, f"{base}.{label}", "schema", prop.name, f"every value {text}"))
    return judged


# logicalTypeOptions meshops checks (the rest are reported "not checked")
_CHECKED_OPTIONS = {
    "integer": {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"},
    "number": {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"},
    "timestamp": {"timezone"},
}


def _unchecked_options(port: str, props: list[_Property]) -> list[RuleResult]:
    results = []
    for prop in props:
        options = prop.spec.get("logicalTypeOptions") or {}
        if not isinstance(options, dict):
            continue
        checked = _CHECKED_OPTIONS.get(str(prop.logical_type), set())
        rest = sorted(k for k in options if k not in checked)
        if rest:
            results.append(
                _not_checked(
                    f"schema.{port}.{prop.name}.options",
                    prop.name,
                    f"logicalTypeOptions {', '.join(rest)}",
                    "declared; meshops checks numeric minimum/maximum and timestamp timezone",
                )
            )
    return results


def _not_evaluated(rule_id: str, column: str | None, rule: dict[str, Any], why: str) -> RuleResult:
    kind = str(rule.get("type") or "library")
    engine = f" (engine {rule['engine']})" if rule.get("engine") else ""
    description = str(rule.get("description") or "").strip()
    return RuleResult(
        rule=rule_id,
        kind="quality",
        column=column,
        passed=True,
        observed=NOT_EVALUATED,
        expected=f"{kind} rule{engine}" + (f": {description}" if description else ""),
        message=why,
        severity=_severity(rule),
    )


def _library_metric(rule: dict[str, Any]) -> str:
    """The library metric of a rule: 3.1 `metric`, or a 3.0 `rule` name."""
    if rule.get("metric"):
        return str(rule["metric"])
    name = str(rule.get("rule") or "")
    mapped = RULES_30.get(name)
    if mapped == "range":
        return name
    return mapped or name


def _plan_quality(
    port: str,
    schema_object: dict[str, Any],
    props: list[_Property],
    present: dict[str, pa.DataType],
) -> _Quality:
    planned = _Quality()
    by_name = {p.name: p for p in props}
    for rule_id, column_name, rule in _collect_quality(port, schema_object, present, props):
        prop = by_name.get(column_name) if column_name else None
        kind = str(
            rule.get("type") or ("library" if rule.get("metric") or rule.get("rule") else "")
        )
        if kind == "sql" and not any(rule.get(op) is not None for op in OPERATORS):
            why = "sql rule declares no expected value (no mustBe…)"
            planned.reported.append(_not_evaluated(rule_id, column_name, rule, why))
        elif kind == "sql":
            planned.sql.append((rule_id, prop, rule))
        elif kind == "custom":
            why = f"custom rule for {rule.get('engine') or 'an unnamed engine'}: run by that tool"
            planned.reported.append(_not_evaluated(rule_id, column_name, rule, why))
        elif kind == "text":
            why = "text rule: a description for people, nothing to execute"
            planned.reported.append(_not_evaluated(rule_id, column_name, rule, why))
        elif kind != "library":
            why = f"quality type {kind or '(none)'!r} is none of library, sql, custom, text"
            planned.reported.append(_not_evaluated(rule_id, column_name, rule, why))
        else:
            metric = _library_metric(rule)
            if rule.get("rule") and not rule.get("metric") and rule["rule"] not in RULES_30:
                why = f"rule {rule['rule']!r} is not in the ODCS 3.0 library meshops knows"
                planned.reported.append(_not_evaluated(rule_id, column_name, rule, why))
                continue
            if metric == "rowCount" and not any(rule.get(op) is not None for op in OPERATORS):
                why = f"{rule.get('rule') or metric} declares no expected count (no mustBe…)"
                planned.reported.append(_not_evaluated(rule_id, column_name, rule, why))
                continue
            errors = operator_errors(rule)
            if errors:
                raise InvalidInput(
                    f"quality rule {rule_id}: {'; '.join(errors)}",
                    {"field": "quality", "fix": "write each bound as a number, e.g. mustBe: 0"},
                )
            measure = _metric_measure(metric, prop, rule, present)
            planned.measured.append((measure, rule_id, "quality", column_name, rule))
    for rule_id, prop, rule in planned.sql:
        errors = operator_errors(rule)
        if errors:
            raise InvalidInput(
                f"quality rule {rule_id}: {'; '.join(errors)}",
                {"field": "quality", "fix": "write each bound as a number, e.g. mustBe: 0"},
            )
        sql_query(rule, port, prop.column if prop else None)  # placeholders checked up front
    for prop in props:
        if prop.column in present:
            planned.reported.extend(_nested_quality(port, prop.name, prop.spec))
    return planned


def _nested_quality(port: str, label: str, spec: dict[str, Any]) -> list[RuleResult]:
    """Quality rules declared below a property (object properties, array items): reported
    as not evaluated, since the metrics count the rows of a column."""
    found: list[RuleResult] = []
    children = [
        (f"{label}.{c.get('name')}", c) for c in spec.get("properties") or [] if isinstance(c, dict)
    ]
    if isinstance(spec.get("items"), dict):
        children.append((f"{label}[]", spec["items"]))
    for name, child in children:
        for i, rule in enumerate(child.get("quality") or []):
            if isinstance(rule, dict):
                why = "a rule on a nested field: meshops counts the rows of top-level columns"
                found.append(_not_evaluated(_rule_id(port, name, rule, i), name, rule, why))
        found.extend(_nested_quality(port, name, child))
    return found


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


def _severity(rule: dict[str, Any]) -> str:
    severity = str(rule.get("severity") or "error").lower()
    return severity if severity in ("error", "warning", "info") else "error"


def _judge(
    rule_id: str, column: str | None, rule: dict[str, Any], value: float | None, rows: int
) -> RuleResult:
    metric = _library_metric(rule) if rule.get("type") != "sql" else None
    if value is None:
        return RuleResult(
            rule=rule_id,
            kind="quality",
            column=column,
            passed=False,
            expected=", ".join(f"{op} {rule[op]}" for op in OPERATORS if rule.get(op) is not None),
            severity=_severity(rule),
            message="the query returned NULL, not a number",
        )
    observed = value
    if str(rule.get("unit", "")).lower() == "percent" and metric != "rowCount":
        observed = 100.0 * value / rows if rows else 0.0
    passed, expected = check_operator(rule, observed, default_zero=metric not in (None, "rowCount"))
    if str(rule.get("unit", "")).lower() == "percent" and metric != "rowCount":
        expected += " (percent of rows)"
    return RuleResult(
        rule=rule_id,
        kind="quality",
        column=column,
        passed=passed,
        observed=observed,
        expected=expected,
        severity=_severity(rule),
        message="" if passed else f"{metric or 'sql'} = {observed:g}, expected {expected}",
    )


def _collect_quality(
    port: str,
    schema_object: dict[str, Any],
    present: dict[str, Any],
    props: list[_Property] | None = None,
) -> list[tuple[str, str | None, dict[str, Any]]]:
    """(rule id, property name or None, rule) of every quality rule of the object and of
    its properties found in the data (by physicalName when given)."""
    rules: list[tuple[str, str | None, dict[str, Any]]] = []
    for i, rule in enumerate(schema_object.get("quality") or []):
        if isinstance(rule, dict):
            rules.append((_rule_id(port, None, rule, i), None, rule))
    columns = {p.name: p.column for p in props or []}
    for prop in schema_object.get("properties") or []:
        if not isinstance(prop, dict):
            continue
        name = str(prop.get("name"))
        column = columns.get(name) or str(prop.get("physicalName") or name)
        # in the data by its column; callers without the properties pass names
        if column not in present and (props or name not in present):
            continue
        for i, rule in enumerate(prop.get("quality") or []):
            if isinstance(rule, dict):
                rules.append((_rule_id(port, name, rule, i), name, rule))
    return rules


# --- schema: types ---


def _logical_mismatch(logical: str, dtype: pa.DataType, spec: dict[str, Any]) -> str | None:
    """Why an Arrow type is not the logical type (None when it is)."""
    family = arrow_type_family(dtype)
    if family == "null":
        return None  # a column of nulls only has every type
    ok = family in LOGICAL_TYPES[logical]
    if logical == "integer" and family == "decimal":
        ok = getattr(dtype, "scale", None) == 0
    if not ok:
        return f"is {dtype}, not a {logical}"
    options = spec.get("logicalTypeOptions") or {}
    if logical == "timestamp" and isinstance(options.get("timezone"), bool):
        zone = getattr(dtype, "tz", None)
        if options["timezone"] and not zone:
            return f"is {dtype} without a time zone, logicalTypeOptions.timezone is true"
        if not options["timezone"] and zone:
            return f"is {dtype} with time zone {zone}, logicalTypeOptions.timezone is false"
    return None


def _nested_checks(
    base: str, label: str, prop: dict[str, Any], dtype: pa.DataType
) -> list[RuleResult]:
    """Type checks below an object (its `properties`) or an array (its `items`)."""
    results: list[RuleResult] = []
    if pa.types.is_dictionary(dtype):
        dtype = dtype.value_type
    logical = prop.get("logicalType")
    if logical == "object" and prop.get("properties") and pa.types.is_struct(dtype):
        fields = {dtype.field(i).name: dtype.field(i).type for i in range(dtype.num_fields)}
        for child in prop["properties"]:
            if not isinstance(child, dict):
                continue
            name = str(child.get("name"))
            key = str(child.get("physicalName") or name)
            results.extend(
                _type_results(f"{base}.{name}", f"{label}.{name}", child, fields.get(key))
            )
    elif logical == "object" and prop.get("properties"):
        results.append(
            _not_checked(
                f"{base}.properties",
                label,
                "nested properties",
                f"{label} is {dtype}: only a struct has named fields to check",
            )
        )
    listed = (
        pa.types.is_list(dtype)
        or pa.types.is_large_list(dtype)
        or pa.types.is_fixed_size_list(dtype)
    )
    if logical == "array" and isinstance(prop.get("items"), dict) and listed:
        results.extend(
            _type_results(f"{base}.items", f"{label}[]", prop["items"], dtype.value_type)
        )
    return results


def _type_results(
    base: str, label: str, prop: dict[str, Any], dtype: pa.DataType | None
) -> list[RuleResult]:
    """present + type (+ nested) of a nested property, `dtype` None when it is absent."""
    if dtype is None:
        return [
            RuleResult(
                rule=f"{base}.present",
                kind="schema",
                column=label,
                passed=False,
                expected="present",
                message=f"field {label!r} is missing",
            )
        ]
    results = [_type_result(base, label, prop.get("logicalType"), prop, dtype)]
    results.extend(_nested_checks(base, label, prop, dtype))
    if prop.get("physicalType"):
        results.append(_physical_result(base, label, str(prop["physicalType"]), dtype))
    return results


def _type_result(
    base: str, label: str, logical: Any, spec: dict[str, Any], dtype: pa.DataType
) -> RuleResult:
    if not logical:
        return _not_checked(f"{base}.type", label, "logicalType", "no logicalType declared")
    if str(logical) not in LOGICAL_TYPES:
        return _not_checked(
            f"{base}.type", label, f"logicalType {logical}", f"{logical!r} is not an ODCS type"
        )
    problem = _logical_mismatch(str(logical), dtype, spec)
    return RuleResult(
        rule=f"{base}.type",
        kind="schema",
        column=label,
        passed=problem is None,
        observed=arrow_type_family(dtype),
        expected=f"logicalType {logical}",
        message="" if problem is None else f"{label} {problem}",
    )


def _not_checked(rule: str, column: str | None, what: str, why: str) -> RuleResult:
    return RuleResult(
        rule=rule,
        kind="schema",
        column=column,
        passed=True,
        observed=NOT_CHECKED,
        expected=what,
        message=why,
        severity="info",
    )


def _physical_result(base: str, label: str, declared: str, dtype: pa.DataType) -> RuleResult:
    """physicalType against the Arrow type, after normalising the vendor name to a family;
    "not checked" for a name meshops does not know."""
    normal = _physical_name(declared)
    family = _PHYSICAL_FAMILY.get(normal)
    rule = f"{base}.physical_type"
    if family is None:
        return _not_checked(
            rule,
            label,
            f"physicalType {declared}",
            f"{declared!r} is no type name meshops maps to Arrow (not compared)",
        )
    actual = arrow_type_family(dtype)
    accepted = _PHYSICAL_ACCEPTS.get(family, (family,))
    ok = actual in accepted or actual == "null"
    if family == "decimal" and actual == "integer" and _physical_scale(declared) == 0:
        ok = True
    zone = getattr(dtype, "tz", None)
    if ok and family == "timestamp with zone" and not zone:
        ok = False
    if ok and family == "timestamp without zone" and zone:
        ok = False
    return RuleResult(
        rule=rule,
        kind="schema",
        column=label,
        passed=ok,
        observed=str(dtype),
        expected=f"physicalType {declared}",
        message="" if ok else f"{label} is {dtype}, physicalType {declared} is a {family}",
    )


def _schema_type_checks(
    port: str, prop: _Property, present: dict[str, pa.DataType]
) -> list[RuleResult]:
    base = f"schema.{port}.{prop.name}"
    where = prop.name if prop.column == prop.name else f"{prop.name} (physicalName {prop.column})"
    if prop.column not in present:
        return [
            RuleResult(
                rule=f"{base}.present",
                kind="schema",
                column=prop.name,
                passed=False,
                expected="present",
                message=f"column {where!r} is missing",
            )
        ]
    dtype = present[prop.column]
    spec = prop.spec or {"logicalType": prop.logical_type}
    results = [
        RuleResult(
            rule=f"{base}.present", kind="schema", column=prop.name, passed=True, expected="present"
        ),
        _type_result(base, prop.name, prop.logical_type, spec, dtype),
    ]
    results.extend(_nested_checks(base, prop.name, spec, dtype))
    if prop.physical_type:
        results.append(_physical_result(base, prop.name, prop.physical_type, dtype))
    return results
