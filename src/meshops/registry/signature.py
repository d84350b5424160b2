"""Signatures: inferred from an input example at log time, enforced at predict time.

`infer_signature` looks at an example (pandas DataFrame, dict of columns, one record as a
dict, list of records, or a numpy array) and at what the model returns for it.
`InputAdapter` checks incoming data against the signature and turns it into what the model
wants: a DataFrame with the signature's columns in order, or a 2-D array.

Checks are per record and per column, from the signature, never from the batch: every
column accepts null, a value of the wrong type is refused naming the record index and the
column (`record 3: column 'x' should be a number, got "abc"`), and the frame is built with
the signature's dtypes whatever the batch holds (`typed_column`): float64 with NaN for
null, int64 (nullable Int64 when a null is present), bool (object with None when a null is
present), object with None for strings, datetime64[us] with NaT (ISO 8601 strings parsed,
aware times converted to UTC). Which values a string column holds is not checked: unseen
categories reach the model, which decides.
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime
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
    if kind in "US" or str(dtype) in {"string", "str"} or type(dtype).__name__ == "StringDtype":
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
        # The first present value: a missing first value must not make a column "float".
        present = column.dropna() if column.dtype == object else column
        sample = present.iloc[0] if len(present) else None
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


# --- per-record values -> columns of the signature's dtypes ----------------------------------

_WORDS: dict[str, str] = {
    "float": "a number",
    "integer": "an integer",
    "boolean": "true or false",
    "string": "a string",
    "datetime": "an ISO 8601 date or date-time",
}
_FIXES: dict[str, str] = {
    "float": "send {c} as a JSON number (null when it is missing)",
    "integer": "send {c} as a whole JSON number (null when it is missing)",
    "boolean": "send {c} as true or false (null when it is missing)",
    "string": 'send {c} as a JSON string, e.g. "{e}" (null when it is missing)',
    "datetime": 'send {c} as an ISO 8601 string such as "2024-05-01T12:00:00" '
    "(null when it is missing)",
}


def is_null(value: Any) -> bool:
    """None, a float NaN, pandas' NA or NaT: a missing value in any column."""
    if value is None:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    return type(value).__name__ in {"NAType", "NaTType"}


def shown(value: Any) -> str:
    """A short JSON-like rendering of a refused value for an error message."""
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value if len(value) <= 40 else value[:40] + "...")
    if isinstance(value, numbers.Number):
        return str(value)
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list | tuple):
        return "a list"
    return f"a {type(value).__name__}"


def wrong_value(record: int, column: str, expected: str, value: Any) -> InvalidInput:
    """`record 3: column 'x' should be a number, got "abc"`, with record and field."""
    words = _WORDS.get(expected, expected)
    got = shown(value)
    fix = _FIXES.get(expected, "send {c} as " + words).format(c=column, e="text")
    return InvalidInput(
        f"record {record}: column {column!r} should be {words}, got {got}",
        {"record": record, "field": column, "expected": expected, "got": got, "fix": fix},
    )


def missing_column(record: int, column: str, expected: list[str]) -> InvalidInput:
    return InvalidInput(
        f"record {record} is missing column {column!r}",
        {
            "record": record,
            "field": column,
            "expected": expected,
            "fix": f"send every column of the signature ({', '.join(expected)}); "
            f"null for a missing value",
        },
    )


# Exact Python types that need no per-value walk (JSON values and their nulls).
_PLAIN: dict[str, frozenset[type]] = {
    "float": frozenset({float, int, type(None)}),
    "integer": frozenset({int, type(None)}),
    "boolean": frozenset({bool, type(None)}),
    "string": frozenset({str, type(None)}),
}


def _as_datetime(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day)
    elif isinstance(value, np.datetime64):
        import pandas as pd

        moment = pd.Timestamp(value).to_pydatetime()
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            return None
    else:
        return None
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment


def _walk(values: Sequence[Any], expected: str, column: str, first: int) -> list[Any]:
    """Every value checked against `expected` (nulls as None); the error names the record."""
    out: list[Any] = []
    for i, value in enumerate(values):
        if is_null(value):
            out.append(None)
            continue
        ok: Any = None
        if expected == "float":
            if isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_):
                ok = float(value)
        elif expected == "integer":
            whole = isinstance(value, float | np.floating) and float(value).is_integer()
            if whole or (
                isinstance(value, numbers.Integral) and not isinstance(value, bool | np.bool_)
            ):
                ok = int(value)
        elif expected == "boolean":
            if isinstance(value, bool | np.bool_):
                ok = bool(value)
        elif expected == "string":
            if isinstance(value, str):
                ok = str(value)
        elif expected == "datetime":
            ok = _as_datetime(value)
        else:
            ok = value
        if ok is None:
            raise wrong_value(first + i, column, expected, value)
        out.append(ok)
    return out


def typed_column(column: str, expected: ColumnType, values: Sequence[Any], first: int = 0) -> Any:
    """`values` (one per record, record `first` first) as an array of the signature's dtype;
    InvalidInput naming the record and the column for a value of another type."""
    if expected == "object":
        array = np.empty(len(values), dtype=object)
        array[:] = list(values)
        return array
    kinds = {type(v) for v in values}
    plain = _PLAIN.get(expected)
    clean = list(values) if plain is not None and kinds <= plain else None
    if clean is None:
        clean = _walk(values, expected, column, first)
    has_null = any(v is None for v in clean)
    if expected == "float":
        return np.array(clean, dtype=np.float64)
    if expected == "integer":
        if has_null:
            import pandas as pd

            return pd.array(clean, dtype="Int64")
        try:
            return np.array(clean, dtype=np.int64)
        except OverflowError:
            at = next(i for i, v in enumerate(clean) if not -(2**63) <= v < 2**63)
            raise wrong_value(first + at, column, "integer", clean[at]) from None
    if expected == "boolean" and not has_null:
        return np.array(clean, dtype=np.bool_)
    if expected == "datetime":
        return np.array(
            [np.datetime64("NaT") if v is None else np.datetime64(v, "us") for v in clean],
            dtype="datetime64[us]",
        )
    array = np.empty(len(clean), dtype=object)  # strings; booleans with a null
    array[:] = clean
    return array


def typed_frame(
    columns: Sequence[tuple[str, ColumnType]], data: Mapping[str, Sequence[Any]], first: int = 0
) -> Any:
    """A DataFrame with the signature's columns, in order, of the signature's dtypes."""
    import pandas as pd

    arrays = {}
    for name, expected in columns:
        array = typed_column(name, expected, data[name], first)
        # An explicit dtype: pandas 3 would infer `str` (NaN for None) from object arrays.
        arrays[name] = pd.Series(array, dtype=array.dtype, copy=False)
    return pd.DataFrame(arrays, copy=False)


def _keeps_dtype(dtype: Any, expected: ColumnType) -> bool:
    """Does a DataFrame column of `dtype` already hold `expected` values (no walk)?"""
    kind = getattr(dtype, "kind", "O")
    if expected == "object":
        return True
    if expected == "float":
        return kind == "f" and isinstance(dtype, np.dtype)
    if expected == "integer":
        return kind in "iu" or (kind == "b" and isinstance(dtype, np.dtype))
    if expected == "boolean":
        return kind == "b" and isinstance(dtype, np.dtype)
    if expected == "datetime":
        return kind == "M"
    return type(dtype).__name__ == "StringDtype"


class InputAdapter:
    """Validates data against a signature and converts it for the model (see module doc)."""

    def __init__(self, signature: Signature, wants: Wants) -> None:
        self.signature = signature
        self.wants = wants
        self.names = signature.input_names
        self.types: list[ColumnType] = [c.type for c in signature.inputs]
        self.columns = list(zip(self.names, self.types, strict=True))
        self.numeric = all(t in _NUMERIC_KINDS for t in self.types)

    def __call__(self, data: Any, first: int = 0) -> Any:
        """`first`: the index of data's first record, for error messages (batches)."""
        if self.signature.kind == "tensor":
            return self._tensor(data)
        if isinstance(data, Mapping):
            if all(_is_scalar(v) for v in data.values()):
                return self._columns({k: [v] for k, v in data.items()}, first)
            if not _is_dataframe(data):
                return self._columns(data, first)
        if isinstance(data, np.ndarray):
            return self._positional(data)
        if isinstance(data, list) and data and all(isinstance(r, Mapping) for r in data):
            return self._records(data, first)
        return self._frame(_as_frame(data), first)

    def _records(self, records: list[Mapping[str, Any]], first: int) -> Any:
        for i, record in enumerate(records):
            for name in self.names:
                if name not in record:
                    raise missing_column(first + i, name, self.names)
        return self._columns({n: [r[n] for r in records] for n in self.names}, first)

    def _columns(self, data: Mapping[str, Any], first: int) -> Any:
        missing = [n for n in self.names if n not in data]
        if missing:
            raise _missing(missing, self.names)
        values = {n: list(data[n]) for n in self.names}
        if len({len(v) for v in values.values()}) > 1:
            raise InvalidInput(
                "the input columns have different lengths",
                {"field": "input", "fix": "send one value per record in every column"},
            )
        if self.wants == "array" and self.numeric:
            return np.column_stack(
                [
                    np.asarray(typed_column(n, t, values[n], first), dtype=np.float64)
                    for n, t in self.columns
                ]
            )
        frame = typed_frame(self.columns, values, first)
        if self.wants == "array":
            return frame.to_numpy(dtype=object)
        return frame

    def _frame(self, frame: Any, first: int = 0) -> Any:
        missing = [n for n in self.names if n not in frame.columns]
        if missing:
            raise _missing(missing, self.names)
        selected = frame[self.names]
        walk = [(n, t) for n, t in self.columns if not _keeps_dtype(selected[n].dtype, t)]
        if walk:
            import pandas as pd

            selected = selected.copy()
            for name, expected in walk:
                column = typed_column(name, expected, selected[name].tolist(), first)
                selected[name] = pd.Series(column, index=selected.index, dtype=column.dtype)
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
