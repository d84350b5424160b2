"""Signatures: inferred from an input example at log time, enforced at predict time.

`infer_signature` looks at an example (pandas DataFrame, dict of columns, one record as a
dict, list of records, or a numpy array) and at what the model returns for it.
`InputAdapter` checks incoming data against the signature (missing column or wrong type
-> InvalidInput naming the column) and turns it into what the model wants: a DataFrame
with the signature's columns in order, or a 2-D array. One-record dicts take a path that
touches no pandas when the model accepts arrays, because serving calls it per request.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date, datetime
from typing import Any, Literal

import numpy as np

from meshops.kernel.errors import InvalidInput
from meshops.registry.models import ColumnSpec, ColumnType, Signature

Wants = Literal["frame", "array"]

_NUMERIC_KINDS = {"integer", "float", "boolean"}


def _is_dataframe(value: Any) -> bool:
    return type(value).__name__ == "DataFrame" and hasattr(value, "dtypes")


def _type_of_dtype(dtype: Any, sample: Any = None) -> ColumnType:
    kind = getattr(dtype, "kind", "O")
    if kind == "b":
        return "boolean"
    if kind in "iu":
        return "integer"
    if kind == "f":
        return "float"
    if kind == "M":
        return "datetime"
    if kind in "US" or str(dtype) == "string":
        return "string"
    if kind == "O" and sample is not None:
        return _type_of_value(sample)
    return "object"


def _type_of_value(value: Any) -> ColumnType:
    if isinstance(value, bool | np.bool_):
        return "boolean"
    if isinstance(value, int | np.integer):
        return "integer"
    if isinstance(value, float | np.floating):
        return "float"
    if isinstance(value, str):
        return "string"
    if isinstance(value, datetime | date | np.datetime64):
        return "datetime"
    return "object"


def _as_frame(example: Any) -> Any:
    import pandas as pd

    if _is_dataframe(example):
        return example
    if isinstance(example, Mapping):
        if all(_is_scalar(v) for v in example.values()):
            return pd.DataFrame([dict(example)])
        return pd.DataFrame(dict(example))
    if isinstance(example, list) and example and all(isinstance(r, Mapping) for r in example):
        return pd.DataFrame.from_records(example)
    raise InvalidInput(
        f"cannot use a {type(example).__name__} as an input example",
        {
            "field": "input_example",
            "fix": "pass a pandas DataFrame, a dict of columns, one record as a dict, "
            "a list of records, or a numpy array",
        },
    )


def _is_scalar(value: Any) -> bool:
    """One value (not a column of values); strings count as one value."""
    return isinstance(value, str | bytes) or not hasattr(value, "__len__")


def _columns_of_frame(frame: Any) -> list[ColumnSpec]:
    specs = []
    for name in frame.columns:
        column = frame[name]
        sample = column.iloc[0] if len(column) else None
        specs.append(ColumnSpec(name=str(name), type=_type_of_dtype(column.dtype, sample)))
    return specs


def _tensor_spec(name: str, array: np.ndarray) -> ColumnSpec:
    shape = [-1, *array.shape[1:]] if array.ndim else [-1]
    return ColumnSpec(name=name, type=_type_of_dtype(array.dtype), shape=shape)


def input_signature(example: Any) -> Signature:
    """The input half of a signature, from an example (no model needed)."""
    if isinstance(example, np.ndarray):
        if example.ndim < 1:
            raise InvalidInput(
                "a tensor input example needs at least one dimension (the batch)",
                {"field": "input_example", "fix": "pass e.g. X[:5]"},
            )
        return Signature(kind="tensor", inputs=[_tensor_spec("input", example)])
    return Signature(kind="columns", inputs=_columns_of_frame(_as_frame(example)))


def output_specs(output: Any) -> list[ColumnSpec]:
    if _is_dataframe(output):
        return _columns_of_frame(output)
    if isinstance(output, Mapping):
        return [_tensor_spec(str(k), np.asarray(v)) for k, v in output.items() if v is not None]
    array = np.asarray(output)
    if array.ndim == 0:
        array = array.reshape(1)
    return [_tensor_spec("prediction", array)]


def infer_signature(
    example: Any, predict: Callable[[Any], Any] | None = None, wants: Wants = "frame"
) -> Signature:
    """Inputs from `example`; outputs from calling `predict` on the prepared example."""
    signature = input_signature(example)
    if predict is None:
        return signature
    prepared = InputAdapter(signature, wants)(example)
    signature.outputs = output_specs(predict(prepared))
    return signature


def _value_fits(value: Any, expected: ColumnType) -> bool:
    if expected == "object" or value is None:
        return True
    if expected == "float":
        return isinstance(value, int | float | np.integer | np.floating) and not isinstance(
            value, bool | np.bool_
        )
    if expected == "integer":
        return isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)
    if expected == "boolean":
        return isinstance(value, bool | np.bool_)
    if expected == "string":
        return isinstance(value, str)
    return isinstance(value, datetime | date | np.datetime64)


def _dtype_fits(actual: ColumnType, expected: ColumnType) -> bool:
    if expected in {"object", actual}:
        return True
    # Widening is safe: integers into float columns, booleans into integers.
    return (expected, actual) in {("float", "integer"), ("integer", "boolean")}


def _wrong_type(column: str, expected: str, got: str) -> InvalidInput:
    return InvalidInput(
        f"column {column!r} should be {expected}, got {got}",
        {"field": column, "expected": expected, "got": got, "fix": f"send {column} as {expected}"},
    )


def _missing(columns: list[str], expected: list[str]) -> InvalidInput:
    return InvalidInput(
        f"missing input column{'s' if len(columns) > 1 else ''}: {', '.join(columns)}",
        {"field": columns[0], "missing": columns, "expected": expected},
    )


class InputAdapter:
    """Validates data against a signature and converts it for the model (see module doc)."""

    def __init__(self, signature: Signature, wants: Wants) -> None:
        self.signature = signature
        self.wants = wants
        self.names = signature.input_names
        self.types: list[ColumnType] = [c.type for c in signature.inputs]
        self.numeric = all(t in _NUMERIC_KINDS for t in self.types)

    def __call__(self, data: Any) -> Any:
        if self.signature.kind == "tensor":
            return self._tensor(data)
        if isinstance(data, Mapping) and all(_is_scalar(v) for v in data.values()):
            return self._record(data)
        if isinstance(data, np.ndarray):
            return self._positional(data)
        return self._frame(_as_frame(data))

    def _record(self, record: Mapping[str, Any]) -> Any:
        missing = [n for n in self.names if n not in record]
        if missing:
            raise _missing(missing, self.names)
        row = [record[n] for n in self.names]
        for name, expected, value in zip(self.names, self.types, row, strict=True):
            if not _value_fits(value, expected):
                raise _wrong_type(name, expected, type(value).__name__)
        if self.wants == "array":
            return np.array([row], dtype=np.float64 if self.numeric else object)
        import pandas as pd

        return pd.DataFrame([row], columns=self.names)

    def _frame(self, frame: Any) -> Any:
        missing = [n for n in self.names if n not in frame.columns]
        if missing:
            raise _missing(missing, self.names)
        for name, expected in zip(self.names, self.types, strict=True):
            column = frame[name]
            sample = column.iloc[0] if len(column) else None
            actual = _type_of_dtype(column.dtype, sample)
            if not _dtype_fits(actual, expected):
                raise _wrong_type(name, expected, actual)
        selected = frame[self.names]
        if self.wants == "array":
            return selected.to_numpy(dtype=np.float64 if self.numeric else object)
        return selected

    def _positional(self, array: np.ndarray) -> Any:
        if array.ndim == 1:
            array = array.reshape(1, -1)
        if array.ndim != 2 or array.shape[1] != len(self.names):
            raise InvalidInput(
                f"an array input needs {len(self.names)} columns ({', '.join(self.names)}), "
                f"got shape {list(array.shape)}",
                {"field": "input", "expected": self.names},
            )
        if self.numeric and array.dtype.kind not in "biuf":
            raise _wrong_type("input", "a numeric array", str(array.dtype))
        if self.wants == "array":
            return array
        import pandas as pd

        return pd.DataFrame(array, columns=self.names)

    def _tensor(self, data: Any) -> np.ndarray:
        spec = self.signature.inputs[0]
        if _is_dataframe(data):
            data = data.to_numpy()
        try:
            array = np.asarray(data)
        except (TypeError, ValueError) as exc:
            raise _wrong_type(spec.name, "a numeric array", type(data).__name__) from exc
        shape = spec.shape or [-1]
        if array.ndim == len(shape) - 1:
            array = array.reshape(1, *array.shape)  # one record without the batch axis
        if array.ndim != len(shape) or any(
            want not in {-1, got} for want, got in zip(shape[1:], array.shape[1:], strict=True)
        ):
            raise InvalidInput(
                f"input {spec.name!r} should have shape {shape}, got {list(array.shape)}",
                {"field": spec.name, "expected": shape, "got": list(array.shape)},
            )
        actual = _type_of_dtype(array.dtype)
        if not _dtype_fits(actual, spec.type):
            raise _wrong_type(spec.name, spec.type, actual)
        return array
