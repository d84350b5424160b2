"""The rows digest that recognises appends: independent of chunking, buffers shared by
slices and the wire codec; a prefix's digest (whole batches reused) equals the digest of
the prefix itself."""

from __future__ import annotations

import pyarrow as pa

from meshops.kernel.wire import decode_table, encode_table
from meshops.mesh.iceberg import DIGEST_BATCH_ROWS, RowsDigest, content_digest


def table(rows: int, start: int = 0) -> pa.Table:
    ids = pa.array(range(start, start + rows), pa.int64())
    return pa.table(
        {
            "id": ids,
            "name": pa.array([f"n{i % 97}" for i in range(start, start + rows)]),
            "score": pa.array([None if i % 5 == 0 else i / 3 for i in range(start, start + rows)]),
        }
    )


def test_the_same_rows_have_the_same_digest_however_they_are_held() -> None:
    whole = table(50)
    assert content_digest(whole) == content_digest(table(80).slice(0, 50))
    assert content_digest(whole) == content_digest(pa.concat_tables([table(7), table(43, 7)]))
    assert content_digest(whole) == content_digest(decode_table(encode_table(whole)))
    assert content_digest(whole) != content_digest(table(50, 1))
    assert content_digest(whole) != content_digest(whole.select(["id", "name"]))


def test_a_prefix_digest_equals_the_digest_of_the_prefix() -> None:
    rows = DIGEST_BATCH_ROWS * 2 + 1000
    big = pa.table({"id": pa.array(range(rows), pa.int64())})
    digest = RowsDigest(big)
    for count in (0, 10, DIGEST_BATCH_ROWS, DIGEST_BATCH_ROWS + 7, rows):
        assert digest.prefix(count, ["id"]) == content_digest(big.slice(0, count))
    small = table(30)
    assert RowsDigest(small).prefix(20, ["id", "name"]) == content_digest(
        table(20).select(["id", "name"])
    )
