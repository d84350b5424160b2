"""Catalog search: ranked full-text search over products with facets.

Every query word must match, as a prefix (`ord` finds `orders`), somewhere in a product's
name, domain, description, tags, owners or column names and descriptions. Hits are ranked by
bm25 with per-field weights.

SQLite (embedded) keeps the FTS5 table `mesh_catalog_fts` and two side tables with it:

- `mesh_catalog_fts_terms (term, docs)`: the indexed words and their document frequencies. A
  query word expands to its indexed words with one B-tree range read, and the FTS5 query ORs
  them (`("order" OR "orders" ...)`); FTS5's own prefix query `"order"*` merges the positions
  of every expansion up front, which costs ~300 ms for a common word at 100k products even
  when only a count or the first page is wanted.
- `mesh_catalog_fts_champions (term, doc_id, impact)`: per word, the CHAMPIONS products where
  it weighs most (its bm25 term without the idf) -- the word's champion list; and per word and
  domain (key `word_domain`) the DOMAIN_CHAMPIONS best of that domain's products.

PostgreSQL: `mesh_catalog.search_vector` (weighted tsvector, GIN index) ranked by ts_rank_cd,
exact totals. Facet filters and counts use the indexed facet table on both.

This module holds what indexing and searching share: the words (`terms_of`, folded as FTS5's
unicode61 tokenizer folds them), a product's catalog row (`entry`) and document id, and the
pieces of FTS5's bm25 both compute (`saturation`, `fts_totals`). Writing the index is
`catalog_index`; searching it is `catalog_search`.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from typing import Any

from sqlalchemy import Connection, text

from meshops.kernel.db import utcnow

FACETS = ("domain", "status", "classification", "tag")
# bm25 weight of each FTS5 column, in column order after the unindexed `product`. Names weigh
# most, then tags/domain, descriptions, then columns.
FIELD_WEIGHTS = {
    "name": 10.0,
    "domain": 4.0,
    "description": 3.0,
    "tags": 5.0,
    "owners": 2.0,
    "columns_text": 1.5,
}
BM25_K1, BM25_B = 1.2, 0.75  # FTS5's bm25 constants (fts5_aux.c)
_WORD = re.compile(r"[^\W_]+", re.UNICODE)


def fold(value: str) -> str:
    """Lower case without diacritics, as FTS5's unicode61 tokenizer folds words."""
    if value.isascii():
        return value.lower()
    decomposed = unicodedata.normalize("NFKD", value.lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def terms_of(value: str) -> list[str]:
    """The words FTS5 (unicode61) indexes for `value`."""
    return _WORD.findall(fold(value))


def entry(
    product: str,
    *,
    domain: str,
    name: str,
    status: str,
    description: str,
    tags: list[str],
    owners: list[str],
    columns: list[dict[str, Any]],
    latest_version: str | None,
) -> dict[str, Any]:
    """A catalog row; `columns` are ColumnSpec dicts of every output port."""
    classifications = sorted({str(c["classification"]) for c in columns if c.get("classification")})
    columns_text = " ".join(f"{c['name']} {c.get('description') or ''}".strip() for c in columns)
    return {
        "product": product,
        "domain": domain,
        "name": name,
        "status": status,
        "description": description,
        "tags": sorted(set(tags)),
        "owners": owners,
        "classifications": classifications,
        "columns_text": columns_text,
        "latest_version": latest_version,
        "updated_at": utcnow(),
    }


def doc_id(product: str) -> int:
    """A stable 62-bit document id of a product (FTS5 rowid, facet table key)."""
    return int.from_bytes(hashlib.sha256(product.encode()).digest()[:8], "big") >> 2


def domain_key(term: str, domain: str) -> str:
    """The champion list key of a word within a domain. Indexed words never contain `_`
    (the tokenizer splits on it), so no word's own key looks like this."""
    return f"{term}_{domain}"


def saturation(frequency: float, length: int, avgdl: float) -> float:
    """bm25's term weight without the idf."""
    return (
        frequency * (BM25_K1 + 1) / (frequency + BM25_K1 * (1 - BM25_B + BM25_B * length / avgdl))
    )


def fts_totals(conn: Connection) -> tuple[int, float]:
    """(rows, average row length in words) exactly as FTS5's bm25 reads them: its averages
    record (id 1 of the `_data` table) holds SQLite varints, the row count then the word
    count of each column."""
    block = conn.execute(text("SELECT block FROM mesh_catalog_fts_data WHERE id = 1")).scalar()
    values = varints(bytes(block or b""))
    if not values or not values[0]:
        return 0, 1.0
    return values[0], max(sum(values[1:]) / values[0], 1.0)


def varints(data: bytes) -> list[int]:
    """Decode SQLite varints (big-endian 7-bit groups; a ninth byte carries 8 bits)."""
    values, value, size = [], 0, 0
    for byte in data:
        if size == 8:
            values.append((value << 8) | byte)
            value = size = 0
            continue
        value, size = (value << 7) | (byte & 0x7F), size + 1
        if byte < 0x80:
            values.append(value)
            value = size = 0
    return values


def json_list(value: Any) -> list[str]:
    if isinstance(value, str):
        value = json.loads(value)
    return [str(v) for v in value or []]
