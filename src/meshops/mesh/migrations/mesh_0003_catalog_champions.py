"""mesh: SQLite catalog side tables: word document frequencies and per-word champion lists

Revision ID: mesh_0003
"""

from __future__ import annotations

import heapq
import itertools
import json
import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "mesh_0003"
down_revision = "mesh_0002"
branch_labels = None
depends_on = None

# Kept in step with meshops.mesh.catalog and catalog_index (a migration must not change
# when the code does).
# Both tables exist on SQLite only, beside the FTS5 table they summarise (PostgreSQL ranks
# with its tsvector GIN index).
_TABLES = (
    "CREATE TABLE mesh_catalog_fts_terms (term TEXT PRIMARY KEY, docs INTEGER NOT NULL) "
    "WITHOUT ROWID",
    "CREATE TABLE mesh_catalog_fts_champions (term TEXT NOT NULL, doc_id INTEGER NOT NULL, "
    "impact REAL NOT NULL, PRIMARY KEY (term, doc_id)) WITHOUT ROWID",
)
_WEIGHTS = {
    "name": 10.0,
    "domain": 4.0,
    "description": 3.0,
    "tags": 5.0,
    "owners": 2.0,
    "columns_text": 1.5,
}
_CHAMPIONS = 256
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


def _frequencies(row: sa.Row[Any]) -> tuple[int, dict[str, float], int]:
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
    return int(str(doc)), frequencies, length


_SELECT = "SELECT doc_id, name, domain, description, tags, owners, columns_text FROM mesh_catalog"
_BATCH = 10_000


def _catalog(bind: sa.Connection) -> Iterator[tuple[int, dict[str, float], int]]:
    """Each product's document id, word frequencies and length, streamed: a catalog of a
    million products does not fit in memory as lists of rows."""
    for row in bind.execute(sa.text(_SELECT).execution_options(yield_per=_BATCH)):
        yield _frequencies(row)


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return
    for statement in _TABLES:
        op.execute(statement)
    # Two passes: the word counts and the average length, then the champion impacts (which
    # need that average).
    docs: Counter[str] = Counter()
    products = words = 0
    for _, frequencies, length in _catalog(bind):
        docs.update(frequencies.keys())
        products, words = products + 1, words + length
    if not products:
        return
    _insert(
        bind,
        "INSERT INTO mesh_catalog_fts_terms (term, docs) VALUES (?, ?)",
        iter(docs.items()),
    )
    avgdl = max(words / products, 1.0)
    # Each list a min-heap on (impact, -doc): the weakest on top; on equal impacts the lower
    # document id is kept, as the catalog's indexing does.
    champions: dict[str, list[tuple[float, int]]] = defaultdict(list)
    for doc, frequencies, length in _catalog(bind):
        for word, f in frequencies.items():
            impact = f * 2.2 / (f + 1.2 * (0.25 + 0.75 * length / avgdl))  # bm25, k1 1.2, b 0.75
            heap = champions[word]
            if len(heap) < _CHAMPIONS:
                heapq.heappush(heap, (impact, -doc))
            elif (impact, -doc) > heap[0]:
                heapq.heapreplace(heap, (impact, -doc))
    _insert(
        bind,
        "INSERT INTO mesh_catalog_fts_champions (term, doc_id, impact) VALUES (?, ?, ?)",
        ((t, -d, i) for t, heap in champions.items() for i, d in heap),
    )


def _insert(bind: sa.Connection, statement: str, rows: Iterator[tuple[Any, ...]]) -> None:
    while batch := list(itertools.islice(rows, _BATCH)):
        bind.exec_driver_sql(statement, batch)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TABLE IF EXISTS mesh_catalog_fts_champions")
        op.execute("DROP TABLE IF EXISTS mesh_catalog_fts_terms")
