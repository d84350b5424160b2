"""Writing the catalog's index: catalog rows, facet rows, and on SQLite the FTS5 table, its
word counts and the champion lists (see `meshops.mesh.catalog` for the tables).

`bulk_index` loads many new products a chunk per transaction, merges the champion lists once at
the end, then FTS5's index segments into one (each word's postings in one list, not one per
segment): an interrupted bulk load leaves the committed chunks searchable (bm25 over every
match) but without champions until the products are indexed again.
"""

from __future__ import annotations

import heapq
import itertools
import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, text

from meshops.kernel.db import Database
from meshops.kernel.errors import InvalidInput
from meshops.mesh.catalog import (
    BM25_B,
    BM25_K1,
    FIELD_WEIGHTS,
    doc_id,
    domain_key,
    fts_totals,
    json_list,
    saturation,
    terms_of,
)
from meshops.mesh.store import mesh_catalog, mesh_catalog_facets

if TYPE_CHECKING:
    import numpy as np
else:
    # Only the bulk load needs numpy; searching (`meshops catalog search`) does not pay for it.
    from meshops.kernel.lazy import lazy_module

    np = lazy_module("numpy")

CHAMPIONS = 256  # products kept per word
DOMAIN_CHAMPIONS = 64  # products kept per word and domain (ranks domain-filtered queries)


def index(conn: Connection, entries: list[dict[str, Any]], *, fresh: bool = False) -> None:
    """Insert or replace catalog entries (their facet and full-text rows too) in the caller's
    transaction. `fresh=True` (bulk loads of products not yet in the catalog) skips deletes."""
    if not entries:
        return
    entries = [{**e, "doc_id": doc_id(e["product"])} for e in entries]
    docs = [e["doc_id"] for e in entries]
    postgres = conn.dialect.name == "postgresql"
    if not fresh:
        for chunk in _chunks(docs):
            if not postgres:
                _unindex_fts(conn, chunk)
            conn.execute(
                mesh_catalog_facets.delete().where(mesh_catalog_facets.c.doc_id.in_(chunk))
            )
            conn.execute(mesh_catalog.delete().where(mesh_catalog.c.doc_id.in_(chunk)))
    conn.execute(mesh_catalog.insert(), entries)
    conn.execute(mesh_catalog_facets.insert(), [r for e in entries for r in _facet_rows(e)])
    if postgres:
        conn.execute(
            text(
                "UPDATE mesh_catalog SET search_vector = "
                "setweight(to_tsvector('simple', name || ' ' || domain), 'A') || "
                "setweight(to_tsvector('simple', coalesce(tags::text, '') || ' ' || "
                "coalesce(owners::text, '')), 'B') || "
                "setweight(to_tsvector('simple', description), 'C') || "
                "setweight(to_tsvector('simple', columns_text), 'D') "
                "WHERE doc_id = ANY(:docs)"
            ),
            {"docs": docs},
        )
        return
    _index_fts(conn, entries)


def _index_fts(conn: Connection, entries: list[dict[str, Any]]) -> None:
    fields = [_fts_fields(e) for e in entries]
    conn.execute(
        text(
            "INSERT INTO mesh_catalog_fts (rowid, product, name, domain, description, tags, "
            "owners, columns_text) VALUES (:doc_id, :product, :name, :domain, :description, "
            ":tags, :owners, :columns_text)"
        ),
        [
            {"doc_id": e["doc_id"], "product": e["product"], **f}
            for e, f in zip(entries, fields, strict=True)
        ],
    )
    stats = [_weighted_frequencies(f) for f in fields]
    docs = Counter(term for frequencies, _ in stats for term in frequencies)
    conn.execute(
        text(
            "INSERT INTO mesh_catalog_fts_terms (term, docs) VALUES (:term, :docs) "
            "ON CONFLICT (term) DO UPDATE SET docs = docs + excluded.docs"
        ),
        [{"term": t, "docs": n} for t, n in docs.items()],
    )
    # FTS5 writes its totals when the transaction commits: the record read here is the
    # catalog before this transaction, so the new documents are added to it by hand.
    rows, avgdl = fts_totals(conn)
    new_words = sum(length for _, length in stats)
    avgdl = (rows * avgdl + new_words) / (rows + len(stats)) if rows else new_words / len(stats)
    avgdl = max(avgdl, 1.0)
    postings: dict[str, list[tuple[float, int]]] = defaultdict(list)
    for e, (frequencies, length) in zip(entries, stats, strict=True):
        for term, frequency in frequencies.items():
            posting = (saturation(frequency, length, avgdl), e["doc_id"])
            postings[term].append(posting)
            postings[domain_key(term, e["domain"])].append(posting)
    _add_champions(conn, postings)


def _facet_rows(entry: dict[str, Any]) -> list[dict[str, Any]]:
    values = {("domain", entry["domain"]), ("status", entry["status"])}
    values |= {("tag", t) for t in entry["tags"]}
    values |= {("classification", c) for c in entry["classifications"]}
    doc = entry["doc_id"]
    return [
        {"doc_id": doc, "facet": f, "value": v, "product": entry["product"]}
        for f, v in sorted(values)
    ]


def _fts_fields(row: Mapping[Any, Any]) -> dict[str, str]:
    """The text of each FTS5 column of a catalog row (tags and owners space-separated)."""
    return {
        "name": row["name"],
        "domain": row["domain"],
        "description": row["description"],
        "tags": " ".join(json_list(row["tags"])),
        "owners": " ".join(json_list(row["owners"])),
        "columns_text": row["columns_text"],
    }


def _champions_kept(key: str) -> int:
    return DOMAIN_CHAMPIONS if "_" in key else CHAMPIONS


def bulk_index(db: Database, entries: Iterable[dict[str, Any]], *, chunk_size: int = 50_000) -> int:
    """Index products not yet in the catalog, `chunk_size` per transaction; returns how many.

    The bulk path of `index(fresh=True)`. On SQLite each chunk goes in in document-id order
    (FTS5 writes out its pending index whenever a rowid is lower than the last one, so hashed
    ids in arrival order made a tiny segment per few documents), its rows go to the driver as
    tuples, the word counts are done with numpy over the whole chunk, and the champion lists
    are kept in memory as arrays across chunks (`_Champions`) and written once at the end,
    then FTS5's segments are merged into one ('optimize'). A failure keeps the chunks
    committed before it; their champions are missing until the products are re-indexed."""
    if not 1 <= chunk_size <= 100_000:
        raise InvalidInput("chunk_size must be between 1 and 100,000", {"field": "chunk_size"})
    if not db.is_sqlite:
        count = 0
        for chunk in _batched(entries, chunk_size):
            with db.begin() as conn:
                index(conn, chunk, fresh=True)
            count += len(chunk)
        return count
    champions, vocabulary = _Champions(), _Vocabulary()
    count = 0
    with _fts_bulk_merging(db):
        for chunk in _batched(entries, chunk_size):
            with db.begin() as conn, _large_page_cache(conn):
                _bulk_chunk(conn, chunk, vocabulary, champions)
            count += len(chunk)
    if count:
        with db.begin() as conn, _large_page_cache(conn):
            champions.write(conn, vocabulary)
        with db.begin() as conn, _large_page_cache(conn):
            # One FTS5 segment instead of the ~25 a million products leave: a query word is
            # read from one doclist, not from each segment (CPU p95 50 -> 38 ms at 1M
            # products); ~30 s at 1M, a rewrite of the full-text index.
            conn.exec_driver_sql(
                "INSERT INTO mesh_catalog_fts (mesh_catalog_fts) VALUES ('optimize')"
            )
    return count


def _batched(entries: Iterable[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    iterator = iter(entries)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


@contextmanager
def _large_page_cache(conn: Connection) -> Iterator[None]:
    """A 1 GiB page cache while bulk loading: inserts land at random places in the indexes
    keyed by hashed ids, and SQLite's default 2 MiB cache re-reads their pages every row."""
    previous = conn.exec_driver_sql("PRAGMA cache_size").scalar()
    conn.exec_driver_sql("PRAGMA cache_size = -1048576")
    try:
        yield
    finally:
        conn.exec_driver_sql(f"PRAGMA cache_size = {int(previous or -2000)}")


@contextmanager
def _fts_bulk_merging(db: Database) -> Iterator[None]:
    """FTS5 merges 16 segments at a time (instead of 4) during a bulk load: each posting is
    rewritten about half as often. The setting is stored in the FTS5 table, so it is put
    back (and the index merged down to the usual shape) at the end, even after a failure."""
    with db.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO mesh_catalog_fts (mesh_catalog_fts, rank) VALUES ('automerge', 16)"
        )
    try:
        yield
    finally:
        with db.begin() as conn:
            conn.exec_driver_sql(
                "INSERT INTO mesh_catalog_fts (mesh_catalog_fts, rank) VALUES ('automerge', 4)"
            )


class _Vocabulary:
    """Indexed words numbered in order of appearance (numpy arrays carry the numbers)."""

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}
        self.words: list[str] = []

    def numbers(self, terms: list[str]) -> np.ndarray:
        for term in set(terms).difference(self.ids):
            self.ids[term] = len(self.words)
            self.words.append(term)
        return np.fromiter(map(self.ids.__getitem__, terms), np.int64, len(terms))


@dataclass
class _ChunkStats:
    """A chunk's (word, document) pairs: word numbers, document positions in the chunk, the
    field-weighted frequencies (bm25's term frequency); and each document's length."""

    terms: np.ndarray
    docs: np.ndarray
    frequencies: np.ndarray
    lengths: np.ndarray


def _chunk_stats(fields: list[dict[str, str]], vocabulary: _Vocabulary) -> _ChunkStats:
    """`_weighted_frequencies` of every document of a chunk at once: the words of a field
    across the chunk in one list, their (word, document) pairs summed with numpy."""
    n = len(fields)
    terms, docs, weights, lengths = [], [], [], np.zeros(n, np.int64)
    for field, weight in FIELD_WEIGHTS.items():
        tokens = [terms_of(f[field]) for f in fields]
        counts = np.fromiter(map(len, tokens), np.int64, n)
        lengths += counts
        terms.append(vocabulary.numbers(list(itertools.chain.from_iterable(tokens))))
        docs.append(np.repeat(np.arange(n, dtype=np.int64), counts))
        weights.append(np.full(int(counts.sum()), weight))
    # Summed in field order then word order, as _weighted_frequencies adds them.
    pairs, inverse = np.unique(
        np.concatenate(terms) * n + np.concatenate(docs), return_inverse=True
    )
    frequencies = np.bincount(
        inverse.ravel(), weights=np.concatenate(weights), minlength=len(pairs)
    )
    return _ChunkStats(pairs // n, pairs % n, frequencies, lengths)


_SLOT = 2**32  # a champion list key: word number + slot * _SLOT (slot 0: the word's own list)


class _Champions:
    """The champion lists of a bulk load as arrays (list key, impact, document id). New
    postings are dropped at once when below a full list's weakest; the rest wait in a buffer
    that is merged (one sort) when it grows past REDUCE_AT and at the end."""

    REDUCE_AT = 4_000_000

    def __init__(self) -> None:
        self.domains: dict[str, int] = {}
        empty_i, empty_f = np.zeros(0, np.int64), np.zeros(0, np.float64)
        self.keys, self.impacts, self.docs = empty_i, empty_f, empty_i
        self.buffer: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.buffered = 0
        self.full_keys, self.floor_impact, self.floor_doc = empty_i, empty_f, empty_i

    def add(
        self, stats: _ChunkStats, doc_ids: np.ndarray, domains: list[str], avgdl: float
    ) -> None:
        norms = BM25_K1 * (
            1 - BM25_B + BM25_B * stats.lengths / avgdl
        )  # saturation's, per document
        f = stats.frequencies
        impacts = f * (BM25_K1 + 1) / (f + norms[stats.docs])
        slots = np.fromiter(
            (self.domains.setdefault(d, len(self.domains) + 1) for d in domains),
            np.int64,
            len(domains),
        )
        docs = doc_ids[stats.docs]
        for keys in (stats.terms, stats.terms + slots[stats.docs] * _SLOT):
            kept = self._above_floor(keys, impacts, docs)
            self.buffer.append((keys[kept], impacts[kept], docs[kept]))
            self.buffered += int(kept.sum())
        if self.buffered > self.REDUCE_AT:
            self._reduce()

    def _above_floor(self, keys: np.ndarray, impacts: np.ndarray, docs: np.ndarray) -> np.ndarray:
        """Whether each posting would enter its list (lists not full take every posting)."""
        if not len(self.full_keys):
            return np.ones(len(keys), bool)
        at = np.minimum(np.searchsorted(self.full_keys, keys), len(self.full_keys) - 1)
        full = self.full_keys[at] == keys
        floor, floor_doc = self.floor_impact[at], self.floor_doc[at]
        enters: np.ndarray = ~full | (impacts > floor) | ((impacts == floor) & (docs < floor_doc))
        return enters

    def _reduce(self) -> None:
        """Keep the best of each list: highest impact first, lowest document id on ties."""
        keys = np.concatenate([self.keys, *(b[0] for b in self.buffer)])
        impacts = np.concatenate([self.impacts, *(b[1] for b in self.buffer)])
        docs = np.concatenate([self.docs, *(b[2] for b in self.buffer)])
        self.buffer, self.buffered = [], 0
        order = np.lexsort((docs, -impacts, keys))
        keys, impacts, docs = keys[order], impacts[order], docs[order]
        starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
        sizes = np.diff(np.r_[starts, len(keys)])
        rank = np.arange(len(keys)) - np.repeat(starts, sizes)
        limits = np.where(keys < _SLOT, CHAMPIONS, DOMAIN_CHAMPIONS)
        kept = rank < limits
        self.keys, self.impacts, self.docs = keys[kept], impacts[kept], docs[kept]
        # The weakest of each full list: the last of its key's run.
        last = np.flatnonzero(np.r_[self.keys[1:] != self.keys[:-1], True])
        run = np.diff(np.r_[-1, last])
        full = last[run >= limits[kept][last]]
        self.full_keys = self.keys[full]
        self.floor_impact, self.floor_doc = self.impacts[full], self.docs[full]

    def write(self, conn: Connection, vocabulary: _Vocabulary) -> None:
        """Into mesh_catalog_fts_champions: appended in key order when the table is empty
        (a fresh catalog), else merged with the lists there (`_add_champions`)."""
        self._reduce()
        slot_domain = {slot: domain for domain, slot in self.domains.items()}
        unique, inverse = np.unique(self.keys, return_inverse=True)
        names = [
            vocabulary.words[k % _SLOT]
            if k < _SLOT
            else domain_key(vocabulary.words[k % _SLOT], slot_domain[k // _SLOT])
            for k in unique.tolist()
        ]
        empty = (
            conn.execute(text("SELECT 1 FROM mesh_catalog_fts_champions LIMIT 1")).first() is None
        )
        if not empty:
            lists: dict[str, list[tuple[float, int]]] = defaultdict(list)
            for at, impact, doc in zip(
                inverse.ravel().tolist(), self.impacts.tolist(), self.docs.tolist(), strict=True
            ):
                lists[names[at]].append((impact, doc))
            _add_champions(conn, lists)
            return
        name_rank = np.empty(len(names), np.int64)
        name_rank[sorted(range(len(names)), key=names.__getitem__)] = np.arange(len(names))
        ranks = name_rank[inverse.ravel()]
        order = np.lexsort((self.docs, ranks))
        conn.exec_driver_sql(  # in key order: the B-tree fills from left to right
            "INSERT INTO mesh_catalog_fts_champions (term, doc_id, impact) VALUES (?, ?, ?)",
            list(
                zip(
                    map(names.__getitem__, inverse.ravel()[order].tolist()),
                    self.docs[order].tolist(),
                    self.impacts[order].tolist(),
                    strict=True,
                )
            ),
        )


def _bulk_chunk(
    conn: Connection, entries: list[dict[str, Any]], vocabulary: _Vocabulary, champions: _Champions
) -> None:
    """One chunk of `bulk_index` on SQLite, in document-id order."""
    entries = sorted(
        ({**e, "doc_id": doc_id(e["product"])} for e in entries), key=lambda e: e["doc_id"]
    )
    conn.execute(mesh_catalog.insert(), entries)
    conn.exec_driver_sql(
        "INSERT INTO mesh_catalog_facets (doc_id, facet, value, product) VALUES (?, ?, ?, ?)",
        [
            (r["doc_id"], r["facet"], r["value"], r["product"])
            for e in entries
            for r in _facet_rows(e)
        ],
    )
    fields = [_fts_fields(e) for e in entries]
    conn.exec_driver_sql(
        "INSERT INTO mesh_catalog_fts (rowid, product, name, domain, description, tags, "
        "owners, columns_text) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [(e["doc_id"], e["product"], *f.values()) for e, f in zip(entries, fields, strict=True)],
    )
    stats = _chunk_stats(fields, vocabulary)
    words, docs = np.unique(stats.terms, return_counts=True)
    conn.exec_driver_sql(
        "INSERT INTO mesh_catalog_fts_terms (term, docs) VALUES (?, ?) "
        "ON CONFLICT (term) DO UPDATE SET docs = docs + excluded.docs",
        list(zip(map(vocabulary.words.__getitem__, words.tolist()), docs.tolist(), strict=True)),
    )
    rows, avgdl = fts_totals(conn)  # the catalog before this chunk (see _index_fts)
    new_words = int(stats.lengths.sum())
    avgdl = max((rows * avgdl + new_words) / (rows + len(entries)), 1.0)
    doc_ids = np.fromiter((e["doc_id"] for e in entries), np.int64, len(entries))
    champions.add(stats, doc_ids, [e["domain"] for e in entries], avgdl)


def _unindex_fts(conn: Connection, docs: list[int]) -> None:
    """Remove documents from the FTS5 table, the word frequencies and the champion lists
    (the words of a document are read back from its catalog row)."""
    old = conn.execute(
        text(
            "SELECT doc_id, name, domain, description, tags, owners, columns_text "
            "FROM mesh_catalog WHERE doc_id IN (SELECT value FROM json_each(:d))"
        ),
        {"d": json.dumps(docs)},
    ).mappings()
    postings = [
        {"term": term, "doc": row["doc_id"], "domain": row["domain"]}
        for row in old
        for term in _weighted_frequencies(_fts_fields(row))[0]
    ]
    if postings:
        gone = Counter(p["term"] for p in postings)
        postings += [{**p, "term": domain_key(p["term"], p["domain"])} for p in postings]
        conn.execute(
            text("UPDATE mesh_catalog_fts_terms SET docs = docs - :n WHERE term = :term"),
            [{"term": t, "n": n} for t, n in gone.items()],
        )
        conn.execute(
            text("DELETE FROM mesh_catalog_fts_terms WHERE term = :term AND docs <= 0"),
            [{"term": t} for t in gone],
        )
        conn.execute(
            text("DELETE FROM mesh_catalog_fts_champions WHERE term = :term AND doc_id = :doc"),
            postings,
        )
    conn.execute(
        text("DELETE FROM mesh_catalog_fts WHERE rowid IN (SELECT value FROM json_each(:d))"),
        {"d": json.dumps(docs)},
    )


def _weighted_frequencies(fields: dict[str, str]) -> tuple[dict[str, float], int]:
    """Each word's field-weighted occurrence count (bm25's term frequency) and the length of
    the document in words, as FTS5's bm25 counts them."""
    frequencies: dict[str, float] = defaultdict(float)
    length = 0
    for field, weight in FIELD_WEIGHTS.items():
        terms = terms_of(fields[field])
        length += len(terms)
        for term in terms:
            frequencies[term] += weight
    return frequencies, length


def _add_champions(conn: Connection, postings: dict[str, list[tuple[float, int]]]) -> None:
    """Merge new (impact, doc) postings into each champion list, keeping CHAMPIONS per word
    and DOMAIN_CHAMPIONS per word and domain."""
    kept: dict[str, tuple[int, float]] = {}
    empty = conn.execute(text("SELECT 1 FROM mesh_catalog_fts_champions LIMIT 1")).first() is None
    for chunk in [] if empty else _chunks(list(postings)):
        for term, count, lowest in conn.execute(
            text(
                "SELECT term, count(*), min(impact) FROM mesh_catalog_fts_champions "
                "WHERE term IN (SELECT value FROM json_each(:t)) GROUP BY term"
            ),
            {"t": json.dumps(chunk)},
        ):
            kept[term] = (int(count), float(lowest))
    rows, overfull = [], []
    for term, new in postings.items():
        count, lowest = kept.get(term, (0, 0.0))
        keep = _champions_kept(term)
        # Highest impact first, lowest document id on ties (as the bulk path and the
        # overfull delete below order them): the lists do not depend on indexing order.
        entering = [p for p in new if count < keep or p[0] >= lowest]
        best = heapq.nlargest(keep, entering, key=lambda p: (p[0], -p[1]))
        rows += [(term, doc, impact) for impact, doc in best]
        if best and count + len(best) > keep:
            overfull.append({"term": term, "keep": keep})
    if rows:
        rows.sort()  # in key order: the B-tree fills from left to right
        conn.exec_driver_sql(  # tuples straight to the driver: a bulk load has millions
            "INSERT OR REPLACE INTO mesh_catalog_fts_champions (term, doc_id, impact) "
            "VALUES (?, ?, ?)",
            rows,
        )
    if overfull:
        conn.execute(
            text(
                "DELETE FROM mesh_catalog_fts_champions WHERE term = :term AND doc_id IN ("
                "SELECT doc_id FROM mesh_catalog_fts_champions WHERE term = :term "
                "ORDER BY impact DESC, doc_id LIMIT -1 OFFSET :keep)"
            ),
            overfull,
        )


def _chunks(values: list[Any], size: int = 500) -> list[list[Any]]:
    return [values[i : i + size] for i in range(0, len(values), size)]


def set_status(conn: Connection, product: str, status: str) -> None:
    conn.execute(
        mesh_catalog.update().where(mesh_catalog.c.product == product).values(status=status)
    )
    conn.execute(
        mesh_catalog_facets.update()
        .where(mesh_catalog_facets.c.product == product, mesh_catalog_facets.c.facet == "status")
        .values(value=status)
    )
