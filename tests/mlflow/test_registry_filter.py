"""The registry search filter of the MLflow API: LIKE/ILIKE against SQLite's own LIKE as
the oracle (property test), and the clause forms the MLflow client sends."""

from __future__ import annotations

import sqlite3

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshops.mlflow.common import MlflowApiError
from meshops.mlflow.registry import Clause, clause_matches, like_match, parse_filter

# ASCII only: SQLite folds case for ASCII letters only.
TEXT = st.text(alphabet="aAbB.-_%xY1", max_size=8)
PATTERN = st.text(alphabet="aAbB.-_%", max_size=6)


@settings(max_examples=300, deadline=None)
@given(pattern=PATTERN, value=TEXT)
def test_ilike_matches_sqlite_like(pattern: str, value: str) -> None:
    with sqlite3.connect(":memory:") as db:
        (expected,) = db.execute("SELECT ? LIKE ?", (value, pattern)).fetchone()
    assert like_match(pattern, value, insensitive=True) == bool(expected)
    if like_match(pattern, value, insensitive=False):  # LIKE is the case-sensitive ILIKE
        assert like_match(pattern, value, insensitive=True)


def test_the_forms_the_mlflow_client_sends() -> None:
    keys = frozenset({"name", "run_id", "version_number"})
    # search_registered_models appends the prompt exclusion to every filter.
    clauses = parse_filter("name LIKE 'churn%' AND tag.`mlflow.prompt.is_prompt` != 'true'", keys)
    assert clauses == [
        Clause("name", "LIKE", ("churn%",)),
        Clause("tags.mlflow.prompt.is_prompt", "!=", ("true",)),
    ]
    assert clause_matches(clauses[1], None)  # a model without the tag is no prompt
    clauses = parse_filter("run_id IN ('a1', 'b2') AND version_number = 3", keys)
    assert [(c.key, c.op, c.values) for c in clauses] == [
        ("run_id", "IN", ("a1", "b2")),
        ("version_number", "=", ("3",)),
    ]
    assert parse_filter("", keys) == []
    assert parse_filter(r"name = 'it\'s'", keys)[0].values == ("it's",)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("name = 'a' OR name = 'b'", "join clauses with AND"),
        ("owner = 'x'", "unknown key 'owner'"),
        ("name IN 'a'", "takes a list"),
        ("name IN ('a'", "not closed"),
        ("name = 'a' AND", "nothing after AND"),
        ("name =", "<key> <operator> <value>"),
        ("name ~ 'a'", "unexpected text"),
    ],
)
def test_a_bad_filter_names_the_problem_and_the_syntax(text: str, why: str) -> None:
    with pytest.raises(MlflowApiError) as caught:
        parse_filter(text, frozenset({"name"}))
    assert caught.value.code == "INVALID_PARAMETER_VALUE"
    assert why in caught.value.message
    assert "name LIKE 'churn%'" in caught.value.message
