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

A query matching at most RANK_EXACT products is ranked by bm25 over every match: FTS5's, or,
when the total's pass already listed the matches and FTS5 would first read long document lists
to count their products (its idf), the same formula in Python over the matches' text (idf from
`mesh_catalog_fts_terms`; see `_scores_here`), giving the same scores and order. A broader one
(a common word matches most of the catalog, and bm25 would score every match to return 20) is
ranked among the champions of its words: the CANDIDATES best of them by their champion impacts
are scored exactly (the same bm25 formula, in Python over their text), checked against every
word and filter, and the best returned. This is the champion-list top-k of IR textbooks
(Manning, Raghavan, Schütze, "Introduction to IR", 7.1.3): scores are exact, the candidate set
is a heuristic, so the first pages of a broad query can miss a product that is near the top of
none of its words. Pages beyond what the champions answer score every match. A broad query
filtered by domain (and no tag) is ranked the same way from the domain's lists, scored by the
query words alone; a narrow one (at most RANK_EXACT matches) by bm25 over every match, which
also counts the domain's name in the domain column (a near-constant bonus).

`bulk_index` loads many new products a chunk per transaction, merges the champion lists once at
the end, then FTS5's index segments into one (each word's postings in one list, not one per
segment): an interrupted bulk load leaves the committed chunks searchable (bm25 over every
match) but without champions until the products are indexed again.

Totals on SQLite come from one pass over the first matches in document-id order (FTS5 returns
them so). The total is exact when that pass ends within TOTAL_SAMPLE matches, or when a query
word's indexed forms are in at most TOTAL_EXACT products (the word's document list bounds the
pass) and the query's words have at most EXACT_POSTINGS postings in all (a word in most
products makes each match cost more than a short list promises). Otherwise the pass stops after
TOTAL_SAMPLE + 1 matches and `total` is estimated from their density (ids are uniform hashes,
so those are an even sample of the whole match set: standard error 1/sqrt(TOTAL_SAMPLE), 3.2%)
and `total_exact` is False ("about 96,000"). Words in most products (`_common`) can be checked
in each candidate's text instead of by FTS5, which steps through their long lists between
candidates: the pass then runs FTS5 over the other words and filters (when that is estimated
cheaper, see `_checks_common_words_here`); the matches are the same.

PostgreSQL: `mesh_catalog.search_vector` (weighted tsvector, GIN index) ranked by ts_rank_cd,
exact totals. Facet filters and counts use the indexed facet table on both.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import json
import math
import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, select, text

from meshops.kernel.db import Database, utcnow
from meshops.kernel.errors import InvalidInput
from meshops.mesh.models import SearchHit, SearchResult
from meshops.mesh.store import mesh_catalog, mesh_catalog_facets

if TYPE_CHECKING:
    import numpy as np
else:
    # Only the bulk load needs numpy; searching (`meshops catalog search`) does not pay for it.
    from meshops.kernel.lazy import lazy_module

    np = lazy_module("numpy")

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
_FTS_WEIGHTS = "0.0, " + ", ".join(str(w) for w in FIELD_WEIGHTS.values())
_K1, _B = 1.2, 0.75  # FTS5's bm25 constants (fts5_aux.c)
_MIN_IDF = 1e-6  # FTS5 clamps the idf of words in more than half the rows to this
_WORD = re.compile(r"[^\W_]+", re.UNICODE)

# Facet counts are exact over up to FACET_SAMPLE matching documents; above that they are
# computed over a sample of FACET_SAMPLE matching documents (spread evenly: document ids are
# hashes) and scaled to the total, and the result says `facets_estimated`.
FACET_SAMPLE = 1000
# A total is exact when the walk over the matches ends within TOTAL_SAMPLE, or when a query
# word's indexed forms are in at most TOTAL_EXACT products and the query's words have at most
# EXACT_POSTINGS postings (the whole walk is then short); else it is estimated from the first
# TOTAL_SAMPLE + 1 matches.
TOTAL_SAMPLE = 1000
TOTAL_EXACT = 10_000
EXACT_POSTINGS = 1_000_000  # ~10 ms of FTS5 reading at 1M products
RANK_EXACT = 2000  # bm25 over every match up to here (~10-20 ms); champions above
MATCHES_KEPT = 5000  # the total's pass keeps the ids of up to this many matches for ranking
CHAMPIONS = 256  # products kept per word
DOMAIN_CHAMPIONS = 64  # products kept per word and domain (ranks domain-filtered queries)
# Ranking up to MATCHES_KEPT known matches in Python costs about this many postings of
# FTS5's idf pass each (calibrated at 1M products: ~40 us a match, ~0.08 us a posting).
SCORE_HERE_COST = 500
# Checking a candidate's text for words in most products costs about this many postings of
# FTS5 stepping through those words' lists (~15 us a candidate, ~0.012 us a posting).
CHECK_HERE_COST = 1000
CANDIDATES = 100  # champions scored exactly per query (at least 4x the page end)
EXPANSIONS = 32  # a query word with more indexed words is matched as an FTS5 prefix query
_DOC_IDS = 2**62  # document ids are uniform in [0, 2**62)


def fold(value: str) -> str:
    """Lower case without diacritics, as FTS5's unicode61 tokenizer folds words."""
    if value.isascii():
        return value.lower()
    decomposed = unicodedata.normalize("NFKD", value.lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def terms_of(value: str) -> list[str]:
    """The words FTS5 (unicode61) indexes for `value`."""
    return _WORD.findall(fold(value))


def words(query: str) -> list[str]:
    return terms_of(query)[:16]


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
        "tags": " ".join(_json_list(row["tags"])),
        "owners": " ".join(_json_list(row["owners"])),
        "columns_text": row["columns_text"],
    }


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
    rows, avgdl = _fts_totals(conn)
    new_words = sum(length for _, length in stats)
    avgdl = (rows * avgdl + new_words) / (rows + len(stats)) if rows else new_words / len(stats)
    avgdl = max(avgdl, 1.0)
    postings: dict[str, list[tuple[float, int]]] = defaultdict(list)
    for e, (frequencies, length) in zip(entries, stats, strict=True):
        for term, frequency in frequencies.items():
            posting = (_saturation(frequency, length, avgdl), e["doc_id"])
            postings[term].append(posting)
            postings[_domain_key(term, e["domain"])].append(posting)
    _add_champions(conn, postings)


def _domain_key(term: str, domain: str) -> str:
    """The champion list key of a word within a domain. Indexed words never contain `_`
    (the tokenizer splits on it), so no word's own key looks like this."""
    return f"{term}_{domain}"


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
        norms = _K1 * (1 - _B + _B * stats.lengths / avgdl)  # _saturation's, per document
        f = stats.frequencies
        impacts = f * (_K1 + 1) / (f + norms[stats.docs])
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
            else _domain_key(vocabulary.words[k % _SLOT], slot_domain[k // _SLOT])
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
    rows, avgdl = _fts_totals(conn)  # the catalog before this chunk (see _index_fts)
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
        postings += [{**p, "term": _domain_key(p["term"], p["domain"])} for p in postings]
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


def _saturation(frequency: float, length: int, avgdl: float) -> float:
    """bm25's term weight without the idf."""
    return frequency * (_K1 + 1) / (frequency + _K1 * (1 - _B + _B * length / avgdl))


def _fts_totals(conn: Connection) -> tuple[int, float]:
    """(rows, average row length in words) exactly as FTS5's bm25 reads them: its averages
    record (id 1 of the `_data` table) holds SQLite varints, the row count then the word
    count of each column."""
    block = conn.execute(text("SELECT block FROM mesh_catalog_fts_data WHERE id = 1")).scalar()
    values = _varints(bytes(block or b""))
    if not values or not values[0]:
        return 0, 1.0
    return values[0], max(sum(values[1:]) / values[0], 1.0)


def _varints(data: bytes) -> list[int]:
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


def _filters(
    facets: dict[str, str | None], *, probe: bool = False
) -> tuple[list[str], dict[str, Any]]:
    """Facet filters as `doc IN (indexed facet lookup)` subqueries (`{doc}` is the column),
    or with `probe` as one primary-key lookup per document (for a few hundred candidates,
    cheaper than listing the facet value's documents: a million for a common status)."""
    clauses, params = [], {}
    for facet in FACETS:
        value = facets.get(facet)
        if not value:
            continue
        params[f"f_{facet}"] = value
        clauses.append(
            "EXISTS (SELECT 1 FROM mesh_catalog_facets WHERE doc_id = {doc} "
            f"AND facet = '{facet}' AND value = :f_{facet})"
            if probe
            else "{doc} IN (SELECT doc_id FROM mesh_catalog_facets "
            f"WHERE facet = '{facet}' AND value = :f_{facet})"
        )
    return clauses, params


@dataclass
class _Plan:
    """One search as SQL pieces: the FROM, the document id, WHERE and relevance expressions."""

    source: str
    doc: str
    where: str
    params: dict[str, Any]
    score: str
    expansions: list[list[tuple[str, int]]] | None = None  # SQLite: each word's (term, docs)
    wanted: dict[str, str | None] | None = None  # the facet filters
    narrowed: bool = False  # the FTS5 query also names a domain or tag filter's words
    scope: str | None = None  # narrowed by a domain alone: its champion lists rank the query
    matches: str | None = None  # every matching id (a JSON array) when at most MATCHES_KEPT
    walked: list[int] | None = None  # the first matches listed with common words checked here

    @property
    def ranked(self) -> bool:
        return self.score != "0.0"


def search(
    conn: Connection,
    query: str,
    *,
    domain: str | None = None,
    status: str | None = None,
    classification: str | None = None,
    tag: str | None = None,
    limit: int = 20,
    offset: int = 0,
    with_facets: bool = True,
) -> SearchResult:
    """Top hits by relevance, the total (see the module doc) and facet counts of the matches."""
    wanted = {"domain": domain, "status": status, "classification": classification, "tag": tag}
    terms = words(query)
    plan = _plan(conn, terms, wanted)
    if plan is None:  # a word matches no indexed word
        empty: dict[str, dict[str, int]] = {f: {} for f in FACETS} if with_facets else {}
        return SearchResult(query=query, total=0, hits=[], facets=empty)
    total, total_exact, sample = _total(conn, plan)
    page = _ranked_page(conn, plan, total, limit=limit, offset=offset)
    facets: dict[str, dict[str, int]] = {facet: {} for facet in FACETS} if with_facets else {}
    estimated = False
    if with_facets and total:
        facets, estimated = _facet_counts(conn, plan, total, sample)
    return SearchResult(
        query=query,
        total=total,
        total_exact=total_exact,
        hits=_hits(conn, page),
        facets=facets,
        facets_estimated=estimated,
    )


def _plan(conn: Connection, terms: list[str], wanted: dict[str, str | None]) -> _Plan | None:
    filters = _filters(wanted)
    clauses, params = list(filters[0]), dict(filters[1])
    if not terms:
        where = f"WHERE {' AND '.join(c.format(doc='c.doc_id') for c in clauses)}"
        return _Plan("mesh_catalog c", "c.doc_id", where if clauses else "", params, "0.0")
    if conn.dialect.name == "postgresql":
        params["q"] = " & ".join(f"{t}:*" for t in terms)
        clauses = ["c.search_vector @@ to_tsquery('simple', :q)"] + [
            c.format(doc="c.doc_id") for c in clauses
        ]
        score = "ts_rank_cd(c.search_vector, to_tsquery('simple', :q))"
        return _Plan("mesh_catalog c", "c.doc_id", f"WHERE {' AND '.join(clauses)}", params, score)
    expansions = [_expand(conn, t) for t in terms]
    if not all(expansions):
        return None
    match = [
        f'"{t}"*' if len(e) > EXPANSIONS else "(" + " OR ".join(f'"{x}"' for x, _ in e) + ")"
        for t, e in zip(terms, expansions, strict=True)
    ]
    # A domain or tag filter's words, required in that FTS5 column too: FTS5 then steps
    # through the few products of the domain (skipping in the long lists of common words)
    # instead of probing the facet filter for every match. The facet filter stays exact; the
    # price is a near-constant bm25 bonus for the filter's words in every hit.
    narrowing = [
        "{" + column + "} : (" + " AND ".join(f'"{t}"' for t in terms_of(value)) + ")"
        for facet, column in (("domain", "domain"), ("tag", "tags"))
        if (value := wanted.get(facet)) and terms_of(value)
    ]
    params["q"] = " AND ".join(match + narrowing)
    # Words every expansion of which is in more than half of the products: bm25 clamps their
    # idf to 1e-6, so they cannot move the ranking, but FTS5 would still read their whole
    # document lists (~5 ms per common word) to compute that idf. Ranking every match leaves
    # them out of the scored query and only requires them (see _exact_page).
    rows, _ = _fts_totals(conn)
    common = [_common(e, rows) for e in expansions]
    scored = [m for m, c in zip(match, common, strict=True) if not c] + narrowing
    if any(common) and scored:
        params["scored"] = " AND ".join(scored)
        params["unmet"] = (
            f"({params['scored']}) NOT ("
            + " AND ".join(m for m, c in zip(match, common, strict=True) if c)
            + ")"
        )
    # The filter is `+f.rowid IN (...)`: the unary plus keeps the constraint away from the
    # virtual table's planner, which would otherwise run the MATCH once per rowid of the
    # subquery (minutes at 100k products) instead of probing the subquery per match.
    clauses = ["mesh_catalog_fts MATCH :q"] + [c.format(doc="+f.rowid") for c in clauses]
    return _Plan(
        "mesh_catalog_fts f",
        "f.rowid",
        f"WHERE {' AND '.join(clauses)}",
        params,
        f"-bm25(mesh_catalog_fts, {_FTS_WEIGHTS})",
        expansions,
        wanted,
        narrowed=bool(narrowing),
        scope=wanted.get("domain") if narrowing and not _narrows(wanted.get("tag")) else None,
    )


def _common(expansion: list[tuple[str, int]], rows: int) -> bool:
    """Whether every indexed form of a query word is in more than half of the products."""
    return len(expansion) <= EXPANSIONS and all(2 * n > rows for _, n in expansion)


def _narrows(value: str | None) -> bool:
    """Whether a domain or tag filter's words are added to the FTS5 query."""
    return bool(value and terms_of(value))


def _expand(conn: Connection, word: str) -> list[tuple[str, int]]:
    """The indexed words starting with `word` and their document counts (at most
    EXPANSIONS + 1: more means "use a prefix query")."""
    upper = word[:-1] + chr(ord(word[-1]) + 1)
    rows = conn.execute(
        text(
            "SELECT term, docs FROM mesh_catalog_fts_terms WHERE term >= :lo AND term < :hi "
            "ORDER BY term LIMIT :n"
        ),
        {"lo": word, "hi": upper, "n": EXPANSIONS + 1},
    )
    return [(str(term), int(docs)) for term, docs in rows]


def _total(conn: Connection, plan: _Plan) -> tuple[int, bool, list[int] | None]:
    """(total, exact, the first FACET_SAMPLE matching ids or None); see the module doc. On
    FTS5 one pass over the first matches in id order: up to TOTAL_EXACT + 1 of them when a
    query word bounds the total to TOTAL_EXACT, else TOTAL_SAMPLE + 1, whose density estimates
    the total. A query with few matches is evaluated once for total, facets and ranking."""
    if plan.expansions is None:
        sql = f"SELECT count(*) FROM {plan.source} {plan.where}"
        return int(conn.execute(text(sql), plan.params).scalar() or 0), True, None
    walked = TOTAL_EXACT if _exact_is_cheap(plan.expansions) else TOTAL_SAMPLE
    every: str | None
    if _checks_common_words_here(conn, plan):
        found = _walk_checking_common_words(conn, plan, walked + 1)
        plan.walked = found  # the exact ranking goes on from here if it needs every match
        count, last = len(found), found[-1] if found else 0
        sample, every = found[:FACET_SAMPLE], json.dumps(found)
    else:
        count, last, sample, every = _walk(conn, plan, walked + 1)
    if count <= walked:  # the pass saw every match
        plan.matches = every if count <= MATCHES_KEPT else None
        return count, True, sample
    return max(count, estimate_total(count, last)), False, sample


def _walk(conn: Connection, plan: _Plan, limit: int) -> tuple[int, int, list[int], str | None]:
    """The first `limit` matches of an FTS5 query in one SQL pass: (their count, the last id,
    the first FACET_SAMPLE ids, every id as JSON when at most MATCHES_KEPT)."""
    # FTS5 returns matches in rowid order: the pass stops after `limit` of them, and
    # gives their count, the last id, the first FACET_SAMPLE ids for the facet counts, and
    # every id when at most MATCHES_KEPT (the exact ranking then needs no second pass).
    first = (
        f"SELECT {plan.doc} AS doc, row_number() OVER (ORDER BY {plan.doc}) AS n "
        f"FROM {plan.source} {plan.where} ORDER BY {plan.doc} LIMIT {limit}"
    )
    count, last, ids, every = conn.execute(
        text(
            "SELECT count(*), max(doc), json_group_array(doc) FILTER (WHERE n <= :sample), "
            "CASE WHEN count(*) <= :keep THEN json_group_array(doc) END "
            f"FROM ({first})"
        ),
        {**plan.params, "sample": FACET_SAMPLE, "keep": MATCHES_KEPT},
    ).one()
    sample = [int(doc) for doc in json.loads(ids or "[]")]
    return int(count), int(last or 0), sample, every


def _walk_checking_common_words(
    conn: Connection, plan: _Plan, limit: int, after: int = -1
) -> list[int]:
    """The first `limit` matching ids of a query with words in most products (`_common`):
    FTS5 walks the other words and the filters, and each candidate's text is checked here
    for the common words. FTS5 would step through the common words' lists (millions of
    postings) between candidates: ~6 us a candidate, where reading and checking its text
    costs ~15 us only for the candidates reached, at most about twice the matches kept.
    `after`: the walk starts after this id (where an earlier walk stopped)."""
    assert plan.expansions is not None
    rows, _ = _fts_totals(conn)
    common = [_whole_words([t for t, _ in e]) for e in plan.expansions if _common(e, rows)]
    where = plan.where.replace("MATCH :q", "MATCH :scored")
    columns = ", ".join(f"f.{c}" for c in FIELD_WEIGHTS)
    found: list[int] = []
    result = conn.execute(
        text(
            f"SELECT f.rowid, {columns} FROM mesh_catalog_fts f {where} AND f.rowid > :after "
            "ORDER BY f.rowid"
        ),
        {**plan.params, "after": after},
    )
    try:
        for doc, *fields in result:
            folded = " ".join(fold(field or "") for field in fields)
            if all(word.search(folded) for word in common):
                found.append(int(doc))
                if len(found) == limit:
                    break
    finally:
        result.close()
    return found


def _checks_common_words_here(conn: Connection, plan: _Plan) -> bool:
    """Whether walking the matches is cheaper with the words in most products checked in
    each candidate's text (~15 us a candidate) than with FTS5 stepping through their lists
    (~0.012 us a posting) -- over the same stretch of ids either way. The candidates (the
    other words and the filter's words) are counted as if independent: the cost is estimated,
    the result is the same."""
    if "scored" not in plan.params or plan.expansions is None:
        return False
    rows, _ = _fts_totals(conn)
    if not rows:
        return False
    common = [e for e in plan.expansions if _common(e, rows)]
    others = [sum(d for _, d in e) for e in plan.expansions if not _common(e, rows)]
    narrowing = [term for _, term in _narrowing(plan)]
    others += [
        int(docs)
        for (docs,) in conn.execute(
            text(
                "SELECT docs FROM mesh_catalog_fts_terms "
                "WHERE term IN (SELECT value FROM json_each(:t))"
            ),
            {"t": json.dumps(narrowing)},
        )
    ]
    share = math.prod(min(1.0, docs / rows) for docs in others)
    postings = sum(d for e in common for _, d in e)
    return share * rows * CHECK_HERE_COST < postings


def _whole_words(terms: Iterable[str]) -> re.Pattern[str]:
    """Any of `terms` as a whole indexed word (as the tokenizer splits text)."""
    alternatives = "|".join(re.escape(t) for t in terms)
    return re.compile(rf"(?<![^\W_])(?:{alternatives})(?![^\W_])")


def _exact_is_cheap(expansions: list[list[tuple[str, int]]]) -> bool:
    """Whether a pass over every match is known to be short: a query word's indexed forms are
    in at most TOTAL_EXACT products (their document counts summed bound the matches), and
    the query's words have at most EXACT_POSTINGS postings in all (FTS5 steps through the
    lists of the other words too: a word in every product costs ~6 us a match)."""
    if any(len(e) > EXPANSIONS for e in expansions):  # a prefix query: its forms not listed
        return False
    lists = [sum(docs for _, docs in e) for e in expansions]
    return min(lists) <= TOTAL_EXACT and sum(lists) <= EXACT_POSTINGS


def estimate_total(count: int, last: int) -> int:
    """How many document ids, uniform in [0, 2**62), a match set holds when its `count`
    lowest are at most `last` (the `count`-th lowest). `(count - 1) / fraction` is unbiased
    (the k-th lowest of n uniforms has E[1 / U] = n / (k - 1)), with a standard error of
    about 1 / sqrt(count - 2) of the total: 3.2% for the 1,001 matches walked."""
    if count < 2 or last < count - 1:
        raise InvalidInput("an estimate needs at least 2 distinct ids below `last`")
    return round((count - 1) * (_DOC_IDS / (last + 1)))


def _ranked_page(
    conn: Connection, plan: _Plan, total: int, *, limit: int, offset: int
) -> list[tuple[int, float]]:
    """The page of hits: from the champion lists for a broad query without tag filter (those
    of the domain when filtered by one), else (or when the champions do not fill it) bm25
    over every match."""
    broad = plan.expansions is not None and total > RANK_EXACT
    if broad and (not plan.narrowed or plan.scope):
        page = _champion_page(conn, plan, limit, offset)
        if page is not None:
            return page
    return _exact_page(conn, plan, limit, offset)


def _exact_page(conn: Connection, plan: _Plan, limit: int, offset: int) -> list[tuple[int, float]]:
    if plan.matches is None and _checks_common_words_here(conn, plan):
        # The total was estimated: list the matches (common words checked here) rather than
        # have FTS5 step through the common words' lists to exclude products without them.
        found = list(plan.walked or [])  # the total's pass: the first matches, checked
        if (remaining := MATCHES_KEPT + 1 - len(found)) > 0:
            after = found[-1] if found else -1
            found += _walk_checking_common_words(conn, plan, remaining, after)
        plan.matches = json.dumps(found) if len(found) <= MATCHES_KEPT else None
    known = json.loads(plan.matches) if plan.matches is not None else None
    if known is not None and plan.expansions is not None and _scores_here(conn, plan, len(known)):
        # As FTS5 scores them: without the words in most products when others are scored.
        products, _ = _fts_totals(conn)
        narrowing = _narrowing(plan)
        scored = [e for e in plan.expansions if not _common(e, products)]
        scores = _score(conn, known, scored if scored or narrowing else plan.expansions, narrowing)
        ranked = sorted(scores.items(), key=lambda hit: (-hit[1], hit[0]))
        return ranked[offset : offset + limit]
    order = "score DESC, doc" if plan.ranked else "c.product"
    where = plan.where
    params = {**plan.params, "limit": limit, "offset": offset}
    if "scored" in plan.params:  # score the informative words, require the common ones
        where = where.replace("MATCH :q", "MATCH :scored")
        if plan.matches is not None:  # the matches are known: no second pass over them
            where += " AND +f.rowid IN (SELECT value FROM json_each(:matches))"
            params["matches"] = plan.matches
        else:
            where += (
                " AND +f.rowid NOT IN (SELECT rowid FROM mesh_catalog_fts "
                "WHERE mesh_catalog_fts MATCH :unmet)"
            )
    rows = conn.execute(
        text(
            f"SELECT {plan.doc} AS doc, {plan.score} AS score FROM {plan.source} {where} "
            f"ORDER BY {order} LIMIT :limit OFFSET :offset"
        ),
        params,
    )
    return [(int(doc), float(score or 0.0)) for doc, score in rows]


def _scores_here(conn: Connection, plan: _Plan, matches: int) -> bool:
    """Whether scoring the known matches here is cheaper than FTS5's bm25: before scoring,
    FTS5 reads the whole document list of every phrase of the query to count the products
    holding it (its idf; ~0.08 us a posting), where this module reads those counts from
    `mesh_catalog_fts_terms` and scores a match in ~SCORE_HERE_COST postings' time."""
    assert plan.expansions is not None
    if any(len(e) > EXPANSIONS for e in plan.expansions):
        return False
    rows, _ = _fts_totals(conn)
    # Words in most products are left out of FTS5's scored query (see _plan): not read.
    postings = sum(sum(d for _, d in e) for e in plan.expansions if not _common(e, rows))
    return matches * SCORE_HERE_COST < postings


def _narrowing(plan: _Plan) -> list[tuple[str, str]]:
    """The (FTS5 column, word) phrases of the domain and tag filters in the FTS5 query."""
    wanted = plan.wanted or {}
    return [
        (column, term)
        for facet, column in (("domain", "domain"), ("tag", "tags"))
        if plan.narrowed and _narrows(value := wanted.get(facet))
        for term in terms_of(value or "")
    ]


def _champion_page(
    conn: Connection, plan: _Plan, limit: int, offset: int
) -> list[tuple[int, float]] | None:
    """The page from the query words' champion lists (see the module doc), or None when
    the champions do not fill it."""
    assert plan.expansions is not None
    if any(len(e) > EXPANSIONS for e in plan.expansions):
        return None
    phrases, idf = _phrase_weights(conn, plan.expansions)
    wanted_facets = dict(plan.wanted or {})
    keys = {term: term for term in phrases}
    if plan.scope:  # the domain's own lists; they hold only its products
        keys = {_domain_key(term, plan.scope): term for term in phrases}
        wanted_facets["domain"] = None
    clauses, params = _filters(wanted_facets, probe=True)
    where = "".join(f" AND {c.format(doc='ch.doc_id')}" for c in clauses)
    partial: dict[int, float] = defaultdict(float)
    for key, doc, impact in conn.execute(
        text(
            "SELECT ch.term, ch.doc_id, ch.impact FROM mesh_catalog_fts_champions ch "
            f"WHERE ch.term IN (SELECT value FROM json_each(:terms)){where}"
        ),
        {**params, "terms": json.dumps(list(keys))},
    ):
        term = keys[key]
        partial[int(doc)] += idf[term] * phrases[term] * float(impact)
    wanted = offset + limit
    ranked = sorted(partial, key=lambda doc: (-partial[doc], doc))
    # The best candidates first; when too few of them hold every query word (a word that
    # is common but not in most products), three times as many more before giving up.
    first = max(CANDIDATES, 4 * wanted)
    scores = _score(conn, ranked[:first], plan.expansions)
    if len(scores) < wanted:
        scores |= _score(conn, ranked[first : 4 * first], plan.expansions)
    scored = sorted(scores.items(), key=lambda h: (-h[1], h[0]))
    return scored[offset:wanted] if len(scored) >= wanted else None


def _phrase_weights(
    conn: Connection, expansions: list[list[tuple[str, int]]]
) -> tuple[Counter[str], dict[str, float]]:
    """Each expanded word with how often the FTS5 query names it, and its bm25 idf."""
    rows, _ = _fts_totals(conn)
    phrases = Counter(term for e in expansions for term, _ in e)
    docs = {term: n for e in expansions for term, n in e}
    idf = {t: max(math.log((rows - docs[t] + 0.5) / (docs[t] + 0.5)), _MIN_IDF) for t in phrases}
    return phrases, idf


def _score(
    conn: Connection,
    docs: list[int],
    expansions: list[list[tuple[str, int]]],
    narrowing: list[tuple[str, str]] | None = None,
) -> dict[int, float]:
    """FTS5's bm25 (its formula, field weights, row lengths and averages) of the documents
    that contain an expansion of every query word, computed here for a few documents.
    `narrowing`: the (column, word) phrases a domain or tag filter adds to the FTS5 query,
    counted in that column only, as FTS5 counts a column-filtered phrase."""
    if not docs:
        return {}
    phrases, idf = _phrase_weights(conn, expansions)
    narrowing_idf = _narrowing_weights(conn, narrowing or [])
    _, avgdl = _fts_totals(conn)
    whole_word = _whole_words(phrases)
    # The text FTS5 indexed (its content table: c0 the product, then the columns in order)
    # and each row's length in words (its docsize record): one primary-key read each.
    texts = ", ".join(f"c.c{i + 1}" for i in range(len(FIELD_WEIGHTS)))
    rows = conn.execute(
        text(
            f"SELECT c.id, d.sz, {texts} FROM mesh_catalog_fts_content c "
            "JOIN mesh_catalog_fts_docsize d ON d.id = c.id "
            "WHERE c.id IN (SELECT value FROM json_each(:d))"
        ),
        {"d": json.dumps(docs)},
    )
    scores = {}
    for doc, size, *values in rows:
        fields = dict(zip(FIELD_WEIGHTS, (str(v or "") for v in values), strict=True))
        frequencies: dict[str, float] = defaultdict(float)
        for field, weight in FIELD_WEIGHTS.items():
            for term in whole_word.findall(fold(fields[field])):
                frequencies[term] += weight
        if not all(any(t in frequencies for t, _ in e) for e in expansions):
            continue
        length = sum(_varints(bytes(size)))
        scores[int(doc)] = sum(
            idf[p] * n * _saturation(frequencies[p], length, avgdl)
            for p, n in phrases.items()
            if p in frequencies
        ) + sum(
            weight * _saturation(frequency, length, avgdl)
            for (column, term), weight in narrowing_idf.items()
            if (frequency := FIELD_WEIGHTS[column] * terms_of(fields[column]).count(term))
        )
    return scores


def _narrowing_weights(
    conn: Connection, narrowing: list[tuple[str, str]]
) -> dict[tuple[str, str], float]:
    """The bm25 idf of each (column, word) phrase of a domain or tag filter, times how often
    the FTS5 query names it. FTS5 counts the products holding such a phrase in its column
    (a domain's word: its products, ~1 ms at 1M products), and so does this."""
    rows, _ = _fts_totals(conn)
    weights: dict[tuple[str, str], float] = defaultdict(float)
    for column, term in narrowing:
        n = int(
            conn.execute(
                text("SELECT count(*) FROM mesh_catalog_fts WHERE mesh_catalog_fts MATCH :q"),
                {"q": "{" + column + '} : "' + term + '"'},
            ).scalar_one()
        )
        weights[(column, term)] += max(math.log((rows - n + 0.5) / (n + 0.5)), _MIN_IDF)
    return weights


def _facet_counts(
    conn: Connection, plan: _Plan, total: int, sample: list[int] | None
) -> tuple[dict[str, dict[str, int]], bool]:
    """Facet counts over every match when few, else over the first FACET_SAMPLE by document
    id (hash order, so an even sample) scaled to the total -- no ranking needed for counting.
    Also whether they are estimated."""
    if sample is None:
        sampled = total > FACET_SAMPLE
        candidates = f"SELECT {plan.doc} FROM {plan.source} {plan.where}" + (
            f" ORDER BY {plan.doc} LIMIT {FACET_SAMPLE}" if sampled else ""
        )
        params, counted_docs = plan.params, min(total, FACET_SAMPLE)
    else:
        sample = sample[:FACET_SAMPLE]
        candidates, params = "SELECT value FROM json_each(:sample)", {"sample": json.dumps(sample)}
        counted_docs = len(sample)
    counted = conn.execute(
        text(
            "SELECT facet, value, count(*) FROM mesh_catalog_facets "
            f"WHERE doc_id IN ({candidates}) GROUP BY facet, value"
        ),
        params,
    ).all()
    estimated = counted_docs < total
    scale = total / counted_docs if estimated and counted_docs else 1.0
    facets: dict[str, dict[str, int]] = {facet: {} for facet in FACETS}
    for facet, value, n in counted:
        facets[str(facet)][str(value)] = max(1, round(int(n) * scale))
    return facets, estimated


def _hits(conn: Connection, page: list[tuple[int, float]]) -> list[SearchHit]:
    if not page:
        return []
    c = mesh_catalog.c
    rows = conn.execute(
        select(
            c.doc_id,
            c.product,
            c.domain,
            c.name,
            c.status,
            c.description,
            c.tags,
            c.owners,
            c.latest_version,
        ).where(c.doc_id.in_([doc for doc, _ in page]))
    ).mappings()
    by_doc = {int(r["doc_id"]): r for r in rows}
    return [
        SearchHit(
            product=r["product"],
            domain=r["domain"],
            name=r["name"],
            status=r["status"],
            description=r["description"],
            tags=_json_list(r["tags"]),
            owners=_json_list(r["owners"]),
            latest_version=r["latest_version"],
            score=score,
        )
        for doc, score in page
        if (r := by_doc.get(doc)) is not None
    ]


def _json_list(value: Any) -> list[str]:
    if isinstance(value, str):
        value = json.loads(value)
    return [str(v) for v in value or []]
