"""The simple-pattern matcher's counting path: a batch whose candidates (prefix, suffix and
middle length right) all have their middle in the class is answered by counting the class's
bytes; any other batch tests each middle. Both must agree with RE2 value by value."""

from __future__ import annotations

import re

import pyarrow as pa
import pyarrow.compute as pc
from hypothesis import given, settings
from hypothesis import strategies as st

from meshops.mesh.contract_scan import Invalid, _pattern_matches
from meshops.mesh.simple_patterns import _ends_fit, _middles_in_class, simple_pattern

EMAIL = r"^c[0-9]+@example\.com$"


def _re2(array: pa.Array, pattern: str) -> pa.Array:
    return pc.match_substring_regex(array, f"^(?:{pattern})$")


def test_mostly_matching_values_are_counted_and_agree_with_re2() -> None:
    values = [f"c{i}@example.com" for i in range(1, 200)]
    values[7] = "not-an-email"
    values[50] = None  # type: ignore[call-overload]
    array = pa.array(values, pa.string())
    simple = simple_pattern(EMAIL)
    assert simple is not None
    assert _middles_in_class(array, _ends_fit(array, simple), simple)  # the counting path
    fast = _pattern_matches(array, Invalid("e", pattern=EMAIL))
    assert fast.equals(_re2(array, EMAIL))
    assert fast.to_pylist().count(False) == 1


def test_a_bad_middle_among_candidates_is_found_value_by_value() -> None:
    values = [f"c{i}@example.com" for i in range(1, 100)] + ["c12x4@example.com"]
    array = pa.array(values, pa.large_string())
    simple = simple_pattern(EMAIL)
    assert simple is not None
    assert not _middles_in_class(array, _ends_fit(array, simple), simple)
    fast = _pattern_matches(array, Invalid("e", pattern=EMAIL))
    assert fast.equals(_re2(array, EMAIL))
    assert fast.to_pylist()[-1] is False


def test_a_sliced_array_counts_only_its_own_bytes() -> None:
    values = ["c1x@example.com", "c12@example.com", "c3@example.com", "zz9"]
    array = pa.array(values, pa.string()).slice(1, 2)  # neighbours with bad middles: outside
    simple = simple_pattern(EMAIL)
    assert simple is not None
    assert _middles_in_class(array, _ends_fit(array, simple), simple)
    assert _pattern_matches(array, Invalid("e", pattern=EMAIL)).to_pylist() == [True, True]


PATTERNS = [EMAIL, r"^id-[A-Za-z]{2,4}9$", r"^[A-Za-z0-9]*\.x$", r"^9\d?$", r"^ab[0-9]{0,2}c$"]
PIECES = ["c", "9", "12", "ab", "Z", "x", "id-", ".x", "@example.com", "-", "\u00e9", "\u0661"]


@settings(max_examples=200, deadline=None)
@given(
    pattern=st.sampled_from(PATTERNS),
    values=st.lists(
        st.one_of(st.none(), st.lists(st.sampled_from(PIECES), max_size=5).map("".join)),
        max_size=30,
    ),
    large=st.booleans(),
    start=st.integers(0, 3),
)
def test_counting_or_not_the_matches_are_re2s(
    pattern: str, values: list[str | None], large: bool, start: int
) -> None:
    array = pa.array(values, pa.large_string() if large else pa.string())
    array = array.slice(min(start, len(array)))
    simple = simple_pattern(pattern)
    assert simple is not None
    candidates = _ends_fit(array, simple)
    # whatever share of bytes the other values hold, a True answer must be right
    if _middles_in_class(array, candidates, simple, other_share=1.0):
        assert candidates.equals(_re2(array, pattern))
    fast = _pattern_matches(array, Invalid("s", pattern=pattern))
    assert fast.equals(_re2(array, pattern)), (pattern, values)
    brute = [
        None if v is None else re.fullmatch(pattern, v, re.ASCII) is not None
        for v in array.to_pylist()
    ]
    assert fast.to_pylist() == brute
