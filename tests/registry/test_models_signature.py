"""Pure logic: model URIs, names and signatures (no database)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshops.kernel.errors import InvalidInput
from meshops.registry.models import ModelRef, check_alias, check_model_name, parse_model_uri
from meshops.registry.signature import InputAdapter, infer_signature, input_signature

names = st.from_regex(r"[A-Za-z][A-Za-z0-9_.\-]{0,20}", fullmatch=True)
aliases = st.from_regex(r"[A-Za-z][A-Za-z0-9_\-]{0,20}", fullmatch=True)


@given(names, st.integers(min_value=1, max_value=10**9))
def test_version_uris_round_trip(name: str, version: int) -> None:
    assert parse_model_uri(f"models:/{name}/{version}") == ModelRef(name=name, version=version)


@given(names, aliases)
def test_alias_uris_round_trip(name: str, alias: str) -> None:
    assert parse_model_uri(f"models:/{name}@{alias}") == ModelRef(name=name, alias=alias)


@given(st.text(max_size=30))
def test_any_text_parses_or_raises_invalid_input_listing_the_forms(text: str) -> None:
    try:
        ref = parse_model_uri(text)
    except InvalidInput as exc:
        assert "models:/<name>@<alias>" in exc.detail["accepted"]
    else:
        assert text.startswith("models:/") and ref.name


@pytest.mark.parametrize(
    "uri",
    [
        "churn",
        "models:/",
        "models:/churn",
        "models:/churn/0",
        "models:/churn/x",
        "models:/churn@",
        "models:/churn@1x",
        "models:/1churn/1",
        "runs:/abc/model",
    ],
)
def test_bad_uris(uri: str) -> None:
    with pytest.raises(InvalidInput, match="not a model URI"):
        parse_model_uri(uri)


def test_latest_and_name_rules() -> None:
    assert parse_model_uri("models:/churn/latest") == ModelRef(name="churn", latest=True)
    for bad in ["", "1abc", "a b", "a/b", "x" * 200]:
        with pytest.raises(InvalidInput):
            check_model_name(bad)
    for bad in ["latest", "9lives", "a.b"]:
        with pytest.raises(InvalidInput):
            check_alias(bad)


def test_signature_from_dataframe_with_outputs() -> None:
    example = pd.DataFrame(
        {"age": [1.5, 2.0], "visits": [1, 2], "vip": [True, False], "city": ["a", "b"]}
    )
    sig = infer_signature(example, lambda df: df["age"].to_numpy() * 2, "frame")
    assert sig.kind == "columns"
    assert [(c.name, c.type) for c in sig.inputs] == [
        ("age", "float"),
        ("visits", "integer"),
        ("vip", "boolean"),
        ("city", "string"),
    ]
    assert [(c.name, c.type, c.shape) for c in sig.outputs] == [("prediction", "float", [-1])]


def test_signature_from_record_dict_and_array() -> None:
    assert [c.type for c in input_signature({"a": 1, "b": "x"}).inputs] == ["integer", "string"]
    assert [c.name for c in input_signature({"a": [1, 2], "b": [0.1, 0.2]}).inputs] == ["a", "b"]
    tensor = input_signature(np.zeros((2, 4), dtype=np.float32))
    assert tensor.kind == "tensor"
    assert tensor.inputs[0].shape == [-1, 4]
    with pytest.raises(InvalidInput, match="input example"):
        input_signature("not an example")


def test_adapter_enforces_columns_and_types() -> None:
    sig = input_signature(pd.DataFrame({"x": [1.0], "n": [1], "s": ["a"]}))
    adapt = InputAdapter(sig, "frame")
    out = adapt({"s": "b", "n": 3, "x": 2, "extra": 1})  # int widens into a float column
    assert list(out.columns) == ["x", "n", "s"]
    with pytest.raises(InvalidInput, match="missing input column: n") as info:
        adapt({"x": 1.0, "s": "a"})
    assert info.value.detail["field"] == "n"
    with pytest.raises(InvalidInput, match="record 0: column 'x' should be a number") as info:
        adapt({"x": "1.0", "n": 1, "s": "a"})
    assert (info.value.detail["record"], info.value.detail["field"]) == (0, "x")
    with pytest.raises(InvalidInput, match=r"record 1: column 'n' should be an integer, got 1\.5"):
        adapt(pd.DataFrame({"x": [1.0, 2.0], "n": [1, 1.5], "s": ["a", "b"]}))
    with pytest.raises(InvalidInput, match="record 0: column 's' should be a string, got 5"):
        adapt([{"x": 1.0, "n": 1, "s": 5}])


def test_adapter_for_tensors_checks_shape_and_dtype() -> None:
    adapt = InputAdapter(input_signature(np.zeros((3, 2))), "array")
    assert adapt([1.0, 2.0]).shape == (1, 2)  # one record without the batch axis
    with pytest.raises(InvalidInput, match="shape"):
        adapt(np.zeros((2, 3)))
    with pytest.raises(InvalidInput, match="should be float"):
        adapt(np.array([["a", "b"]]))


@given(st.lists(st.floats(allow_nan=False, width=32), min_size=3, max_size=3))
def test_numeric_records_become_one_row_arrays(values: list[float]) -> None:
    sig = input_signature(pd.DataFrame({"a": [0.0], "b": [0.0], "c": [0.0]}))
    out = InputAdapter(sig, "array")(dict(zip("abc", values, strict=True)))
    assert out.shape == (1, 3)
    assert out.tolist() == [values]
