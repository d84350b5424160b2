"""Calling a served model: one route's model, its signature check and its input forms.

Scoring is in two steps so that several requests can share one model call (batching.py):
`checked_rows` validates one request's records against the route's signature (the error
names that request's record and column), and `score_rows` runs the model over rows that
were checked, from one request or from many put end to end. `score` is both for one
request.

A model call has a fixed cost (a scikit-learn estimator's input checks, the array
conversion) that, for a one-record request, is most of the call. Rows from many requests
in one call pay it once. A model whose output is not one value per row (an aggregate over
the batch) cannot be split back into requests: `score_rows(..., per_row=True)` then returns
None and the caller scores each request on its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from meshops.kernel.errors import MeshopsError
from meshops.serving import metrics
from meshops.serving.models import SignatureRows, jsonable

if TYPE_CHECKING:
    from meshops.registry.loaded import LoadedModel

_NUMERIC = {"integer", "float", "boolean"}


@dataclass(frozen=True)
class Route:
    uri: str
    model: LoadedModel
    rows: SignatureRows | None  # checks records against a columns signature
    numeric: bool
    sklearn: bool  # a scikit-learn estimator (see `score_rows` on its finiteness check)
    counts: metrics.RouteCounts  # requests and latencies, flushed to Prometheus in batches

    @property
    def version(self) -> int:
        return self.model.version.version


def route_of(endpoint: str, uri: str, model: LoadedModel, role: str) -> Route:
    signature = model.signature
    columns = None
    if signature is not None and signature.kind == "columns":
        columns = [(c.name, str(c.type)) for c in signature.inputs]
    return Route(
        uri=uri,
        model=model,
        rows=SignatureRows(columns) if columns is not None else None,
        numeric=bool(columns) and all(t in _NUMERIC for _, t in columns or []),
        sklearn=type(model.raw).__module__.startswith("sklearn."),
        counts=metrics.TALLY.counts_for(endpoint, str(model.version.version), role),
    )


def score(route: Route, records: list[dict[str, Any]], *, proba: bool = False) -> list[Any]:
    """Validate one request's records and run the model: one JSON output per record."""
    outputs = score_rows(route, checked_rows(route, records), proba=proba)
    assert outputs is not None  # only `per_row=True` answers None
    return outputs


def checked_rows(route: Route, records: list[dict[str, Any]]) -> list[Any]:
    """One request's records checked against the route's signature, as rows in signature
    order; the records themselves when the model has no columns signature. Raises
    InvalidInput naming the record and column."""
    return route.rows(records) if route.rows is not None else records


def score_rows(
    route: Route, rows: list[Any], *, proba: bool = False, per_row: bool = False
) -> list[Any] | None:
    """Run the model over checked rows; one JSON output per row (with `proba`, an object:
    the label as `prediction` and `proba_<class>` per class). `per_row`: the rows come from
    several requests, so an output that is not one value per row is None, not spread.

    The model input is built from the checked values directly: a 2-D float array (NaN for
    null) when every column is numeric (the adapter's array path), else a dict of columns
    that the adapter types by the signature (never by the batch). A scikit-learn estimator
    checks on every call that its input holds no NaN or infinity (about a sixth of a
    one-record prediction). When the float array is checked finite here (one vectorised
    pass), that repeat is skipped (`assume_finite`); an array with a NaN (a null) goes
    through the estimator's own check, which refuses it or lets a model that takes NaN
    handle it, as before."""
    finite = False
    if route.rows is not None:
        if route.numeric:
            import numpy as np

            data: Any = np.array(rows, dtype=np.float64)
            finite = route.sklearn and bool(np.isfinite(data).all())
        else:
            names = route.rows.names
            data = {name: [row[j] for row in rows] for j, name in enumerate(names)}
    else:
        data = rows
    try:
        if finite:
            with _assuming_finite():
                return _run(route, data, len(rows), proba=proba, per_row=per_row)
        return _run(route, data, len(rows), proba=proba, per_row=per_row)
    except MeshopsError:
        raise
    except Exception as exc:
        raise MeshopsError(
            f"model {route.model.uri} failed: {type(exc).__name__}: {exc}",
            {"model": route.model.uri},
        ) from exc


@contextmanager
def _assuming_finite() -> Iterator[None]:
    """scikit-learn's `config_context(assume_finite=True)` for this thread. Its public form
    copies and validates the whole configuration twice (a few microseconds, as much as the
    rest of a request's bookkeeping); where scikit-learn keeps the thread's configuration
    as a dict, only the one key is set and restored."""
    import sklearn._config as config

    local = getattr(config, "_get_threadlocal_config", None)
    settings = local() if local is not None else None
    if not isinstance(settings, dict) or "assume_finite" not in settings:
        import sklearn

        with sklearn.config_context(assume_finite=True):
            yield
        return
    before = settings["assume_finite"]
    settings["assume_finite"] = True
    try:
        yield
    finally:
        settings["assume_finite"] = before


def _run(route: Route, data: Any, n: int, *, proba: bool, per_row: bool) -> list[Any] | None:
    if proba:
        labels, probabilities, classes = route.model.predict_proba(data)
        return _with_proba(jsonable(labels), jsonable(probabilities), classes, n)
    return _per_record(jsonable(route.model.predict(data)), n, per_row=per_row)


def _with_proba(
    labels: list[Any], probabilities: list[list[float]], classes: list[Any], n: int
) -> list[Any]:
    if len(labels) != n or len(probabilities) != n:
        raise ValueError(f"the model answered {len(labels)} labels for {n} records")
    names = [f"proba_{c}" for c in classes]
    return [
        {"prediction": label, **dict(zip(names, row, strict=True))}
        for label, row in zip(labels, probabilities, strict=True)
    ]


def _per_record(output: Any, n: int, *, per_row: bool = False) -> list[Any] | None:
    if isinstance(output, dict):
        columns = {k: v for k, v in output.items() if isinstance(v, list) and len(v) == n}
        if len(columns) == len(output):
            return [{k: v[i] for k, v in columns.items()} for i in range(n)]
    if isinstance(output, list) and len(output) == n:
        return output
    if per_row:
        return None
    return [output] * n if n == 1 else [output for _ in range(n)]


def logged_output(output: Any) -> Any:
    """What the prediction log keeps: the label, also when probabilities were asked for
    (windows and monitors read one `prediction` column whatever clients asked)."""
    if isinstance(output, dict) and "prediction" in output:
        return output["prediction"]
    return output
