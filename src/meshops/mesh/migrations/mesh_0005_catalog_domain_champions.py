"""mesh: SQLite catalog champion lists per domain (a word's best products in each domain)

Revision ID: mesh_0005
"""

from __future__ import annotations

import heapq
import json
import re
import unicodedata
from collections import defaultdict
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "mesh_0005"
down_revision = "mesh_0004"
branch_labels = None
depends_on = None

# Kept in step with meshops.mesh.catalog and catalog_index (a migration must not change
# when the code does).
# The lists live in mesh_catalog_fts_champions beside the global ones, keyed `word_domain`:
# indexed words never contain `_`, so the key cannot be taken for a word.
_WEIGHTS = {
    "name": 10.0,
    "domain": 4.0,
    "description": 3.0,
    "tags": 5.0,
    "owners": 2.0,
    "columns_text": 1.5,
}
_DOMAIN_CHAMPIONS = 64
_WORD = re.compile(r"[^\W_]+", re.UNICODE)


def _terms(value: str) -> list[str]:
    if not value.isascii():
        value = "".join(
            c for c in unicodedata.normalize("NFKD", value) if not unicodedata.combining(c)
        )
    return _WORD.findall(value.lower())


def _list(value: object) -> str:
    if isinstance(value, str):
        value = json.loads(value)
    return " ".join(str(v) for v in value or [])  # type: ignore[attr-defined]


def _varints(data: bytes) -> list[int]:
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


def _average_length(bind: sa.Connection) -> float:
    """FTS5's average row length in words (its averages record), as bm25 reads it."""
    block = bind.execute(sa.text("SELECT block FROM mesh_catalog_fts_data WHERE id = 1")).scalar()
    values = _varints(bytes(block or b""))
    if not values or not values[0]:
        return 1.0
    return max(sum(values[1:]) / values[0], 1.0)


def _postings(row: sa.Row[Any], avgdl: float) -> tuple[int, str, dict[str, float]]:
    doc, name, domain, description, tags, owners, columns_text = tuple(row)
    fields = {
        "name": str(name),
        "domain": str(domain),
        "description": str(description),
        "tags": _list(tags),
        "owners": _list(owners),
        "columns_text": str(columns_text),
    }
    frequencies: dict[str, float] = defaultdict(float)
    length = 0
    for field, weight in _WEIGHTS.items():
        words = _terms(fields[field])
        length += len(words)
        for word in words:
            frequencies[word] += weight
    norm = 1.2 * (0.25 + 0.75 * length / avgdl)  # bm25, k1 1.2, b 0.75
    return int(str(doc)), str(domain), {w: f * 2.2 / (f + norm) for w, f in frequencies.items()}


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return
    avgdl = _average_length(bind)
    champions: dict[str, list[tuple[float, int]]] = defaultdict(list)
    catalog = bind.execute(
        sa.text(
            "SELECT doc_id, name, domain, description, tags, owners, columns_text FROM mesh_catalog"
        )
    )
    for row in catalog:  # streamed: a catalog of a million products does not fit in lists
        doc, domain, impacts = _postings(row, avgdl)
        for word, impact in impacts.items():
            heap = champions[f"{word}_{domain}"]
            if len(heap) < _DOMAIN_CHAMPIONS:
                heapq.heappush(heap, (impact, doc))
            elif (impact, doc) > heap[0]:
                heapq.heapreplace(heap, (impact, doc))
    # In key order: the rows then fill the table's B-tree from left to right.
    rows = sorted((key, doc, impact) for key, heap in champions.items() for impact, doc in heap)
    if rows:
        bind.exec_driver_sql(
            "INSERT OR REPLACE INTO mesh_catalog_fts_champions (term, doc_id, impact) "
            "VALUES (?, ?, ?)",
            rows,
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DELETE FROM mesh_catalog_fts_champions WHERE instr(term, '_') > 0")
