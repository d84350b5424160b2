"""Property test: generated ODCS contracts over generated Arrow tables; every rule's verdict
equals a brute-force evaluation in plain Python, written here from the ODCS docs
(docs/data-quality.md: metrics, 3.0 rule names, operators, unit percent) without meshops's
code.

Definitions the brute force follows (from the standard, and where it is silent, from
docs/mesh.md "Quality rules and operators"):
  nullValues       rows whose value is null
  missingValues    rows whose value is null or equals one of the listed values
  invalidValues    non-null rows not equal to any listed valid value (a null in the list
                   changes nothing) or not fully matching the pattern
  duplicateValues  on a property: non-null values minus distinct non-null values;
                   on the object with `properties`: rows minus distinct rows of those
                   columns (for one column, rows minus its distinct non-null values)
  rowCount         rows
  between / minCheck / maxCheck (3.0)  non-null values below min or above max
  unit: percent    100 × count / rows (0 for no rows)
  operators        = ≠ > ≥ < ≤; mustBeBetween [a, b]: a < x < b; mustNotBeBetween: not that
  no operator      a count must be 0; a row count or an sql result declares nothing
                   (not evaluated)
  logicalTypeOptions (integer, number)  minimum / maximum: no value below / above;
                   exclusiveMinimum / exclusiveMaximum: no value at or below / at or above
"""

from __future__ import annotations

import re
import tempfile
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meshops.mesh.contract_scan import (
    Duplicates,
    Invalid,
    Missing,
    _pattern_matches,
    measure_all,
)
from meshops.mesh.contracts import run_contract_test
from meshops.mesh.simple_patterns import simple_pattern
from meshops.mesh.specs import columns_of

# digits, a non-ASCII digit and a trailing newline: the pattern fast path's edge cases
WORDS = ["a", "b", "ab", "ba", "", "N/A", "abc", "a1", "12", "b\u0661", "a7\n"]
FLOATS = [-1.5, 0.0, 0.5, 2.25, 100.0, 1e6]
DAY0 = date(2024, 1, 1)
COLUMNS = {"i": "integer", "f": "number", "s": "string", "d": "date"}
# from "b" on, the fast path of simple anchored patterns (no regex engine) decides
PATTERNS = [
    *("[ab]+", "a.*", "[a-z]{1,2}", "N/A|"),
    *("b", r"a\d+", "[0-9]{1,2}", "^[A-Za-z]*$", "ab", "b[a-zA-Z0-9]?"),
]
OPERATORS = [
    "mustBe",
    "mustNotBe",
    "mustBeGreaterThan",
    "mustBeGreaterOrEqualTo",
    "mustBeLessThan",
    "mustBeLessOrEqualTo",
    "mustBeBetween",
    "mustNotBeBetween",
]


@st.composite
def tables(draw: st.DrawFn) -> dict[str, list[Any]]:
    n = draw(st.integers(0, 12))

    def column(values: st.SearchStrategy[Any]) -> list[Any]:
        return draw(st.lists(st.one_of(st.none(), values), min_size=n, max_size=n))

    return {
        "i": column(st.integers(-3, 6)),
        "f": column(st.sampled_from(FLOATS)),
        "s": column(st.sampled_from(WORDS)),
        "d": column(st.integers(0, 4).map(lambda k: DAY0 + timedelta(days=k))),
    }


def _values_for(column: str) -> st.SearchStrategy[list[Any]]:
    same = {
        "i": st.integers(-3, 6),
        "f": st.sampled_from(FLOATS),
        "s": st.sampled_from(WORDS),
        "d": st.integers(0, 4).map(lambda k: str(DAY0 + timedelta(days=k))),
    }[column]
    other = st.sampled_from(["", "x", 1, 2.5])  # another kind: never equal to a value
    return st.lists(st.one_of(same, st.none(), other), max_size=4)


@st.composite
def operators(draw: st.DrawFn, scale: float) -> dict[str, Any]:
    number = st.one_of(st.integers(-2, int(scale) + 2), st.floats(-2, scale + 2, allow_nan=False))
    chosen = draw(st.lists(st.sampled_from(OPERATORS), max_size=2, unique=True))
    ops: dict[str, Any] = {}
    for op in chosen:
        if op.endswith("Between"):
            low, high = sorted([draw(number), draw(number)])
            ops[op] = [low, high]
        else:
            ops[op] = draw(number)
    return ops


@st.composite
def rules(draw: st.DrawFn) -> tuple[str | None, dict[str, Any]]:
    """(property or None for the object, rule)"""
    form = draw(
        st.sampled_from(
            [
                "nullValues",
                "missingValues",
                "invalidValues",
                "pattern",
                "duplicateValues",
                "objectDuplicates",
                "rowCount",
                "nullCheck",
                "duplicateCount",
                "validValues",
                "countCheck",
                "between",
                "minCheck",
                "maxCheck",
                "sql",
            ]
        )
    )
    column: str | None = draw(st.sampled_from(sorted(COLUMNS)))
    rule: dict[str, Any] = {}
    if form in ("nullValues", "duplicateValues"):
        rule = {"metric": form}
    elif form == "missingValues":
        rule = {"metric": form, "arguments": {"missingValues": draw(_values_for(str(column)))}}
    elif form == "invalidValues":
        column = draw(st.sampled_from(["i", "s", "f"]))
        rule = {"metric": form, "arguments": {"validValues": draw(_values_for(column))}}
    elif form == "pattern":
        column = "s"
        rule = {
            "metric": "invalidValues",
            "arguments": {"pattern": draw(st.sampled_from(PATTERNS))},
        }
    elif form == "objectDuplicates":
        names = draw(
            st.lists(st.sampled_from(sorted(COLUMNS)), min_size=1, max_size=3, unique=True)
        )
        column, rule = None, {"metric": "duplicateValues", "arguments": {"properties": names}}
    elif form in ("rowCount", "countCheck"):
        column = None
        rule = {"metric": form} if form == "rowCount" else {"rule": form}
    elif form in ("nullCheck", "duplicateCount"):
        rule = {"rule": form}
    elif form == "validValues":
        column = draw(st.sampled_from(["i", "s"]))
        rule = {"rule": form, "validValues": draw(_values_for(column))}
    elif form in ("between", "minCheck", "maxCheck"):
        column = draw(st.sampled_from(["i", "f"]))
        bound = st.integers(-3, 6)
        low, high = sorted([draw(bound), draw(bound)])
        custom = [{"property": "min", "value": low}, {"property": "max", "value": high}]
        rule = {"rule": form, "customProperties": custom}
    else:
        column = "i"
        threshold = draw(st.integers(-3, 6))
        rule = {
            "type": "sql",
            "query": f"SELECT count(*) FROM {{object}} WHERE {{property}} > {threshold}",
        }
    if form not in ("rowCount", "countCheck") and draw(st.booleans()):
        rule["unit"] = "percent"
    ops = draw(operators(100.0 if rule.get("unit") == "percent" else 12.0))
    return column, {**rule, **ops}


def _count(column: str | None, rule: dict[str, Any], data: dict[str, list[Any]]) -> float:
    """The measured number, by brute force."""
    n = len(data["i"])
    values = data[column] if column else []
    name = rule.get("metric") or rule.get("rule")
    args = rule.get("arguments") or {}
    if rule.get("type") == "sql":
        threshold = int(rule["query"].rsplit(">", 1)[1])
        return sum(1 for v in values if v is not None and v > threshold)
    if name in ("rowCount", "countCheck"):
        return n
    if name in ("nullValues", "nullCheck"):
        return sum(1 for v in values if v is None)
    if name == "missingValues":
        listed = [x for x in args["missingValues"] if x is not None]
        return sum(1 for v in values if v is None or _text(v) in [_text(x) for x in listed])
    if name in ("invalidValues", "validValues"):
        valid = args.get("validValues", rule.get("validValues"))
        pattern = args.get("pattern")
        bad = 0
        for v in values:
            if v is None:
                continue
            outside = valid is not None and v not in [x for x in valid if x is not None]
            # RE2's \d is ASCII 0-9, as Python's with re.ASCII
            unmatched = pattern is not None and re.fullmatch(pattern, v, re.ASCII) is None
            bad += outside or unmatched
        return bad
    if name in ("duplicateValues", "duplicateCount"):
        if column is not None:
            present = [v for v in values if v is not None]
            return len(present) - len(set(present))
        names = args["properties"]
        if len(names) == 1:
            return n - len({v for v in data[names[0]] if v is not None})
        rows = list(zip(*(data[c] for c in names), strict=True))
        return n - len(set(rows))
    bounds = {c["property"]: c["value"] for c in rule["customProperties"]}
    low = bounds["min"] if name in ("between", "minCheck") else None
    high = bounds["max"] if name in ("between", "maxCheck") else None
    return sum(
        1
        for v in values
        if v is not None and ((low is not None and v < low) or (high is not None and v > high))
    )


def _text(value: Any) -> Any:
    """Dates are compared with the strings a contract writes for them."""
    return str(value) if isinstance(value, date) else value


def _expected(column: str | None, rule: dict[str, Any], data: dict[str, list[Any]]) -> str:
    """passed | failed | not evaluated, by brute force."""
    n = len(data["i"])
    name = rule.get("metric") or rule.get("rule")
    value = _count(column, rule, data)
    if rule.get("unit") == "percent":
        value = 100.0 * value / n if n else 0.0
    used = [op for op in OPERATORS if op in rule]
    if not used:
        if name in ("rowCount", "countCheck") or rule.get("type") == "sql":
            return "not evaluated"  # nothing declared to compare the number with
        return "passed" if value == 0 else "failed"
    ok = True
    for op in used:
        bound = rule[op]
        if op == "mustBe":
            ok = ok and value == bound
        elif op == "mustNotBe":
            ok = ok and value != bound
        elif op == "mustBeGreaterThan":
            ok = ok and value > bound
        elif op == "mustBeGreaterOrEqualTo":
            ok = ok and value >= bound
        elif op == "mustBeLessThan":
            ok = ok and value < bound
        elif op == "mustBeLessOrEqualTo":
            ok = ok and value <= bound
        elif op == "mustBeBetween":
            ok = ok and bound[0] < value < bound[1]
        else:
            ok = ok and not bound[0] < value < bound[1]
    return "passed" if ok else "failed"


def _arrow(data: dict[str, list[Any]]) -> pa.Table:
    return pa.table(
        {
            "i": pa.array(data["i"], pa.int64()),
            "f": pa.array(data["f"], pa.float64()),
            "s": pa.array(data["s"], pa.string()),
            "d": pa.array(data["d"], pa.date32()),
        }
    )


BOUND = st.one_of(st.none(), st.integers(-3, 6), st.sampled_from(FLOATS))
OPTIONS = st.fixed_dictionaries(
    {},
    optional={
        "minimum": BOUND,
        "maximum": BOUND,
        "exclusiveMinimum": BOUND,
        "exclusiveMaximum": BOUND,
    },
)


def _outside(values: list[Any], options: dict[str, Any], exclusive: bool) -> int | None:
    """logicalTypeOptions: values below the minimum or above the maximum (an exclusive bound
    excludes the bound itself); None when no such bound is declared."""
    low = options.get("exclusiveMinimum" if exclusive else "minimum")
    high = options.get("exclusiveMaximum" if exclusive else "maximum")
    if low is None and high is None:
        return None
    return sum(
        1
        for v in values
        if v is not None
        and (
            (low is not None and (v <= low if exclusive else v < low))
            or (high is not None and (v >= high if exclusive else v > high))
        )
    )


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=tables(),
    drawn=st.lists(rules(), min_size=1, max_size=6),
    parquet=st.booleans(),
    options=st.fixed_dictionaries({"i": OPTIONS, "f": OPTIONS}),
)
def test_every_verdict_equals_the_brute_force(
    data: dict[str, list[Any]],
    drawn: list[tuple[str | None, dict[str, Any]]],
    parquet: bool,
    options: dict[str, dict[str, Any]],
) -> None:
    properties: list[dict[str, Any]] = [
        {"name": name, "logicalType": logical, "quality": []} for name, logical in COLUMNS.items()
    ]
    for prop in properties:
        given_options = {k: v for k, v in options.get(prop["name"], {}).items() if v is not None}
        if given_options:
            prop["logicalTypeOptions"] = given_options
    by_name = {p["name"]: p for p in properties}
    obj: dict[str, Any] = {"name": "t", "properties": properties, "quality": []}
    for i, (column, rule) in enumerate(drawn):
        rule["id"] = f"r{i}"
        (by_name[column]["quality"] if column else obj["quality"]).append(rule)
    table = _arrow(data)
    with tempfile.TemporaryDirectory() as folder:
        source: pa.Table | str = table
        if parquet:
            source = str(Path(folder) / "t.parquet")
            pq.write_table(table, source, row_group_size=5)
        report = run_contract_test(source, "t", columns_of(obj), obj)
    got = {r.rule.split(".")[3]: r for r in report.results if r.kind == "quality"}
    assert len(got) == len(drawn)
    for i, (column, rule) in enumerate(drawn):
        result = got[f"r{i}"]
        assert result.status == _expected(column, rule, data), (rule, column, data, result)
    schema = {r.rule: r for r in report.results if r.kind == "schema"}
    for prop in properties:
        for exclusive, label in ((False, "range"), (True, "exclusive_range")):
            count = _outside(data[prop["name"]], prop.get("logicalTypeOptions", {}), exclusive)
            rule_id = f"schema.t.{prop['name']}.{label}"
            if count is None:
                assert rule_id not in schema
            else:
                assert (schema[rule_id].observed, schema[rule_id].passed) == (count, count == 0)


# --- the fast paths against the plain evaluation, on generated patterns and values ---

SIMPLE_CLASSES = ["[0-9]", r"\d", "[A-Za-z]", "[a-zA-Z]", "[A-Za-z0-9]", "[0-9a-zA-Z]"]
QUANTIFIERS = ["", "+", "*", "?", "{2}", "{0,1}", "{1,3}", "{2,}"]
LITERALS = st.text(alphabet="ac@.-_ 9", max_size=3).map(
    lambda text: "".join("\\" + c if c in ".-" else c for c in text)
)


@st.composite
def simple_patterns(draw: st.DrawFn) -> str:
    middle = draw(st.sampled_from(SIMPLE_CLASSES)) + draw(st.sampled_from(QUANTIFIERS))
    if draw(st.booleans()):
        middle = ""  # a literal pattern
    anchors = draw(st.sampled_from([("", ""), ("^", "$"), ("^", ""), ("", "$")]))
    return anchors[0] + draw(LITERALS) + middle + draw(LITERALS) + anchors[1]


@settings(max_examples=200, deadline=None)
@given(
    pattern=simple_patterns().filter(bool),  # an empty pattern is no rule
    values=st.lists(
        st.one_of(st.none(), st.text(alphabet="ac@.-_ 9019aZ\u0661\u00e9\n", max_size=8)),
        max_size=12,
    ),
    large=st.booleans(),
)
def test_simple_patterns_match_as_re2_does(
    pattern: str, values: list[str | None], large: bool
) -> None:
    assert simple_pattern(pattern) is not None, pattern
    array = pa.array(values, pa.large_string() if large else pa.string())
    measure = Invalid("s", pattern=pattern)
    fast = _pattern_matches(array, measure)
    re2 = pc.match_substring_regex(array, f"^(?:{pattern})$")
    assert fast.equals(re2), (pattern, values)
    brute = [None if v is None else re.fullmatch(pattern, v, re.ASCII) is not None for v in values]
    assert fast.to_pylist() == brute


INTEGER_TYPES = [pa.int8(), pa.int16(), pa.int32(), pa.int64(), pa.uint8(), pa.uint32()]


@settings(max_examples=100, deadline=None)
@given(
    values=st.lists(st.one_of(st.none(), st.integers(0, 100)), max_size=40),
    dtype=st.sampled_from([*INTEGER_TYPES, pa.uint64(), pa.date32(), pa.timestamp("us")]),
    shift=st.sampled_from([0, -100, 10**6]),
    partitions=st.integers(1, 3),
)
def test_duplicates_of_integers_equal_the_brute_force(
    values: list[int | None], dtype: pa.DataType, shift: int, partitions: int
) -> None:
    unsigned = pa.types.is_unsigned_integer(dtype)
    limit = 2 ** (dtype.bit_width - (0 if unsigned else 1))
    shifted = [None if v is None else v + shift for v in values]
    if any(v is not None and not (0 if unsigned else -limit) <= v < limit for v in shifted):
        shifted = values  # the shift would not fit the type
    storage = pa.array(shifted, pa.int64() if pa.types.is_timestamp(dtype) else None)
    column = storage.cast(dtype) if not pa.types.is_date(dtype) else storage.cast(pa.int32())
    if pa.types.is_date(dtype):
        column = column.view(pa.date32())
    size = max(1, -(-len(values) // partitions))
    table = pa.table(
        {
            "n": pa.chunked_array(
                [column.slice(i, size) for i in range(0, len(values), size)] or [column],
                column.type,
            )
        }
    )
    measure = Duplicates(("n",))
    counted = measure_all(table, _no_duckdb, "t", table.schema, [measure])[measure]
    present = [v for v in shifted if v is not None]
    assert counted == len(present) - len(set(present))


def _no_duckdb() -> duckdb.DuckDBPyConnection:
    raise AssertionError("these measures are counted without DuckDB")


@settings(max_examples=60, deadline=None)
@given(
    indices=st.lists(st.one_of(st.none(), st.integers(0, 2)), max_size=20),
    index_type=st.sampled_from([*INTEGER_TYPES, pa.uint64()]),
)
def test_value_checks_on_dictionary_columns_equal_the_brute_force(
    indices: list[int | None], index_type: pa.DataType
) -> None:
    words = ["a", "b", "zz"]
    column = pa.DictionaryArray.from_arrays(pa.array(indices, index_type), pa.array(words))
    table = pa.table({"c": column})
    invalid, missing = Invalid("c", valid_values=("a", "b")), Missing("c", values=("b",))
    counted = measure_all(table, _no_duckdb, "t", table.schema, [invalid, missing])
    values = [None if i is None else words[i] for i in indices]
    assert counted[invalid] == sum(1 for v in values if v == "zz")
    assert counted[missing] == sum(1 for v in values if v in (None, "b"))
