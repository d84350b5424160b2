"""Contract checks as the ODCS standard defines them: logical and physical types against
Arrow, every quality form of 3.0 and 3.1, SQL placeholders, custom/text rules, SLA
properties. The documents here are written for these tests in the forms the standard's
examples use (bitol-io/open-data-contract-standard, docs/examples: quality, all, data-types);
the official files themselves are tested when a folder of them is given
(tests/mesh/test_contract_examples.py, MESHOPS_STANDARDS_DIR).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest
import yaml

from meshops.kernel.errors import InvalidInput
from meshops.mesh.contracts import run_contract_test
from meshops.mesh.models import ContractReport, RuleResult
from meshops.mesh.specs import columns_of

NOW = datetime(2026, 12, 5, 12, tzinfo=UTC)


def _test(
    table: pa.Table,
    obj: dict[str, Any],
    sla: list[dict[str, Any]] | None = None,
    contract: dict[str, Any] | None = None,
    port: str = "t",
) -> ContractReport:
    return run_contract_test(table, port, columns_of(obj), obj, sla, now=NOW, contract=contract)


def _by_rule(report: ContractReport) -> dict[str, RuleResult]:
    return {r.rule: r for r in report.results}


# --- logical types ---

TYPED = pa.table(
    {
        "s": pa.array(["a"]),
        "ls": pa.array(["a"], pa.large_string()),
        "dict": pa.array(["a"]).dictionary_encode(),
        "i8": pa.array([1], pa.int8()),
        "u64": pa.array([1], pa.uint64()),
        "f32": pa.array([1.5], pa.float32()),
        "dec": pa.array([Decimal("1.25")], pa.decimal128(10, 2)),
        "dec0": pa.array([Decimal("12")], pa.decimal128(10, 0)),
        "b": pa.array([True]),
        "d32": pa.array([date(2024, 1, 2)], pa.date32()),
        "d64": pa.array([date(2024, 1, 2)], pa.date64()),
        "t32": pa.array([time(8, 30)], pa.time32("s")),
        "t64": pa.array([time(8, 30)], pa.time64("us")),
        "ts": pa.array([datetime(2024, 1, 2, 3)], pa.timestamp("us")),
        "tstz": pa.array([datetime(2024, 1, 2, 3, tzinfo=UTC)], pa.timestamp("ms", tz="UTC")),
        "st": pa.array([{"x": 1, "y": "a"}]),
        "m": pa.array([[("k", 1)]], pa.map_(pa.string(), pa.int64())),
        "l": pa.array([[1, 2]]),
        "nulls": pa.nulls(1),
    }
)
ACCEPTS = {
    "string": {"s", "ls", "dict", "nulls"},
    "integer": {"i8", "u64", "dec0", "nulls"},
    "number": {"i8", "u64", "f32", "dec", "dec0", "nulls"},
    "boolean": {"b", "nulls"},
    "date": {"d32", "d64", "nulls"},
    "time": {"t32", "t64", "nulls"},
    "timestamp": {"ts", "tstz", "nulls"},
    "object": {"st", "m", "nulls"},
    "array": {"l", "nulls"},
}


@pytest.mark.parametrize("logical", sorted(ACCEPTS))
def test_each_logical_type_accepts_exactly_its_arrow_types(logical: str) -> None:
    props = [{"name": c, "logicalType": logical} for c in TYPED.column_names]
    rules = _by_rule(_test(TYPED, {"name": "t", "properties": props}))
    passing = {c for c in TYPED.column_names if rules[f"schema.t.{c}.type"].passed}
    assert passing == ACCEPTS[logical]
    failed = rules[f"schema.t.{sorted(set(TYPED.column_names) - passing)[0]}.type"]
    assert f"not a {logical}" in failed.message


def test_date_and_time_columns_pass_their_types() -> None:
    # the issue: date32[day] and time64[us] always failed
    props = [
        {"name": "d32", "logicalType": "date"},
        {"name": "t64", "logicalType": "time"},
    ]
    report = _test(TYPED.select(["d32", "t64"]), {"name": "t", "properties": props})
    assert report.passed, report.failures


@pytest.mark.parametrize(
    ("column", "timezone", "passed"),
    [("ts", False, True), ("ts", True, False), ("tstz", True, True), ("tstz", False, False)],
)
def test_timestamp_timezone_option(column: str, timezone: bool, passed: bool) -> None:
    prop = {
        "name": column,
        "logicalType": "timestamp",
        "logicalTypeOptions": {"timezone": timezone, "defaultTimezone": "Australia/Sydney"},
    }
    rules = _by_rule(_test(TYPED.select([column]), {"name": "t", "properties": [prop]}))
    assert rules[f"schema.t.{column}.type"].passed is passed


def test_a_property_without_logical_type_is_not_checked_rather_than_failed() -> None:
    rules = _by_rule(_test(TYPED.select(["i8"]), {"name": "t", "properties": [{"name": "i8"}]}))
    assert rules["schema.t.i8.type"].status == "not checked"


NESTED = pa.table(
    {
        "customer": pa.array(
            [{"id": 1, "address": {"city": "Berlin", "zip": "10115"}, "born": date(1990, 1, 1)}]
        ),
        "orders": pa.array([[{"sku": "a", "qty": 2}]]),
        "tags": pa.array([["x", "y"]]),
    }
)


def _nested_contract(city_type: str = "string", qty_type: str = "integer") -> dict[str, Any]:
    return {
        "name": "t",
        "properties": [
            {
                "name": "customer",
                "logicalType": "object",
                "properties": [
                    {"name": "id", "logicalType": "integer"},
                    {"name": "born", "logicalType": "date"},
                    {
                        "name": "address",
                        "logicalType": "object",
                        "properties": [
                            {"name": "city", "logicalType": city_type},
                            {"name": "zip", "logicalType": "string", "physicalType": "varchar(5)"},
                        ],
                    },
                ],
            },
            {
                "name": "orders",
                "logicalType": "array",
                "items": {
                    "name": "order",
                    "logicalType": "object",
                    "properties": [
                        {"name": "sku", "logicalType": "string"},
                        {"name": "qty", "logicalType": qty_type},
                    ],
                },
            },
            {"name": "tags", "logicalType": "array", "items": {"logicalType": "string"}},
        ],
    }


def test_nested_properties_and_items_are_checked_recursively() -> None:
    report = _test(NESTED, _nested_contract())
    rules = _by_rule(report)
    assert report.passed, report.failures
    for rule in (
        "schema.t.customer.born.type",
        "schema.t.customer.address.city.type",
        "schema.t.customer.address.zip.physical_type",
        "schema.t.orders.items.type",
        "schema.t.orders.items.qty.type",
        "schema.t.tags.items.type",
    ):
        assert rules[rule].status == "passed", rule
    bad = _by_rule(_test(NESTED, _nested_contract(city_type="integer", qty_type="string")))
    assert bad["schema.t.customer.address.city.type"].passed is False
    assert "customer.address.city" in bad["schema.t.customer.address.city.type"].message
    assert bad["schema.t.orders.items.qty.type"].passed is False


def test_a_missing_nested_field_fails() -> None:
    contract = _nested_contract()
    contract["properties"][0]["properties"].append({"name": "email", "logicalType": "string"})
    rules = _by_rule(_test(NESTED, contract))
    assert rules["schema.t.customer.email.present"].passed is False


# --- physicalName and physicalType ---


def test_physical_name_is_the_column_looked_up() -> None:
    # full-example: transaction_reference_date is stored as txn_ref_dt
    table = pa.table({"txn_ref_dt": pa.array([date(2026, 12, 4), None], pa.date32())})
    obj = {
        "name": "tbl",
        "physicalName": "tbl_1",
        "properties": [
            {
                "name": "transaction_reference_date",
                "physicalName": "txn_ref_dt",
                "logicalType": "date",
                "physicalType": "date",
                "quality": [{"metric": "nullValues", "mustBeLessThan": 1}],
            }
        ],
    }
    report = _test(table, obj)
    rules = _by_rule(report)
    base = "schema.t.transaction_reference_date"
    assert rules[f"{base}.present"].passed and rules[f"{base}.type"].passed
    assert rules[f"{base}.physical_type"].passed
    assert not any(r.rule.endswith(".declared") for r in report.results)
    quality = rules["quality.t.transaction_reference_date.nullValues.0"]
    assert quality.observed == 1 and not quality.passed
    missing = _by_rule(_test(pa.table({"transaction_reference_date": [1]}), obj))
    assert "physicalName txn_ref_dt" in missing[f"{base}.present"].message


@pytest.mark.parametrize(
    ("physical", "column", "status"),
    [
        ("varchar(50)", "s", "passed"),
        ("VARCHAR(18)", "dict", "passed"),
        ("bpchar", "s", "passed"),
        ("text", "ls", "passed"),
        ("character varying(10)", "s", "passed"),
        ("int4", "i8", "passed"),
        ("serial", "i8", "passed"),
        ("bigint unsigned", "u64", "passed"),
        ("numeric", "dec", "passed"),
        ("numeric(10,2)", "dec", "passed"),
        ("number(10,0)", "i8", "passed"),
        ("numeric", "f32", "failed"),
        ("double precision", "f32", "passed"),
        ("float(3,2)", "f32", "passed"),
        ("date", "d32", "passed"),
        ("date", "ts", "failed"),
        ("time", "t64", "passed"),
        ("timestamp", "ts", "passed"),
        ("timestamp", "tstz", "passed"),  # all-data-types: physicalType timestamp, timezone: true
        ("timestamptz", "tstz", "passed"),
        ("timestamp with time zone", "ts", "failed"),
        ("timestamp(6) without time zone", "ts", "passed"),
        ("timestamp_ntz", "tstz", "failed"),
        ("datetime", "ts", "passed"),
        ("bool", "b", "passed"),
        ("varchar", "i8", "failed"),
        ("list", "l", "passed"),
        ("array<int>", "l", "passed"),
        ("integer[]", "l", "passed"),
        ("struct<x:int,y:string>", "st", "passed"),
        ("json", "st", "passed"),
        ("jsonb", "s", "passed"),
        ("geography", "s", "not checked"),
        ("money", "dec", "not checked"),
    ],
)
def test_physical_type_is_compared_by_family_or_not_checked(
    physical: str, column: str, status: str
) -> None:
    prop = {"name": column, "physicalType": physical}
    rule = _by_rule(_test(TYPED.select([column]), {"name": "t", "properties": [prop]}))[
        f"schema.t.{column}.physical_type"
    ]
    assert rule.status == status, rule
    if status == "not checked":
        assert physical in rule.message


ALL_DATA_TYPES = """
- name: account_id
  physicalType: string
  logicalType: string
- name: txn_ref_date
  physicalType: date
  logicalType: date
  logicalTypeOptions: {format: yyyy-MM-dd}
- name: txn_timestamp
  physicalType: timestamp
  logicalType: timestamp
  logicalTypeOptions: {format: "yyyy-MM-dd HH:mm:ss"}
- name: txn_timestamp_tz
  physicalType: timestamp
  logicalType: timestamp
  logicalTypeOptions: {format: "yyyy-MM-dd HH:mm:ssZ", timezone: true,
                       defaultTimezone: "Australia/Sydney"}
- name: txn_time
  physicalType: time
  logicalType: time
  logicalTypeOptions: {format: "HH:mm:ss", timezone: false}
- name: amount
  physicalType: double
  logicalType: number
- name: age
  physicalType: int
  logicalType: integer
- name: is_open
  physicalType: bool
  logicalType: boolean
- name: latest_txns
  physicalType: list
  logicalType: array
- name: customer_details
  physicalType: json
  logicalType: object
"""


def test_every_data_type_form_passes_on_matching_arrow_data() -> None:
    table = pa.table(
        {
            "account_id": ["ACC12345678"],
            "txn_ref_date": pa.array([date(2020, 6, 1)], pa.date32()),
            "txn_timestamp": pa.array([datetime(2020, 6, 1, 8)], pa.timestamp("us")),
            "txn_timestamp_tz": pa.array(
                [datetime(2020, 6, 1, 8, tzinfo=UTC)], pa.timestamp("us", "Australia/Sydney")
            ),
            "txn_time": pa.array([time(8, 30)], pa.time64("us")),
            "amount": [12.5],
            "age": pa.array([30], pa.int64()),
            "is_open": [True],
            "latest_txns": [["t1", "t2"]],
            "customer_details": [{"num_children": 2, "date_of_birth": date(1990, 1, 1)}],
        }
    )
    obj = {"name": "transactions_tbl", "properties": yaml.safe_load(ALL_DATA_TYPES)}
    report = _test(table, obj)
    assert report.passed, report.failures
    assert all(r.status != "failed" for r in report.results if r.kind == "schema")
    options = _by_rule(report)["schema.t.txn_time.options"]
    assert options.status == "not checked" and "format, timezone" in options.expected


# --- quality: library metrics, 3.0 rules, operators ---

QUALITY = pa.table(
    {
        "id": [1, 2, 3, 4, 5],
        "status": ["", "n/a", "ok", None, "ok"],
        "value": [0.5, 250.0, 499.0, 600.0, None],
    }
)
QUALITY_COLUMNS = [
    {"name": "id", "logicalType": "integer"},
    {"name": "status", "logicalType": "string"},
    {"name": "value", "logicalType": "number"},
]


def _quality(column: str | None, rule: dict[str, Any], table: pa.Table = QUALITY) -> RuleResult:
    props = [dict(p, quality=[rule]) if p["name"] == column else p for p in QUALITY_COLUMNS]
    obj = {"name": "t", "properties": props, "quality": [] if column else [rule]}
    (result,) = [r for r in _test(table, obj).results if r.kind == "quality"]
    return result


# the column-validity form (3.1.0): invalid values, in percent, with null among the valid
COLUMN_VALIDITY = {
    "metric": "invalidValues",
    "mustBeLessOrEqualTo": 5,
    "unit": "percent",
    "arguments": {"validValues": ["", None, "n/a"]},
    "description": "at most 5% of the values may be invalid",
    "dimension": "conformity",
    "severity": "error",
    "businessImpact": "operational",
}


def test_null_among_valid_values_still_counts_the_invalid_ones() -> None:
    # NOT IN (..., NULL) used to count 0: the example passed on all-invalid data
    result = _quality("status", COLUMN_VALIDITY)
    assert result.observed == pytest.approx(40.0) and not result.passed  # "ok" twice of 5
    everything_valid = pa.table(
        {"id": [1, 2, 3], "status": ["", None, "n/a"], "value": [1.0, 2.0, 3.0]}
    )
    assert _quality("status", COLUMN_VALIDITY, everything_valid).passed
    only_null_valid = dict(COLUMN_VALIDITY, arguments={"validValues": [None]}, unit="rows")
    assert _quality("status", only_null_valid).observed == 4  # every non-null row


@pytest.mark.parametrize(
    ("column", "rule", "observed", "passed"),
    [
        # ODCS 3.0.2 examples' rule: names
        ("id", {"rule": "nullCheck"}, 0, True),
        ("value", {"rule": "nullCheck", "type": "library"}, 1, False),
        ("status", {"rule": "duplicateCount", "mustBeLessThan": 2}, 1, True),
        ("status", {"rule": "duplicateCount", "mustBeLessThan": 1, "unit": "percent"}, 20, False),
        ("status", {"rule": "validValues", "validValues": ["ok", ""]}, 1, False),
        (None, {"rule": "rowCount", "mustBeBetween": [4, 6]}, 5, True),
        (None, {"rule": "countCheck", "mustBeGreaterThan": 5}, 5, False),
        (
            "value",
            {
                "rule": "between",
                "customProperties": [
                    {"property": "min", "value": 0},
                    {"property": "max", "value": 500},
                ],
            },
            1,
            False,
        ),
        (
            "id",
            {"rule": "minCheck", "customProperties": [{"property": "min", "value": 1}]},
            0,
            True,
        ),
        (
            "id",
            {"rule": "minCheck", "customProperties": [{"property": "min", "value": 3}]},
            2,
            False,
        ),
        # 3.1 metrics with every operator
        ("status", {"metric": "nullValues", "mustBe": 1}, 1, True),
        ("status", {"metric": "nullValues", "mustNotBe": 1}, 1, False),
        ("status", {"metric": "nullValues", "mustBeGreaterThan": 0}, 1, True),
        ("status", {"metric": "nullValues", "mustBeGreaterOrEqualTo": 2}, 1, False),
        ("status", {"metric": "nullValues", "mustBeLessOrEqualTo": 1}, 1, True),
        ("status", {"metric": "nullValues", "mustBeBetween": [1, 3]}, 1, False),
        ("status", {"metric": "nullValues", "mustNotBeBetween": [1, 3]}, 1, True),
        ("status", {"metric": "nullValues", "mustBeLessThan": 25, "unit": "percent"}, 20, True),
        (
            "status",
            {"metric": "missingValues", "arguments": {"missingValues": [None, "", "n/a"]}},
            3,
            False,
        ),
        ("id", {"metric": "missingValues", "arguments": {"missingValues": ["", 2]}}, 1, False),
        ("status", {"metric": "invalidValues", "arguments": {"pattern": "^[a-z]+$"}}, 2, False),
        (None, {"metric": "duplicateValues", "arguments": {"properties": ["status"]}}, 2, False),
    ],
)
def test_quality_forms(
    column: str | None, rule: dict[str, Any], observed: float, passed: bool
) -> None:
    result = _quality(column, rule)
    assert (result.observed, result.passed) == (pytest.approx(observed), passed), result


@pytest.mark.parametrize(
    "rule",
    [
        {"metric": "nullValues", "mustBe": "none"},
        {"metric": "rowCount", "mustBeBetween": [1]},
        {"metric": "rowCount", "mustBeBetween": "1..3"},
        {"type": "sql", "query": "SELECT 1", "mustBeLessThan": [3]},
    ],
)
def test_a_bound_that_is_no_number_is_a_clear_contract_error(rule: dict[str, Any]) -> None:
    with pytest.raises(InvalidInput, match="not a") as info:
        _quality(None, rule)
    assert info.value.detail["fix"]


def test_count_check_without_expectation_is_reported_not_evaluated() -> None:
    # full-example 3.0.2: `rule: countCheck` with a description and no operator
    result = _quality(None, {"rule": "countCheck", "description": "Ensure row count is ok"})
    assert result.status == "not evaluated" and "no expected count" in result.message


# --- sql ---


@pytest.mark.parametrize(
    "query",
    [
        "SELECT count(*) FROM {object} WHERE {property} IS NULL",
        "SELECT count(*) FROM ${object} WHERE ${property} IS NULL",
        "SELECT count(*) FROM {table} WHERE {column} IS NULL",
        "SELECT count(*) FROM ${table} WHERE ${column} IS NULL",
        "SELECT count(*) FROM {model} WHERE {property} IS NULL",
        'SELECT count(*) FROM data WHERE "my col" IS NULL',
        "SELECT count(*) FROM Air_Quality WHERE {property} IS NULL",  # the object by name
    ],
)
def test_sql_placeholders_are_replaced_by_quoted_names(query: str) -> None:
    table = pa.table({"my col": [1, None, 3]})
    obj = {
        "name": "Air_Quality",
        "properties": [
            {
                "name": "my col",
                "logicalType": "integer",
                "quality": [{"type": "sql", "query": query, "mustBe": 1}],
            }
        ],
    }
    (result,) = [r for r in _test(table, obj, port="air quality").results if r.kind == "quality"]
    assert result.passed and result.observed == 1


def test_property_placeholder_on_the_object_and_reads_outside_the_sandbox_are_refused() -> None:
    with pytest.raises(InvalidInput, match="declared on the object"):
        _quality(
            None, {"type": "sql", "query": "SELECT count({property}) FROM {object}", "mustBe": 0}
        )
    with pytest.raises(InvalidInput, match="sql quality rule"):
        _quality(
            None,
            {"type": "sql", "query": "SELECT count(*) FROM read_csv('/etc/passwd')", "mustBe": 0},
        )


def test_a_column_accuracy_sql_rule_may_name_the_table() -> None:
    rule = {
        "type": "sql",
        "query": "select count(*) from Air_Quality where DataValue <= 0 or DataValue >= 500",
        "mustBe": 0,
    }
    obj = {
        "name": "Air_Quality",
        "properties": [
            {
                "name": "DataValue",
                "logicalType": "number",
                "physicalType": "float(3,2)",
                "quality": [rule],
            }
        ],
    }
    good = _test(pa.table({"DataValue": [1.5, 499.0]}), obj, port="air_quality")
    bad = _test(pa.table({"DataValue": [1.5, 500.0]}), obj, port="air_quality")
    assert good.passed and not bad.passed


def test_sql_returning_null_or_boolean() -> None:
    assert _quality(
        None, {"type": "sql", "query": "SELECT count(*) > 3 FROM t", "mustBe": 1}
    ).passed
    empty = _quality(
        None, {"type": "sql", "query": "SELECT max(id) FROM t WHERE id > 9", "mustBe": 0}
    )
    assert not empty.passed and "NULL" in empty.message


# --- custom and text rules ---

COLUMN_CUSTOM = """
- type: custom
  description: amounts start at 100000
  dimension: conformity
  severity: error
  businessImpact: operational
  engine: soda
  implementation: |
    type: duplicate_percent
    columns:
      - carrier
      - shipment_numer
    must_be_less_than: 1.0
- type: custom
  dimension: uniqueness
  severity: error
  businessImpact: operational
  engine: soda
  implementation:
    type: duplicate_percent
    columns:
      - carrier
      - shipment_numer
    must_be_less_than: 1.0
- id: email_verified_text
  type: text
  description: whether the address was confirmed
"""


def test_custom_and_text_rules_are_reported_not_evaluated() -> None:
    obj = {
        "name": "t",
        "properties": [
            {"name": "id", "logicalType": "integer", "quality": yaml.safe_load(COLUMN_CUSTOM)}
        ],
    }
    report = _test(pa.table({"id": [1]}), obj)
    reported = [r for r in report.results if r.kind == "quality"]
    assert [r.status for r in reported] == ["not evaluated"] * 3
    assert "engine soda" in reported[0].expected
    assert "amounts start at 100000" in reported[0].expected
    assert reported[2].rule == "quality.t.id.email_verified_text.2"
    assert "address was confirmed" in reported[2].expected
    assert report.passed and not report.failures
    dumped = reported[0].model_dump(mode="json")
    assert dumped["status"] == "not evaluated" and dumped["observed"] == "not evaluated"
    assert RuleResult.model_validate(dumped).status == "not evaluated"


# --- SLA ---

FULL_EXAMPLE_SLA = """
- property: latency # Property, see list of values in DP QoS
  value: 4
  unit: d # d, day, days for days; y, yr, years for years
  # This would not be needed as it is the same table.column as the default one
  element: tab1.txn_ref_dt
- property: generalAvailability
  value: "2022-05-12T09:30:10-08:00"
- property: endOfSupport
  value: "2032-05-12T09:30:10-08:00"
- property: endOfLife
  value: "2042-05-12T09:30:10-08:00"
- property: retention
  value: 3
  unit: y
  element: tab1.txn_ref_dt
- property: frequency
  value: 1
  valueExt: 1
  unit: d
  element: tab1.txn_ref_dt
- property: timeOfAvailability
  value: 09:00-08:00
  element: tab1.txn_ref_dt
  driver: regulatory # Describes the importance of the SLA: [regulatory|analytics|operational|...]
- property: timeOfAvailability
  value: 08:00-08:00
  element: tab1.txn_ref_dt
  driver: analytics
"""
FULL_EXAMPLE_OBJECT = {
    "id": "tbl_obj",
    "name": "tbl",
    "physicalName": "tbl_1",
    "properties": [
        {
            "id": "txn_ref_dt_prop",
            "name": "transaction_reference_date",
            "physicalName": "txn_ref_dt",
            "logicalType": "date",
            "physicalType": "date",
        }
    ],
}


def _sla_table(newest: date) -> pa.Table:
    return pa.table({"txn_ref_dt": pa.array([date(2026, 1, 1), newest], pa.date32())})


def test_every_sla_property_of_the_full_example_is_checked_or_reported() -> None:
    sla = yaml.safe_load(FULL_EXAMPLE_SLA)
    contract = {"schema": [FULL_EXAMPLE_OBJECT], "slaProperties": sla}
    report = _test(_sla_table(date(2026, 12, 3)), FULL_EXAMPLE_OBJECT, sla, contract)
    results = [r for r in report.results if r.kind == "sla"]
    assert [r.rule for r in results] == [
        "sla.t.latency",
        "sla.t.generalAvailability",
        "sla.t.endOfSupport",
        "sla.t.endOfLife",
        "sla.t.retention",
        "sla.t.frequency",
        "sla.t.timeOfAvailability.6",
        "sla.t.timeOfAvailability.7",
    ]
    status = {r.rule: r.status for r in results}
    assert status["sla.t.latency"] == "passed"  # tab1 -> the contract's only object
    assert status["sla.t.endOfSupport"] == status["sla.t.endOfLife"] == "passed"
    assert {status[r] for r in status if "latency" not in r and "endOf" not in r} == {"not checked"}
    assert all(r.message for r in results if r.status == "not checked")
    stale = _test(_sla_table(date(2026, 11, 20)), FULL_EXAMPLE_OBJECT, sla, contract)
    assert _by_rule(stale)["sla.t.latency"].status == "failed"


def test_end_of_life_and_support_are_compared_with_today() -> None:
    sla = [
        {"property": "es", "value": "2026-01-01"},
        {"property": "endOfLife", "value": "2026-06-30T00:00:00Z"},
    ]
    results = _by_rule(_test(_sla_table(date(2026, 12, 3)), FULL_EXAMPLE_OBJECT, sla))
    support, life = results["sla.t.endOfSupport"], results["sla.t.endOfLife"]
    assert not support.passed and support.severity == "warning"
    assert not life.passed and life.severity == "error" and "end of life" in life.message


def test_an_element_of_another_object_is_left_to_its_port() -> None:
    other = {"name": "receivers", "properties": [{"name": "id", "logicalType": "string"}]}
    contract = {"schema": [FULL_EXAMPLE_OBJECT, other]}
    sla = [
        {"property": "latency", "value": 1, "unit": "d", "element": "receivers.updated_at"},
        {"property": "latency", "value": 1, "unit": "d", "element": "tbl_1.txn_ref_dt"},
        {"property": "latency", "value": 1, "unit": "d", "element": "nowhere.txn_ref_dt"},
    ]
    results = [
        r
        for r in _test(_sla_table(date(2026, 12, 5)), FULL_EXAMPLE_OBJECT, sla, contract).results
        if r.kind == "sla"
    ]
    assert [(r.rule, r.status) for r in results] == [
        ("sla.t.latency.1", "passed"),
        ("sla.t.latency.2", "failed"),
    ]
    assert "not in the contract" in results[1].message


def test_latency_on_a_column_that_is_no_time_is_not_checked() -> None:
    obj = {"name": "t", "properties": [{"name": "n", "logicalType": "integer"}]}
    sla = [{"property": "ly", "value": 1, "unit": "h", "element": "n"}]
    (result,) = [r for r in _test(pa.table({"n": [1]}), obj, sla).results if r.kind == "sla"]
    assert result.status == "not checked" and "not a date" in result.message


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("int4", "INTEGER"),
        ("varchar(50)", "text"),
        ("bpchar", "character varying(3)"),
        ("double precision", "float8"),
        ("timestamptz", "timestamp(6) with time zone"),
    ],
)
def test_vendor_spellings_of_one_type_are_no_schema_change(a: str, b: str) -> None:
    # schema_diff compares physicalTypes through contracts._physical
    from meshops.mesh.contracts import _physical

    assert _physical(a) == _physical(b)


OPTIONS_TABLE = pa.table(
    {
        "age": pa.array([18, 42, 99, None], pa.int64()),
        "score": pa.array([0.0, 0.5, 1.0, 1.0]),
        "price": pa.array([Decimal("0.01"), Decimal("9.99"), None, None], pa.decimal128(6, 2)),
    }
)


@pytest.mark.parametrize(
    ("column", "logical", "options", "rule", "observed"),
    [
        ("age", "integer", {"minimum": 18, "maximum": 99}, "range", 0),
        ("age", "integer", {"minimum": 19}, "range", 1),
        ("age", "integer", {"exclusiveMinimum": 18, "exclusiveMaximum": 100}, "exclusive_range", 1),
        ("age", "integer", {"exclusiveMaximum": 99}, "exclusive_range", 1),
        ("score", "number", {"minimum": 0, "maximum": 1}, "range", 0),
        ("score", "number", {"exclusiveMaximum": 1}, "exclusive_range", 2),
        ("price", "number", {"exclusiveMinimum": 0, "maximum": 9.99}, "exclusive_range", 0),
        ("price", "number", {"maximum": 9.98}, "range", 1),
    ],
)
def test_numeric_logical_type_options_are_checked(
    column: str, logical: str, options: dict[str, Any], rule: str, observed: int
) -> None:
    prop = {"name": column, "logicalType": logical, "logicalTypeOptions": options}
    rules = _by_rule(_test(OPTIONS_TABLE.select([column]), {"name": "t", "properties": [prop]}))
    result = rules[f"schema.t.{column}.{rule}"]
    assert (result.observed, result.passed) == (observed, observed == 0), result
    assert f"schema.t.{column}.options" not in rules


def test_other_logical_type_options_are_reported_not_checked() -> None:
    prop = {
        "name": "age",
        "logicalType": "integer",
        "logicalTypeOptions": {"minimum": 0, "format": "i64", "multipleOf": 1},
    }
    rules = _by_rule(_test(OPTIONS_TABLE.select(["age"]), {"name": "t", "properties": [prop]}))
    assert rules["schema.t.age.range"].passed
    assert rules["schema.t.age.options"].status == "not checked"
    assert rules["schema.t.age.options"].expected == "logicalTypeOptions format, multipleOf"
