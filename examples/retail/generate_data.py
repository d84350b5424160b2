"""Generate the example's source files with a fixed seed: data/orders.csv, data/customers.parquet.

python examples/retail/generate_data.py [--rows 5000]
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent


def generate(
    out: Path = HERE / "data", rows: int = 5000, customers: int = 500, seed: int = 7
) -> Path:
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC).replace(microsecond=0)
    ids = np.arange(1, customers + 1)
    segments = np.array(["consumer", "business", "public"])
    pq.write_table(
        pa.table(
            {
                "customer_id": ids,
                "email": [f"customer{i}@example.com" for i in ids],
                "country": rng.choice(np.array(["DE", "FR", "NL", "US"]), customers),
                "segment": rng.choice(segments, customers),
            }
        ),
        out / "customers.parquet",
    )
    placed = [now - timedelta(minutes=int(m)) for m in rng.integers(0, 60 * 24 * 30, rows)]
    orders = pa.table(
        {
            "order_id": np.arange(1, rows + 1),
            "customer_id": rng.integers(1, customers + 1, rows),
            "amount": np.round(rng.gamma(2.0, 30.0, rows), 2),
            "status": rng.choice(
                np.array(["placed", "shipped", "returned"]), rows, p=[0.2, 0.7, 0.1]
            ),
            "placed_at": [p.strftime("%Y-%m-%d %H:%M:%S") for p in placed],
        }
    )
    import pyarrow.csv as pacsv

    pacsv.write_csv(orders, out / "orders.csv")
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Write the retail example's source files.")
    parser.add_argument("--rows", type=int, default=5000, help="orders to generate")
    rows, customers = parser.parse_args().rows, 500
    out = generate(rows=rows, customers=customers)
    print(f"wrote {out / 'customers.parquet'} ({customers} customers)")
    print(f"wrote {out / 'orders.csv'} ({rows} orders)")
