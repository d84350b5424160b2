"""Each masking method is defined once (`kernel.sandbox.MASKINGS`): the Python values of
online lookups equal what its SQL gives on the read path, for every method and type."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from meshops.governance.masking import mask_values
from meshops.kernel.sandbox import MASKINGS, Relation, Sandbox, governed_select

KEY = bytes(range(32))
VALUES: dict[str, tuple[pa.DataType, st.SearchStrategy[Any]]] = {
    "text": (pa.string(), st.text(max_size=20)),
    "integer": (pa.int64(), st.integers(-(2**40), 2**40)),
    "timestamp": (
        pa.timestamp("us", tz="UTC"),
        st.datetimes(datetime(1970, 1, 1), datetime(2100, 1, 1), timezones=st.just(UTC)),
    ),
}


def _in_sql(values: list[Any], value_type: pa.DataType, method: Any) -> list[Any]:
    table = pa.table({"v": pa.array(values, type=value_type)})
    with Sandbox([Relation("t", table=table)]) as box:
        masked = box.run_platform_sql(governed_select("t", ["v"], {"v": method}, KEY))
    return masked.column("v").to_pylist()


@settings(max_examples=15, deadline=None)
@given(st.data())
def test_python_masking_equals_the_sql_of_each_method(data: st.DataObject) -> None:
    kind = data.draw(st.sampled_from(sorted(VALUES)))
    value_type, strategy = VALUES[kind]
    values = data.draw(st.lists(st.one_of(st.none(), strategy), min_size=1, max_size=10))
    for method in MASKINGS:
        expected = _in_sql(values, value_type, method)
        assert mask_values(values, method, KEY, value_type) == expected, (kind, method)
