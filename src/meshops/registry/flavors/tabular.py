"""Column converters for scikit-learn pipelines over raw tables (the training template's).

A served model receives the raw columns of its signature, one record or a batch, as pandas
builds them: a float column holding a None arrives as `object`, a boolean column with a
missing value as `object` of True/False/None, a timestamp as `datetime64` or as an ISO
string. These transformers make each kind of column what the next scikit-learn step
expects, the same way at training and at serving time:

- `AsNumbers`: numbers and booleans to float64, any missing value (None, NaN, pd.NA) to NaN;
- `AsCategories`: any value to its string ("True", "red", "3"), missing to NaN, so a
  `SimpleImputer` and a `OneHotEncoder` see uniform strings (an encoder refuses a column
  mixing booleans and strings);
- `DatetimeParts`: each datetime column to numeric parts (year, month, day, day of week,
  hour, days since 1970-01-01), missing to NaN; time zones are converted to UTC.

They are pure (fit records only the input's column names and counts) and their state is
plain data, so the registry's skops loader trusts exactly these three names
(`skops_types.EXTRA_TYPES`) beside scikit-learn's own.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

DATETIME_PARTS = ("year", "month", "day", "dayofweek", "hour", "epoch_days")


def _frame(data: Any) -> Any:
    if isinstance(data, pd.DataFrame):
        return data
    array = np.asarray(data, dtype=object)
    if array.ndim == 1:
        array = array.reshape(-1, 1)
    return pd.DataFrame(array)


class _ColumnConverter(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    def fit(self, data: Any, y: Any = None) -> _ColumnConverter:
        frame = _frame(data)
        self.n_features_in_ = frame.shape[1]
        self.feature_names_in_ = np.asarray([str(c) for c in frame.columns], dtype=object)
        return self

    def _checked(self, data: Any) -> Any:
        frame = _frame(data)
        if frame.shape[1] != self.n_features_in_:
            raise ValueError(
                f"{type(self).__name__} was fitted on {self.n_features_in_} columns, "
                f"got {frame.shape[1]}"
            )
        return frame

    def get_feature_names_out(self, input_features: Any = None) -> Any:
        return np.asarray(self.feature_names_in_, dtype=object)


class AsNumbers(_ColumnConverter):
    """Numbers and booleans as float64; missing values as NaN."""

    def transform(self, data: Any) -> Any:
        frame = self._checked(data)
        columns = []
        for name in frame.columns:
            column = frame[name]
            if column.dtype == object:
                column = column.map(lambda v: float(v) if isinstance(v, bool) else v)
            try:
                values = pd.to_numeric(column, errors="raise")
            except (TypeError, ValueError) as exc:
                message = f"column {name!r} holds a value that is not a number: {exc}"
                raise ValueError(message) from exc
            columns.append(pd.Series(values).to_numpy(dtype=np.float64, na_value=np.nan))
        return np.column_stack(columns) if columns else np.empty((len(frame), 0))


def _category(value: Any) -> Any:
    if value is None or value is pd.NA or value is pd.NaT:
        return np.nan
    if isinstance(value, float | np.floating) and math.isnan(value):
        return np.nan
    if isinstance(value, bool | np.bool_):
        return "True" if value else "False"
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value)


class AsCategories(_ColumnConverter):
    """Every value as its string; missing values as NaN (for an imputer or encoder)."""

    def transform(self, data: Any) -> Any:
        frame = self._checked(data)
        out = np.empty(frame.shape, dtype=object)
        for j, name in enumerate(frame.columns):
            out[:, j] = [_category(v) for v in frame[name].tolist()]
        return out


class DatetimeParts(_ColumnConverter):
    """Each datetime column as year, month, day, day of week, hour and days since 1970."""

    def transform(self, data: Any) -> Any:
        frame = self._checked(data)
        columns = []
        for name in frame.columns:
            values = pd.to_datetime(frame[name], errors="coerce", utc=True, format="mixed")
            if values.isna().sum() > frame[name].isna().sum():
                raise ValueError(f"column {name!r} holds a value that is not a date or time")
            epoch = (values - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(days=1)
            for part in (
                values.dt.year,
                values.dt.month,
                values.dt.day,
                values.dt.day_of_week,
                values.dt.hour,
                epoch,
            ):
                columns.append(np.asarray(part, dtype=np.float64))
        return np.column_stack(columns) if columns else np.empty((len(frame), 0))

    def get_feature_names_out(self, input_features: Any = None) -> Any:
        return np.asarray(
            [f"{name}_{part}" for name in self.feature_names_in_ for part in DATETIME_PARTS],
            dtype=object,
        )


TRUSTED_TYPES = frozenset(
    f"{__name__}.{cls.__name__}" for cls in (AsNumbers, AsCategories, DatetimeParts)
)

__all__ = ["TRUSTED_TYPES", "AsCategories", "AsNumbers", "DatetimeParts"]
