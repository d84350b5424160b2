"""Python transform: takes the inputs as Arrow tables, returns a pandas DataFrame."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa


def transform(inputs: dict[str, pa.Table]) -> pd.DataFrame:
    frame = inputs["customers"].to_pandas()
    frame["email"] = frame["email"].str.lower()
    return frame[["customer_id", "email", "country", "segment"]]
