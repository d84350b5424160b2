"""MLflow's search syntax on meshops's parser (no MLflow client needed): filters written
as MLflow's client writes them parse to the tree meshops searches with, and a search
through the MLflow translation returns exactly the runs a brute-force evaluation picks."""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meshops.kernel.errors import InvalidInput
from meshops.kernel.home import Home
from meshops.mlflow import search
from meshops.mlflow.common import MlflowApiError
from meshops.tracking.search import BoolOp, Comparison, Field, OrderKey
from meshops.tracking.service import TrackingService
from tests.conftest import make_settings

# (how MLflow's client spells a field, the field meshops searches)
SPELLINGS = [
    ("metrics.rmse", Field("metric", "rmse")),
    ("metrics.`val loss`", Field("metric", "val loss")),
    ("params.model", Field("param", "model")),
    ("params.`n estimators`", Field("param", "n estimators")),
    ("tags.team", Field("tag", "team")),
    ("tags.`mlflow.runName`", Field("attribute", "name")),
    ("tags.`mlflow.user`", Field("attribute", "user")),
    ("attributes.run_name", Field("attribute", "name")),
    ("run_name", Field("attribute", "name")),
    ("attributes.status", Field("attribute", "status")),
    ("attributes.user_id", Field("attribute", "user")),
    ("attributes.run_id", Field("attribute", "id")),
]

texts = st.text(
    alphabet=st.characters(codec="ascii", categories=["L", "N"], include_characters="_-% "),
    max_size=12,
)
numbers = st.integers(-(10**6), 10**6) | st.floats(-1e6, 1e6, allow_nan=False).map(
    lambda f: round(f, 3)
)


@st.composite
def comparisons(draw: st.DrawFn) -> tuple[str, Comparison]:
    spelling, field = draw(st.sampled_from(SPELLINGS))
    if field.kind == "metric":
        op = draw(st.sampled_from(["=", "!=", "<", "<=", ">", ">="]))
        value: Any = draw(numbers)
        return f"{spelling} {op} {value!r}", Comparison(field, op, value)
    op = draw(st.sampled_from(["=", "!=", "LIKE", "ILIKE", "IN", "NOT IN"]))
    if op in ("IN", "NOT IN"):
        values = tuple(draw(st.lists(texts, min_size=1, max_size=3)))
        listed = ", ".join(f"'{v}'" for v in values)
        return f"{spelling} {op} ({listed})", Comparison(field, op, values)
    text = draw(texts)
    return f"{spelling} {op} '{text}'", Comparison(field, op, text)


@st.composite
def filters(draw: st.DrawFn, depth: int = 2) -> tuple[str, Any]:
    if depth == 0 or draw(st.booleans()):
        return draw(comparisons())
    op = draw(st.sampled_from(["and", "or"]))
    items = [draw(filters(depth - 1)) for _ in range(draw(st.integers(2, 3)))]
    text = f" {op} ".join(f"({t})" for t, _ in items)
    return text, BoolOp(op, tuple(tree for _, tree in items))


def _flatten(expr: Any) -> Any:
    """Nested and/or of the same operator flattened (the parser builds flat lists)."""
    if isinstance(expr, BoolOp):
        items: list[Any] = []
        for item in map(_flatten, expr.items):
            if isinstance(item, BoolOp) and item.op == expr.op:
                items += item.items
            else:
                items.append(item)
        return BoolOp(expr.op, tuple(items))
    return expr


@given(filters())
@settings(max_examples=300, deadline=None)
def test_mlflow_filters_parse_to_meshops_trees(case: tuple[str, Any]) -> None:
    text, expected = case
    assert _flatten(search.run_filter(text)) == _flatten(expected)


@given(st.sampled_from(SPELLINGS), st.booleans())
def test_mlflow_order_by_parses(spelling: tuple[str, Field], descending: bool) -> None:
    text, field = spelling
    clause = f"{text} {'DESC' if descending else 'ASC'}"
    assert search.run_order([clause]) == [OrderKey(field, descending)]


@pytest.mark.parametrize(
    "text",
    ["metrics.rmse >> 1", "params.model = 1", "metrics.x = 'a'", "foo.bar = 'x'", "(", "x ="],
)
def test_malformed_filters_name_the_token(text: str) -> None:
    with pytest.raises(InvalidInput, match="position"):
        search.run_filter(text)


def test_view_types() -> None:
    assert [search.run_view(v) for v in ("ACTIVE_ONLY", "DELETED_ONLY", "ALL", None, 3)] == [
        "active",
        "deleted",
        "all",
        "active",
        "all",
    ]
    with pytest.raises(MlflowApiError, match="ACTIVE_ONLY"):
        search.run_view("SOME")


# search through the translation vs brute force ------------------------------------------

MODELS = ["rf", "gbm", None]
TEAMS = ["ml", "bi", None]
SCORES = [0.1, 0.5, 0.9, None]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TrackingService, list[Any]]]:
    home = Home(make_settings(tmp_path_factory.mktemp("search") / "home"))
    svc = TrackingService(home.context())
    runs = []
    for i in range(24):
        tags = {"team": TEAMS[i % 3]} if TEAMS[i % 3] else {}
        run = svc.create_run("corpus", name=f"r{i:02d}", tags=tags, capture_environment=False)
        if MODELS[i % 3 - 1 if i % 2 else i % 3]:
            svc.log_params(run.id, {"model": str(MODELS[i % 3 - 1 if i % 2 else i % 3])})
        score = SCORES[i % 4]
        if score is not None:
            svc.log_metric_rows([(run.id, "score", score, 0, 1.0)])
        if i % 5 == 0:
            svc.end_run(run.id)
        runs.append(svc.get_run(run.id))
    yield svc, runs
    home.close()


OPS: dict[str, Callable[[Any, Any], bool]] = {
    "=": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def _like(pattern: str, value: str) -> bool:
    regex = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, re.DOTALL) is not None


def _brute(run: Any, spelling: str, op: str, value: Any) -> bool:
    got: Any = {
        "metrics.score": run.metrics.get("score"),
        "params.model": run.params.get("model"),
        "tags.team": run.tags.get("team"),
        "tags.`mlflow.runName`": run.name,
        "attributes.status": run.status.value,
    }[spelling]
    if got is None:
        return False
    if op == "IN":
        return got in value
    if op == "LIKE":
        return _like(value, got)
    return OPS[op](got, value)


@st.composite
def corpus_conditions(draw: st.DrawFn) -> tuple[str, str, str, Any]:
    spelling = draw(
        st.sampled_from(
            [
                "metrics.score",
                "params.model",
                "tags.team",
                "tags.`mlflow.runName`",
                "attributes.status",
            ]
        )
    )
    if spelling == "metrics.score":
        op = draw(st.sampled_from(list(OPS)))
        value: Any = draw(st.sampled_from([0.1, 0.5, 0.9, 0.3]))
        return f"{spelling} {op} {value}", spelling, op, value
    pool = {
        "params.model": ["rf", "gbm", "x"],
        "tags.team": ["ml", "bi", "m%"],
        "tags.`mlflow.runName`": ["r01", "r1%", "r0_"],
        "attributes.status": ["RUNNING", "FINISHED"],
    }[spelling]
    op = draw(st.sampled_from(["=", "!=", "LIKE", "IN"]))
    if op == "IN":
        values = tuple(draw(st.lists(st.sampled_from(pool), min_size=1, max_size=2)))
        listed = ", ".join(f"'{v}'" for v in values)
        return f"{spelling} IN ({listed})", spelling, op, values
    text = draw(st.sampled_from(pool))
    return f"{spelling} {op} '{text}'", spelling, op, text


@given(st.lists(corpus_conditions(), min_size=1, max_size=3))
@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
def test_search_matches_brute_force(
    corpus: tuple[TrackingService, list[Any]], conditions: list[tuple[str, str, str, Any]]
) -> None:
    svc, runs = corpus
    text = " and ".join(c[0] for c in conditions)
    page = svc.search_runs_in_view(
        ["corpus"],
        search.run_filter(text),
        max_results=100,
        order=search.run_order(["attributes.run_name ASC"]),
    )
    expected = sorted(
        r.name for r in runs if all(_brute(r, s, op, v) for _, s, op, v in conditions)
    )
    assert [r.name for r in page.runs] == expected, text


def test_deleted_runs_leave_searches_until_restored(tmp_path: Path) -> None:
    home = Home(make_settings(tmp_path / "home"))
    try:
        svc = TrackingService(home.context())
        run = svc.create_run("lifecycle", name="gone", capture_environment=False)
        svc.delete_run(run.id)
        assert svc.search_runs(["lifecycle"]).runs == []
        deleted = svc.search_runs_in_view(["lifecycle"], None, view="deleted").runs
        assert [r.name for r in deleted] == ["gone"]
        assert deleted[0].lifecycle_stage == "deleted"
        svc.restore_run(run.id)
        assert [r.name for r in svc.search_runs(["lifecycle"]).runs] == ["gone"]
    finally:
        home.close()
