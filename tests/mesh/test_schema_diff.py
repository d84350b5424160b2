"""Schema diff: every breaking-change class, and properties of the diff and semver ranges."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshops.mesh.models import ColumnSpec, SemVer, VersionRange
from meshops.mesh.schema_diff import BREAKING_KINDS, bump_between, diff_port, diff_schemas

BASE = [
    ColumnSpec(
        name="id", logical_type="integer", physical_type="bigint", required=True, primary_key=True
    ),
    ColumnSpec(name="amount", logical_type="number", physical_type="double"),
    ColumnSpec(name="email", logical_type="string", classification="internal"),
]


def _with(name: str, **changes: object) -> list[ColumnSpec]:
    return [c.model_copy(update=changes) if c.name == name else c for c in BASE]


@pytest.mark.parametrize(
    ("new", "kind"),
    [
        (BASE[:2], "column_removed"),
        ([*BASE[:2], BASE[2].model_copy(update={"name": "mail"})], "column_renamed"),
        (_with("email", logical_type="integer"), "type_changed"),
        (_with("amount", logical_type="integer", physical_type=None), "type_narrowed"),
        (_with("id", physical_type="integer"), "type_narrowed"),
        (_with("amount", required=True), "became_required"),
        (_with("email", classification="restricted"), "classification_raised"),
        (_with("email", primary_key=True), "primary_key_changed"),
    ],
)
def test_each_breaking_class_is_detected(new: list[ColumnSpec], kind: str) -> None:
    changes = diff_port("p", BASE, new)
    assert kind in {c.kind for c in changes if c.breaking}
    assert diff_schemas("1.0.0", "1.1.0", {"p": BASE}, {"p": new}).required_bump == "major"


@pytest.mark.parametrize(
    ("new", "kind"),
    [
        ([*BASE, ColumnSpec(name="note")], "column_added"),
        (_with("amount", logical_type="number", physical_type="double"), None),
        (_with("id", physical_type="hugeint"), "type_widened"),
        (_with("id", required=False), "became_nullable"),
        (_with("email", classification="public"), "classification_lowered"),
    ],
)
def test_compatible_changes_need_no_major(new: list[ColumnSpec], kind: str | None) -> None:
    diff = diff_schemas("1.0.0", "1.1.0", {"p": BASE}, {"p": new})
    assert not diff.breaking
    assert [c.kind for c in diff.changes] == ([kind] if kind else [])
    assert diff.required_bump == ("minor" if kind else "none")


def test_port_removed_is_breaking() -> None:
    diff = diff_schemas("1.0.0", "2.0.0", {"a": BASE, "b": BASE}, {"a": BASE})
    assert [c.kind for c in diff.breaking] == ["port_removed"]


columns = st.lists(
    st.builds(
        ColumnSpec,
        name=st.sampled_from(["a", "b", "c", "d", "e"]),
        logical_type=st.sampled_from(["string", "integer", "number", "boolean", "date"]),
        required=st.booleans(),
        unique=st.booleans(),
        primary_key=st.booleans(),
        classification=st.sampled_from([None, "public", "internal", "confidential", "restricted"]),
    ),
    max_size=5,
    unique_by=lambda c: c.name,
)


@given(columns)
def test_a_schema_has_no_diff_with_itself(cols: list[ColumnSpec]) -> None:
    assert diff_port("p", cols, cols) == []


@given(columns, columns)
def test_removing_a_column_is_always_breaking(old: list[ColumnSpec], new: list[ColumnSpec]) -> None:
    changes = diff_port("p", old, new)
    gone = {c.name for c in old} - {c.name for c in new}
    flagged = {c.column for c in changes if c.kind in ("column_removed", "column_renamed")}
    assert gone == flagged
    assert all(c.breaking == (c.kind in BREAKING_KINDS) for c in changes)


@given(columns, columns)
def test_breaking_changes_one_way_are_additive_the_other_way(
    old: list[ColumnSpec], new: list[ColumnSpec]
) -> None:
    forward = {(c.kind, c.column) for c in diff_port("p", old, new)}
    backward = {(c.kind, c.column) for c in diff_port("p", new, old)}
    pairs = {
        "became_required": "became_nullable",
        "classification_raised": "classification_lowered",
    }
    for kind, column in forward:
        if kind in pairs:
            assert (pairs[kind], column) in backward


versions = st.builds(lambda a, b, c: f"{a}.{b}.{c}", *(st.integers(0, 20) for _ in range(3)))


@given(versions, versions)
def test_semver_order_and_bumps(a: str, b: str) -> None:
    va, vb = SemVer.parse(a), SemVer.parse(b)
    assert (va < vb) == ((va.major, va.minor, va.patch) < (vb.major, vb.minor, vb.patch))
    bump = bump_between(a, b)
    assert (bump == "none") == (vb <= va)
    if bump == "major" and va.major > 0:
        assert vb.major > va.major


@given(versions)
def test_caret_range_keeps_the_major(text: str) -> None:
    v = SemVer.parse(text)
    rng = VersionRange(f"^{v.major}")
    assert v in rng
    assert SemVer(v.major + 1, 0, 0) not in rng


def test_range_resolution() -> None:
    published = ["1.0.0", "1.2.0", "1.10.1", "2.0.0", "2.1.0-rc.1"]
    assert VersionRange("^1").best(published) == "1.10.1"
    assert VersionRange("~1.2").best(published) == "1.2.0"
    assert VersionRange(">=1.1 <2").best(published) == "1.10.1"
    assert VersionRange("*").best(published) == "2.0.0"
    assert VersionRange("^3").best(published) is None
