"""Serving types and pure logic: endpoints, routes, request parsing, record validation.

No I/O and no heavy imports (numpy/pandas are imported where a model is called), so the
SDK and the CLI import this module cheaply.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, Field

from meshops.kernel.errors import InvalidInput
from meshops.kernel.urn import Urn

ENDPOINT_NAME = re.compile(r"^[a-z][a-z0-9_\-]{0,62}$")
MAX_RECORDS = 10_000
REQUEST_ID = re.compile(r"^[A-Za-z0-9_.:\-]{1,128}$")
REQUEST_ID_HEADER = "x-request-id"  # sets a prediction's request id; echoed in the answer


class FeatureEnrichment(BaseModel):
    """Request enrichment from the online feature store: when a record carries every
    `entity_keys` column, `features` (names or a feature service) are looked up and added to
    the record before the model sees it; values the request sends itself win."""

    features: list[str] | str
    entity_keys: list[str]


class Endpoint(BaseModel):
    name: str
    domain: str
    model: str  # the primary route: models:/<name>@<alias> (or a pinned version)
    canary: str | None = None  # a model URI receiving `canary_percent` of requests
    canary_percent: float = 0.0
    shadows: list[str] = Field(default_factory=list)  # scored and logged, never returned
    enrichment: FeatureEnrichment | None = None
    # Load pickled (python-flavor) models: unpickling runs code from the model file, so it
    # is an explicit, audited choice per endpoint, never a default.
    trust_model_code: bool = False
    description: str = ""
    created_by: str
    created_at: datetime
    updated_at: datetime
    generation: int = 1  # bumped on every change so running endpoints notice it

    @property
    def urn(self) -> str:
        return endpoint_urn(self.name)

    @property
    def log_product(self) -> str:
        return f"{self.domain}.{log_product_name(self.name)}"


class Prediction(BaseModel):
    request_id: str
    endpoint: str
    model: str
    model_version: int
    predictions: list[Any]


class FeedbackItem(BaseModel):
    request_id: str
    label: Any
    record: int = 0  # which record of a multi-record request the label is for


class RolledLog(BaseModel):
    endpoint: str
    product: str
    version: str | None  # None when there was nothing new to roll
    rows: int
    chunks: int


def endpoint_urn(name: str) -> str:
    return str(Urn.of("endpoint", name))


def log_product_name(endpoint: str) -> str:
    """Data product names are SQL identifiers; endpoint names may carry '-'."""
    return f"{endpoint.replace('-', '_')}_predictions"


def check_endpoint_name(name: str) -> str:
    if not isinstance(name, str) or not ENDPOINT_NAME.match(name):
        raise InvalidInput(
            f"invalid endpoint name {name!r}",
            {
                "field": "name",
                "fix": "start with a lower-case letter; use a-z, 0-9, '_' and '-' "
                "(at most 63 characters), e.g. churn-api",
            },
        )
    return name


def model_uri(ref: str) -> str:
    """`churn@champion`, `churn/3` or a full `models:/...` URI -> a `models:/` URI."""
    if not isinstance(ref, str) or not ref:
        raise InvalidInput("a model reference is required", {"field": "model"})
    uri = ref if ref.startswith("models:/") else f"models:/{ref}"
    from meshops.registry.models import parse_model_uri

    try:
        parse_model_uri(uri)
    except InvalidInput as exc:
        raise InvalidInput(
            f"not a model reference: {ref!r}",
            {"field": "model", "fix": "e.g. churn@champion, churn/3 or models:/churn@champion"},
        ) from exc
    return uri


def model_name_of(uri: str) -> str:
    from meshops.registry.models import parse_model_uri

    return parse_model_uri(uri).name


# Flavors whose loading runs code from the model file: served only with trust_model_code.
CODE_FLAVORS = frozenset({"python", "mlflow-sklearn-pickle"})


def check_trusted(uri: str, version: Any, trust: bool) -> None:
    """Refuse a pickled (code-running) model version unless trust was given explicitly."""
    if version.flavor in CODE_FLAVORS and not trust:
        raise InvalidInput(
            f"{uri} resolves to a pickled {version.flavor!r} model (version "
            f"{version.version}); loading it runs code from the model file",
            {
                "field": "trust_model_code",
                "model": uri,
                "fix": "only if you trust whoever registered it, set trust_model_code=True "
                "(audited)",
            },
        )


def check_percent(percent: float) -> float:
    if not 0.0 <= float(percent) <= 100.0:
        raise InvalidInput(
            f"canary percent must be between 0 and 100, got {percent}",
            {"field": "canary_percent"},
        )
    return float(percent)


class PayloadTooLarge(InvalidInput):
    error = "payload_too_large"
    http_status = 413


def check_request_id(request_id: str) -> str:
    if not REQUEST_ID.match(request_id):
        raise InvalidInput(
            f"invalid request id {request_id[:140]!r}",
            {"field": "request_id", "fix": "use 1-128 letters, digits and . _ : -"},
        )
    return request_id


# --- request bodies -------------------------------------------------------------------------


def records_of(body: Any) -> list[dict[str, Any]]:
    """The records of a predict body: `{"records": [...]}` (meshops), or the MLflow scoring
    forms `{"dataframe_records": [...]}`, `{"dataframe_split": {columns, data}}` and
    `{"inputs": [...] | {col: [...]}}`."""
    if not isinstance(body, Mapping):
        raise _bad_body("the body must be a JSON object")
    if "records" in body:
        records = body["records"]
    elif "dataframe_records" in body:
        records = body["dataframe_records"]
    elif "dataframe_split" in body:
        records = _from_split(body["dataframe_split"])
    elif "inputs" in body:
        records = _from_inputs(body["inputs"])
    else:
        raise _bad_body("the body has no `records`")
    if isinstance(records, Mapping):
        records = [records]
    if not isinstance(records, list) or not records:
        raise _bad_body("`records` must be a non-empty list of objects")
    if len(records) > MAX_RECORDS:
        raise _bad_body(f"at most {MAX_RECORDS} records per request, got {len(records)}")
    for i, record in enumerate(records):
        if not isinstance(record, dict):
            raise InvalidInput(
                f"record {i} is not an object",
                {"record": i, "field": f"records[{i}]", "fix": "send {column: value, ...}"},
            )
    return records


_TRUE = {"true": True, "1": True, "false": False, "0": False}


def proba_of(body: Any, query: str = "") -> bool:
    """The `proba` option of a predict request: `"proba": true` in the body or
    `?proba=true` in the query (either asks for class probabilities)."""
    wanted = False
    if isinstance(body, Mapping) and "proba" in body:
        if not isinstance(body["proba"], bool):
            raise InvalidInput(
                f"`proba` must be true or false, got {body['proba']!r}"[:200],
                {"field": "proba", "fix": 'send "proba": true for class probabilities'},
            )
        wanted = body["proba"]
    if query:
        from urllib.parse import parse_qs

        for value in parse_qs(query).get("proba", []):
            if value.lower() not in _TRUE:
                raise InvalidInput(
                    f"?proba= must be true or false, got {value[:40]!r}",
                    {"field": "proba", "fix": "use ?proba=true"},
                )
            wanted = wanted or _TRUE[value.lower()]
    return wanted


def _bad_body(problem: str) -> InvalidInput:
    return InvalidInput(
        problem,
        {"field": "records", "fix": 'send {"records": [{"column": value, ...}, ...]}'},
    )


def _from_split(split: Any) -> list[dict[str, Any]]:
    if not isinstance(split, Mapping) or not isinstance(split.get("columns"), list):
        raise _bad_body("`dataframe_split` needs `columns` and `data`")
    columns = [str(c) for c in split["columns"]]
    data = split.get("data")
    if not isinstance(data, list) or not all(isinstance(r, list) for r in data):
        raise _bad_body("`dataframe_split.data` must be a list of rows")
    for i, row in enumerate(data):
        if len(row) != len(columns):
            raise InvalidInput(
                f"record {i} has {len(row)} values for {len(columns)} columns",
                {"record": i, "field": "dataframe_split.data"},
            )
    return [dict(zip(columns, row, strict=True)) for row in data]


def _from_inputs(inputs: Any) -> Any:
    if isinstance(inputs, Mapping) and all(isinstance(v, list) for v in inputs.values()):
        columns = list(inputs)
        lengths = {len(v) for v in inputs.values()}
        if len(lengths) != 1:
            raise _bad_body("every column of `inputs` must have the same length")
        return [{c: inputs[c][i] for c in columns} for i in range(lengths.pop())]
    return inputs


# --- validation against a model signature ---------------------------------------------------


def _fits(value: Any, expected: str) -> bool:
    # numbers' ABCs also admit numpy scalars (an SDK caller's values), without importing numpy.
    if expected == "object" or value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True  # a missing value (an SDK caller's NaN)
    if expected == "float":
        return isinstance(value, numbers.Real) and not _is_bool(value)
    if expected == "integer":
        if isinstance(value, float):
            return value.is_integer()  # 3.0: JSON clients cannot always tell
        return isinstance(value, numbers.Integral) and not _is_bool(value)
    if expected == "boolean":
        return _is_bool(value)
    if expected == "string":
        return isinstance(value, str)
    # JSON carries datetimes as ISO strings.
    return isinstance(value, str | datetime | date)


def _is_bool(value: Any) -> bool:
    return isinstance(value, bool) or type(value).__name__ == "bool_"


# Exact Python types a JSON value of each signature type arrives as (None: a null). The
# fast check compares type objects only; anything else (numpy scalars from the SDK, bools
# in a float column ...) takes the per-value walk of `validate_records`, which accepts
# subclasses and names the first bad record and column.
_JSON_TYPES: dict[str, frozenset[type]] = {
    "float": frozenset({float, int, type(None)}),
    "integer": frozenset({int, type(None)}),
    "boolean": frozenset({bool, type(None)}),
    "string": frozenset({str, type(None)}),
    "datetime": frozenset({str, type(None)}),
}


class SignatureRows:
    """Turns records into rows in signature order, checked against the signature's (name,
    type) columns. The common request passes one check per signature type that compares
    the values' types by identity; only a request failing it is walked value by value
    (`validate_records`) to accept subclasses or build the error naming record and column."""

    def __init__(self, columns: list[tuple[str, str]]) -> None:
        self.columns = columns
        self.names = [name for name, _ in columns]
        by_type: dict[str, list[int]] = {}
        for j, (_, expected) in enumerate(columns):
            by_type.setdefault(expected, []).append(j)
        # "object" columns take anything: nothing to check.
        self._checks = [(_JSON_TYPES[t], js) for t, js in by_type.items() if t in _JSON_TYPES]

    def __call__(self, records: list[dict[str, Any]]) -> list[list[Any]]:
        names = self.names
        try:
            rows = [[record[name] for name in names] for record in records]
        except KeyError:
            return validate_records(records, self.columns)
        for allowed, positions in self._checks:
            if not {type(row[j]) for row in rows for j in positions} <= allowed:
                return validate_records(records, self.columns)
        return rows


def validate_records(
    records: list[dict[str, Any]], columns: list[tuple[str, str]]
) -> list[list[Any]]:
    """Check each record against the signature's (name, type) columns; returns the rows in
    signature order. Every column accepts null. The error names the record index and the
    column (`record 3: column 'x' should be a number, got "abc"`) with a fix, so a client
    sending a batch can find the bad row."""
    from meshops.registry.signature import missing_column, wrong_value

    names = [c for c, _ in columns]
    rows = []
    for i, record in enumerate(records):
        row = []
        for name, expected in columns:
            if name not in record:
                raise missing_column(i, name, names)
            value = record[name]
            if not _fits(value, expected):
                raise wrong_value(i, name, expected, value)
            row.append(value)
        rows.append(row)
    return rows


def jsonable(value: Any) -> Any:
    """Model outputs (numpy scalars/arrays) as plain JSON values."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    return value
