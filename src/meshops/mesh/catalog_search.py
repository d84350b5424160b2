"""Searching the catalog: ranked hits, totals and facet counts (see `meshops.mesh.catalog`
for the tables).

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
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select, text

from meshops.kernel.errors import InvalidInput
from meshops.mesh.catalog import (
    FACETS,
    FIELD_WEIGHTS,
    domain_key,
    fold,
    fts_totals,
    json_list,
    saturation,
    terms_of,
    varints,
)
from meshops.mesh.models import SearchHit, SearchResult
from meshops.mesh.store import mesh_catalog

_FTS_WEIGHTS = "0.0, " + ", ".join(str(w) for w in FIELD_WEIGHTS.values())
_MIN_IDF = 1e-6  # FTS5 clamps the idf of words in more than half the rows to this
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
# Ranking up to MATCHES_KEPT known matches in Python costs about this many postings of
# FTS5's idf pass each (calibrated at 1M products: ~40 us a match, ~0.08 us a posting).
SCORE_HERE_COST = 500
# Checking a candidate's text for words in most products costs about this many postings of
# FTS5 stepping through those words' lists (~15 us a candidate, ~0.012 us a posting).
CHECK_HERE_COST = 1000
CANDIDATES = 100  # champions scored exactly per query (at least 4x the page end)
EXPANSIONS = 32  # a query word with more indexed words is matched as an FTS5 prefix query
_DOC_IDS = 2**62  # document ids are uniform in [0, 2**62)


def words(query: str) -> list[str]:
    return terms_of(query)[:16]


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
    rows, _ = fts_totals(conn)
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
    rows, _ = fts_totals(conn)
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
    rows, _ = fts_totals(conn)
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
        products, _ = fts_totals(conn)
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
    rows, _ = fts_totals(conn)
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
        keys = {domain_key(term, plan.scope): term for term in phrases}
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
    rows, _ = fts_totals(conn)
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
    _, avgdl = fts_totals(conn)
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
        length = sum(varints(bytes(size)))
        scores[int(doc)] = sum(
            idf[p] * n * saturation(frequencies[p], length, avgdl)
            for p, n in phrases.items()
            if p in frequencies
        ) + sum(
            weight * saturation(frequency, length, avgdl)
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
    rows, _ = fts_totals(conn)
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
            tags=json_list(r["tags"]),
            owners=json_list(r["owners"]),
            latest_version=r["latest_version"],
            score=score,
        )
        for doc, score in page
        if (r := by_doc.get(doc)) is not None
    ]
