"""Materializers turn step outputs into bytes for the blob store and back.

Built in: Arrow tables (IPC), pandas DataFrames (Parquet), NumPy arrays (.npy without
pickle), scikit-learn estimators (skops, never pickle) and JSON values. Register more with
`register()`; the first materializer whose `accepts` matches wins, most specific first.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from meshops.kernel.errors import InvalidInput


@dataclass(frozen=True)
class Materializer:
    name: str
    accepts: Callable[[Any], bool]
    dump: Callable[[Any], bytes]
    load: Callable[[bytes], Any]


def _is_arrow_table(value: Any) -> bool:
    module = type(value).__module__
    if not module.startswith("pyarrow"):
        return False
    import pyarrow as pa

    return isinstance(value, pa.Table)


def _dump_arrow(table: Any) -> bytes:
    import pyarrow as pa

    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


def _load_arrow(data: bytes) -> Any:
    import pyarrow as pa

    return pa.ipc.open_file(pa.py_buffer(data)).read_all()


def _is_dataframe(value: Any) -> bool:
    if not type(value).__module__.startswith("pandas"):
        return False
    import pandas as pd

    return isinstance(value, pd.DataFrame)


def _dump_dataframe(frame: Any) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, engine="pyarrow", index=True)
    return buffer.getvalue()


def _load_dataframe(data: bytes) -> Any:
    import pandas as pd

    return pd.read_parquet(io.BytesIO(data), engine="pyarrow")


def _is_ndarray(value: Any) -> bool:
    if type(value).__module__ != "numpy":
        return False
    import numpy as np

    return isinstance(value, np.ndarray) and value.dtype != object


def _dump_ndarray(array: Any) -> bytes:
    import numpy as np

    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _load_ndarray(data: bytes) -> Any:
    import numpy as np

    return np.load(io.BytesIO(data), allow_pickle=False)


def _is_sklearn_estimator(value: Any) -> bool:
    if not type(value).__module__.startswith("sklearn"):
        return False
    from sklearn.base import BaseEstimator

    return isinstance(value, BaseEstimator)


def _dump_sklearn(model: Any) -> bytes:
    import skops.io as sio

    return _deterministic_zip(sio.dumps(model))


_SKOPS_ID = re.compile(r'("__id__": |")(\d{6,})(\.npy"|[,\n}])')


def _deterministic_zip(data: bytes) -> bytes:
    """skops stamps its zip with the current time and names objects and array files by
    `id()`; repack it with fixed timestamps and ids numbered in order of appearance, so the
    same model gives the same digest (the cache and `reproduce` compare digests)."""
    import zipfile

    source = zipfile.ZipFile(io.BytesIO(data))
    numbering: dict[str, str] = {}

    def renumber(match: re.Match[str]) -> str:
        number = numbering.setdefault(match.group(2), str(len(numbering)))
        return f"{match.group(1)}{number}{match.group(3)}"

    schema = _SKOPS_ID.sub(renumber, source.read("schema.json").decode())
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as target:
        renamed = {_new_name(n, numbering): n for n in source.namelist()}
        for new_name, name in sorted(renamed.items()):
            content = schema.encode() if name == "schema.json" else source.read(name)
            info = zipfile.ZipInfo(new_name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            target.writestr(info, content)
    return out.getvalue()


def _new_name(name: str, numbering: dict[str, str]) -> str:
    stem = name.removesuffix(".npy")
    return f"{numbering[stem]}.npy" if stem in numbering else name


def _load_sklearn(data: bytes) -> Any:
    """Only names on the registry's explicit skops list (exact names, functions limited to
    a few numpy ufuncs): an artifact may come from another user's step (a cache hit)."""
    import skops.io as sio

    from meshops.registry.flavors.skops_types import refused_names

    try:
        untrusted = sio.get_untrusted_types(data=data)
        refused = refused_names(data, untrusted, frozenset())
    except Exception as exc:  # a broken archive: skops raises many kinds
        raise InvalidInput(f"model artifact is not a skops file: {exc}") from exc
    if refused:
        raise InvalidInput(
            f"model artifact names types or functions outside the allowed "
            f"scikit-learn/NumPy/SciPy list: {refused}",
            {"fix": "only scikit-learn estimators are materialized with skops"},
        )
    return sio.loads(data, trusted=untrusted)


_JSON_SCALARS = (str, int, float, bool, type(None))


def _is_json(value: Any) -> bool:
    if isinstance(value, _JSON_SCALARS):
        return True
    if isinstance(value, list):
        return all(_is_json(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_json(v) for k, v in value.items())
    return False


def _dump_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def _load_json(data: bytes) -> Any:
    return json.loads(data)


_REGISTRY: list[Materializer] = [
    Materializer("json", _is_json, _dump_json, _load_json),
    Materializer("arrow", _is_arrow_table, _dump_arrow, _load_arrow),
    Materializer("pandas", _is_dataframe, _dump_dataframe, _load_dataframe),
    Materializer("numpy", _is_ndarray, _dump_ndarray, _load_ndarray),
    Materializer("sklearn", _is_sklearn_estimator, _dump_sklearn, _load_sklearn),
]


def register(materializer: Materializer) -> None:
    """Add a materializer; it is tried before the built-in ones."""
    _REGISTRY.insert(0, materializer)


def for_value(value: Any) -> Materializer:
    for materializer in _REGISTRY:
        if materializer.accepts(value):
            return materializer
    raise InvalidInput(
        f"no materializer for a step output of type {type(value).__module__}."
        f"{type(value).__qualname__}",
        {
            "fix": "return Arrow, pandas, NumPy, scikit-learn or JSON values, or register "
            "one with meshops.pipelines.materializers.register()"
        },
    )


def by_name(name: str) -> Materializer:
    for materializer in _REGISTRY:
        if materializer.name == name:
            return materializer
    raise InvalidInput(
        f"unknown materializer {name!r}",
        {"fix": "register it (materializers.register) in the process that loads the artifact"},
    )


def type_name(value: Any) -> str:
    return f"{type(value).__module__}.{type(value).__qualname__}"
