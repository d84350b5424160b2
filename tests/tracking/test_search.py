"""Run search: the filter language (parser properties) and its results on real data."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshops.client import Platform
from meshops.kernel.errors import InvalidInput
from meshops.tracking.search import BoolOp, Comparison, Field, parse_filter, parse_order_by


def _populate(platform: Platform) -> dict[str, str]:
    ids = {}
    for i, (model, rmse, team) in enumerate(
        [("rf", 0.3, "x"), ("rf", 0.6, "y"), ("lin", 0.4, "x"), ("gbm", 0.2, "x")]
    ):
        with platform.tracking.start_run(
            "search", name=f"r{i}", tags={"team": team}, capture_environment=False
        ) as run:
            run.log_params({"model": model, "depth": i})
            run.log_metric("rmse", rmse)
            run.log_metric("val loss", rmse * 2)
        ids[f"r{i}"] = run.id
    platform.tracking.create_run("other", name="elsewhere", capture_environment=False)
    return ids


def _names(platform: Platform, flt: str, order: list[str] | None = None) -> list[str]:
    page = platform.tracking.search_runs(["search"], flt, order or ["name"], 100)
    return [r.name for r in page.runs]


def test_filters_order_and_paging(platform: Platform) -> None:
    ids = _populate(platform)
    assert _names(platform, "metrics.rmse < 0.5 and params.model = 'rf' and tags.team = 'x'") == [
        "r0"
    ]
    assert _names(platform, "metrics.rmse < 0.5", ["metrics.rmse DESC"]) == ["r2", "r0", "r3"]
    assert _names(platform, "params.model IN ('lin', 'gbm') or metrics.rmse >= 0.6") == [
        "r1",
        "r2",
        "r3",
    ]
    assert _names(
        platform, "(params.model = 'rf' or params.model = 'lin') and tags.team = 'x'"
    ) == [
        "r0",
        "r2",
    ]
    assert _names(platform, "params.model LIKE 'r%'") == ["r0", "r1"]
    assert _names(platform, "params.model NOT IN ('rf')") == ["r2", "r3"]
    assert _names(platform, "metrics.`val loss` > 1.0") == ["r1"]
    assert _names(platform, "attributes.status = 'FINISHED' and name != 'r0'") == ["r1", "r2", "r3"]
    assert _names(platform, f"run_id = '{ids['r3']}'") == ["r3"]
    assert _names(platform, "start_time > 0 and user = 'alice'") == ["r0", "r1", "r2", "r3"]
    assert _names(platform, "metrics.nothing > 0") == []
    assert _names(platform, "", ["params.model ASC", "metrics.rmse"]) == ["r3", "r2", "r0", "r1"]
    # paging walks every run exactly once
    seen, token = [], None
    while True:
        page = platform.tracking.search_runs(["search"], "", ["name"], 3, token)
        seen += [r.name for r in page.runs]
        token = page.next_page_token
        if token is None:
            break
    assert seen == ["r0", "r1", "r2", "r3"]
    everything = platform.tracking.search_runs(None, "", None, 100)
    assert len(everything.runs) == 5


@pytest.mark.parametrize(
    ("bad", "token"),
    [
        ("metrics.rmse < 'x'", "'x'"),
        ("params.model = 3", "3"),
        ("metrics.rmse <", "<end of input>"),
        ("metrics.rmse < 0.5 and", "<end of input>"),
        ("metrics.rmse ~ 1", "~"),
        ("colour = 'red'", "colour"),
        ("(metrics.a < 1", "<end of input>"),
        ("params.a LIKE", "<end of input>"),
        ("metrics.a LIKE 1", "LIKE"),
        ("metrics.a < 1 metrics.b < 2", "metrics"),
    ],
)
def test_bad_filters_point_at_the_token(platform: Platform, bad: str, token: str) -> None:
    with pytest.raises(InvalidInput) as info:
        platform.tracking.search_runs(None, bad)
    assert info.value.detail["token"] == token
    assert info.value.detail["field"] == "filter"
    assert str(info.value.detail["position"]) in info.value.message


def test_bad_order_by_page_token_and_limit(platform: Platform) -> None:
    with pytest.raises(InvalidInput) as info:
        platform.tracking.search_runs(None, "", ["metrics.rmse SIDEWAYS"])
    assert info.value.detail["field"] == "order_by"
    with pytest.raises(InvalidInput):
        platform.tracking.search_runs(None, "", None, 10, "garbage!")
    with pytest.raises(InvalidInput):
        platform.tracking.search_runs(None, "", None, 0)


def test_parse_tree_and_order_keys() -> None:
    tree = parse_filter("metrics.a < 1 and (params.b = 'x' or tags.c != \"y\")")
    assert tree == BoolOp(
        "and",
        (
            Comparison(Field("metric", "a"), "<", 1),
            BoolOp(
                "or",
                (
                    Comparison(Field("param", "b"), "=", "x"),
                    Comparison(Field("tag", "c"), "!=", "y"),
                ),
            ),
        ),
    )
    assert parse_filter("  ") is None
    assert parse_filter("params.q = 'it''s'") == Comparison(Field("param", "q"), "=", "it's")
    keys = parse_order_by(["metrics.rmse DESC", "start_time"])
    assert [(k.field.key, k.descending) for k in keys] == [("rmse", True), ("start_time", False)]


_KEYS = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,10}", fullmatch=True).filter(
    lambda k: k.upper() not in {"AND", "OR", "IN", "NOT", "LIKE", "ILIKE", "ASC", "DESC"}
)
_NUMBERS = st.floats(allow_nan=False, allow_infinity=False, width=32).map(lambda f: repr(float(f)))
_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=10).map(
    lambda s: "'" + s.replace("\\", "\\\\").replace("'", "''") + "'"
)
_METRIC = st.tuples(_KEYS, st.sampled_from(["=", "!=", "<", "<=", ">", ">="]), _NUMBERS).map(
    lambda t: f"metrics.{t[0]} {t[1]} {t[2]}"
)
_PARAM = st.tuples(
    st.sampled_from(["params", "tags"]),
    _KEYS,
    st.sampled_from(["=", "!=", "LIKE", "ILIKE"]),
    _TEXT,
).map(lambda t: f"{t[0]}.{t[1]} {t[2]} {t[3]}")
_IN = st.tuples(_KEYS, st.lists(_TEXT, min_size=1, max_size=3)).map(
    lambda t: f"params.{t[0]} IN ({', '.join(t[1])})"
)
_COND = st.one_of(_METRIC, _PARAM, _IN)
_FILTERS = st.recursive(
    _COND,
    lambda inner: st.one_of(
        st.tuples(inner, st.sampled_from(["and", "or", "AND"]), inner).map(
            lambda t: f"{t[0]} {t[1]} {t[2]}"
        ),
        inner.map(lambda f: f"({f})"),
    ),
    max_leaves=6,
)


@settings(max_examples=200, deadline=None)
@given(_FILTERS)
def test_generated_valid_filters_parse(source: str) -> None:
    assert parse_filter(source) is not None


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_garbage_raises_only_invalid_input(source: str) -> None:
    try:
        parse_filter(source)
    except InvalidInput as exc:
        assert exc.detail["field"] == "filter"
        assert "position" in exc.detail


@settings(max_examples=200, deadline=None)
@given(
    _FILTERS, st.integers(min_value=0, max_value=60), st.sampled_from(["(", ")", "'", "<", "and"])
)
def test_mutated_filters_raise_only_invalid_input(source: str, at: int, junk: str) -> None:
    mutated = source[:at] + junk + source[at:]
    try:
        parse_filter(mutated)
    except InvalidInput as exc:
        assert 0 <= exc.detail["position"] <= len(mutated)
