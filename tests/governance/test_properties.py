"""Property tests: the policy input documents and masking."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meshops.governance.documents import normalise, version_bump
from meshops.governance.masking import REDACTED, apply_plan, mask_array
from meshops.governance.policies import load_pack, run
from meshops.kernel.access import ReadPlan

PACK = load_pack()
names = st.from_regex(r"[a-z][a-z0-9_]{0,11}", fullmatch=True)
semver = st.tuples(st.integers(0, 20), st.integers(0, 20), st.integers(0, 20)).map(
    lambda t: f"{t[0]}.{t[1]}.{t[2]}"
)
levels = st.sampled_from(["public", "internal", "pii", "sensitive", "restricted"])
maskings = st.sampled_from(["default", "hash", "redact", "null", "none"])

columns = st.builds(
    lambda n, lv, m: {"name": n, "classification": lv, "masking": m}, names, levels, maskings
)
ports = st.builds(
    lambda n, cols, fresh: {"name": n, "columns": cols, "freshness": fresh},
    names,
    st.lists(columns, max_size=5),
    st.sampled_from(["", "PT24H", "1d"]),
)


@st.composite
def publish_documents(draw: st.DrawFn) -> dict[str, Any]:
    previous = draw(st.one_of(st.just(""), semver))
    return {
        "product": {
            "id": "sales.orders",
            "domain": "sales",
            "version": draw(semver),
            "previous_version": previous,
            "description": draw(st.sampled_from(["", "  ", "Orders placed", "x"])),
            "owners": draw(st.lists(names, max_size=3)),
        },
        "ports": draw(st.lists(ports, max_size=3)),
        "schema_diff": {"breaking": draw(st.booleans())},
        "tests": {"passed": draw(st.integers(0, 5)), "failed": draw(st.integers(0, 5))},
    }


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(publish_documents())
def test_publish_documents_normalise_and_the_pack_decides_like_the_rules(
    doc: dict[str, Any],
) -> None:
    normalised = normalise("dataproduct.publish", doc)
    assert normalise("dataproduct.publish", normalised) == normalised  # idempotent
    outcomes = {
        p.id: run(p.expression, normalised).outcome
        for p in PACK
        if p.target == "dataproduct.publish"
    }
    assert "error" not in outcomes.values()  # every valid document evaluates
    product = doc["product"]
    has_owner = bool(product["owners"]) and product["description"].strip() != ""
    assert (outcomes["product-has-owner-and-description"] == "pass") == has_owner
    bump = version_bump(product["previous_version"], product["version"])
    breaking_ok = not doc["schema_diff"]["breaking"] or bump in ("major", "initial")
    assert (outcomes["breaking-change-needs-major-version"] == "pass") == breaking_ok
    exposed = any(
        c["classification"] == "pii" and c["masking"] == "none"
        for p in doc["ports"]
        for c in p["columns"]
    )
    assert (outcomes["pii-never-unmasked-on-ports"] == "fail") == exposed
    undeclared = any(p["freshness"] == "" for p in doc["ports"])
    assert (outcomes["freshness-slo-declared"] == "fail") == undeclared


@given(semver, semver)
def test_version_bump_names_the_highest_changed_part(old: str, new: str) -> None:
    bump = version_bump(old, new)
    o, n = [tuple(map(int, v.split("."))) for v in (old, new)]
    expected = (
        "major"
        if o[0] != n[0]
        else "minor"
        if o[1] != n[1]
        else "patch"
        if o[2] != n[2]
        else "none"
    )
    assert bump == expected
    assert version_bump("", new) == "initial"


KEY = bytes(range(32))  # a masking key (kernel/secrets.py derives the home's)


@settings(max_examples=30, deadline=None)
@given(
    st.lists(st.one_of(st.none(), st.text(max_size=20)), max_size=30),
    st.lists(st.one_of(st.none(), st.integers(-(2**40), 2**40)), max_size=30),
)
def test_masking_keeps_nulls_types_and_hashes_like_hmac_sha256(
    texts: list[str | None], numbers: list[int | None]
) -> None:
    for values, arrow_type in ((texts, pa.string()), (numbers, pa.int64())):
        array = pa.array(values, type=arrow_type)
        hashed = mask_array(array, "hash", KEY).to_pylist()
        assert hashed == [
            None if v is None else hmac.new(KEY, str(v).encode(), hashlib.sha256).hexdigest()
            for v in values
        ]
        redacted = mask_array(array, "redact", KEY).to_pylist()
        assert redacted == [None if v is None else REDACTED for v in values]
        nulled = mask_array(array, "null", KEY)
        assert nulled.null_count == len(values) and nulled.type == arrow_type


@settings(max_examples=25, deadline=None)
@given(
    st.lists(st.text(max_size=8), min_size=1, max_size=20),
    st.sets(st.sampled_from(["a", "b", "c"])),
    st.sampled_from(["hash", "redact", "null"]),
)
def test_apply_plan_masks_only_the_named_columns(
    values: list[str], masked: set[str], method: str
) -> None:
    table = pa.table({"a": values, "b": values, "c": values})
    plan = ReadPlan(columns=("c", "a", "b"), masks=dict.fromkeys(masked, method))  # type: ignore[arg-type]
    result = apply_plan(table, plan, KEY)
    assert result.column_names == ["c", "a", "b"]
    for column in ("a", "b", "c"):
        same = result.column(column).to_pylist() == values
        assert same == (column not in masked) or (method == "hash" and not values)
