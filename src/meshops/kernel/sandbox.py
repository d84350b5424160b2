"""The one place SQL that a user wrote runs: a locked DuckDB connection over governed relations.

Every interface that accepts SQL from a user (`product sql`, training-set SQL, contract
`sql` quality rules, SQL transforms of builds) goes through `Sandbox.run_user_sql`. Two
independent walls stand between that text and the machine:

1. The connection. Before anything else runs it gets `allowed_paths` = exactly the Parquet
   files its governed views read, `enable_external_access = false` (no other file, no
   network, no ATTACH, no extension install or load), extension autoinstall/autoload off,
   Python replacement scans off, and then `lock_configuration = true`, so no statement can
   undo any of it.
2. The text. It must be ONE statement of type SELECT (DuckDB's own parser says so, not a
   regular expression), and its syntax tree (`json_serialize_sql`) is walked: every table it
   names must be a governed relation or a CTE of the same query in scope; table functions
   are limited to a short list (`range`, `generate_series`, `unnest`); functions that reveal
   the catalog, settings, the environment or statistics (`duckdb_*`, `pragma_*`, `read_*`,
   `glob`, `query`, `current_setting`, `getvariable`, `stats`, `pg_get_viewdef`, ...) are
   refused; length and nesting depth are bounded. Anything refused is an `InvalidInput`
   naming the construct.

The connection's governed relations are either views over a snapshot's Parquet file (a
SELECT written by the platform, e.g. masked and row-filtered for the caller: DuckDB reads
Parquet natively, several times faster than over a registered Arrow dataset) or in-memory
Arrow tables. Errors returned to the user never carry a file path or the masking key: each
is replaced by the relation's label (e.g. the product name).

Masking lives here too: each method is defined once in `MASKINGS` (its SQL and, where Python
gives the same value, its Python form). The governed views and the masked read path run its
SQL (`governed_select`); the governance area's Arrow and online masking take both forms from
it. `hash` is HMAC-SHA256 keyed with the home's masking key (kernel/secrets.py), computed in
SQL as sha256((K xor opad) || sha256((K xor ipad) || utf8(text))), equal to Python's `hmac`.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import duckdb
import pyarrow as pa

from meshops.kernel.access import MaskMethod
from meshops.kernel.config import Settings
from meshops.kernel.errors import BadRequest, InvalidInput
from meshops.kernel.secrets import derived_key

MAX_QUERY_CHARS = 100_000
# A user query runs at most this long (seconds) before it is interrupted, and its result
# (Arrow, in the server's memory) may not grow beyond this many bytes.
TIMEOUT_SECONDS = 300.0
MAX_RESULT_BYTES = 4 * 2**30
RESULT_BATCH_ROWS = 1_000_000
# Parser expression depth (DuckDB's own check) and the syntax tree's nesting (ours).
MAX_EXPRESSION_DEPTH = 250
MAX_TREE_DEPTH = 2_000

# Every sandbox session (and the Arrow masking) spells and compares timestamps in UTC, so a
# `hash`-masked timestamp is the same pseudonym on every host.
TIMEZONE = "UTC"

TABLE_FUNCTIONS = frozenset({"range", "generate_series", "unnest"})

# Scalar, aggregate and macro functions a user query may not call: they reveal settings,
# the environment, the catalog (view text holds snapshot paths and the masking key),
# statistics of unfiltered data, or have side effects.
REFUSED_FUNCTIONS = frozenset(
    {
        "current_setting", "getenv", "getvariable", "set_variable", "current_query",
        "current_database", "current_catalog", "current_schema", "current_schemas",
        "current_role", "current_user", "session_user", "user", "in_search_path",
        "query", "query_table", "glob", "sniff_csv", "which_secret", "stats",
        "json_serialize_sql", "json_serialize_plan", "json_deserialize_sql",
        "json_execute_serialized_sql", "nextval", "currval", "setval", "write_log",
        "parse_duckdb_log_message", "sleep_ms", "checkpoint", "force_checkpoint",
        "col_description", "obj_description", "shobj_description", "format_type",
        "format_pg_type", "map_to_pg_oid", "map_type_id_to_pg_oid", "get_block_size",
        "txid_current", "current_connection_id", "current_query_id", "current_transaction_id",
        "enable_logging", "disable_logging", "enable_profiling", "disable_profiling",
        "summary", "arrow_scan", "arrow_scan_dumb", "python_arrow_scan", "pandas_scan",
        "python_map_function", "seq_scan", "icu_calendar_names", "pg_timezone_names",
        "test_all_types", "test_vector_types", "repeat_row", "histogram_values",
        "duckdb_logs_parsed", "duckdb_profiling_settings",
    }
)  # fmt: skip
REFUSED_PREFIXES = (
    "duckdb_", "pragma_", "read_", "parquet_", "pg_", "has_", "inet_", "__", "json_execute",
    "register_external", "create_external", "destroy_external", "deregister_external",
    "add_grammar", "remove_grammar", "truncate_duckdb", "sqlite_", "information_schema",
)  # fmt: skip

# Schemas and catalogs of DuckDB itself: never a governed relation.
SYSTEM_SCHEMAS = frozenset({"main", "temp", "system", "memory", "information_schema", "pg_catalog"})

_TABLE_REF_TYPES = frozenset(
    {"BASE_TABLE", "JOIN", "SUBQUERY", "TABLE_FUNCTION", "EMPTY", "EXPRESSION_LIST"}
)
_QUERY_NODE_TYPES = frozenset({"SELECT_NODE", "SET_OPERATION_NODE", "RECURSIVE_CTE_NODE"})
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")
_FIX = "write one SELECT over the governed relations (e.g. sales.orders), nothing else"


# --- masking: each method defined once ------------------------------------------------------

REDACTED = "****"


def quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _hmac_pads(key: bytes) -> tuple[str, str]:
    """The HMAC inner and outer padded keys (RFC 2104, SHA-256 block of 64 bytes), as hex."""
    if len(key) > 64:
        key = hashlib.sha256(key).digest()
    block = key.ljust(64, b"\0")
    return bytes(b ^ 0x36 for b in block).hex(), bytes(b ^ 0x5C for b in block).hex()


def hmac_sql(value_sql: str, key: bytes) -> str:
    """HMAC-SHA256(key, utf8(CAST(value AS VARCHAR))) as lowercase hex; null stays null."""
    inner, outer = _hmac_pads(key)
    text = f"encode(CAST({value_sql} AS VARCHAR))"
    return f"sha256(unhex('{outer}') || unhex(sha256(unhex('{inner}') || {text})))"


def hmac_text(text: str, key: bytes) -> str:
    """What `hmac_sql` computes, over one text in Python."""
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


def _redact_sql(column: str, key: bytes) -> str:
    return f"CASE WHEN {column} IS NULL THEN NULL ELSE '{REDACTED}' END"


def _null_sql(column: str, key: bytes) -> str:
    # A null of the column's own type, folded to a constant: the column is not read.
    return f"CASE WHEN false THEN {column} END"


@dataclass(frozen=True)
class Masking:
    """One masking method: its DuckDB expression over a (quoted) column, and the same
    function over one non-null Python value. Every method keeps nulls null. With
    `text_only`, `value` equals the SQL for text alone: the SQL masks DuckDB's own text of
    other types (a timestamp's spelling), so those take the SQL."""

    sql: Callable[[str, bytes], str]
    value: Callable[[Any, bytes], Any]
    text_only: bool = False


MASKINGS: dict[MaskMethod, Masking] = {
    "hash": Masking(hmac_sql, hmac_text, text_only=True),
    "redact": Masking(_redact_sql, lambda value, key: REDACTED),
    "null": Masking(_null_sql, lambda value, key: None),
}
MASK_METHODS: tuple[MaskMethod, ...] = tuple(MASKINGS)


def masking(method: MaskMethod) -> Masking:
    """The definition of `method`; InvalidInput for an unknown one."""
    found = MASKINGS.get(method)
    if found is None:
        raise InvalidInput(
            f"unknown mask method {method!r}",
            {"field": "masks", "fix": f"use {list(MASK_METHODS)}"},
        )
    return found


def masking_key(settings: Settings) -> bytes:
    """The home's key for `hash` masking (never stored in the metadata database)."""
    return derived_key(settings, "masking")


def mask_expression(column: str, method: MaskMethod, key: bytes) -> str:
    """The DuckDB expression computing the masked value of `column` (not aliased)."""
    return masking(method).sql(quote(column), key)


def governed_select(
    source: str,
    columns: Sequence[str],
    masks: Mapping[str, MaskMethod],
    key: bytes,
    *,
    row_filter: str | None = None,
) -> str:
    """SELECT of `columns` from `source` (a relation expression), masked and row-filtered."""
    exprs = []
    for column in columns:
        method = masks.get(column)
        if method is None:
            exprs.append(quote(column))
        else:
            exprs.append(f"{mask_expression(column, method, key)} AS {quote(column)}")
    where = f" WHERE ({row_filter})" if row_filter else ""
    return f"SELECT {', '.join(exprs)} FROM {source}{where}"


def key_texts(key: bytes) -> dict[str, str]:
    """Texts derived from the masking key that must never reach a user, for `Sandbox(hide=)`."""
    return dict.fromkeys([*_hmac_pads(key), key.hex()], "<masking key>")


# --- relations --------------------------------------------------------------------------


@dataclass(frozen=True)
class Relation:
    """One governed relation of a sandbox: a view `schema.name` (or `name`).

    Exactly one of `table` (in-memory Arrow, registered) or `select` (platform SQL over the
    Parquet `files`, e.g. from `governed_select`) gives its rows. `label` replaces the
    files' paths in any message returned to the user.
    """

    name: str
    schema: str | None = None
    table: pa.Table | None = None
    select: str | None = None
    files: tuple[str, ...] = ()
    label: str = ""

    @property
    def key(self) -> tuple[str, str]:
        return ((self.schema or "").lower(), self.name.lower())

    @property
    def display(self) -> str:
        return f"{self.schema}.{self.name}" if self.schema else self.name


def parquet_source(path: str) -> str:
    """The relation expression reading one Parquet file (platform SQL only)."""
    return f"read_parquet({_sql_string(path)})"


# --- parsing the user's text --------------------------------------------------------------


@dataclass(frozen=True)
class TableRef:
    """A table the user's query names (not a CTE of the query)."""

    name: str
    schema: str = ""
    catalog: str = ""

    @property
    def key(self) -> tuple[str, str]:
        return (self.schema.lower(), self.name.lower())

    @property
    def display(self) -> str:
        return ".".join(p for p in (self.catalog, self.schema, self.name) if p)

    @property
    def construct(self) -> str:
        """How a refusal names it: a file path is not echoed back (a replacement scan)."""
        parts = (self.catalog, self.schema, self.name)
        if all(_IDENTIFIER.match(p) for p in parts if p):
            return f"the table {self.display!r}"
        return "a file or URL as a table (a replacement scan)"


@dataclass(frozen=True)
class UserQuery:
    """A user's SQL text that passed every check except which relations it may read."""

    text: str
    tables: tuple[TableRef, ...] = field(default=())


def refused(construct: str, field_name: str, why: str = "") -> BadRequest:
    reason = f": {why}" if why else ""
    return BadRequest(
        f"SQL run by meshops may not use {construct}{reason}",
        {"field": field_name, "construct": construct, "fix": _FIX},
    )


def parse(text: str, field_name: str = "query") -> UserQuery:
    """Check `text` is one read-only SELECT using only allowed constructs; list its tables."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidInput("the SQL query is empty", {"field": field_name, "fix": _FIX})
    if len(text) > MAX_QUERY_CHARS:
        raise InvalidInput(
            f"the SQL query is {len(text):,} characters long; at most {MAX_QUERY_CHARS:,}",
            {"field": field_name, "fix": "shorten the query"},
        )
    with _parser() as con:
        _single_select(con, text, field_name)
        tree = _syntax_tree(con, text, field_name)
    tables = _Walker(field_name).walk(tree)
    return UserQuery(text, tuple(tables))


def check_predicate(predicate: str, field_name: str = "row_filter") -> str:
    """A SQL predicate (a grant's row filter) that reads no table and calls no refused
    function: it is pasted into a governed view's WHERE, before masking."""
    parsed = parse(f"SELECT 1 WHERE ({predicate})", field_name)
    if parsed.tables:
        raise refused(parsed.tables[0].construct, field_name, "a row filter reads no table")
    return predicate


_parser_db: duckdb.DuckDBPyConnection | None = None
_parser_lock = threading.Lock()


@contextmanager
def _parser() -> Iterator[duckdb.DuckDBPyConnection]:
    """A cursor on a process-wide locked DuckDB used only to parse (opening one costs ~10 ms)."""
    global _parser_db  # noqa: PLW0603 - one parsing database per process, opened lazily
    with _parser_lock:
        if _parser_db is None:
            _parser_db = _locked_connection([], threads=1, pooled=False)
        cursor = _parser_db.cursor()
    try:
        yield cursor
    finally:
        cursor.close()


def _single_select(con: duckdb.DuckDBPyConnection, text: str, field_name: str) -> None:
    try:
        statements = con.extract_statements(text)
    except duckdb.Error as exc:
        if "expression depth" in str(exc):
            raise _too_deep(field_name) from exc
        raise BadRequest(
            f"cannot parse the SQL query: {_first_line(exc)}",
            {"field": field_name, "fix": "correct the SQL (DuckDB dialect)"},
        ) from exc
    if len(statements) != 1:
        raise refused(
            f"several statements ({len(statements)})" if statements else "an empty statement",
            field_name,
            "send exactly one SELECT, without `;` between statements",
        )
    kind = statements[0].type.name
    if kind != "SELECT":
        raise refused(_statement_name(statements[0].query, kind), field_name, "only a SELECT runs")


_LEADING = re.compile(r"^(?:\s+|--[^\n]*\n?|/\*.*?\*/|\()*", re.S)


def _statement_name(query: str, kind: str) -> str:
    """`INSTALL (a LOAD statement)`: the keyword the user wrote, and DuckDB's statement type."""
    words = _LEADING.sub("", query).split(None, 2)
    word = " ".join(words[:2]).upper() if words[:1] == ["EXPORT"] else (words or [""])[0]
    word = re.sub(r"[^A-Za-z ]", "", word).upper()
    if kind == "MULTI":
        return "a query DuckDB runs as several statements (PIVOT/UNPIVOT)"
    kind = kind.replace("_", " ")
    return word if word == kind or not word else f"{word} (a {kind} statement)"


def _syntax_tree(con: duckdb.DuckDBPyConnection, text: str, field_name: str) -> Any:
    serialized = con.execute("SELECT json_serialize_sql(?)", [text]).fetchone()
    try:
        tree = json.loads(serialized[0] if serialized else "{}")
    except RecursionError as exc:
        raise _too_deep(field_name) from exc
    if not isinstance(tree, dict) or tree.get("error") or len(tree.get("statements") or []) != 1:
        message = str(tree.get("error_message", "")) if isinstance(tree, dict) else ""
        if "depth" in message:
            raise _too_deep(field_name)
        raise refused(
            "this construct", field_name, message or "it cannot be checked, so it is not run"
        )
    return tree["statements"][0]


def _too_deep(field_name: str) -> InvalidInput:
    return InvalidInput(
        "the SQL query is nested too deeply",
        {"field": field_name, "fix": "flatten the query (fewer nested expressions/subqueries)"},
    )


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


class _Walker:
    """Walks a serialized statement: refuses what is not allowed, collects table refs.

    CTE names are tracked with their scope (a CTE is visible in its query node's body, in
    itself and in the CTEs after it), so a name defined in one subquery cannot be used
    elsewhere to reach a catalog object or a file of the same name."""

    def __init__(self, field_name: str) -> None:
        self.field = field_name
        self.tables: list[TableRef] = []

    def walk(self, tree: Any) -> list[TableRef]:
        stack: list[tuple[Any, frozenset[str], int]] = [(tree, frozenset(), 0)]
        while stack:
            value, scope, depth = stack.pop()
            if depth > MAX_TREE_DEPTH:
                raise _too_deep(self.field)
            if isinstance(value, list):
                stack.extend((item, scope, depth + 1) for item in value)
            elif isinstance(value, dict):
                stack.extend(self._visit(value, scope, depth + 1))
        return list(dict.fromkeys(self.tables))

    def _visit(
        self, node: dict[str, Any], scope: frozenset[str], depth: int
    ) -> list[tuple[Any, frozenset[str], int]]:
        children: list[tuple[Any, frozenset[str], int]] = []
        if "cte_map" in node and "modifiers" in node:
            scope = self._query_node(node, scope, depth, children)
        elif "class" not in node and "sample" in node and "type" in node:
            self._table_ref(node, scope)
        if "function_name" in node:
            self._function(node)
        children.extend((v, scope, depth) for k, v in node.items() if k != "cte_map")
        return children

    def _query_node(
        self,
        node: dict[str, Any],
        scope: frozenset[str],
        depth: int,
        children: list[tuple[Any, frozenset[str], int]],
    ) -> frozenset[str]:
        if node.get("type") not in _QUERY_NODE_TYPES:
            raise refused(str(node.get("type", "this query form")).replace("_", " "), self.field)
        entries = (node.get("cte_map") or {}).get("map") or []
        names: list[str] = []
        for entry in entries:
            name = str(entry.get("key", ""))
            if not _IDENTIFIER.match(name):
                raise refused(f"the CTE name {name!r}", self.field, "use a plain identifier")
            names.append(name.lower())
            # A CTE sees the ones before it and itself (WITH RECURSIVE).
            children.append((entry.get("value"), scope | frozenset(names), depth))
        cte_name = node.get("cte_name")
        if node.get("type") == "RECURSIVE_CTE_NODE" and isinstance(cte_name, str):
            names.append(cte_name.lower())
        return scope | frozenset(names)

    def _table_ref(self, node: dict[str, Any], scope: frozenset[str]) -> None:
        kind = str(node.get("type"))
        if kind not in _TABLE_REF_TYPES:
            what = {"SHOW_REF": "DESCRIBE/SHOW/SUMMARIZE", "PIVOT": "PIVOT/UNPIVOT"}.get(kind)
            raise refused(what or kind.replace("_", " "), self.field)
        if kind == "TABLE_FUNCTION":
            function = node.get("function") or {}
            name = str(function.get("function_name", "")).lower()
            if name not in TABLE_FUNCTIONS or function.get("schema") or function.get("catalog"):
                raise refused(
                    f"the table function {name}()",
                    self.field,
                    f"only {sorted(TABLE_FUNCTIONS)} may be used in FROM",
                )
        elif kind == "BASE_TABLE":
            ref = TableRef(
                name=str(node.get("table_name", "")),
                schema=str(node.get("schema_name") or ""),
                catalog=str(node.get("catalog_name") or ""),
            )
            if not ref.schema and not ref.catalog and ref.name.lower() in scope:
                return  # a CTE of this query
            self.tables.append(ref)

    def _function(self, node: dict[str, Any]) -> None:
        name = str(node.get("function_name", "")).lower()
        if node.get("schema") or node.get("catalog"):
            raise refused(
                f"the schema-qualified function {node.get('schema')}.{name}()",
                self.field,
                "call functions by their plain name",
            )
        if name in REFUSED_FUNCTIONS or name.startswith(REFUSED_PREFIXES):
            raise refused(f"the function {name}()", self.field)


# --- the connection -------------------------------------------------------------------------


def _locked_connection(
    relations: Sequence[Relation],
    *,
    threads: int | None = None,
    temp_directory: str | None = None,
    pooled: bool = True,
) -> duckdb.DuckDBPyConnection:
    """A fresh in-memory DuckDB with `relations` defined, then walled in and locked."""
    con = _spares.take() if pooled else _fresh_database()
    try:
        files = sorted({f for r in relations for f in r.files})
        # One script (each execute call costs a round trip through the client).
        settings = []
        if threads:
            settings.append(f"SET threads = {int(threads)}")
        if temp_directory:  # where large sorts and joins spill (DuckDB's own files)
            settings.append(f"SET temp_directory = {_sql_string(temp_directory)}")
        # Only the snapshot files of these relations stay readable once access is off.
        listed = ", ".join(_sql_string(f) for f in files)
        settings += [f"SET allowed_paths = [{listed}]", "SET enable_external_access = false"]
        con.execute(";\n".join(settings))
        for index, relation in enumerate(relations):
            _define(con, index, relation)
        con.execute("SET lock_configuration = true")
    except BaseException:
        _spares.dispose(con)
        raise
    return con


def _fresh_database() -> duckdb.DuckDBPyConnection:
    """A new in-memory database with the settings every sandbox shares (opened ahead of
    time by `_Spares`); nothing in it yet can read a file, as `allowed_paths` comes next."""
    con = duckdb.connect(
        ":memory:",
        config={
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
            "allow_community_extensions": False,
            "allow_unsigned_extensions": False,
            "allow_persistent_secrets": False,
            "python_enable_replacements": False,
            # Cursors (the parser's) open new sessions that must keep the bound.
            "max_expression_depth": MAX_EXPRESSION_DEPTH,
        },
    )
    # A server's stdout is no terminal; timestamps are spelt in UTC (see TIMEZONE).
    con.execute(f"SET enable_progress_bar = false; SET TimeZone = '{TIMEZONE}'")
    return con


class _Spares:
    """Fresh, never-used databases opened ahead of time, and closing done afterwards, on one
    background thread: opening an in-memory DuckDB costs 10-30 ms and closing one several,
    a fixed cost per query that a server should not pay while the caller waits. Each
    sandbox still gets a database of its own (settings and locks are per database). Spares
    are kept only once a process has run more than one sandbox (a CLI runs one)."""

    def __init__(self, size: int = 2) -> None:
        self.size = size
        self._ready: list[duckdb.DuckDBPyConnection] = []
        self._lock = threading.Lock()
        self._used = 0
        self._worker: ThreadPoolExecutor | None = None

    def take(self) -> duckdb.DuckDBPyConnection:
        with self._lock:
            self._used += 1
            con = self._ready.pop() if self._ready else None
            warm = self._used > 1
        if warm:
            self._background(self._top_up)
        return con if con is not None else _fresh_database()

    def dispose(self, con: duckdb.DuckDBPyConnection) -> None:
        if self._used > 1:
            self._background(con.close)
        else:
            con.close()

    def _top_up(self) -> None:
        while True:
            with self._lock:
                if len(self._ready) >= self.size:
                    return
            con = _fresh_database()
            with self._lock:
                self._ready.append(con)

    def _background(self, task: Callable[[], None]) -> None:
        with self._lock:
            if self._worker is None:
                self._worker = ThreadPoolExecutor(1, thread_name_prefix="meshops-sandbox")
            worker = self._worker
        worker.submit(task)


_spares = _Spares()


class _Watchdog:
    """One daemon thread that interrupts queries past their deadline (a `threading.Timer`
    per query would start a thread per query)."""

    def __init__(self) -> None:
        self._deadlines: dict[int, tuple[float, Callable[[], None]]] = {}
        self._wake = threading.Condition()
        self._next = 0
        self._thread: threading.Thread | None = None

    def arm(self, seconds: float, interrupt: Callable[[], None]) -> int:
        with self._wake:
            self._next += 1
            self._deadlines[self._next] = (time.monotonic() + seconds, interrupt)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="meshops-sql-watchdog", daemon=True
                )
                self._thread.start()
            self._wake.notify()
            return self._next

    def disarm(self, ticket: int) -> None:
        with self._wake:
            self._deadlines.pop(ticket, None)

    def _run(self) -> None:
        while True:
            with self._wake:
                now = time.monotonic()
                due = [t for t, (at, _) in self._deadlines.items() if at <= now]
                interrupts = [self._deadlines.pop(t)[1] for t in due]
                if not interrupts:
                    soonest = min((at for at, _ in self._deadlines.values()), default=now + 60)
                    self._wake.wait(max(0.01, soonest - now))
            for interrupt in interrupts:
                # The query may have ended (and its database closed) meanwhile.
                with contextlib.suppress(Exception):
                    interrupt()


_watchdog = _Watchdog()


def _after_fork_in_child() -> None:
    """A forked child (a worker pool) may not use the parent's databases or threads: it
    starts with none. The parent's objects are kept referenced, never closed or collected
    here: a DuckDB database destroyed in a forked child joins threads it does not have."""
    global _spares, _watchdog, _parser_db, _parser_lock
    _inherited.append((_spares, _watchdog, _parser_db))
    _spares, _watchdog, _parser_db, _parser_lock = _Spares(), _Watchdog(), None, threading.Lock()


_inherited: list[object] = []


os.register_at_fork(after_in_child=_after_fork_in_child)


def _define(con: duckdb.DuckDBPyConnection, index: int, relation: Relation) -> None:
    target = quote(relation.name)
    if relation.schema:
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(relation.schema)}")
        target = f"{quote(relation.schema)}.{target}"
    if relation.table is not None:
        if not relation.schema:
            con.register(relation.name, relation.table)
            return
        internal = f"__meshops_relation_{index}"
        con.register(internal, relation.table)
        con.execute(f"CREATE VIEW {target} AS SELECT * FROM {quote(internal)}")
        return
    if relation.select is None:
        raise ValueError(f"relation {relation.display} has neither a table nor a select")
    con.execute(f"CREATE VIEW {target} AS {relation.select}")


class Sandbox:
    """A locked DuckDB connection whose only relations are the governed ones given.

    Use as a context manager; `run_user_sql` runs text a user wrote (checked first),
    `run_platform_sql` runs SQL meshops wrote over the same relations (still locked in)."""

    def __init__(
        self,
        relations: Sequence[Relation],
        *,
        hide: Mapping[str, str] | None = None,
        threads: int | None = None,
        timeout: float = TIMEOUT_SECONDS,
        temp_directory: str | None = None,
        max_result_bytes: int = MAX_RESULT_BYTES,
    ) -> None:
        self.relations = list(relations)
        self.timeout = timeout
        self.max_result_bytes = max_result_bytes
        self._scrub = _scrubber(self.relations, hide or {})
        try:
            self.con = _locked_connection(
                self.relations, threads=threads, temp_directory=temp_directory
            )
        except duckdb.Error as exc:
            raise InvalidInput(
                f"cannot open the governed relations: {self.scrub(_first_line(exc))}",
                {"relations": [r.display for r in self.relations]},
            ) from exc

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        _spares.dispose(self.con)

    def scrub(self, message: str) -> str:
        """`message` without any file path, home path or key text of this sandbox."""
        return self._scrub(message)

    def run_user_sql(self, query: str | UserQuery, field_name: str = "query") -> pa.Table:
        """Check and run a user's SELECT; InvalidInput names what is refused."""
        parsed = query if isinstance(query, UserQuery) else parse(query, field_name)
        governed = {r.key for r in self.relations}
        for ref in parsed.tables:
            if ref.catalog or ref.key not in governed:
                raise refused(
                    ref.construct,
                    field_name,
                    f"readable here: {sorted(r.display for r in self.relations)}",
                )
        return self._execute(parsed.text, field_name)

    def _bounded_result(self, sql: str, field_name: str) -> pa.Table:
        """The result, streamed: a query whose answer outgrows `max_result_bytes` (say
        `SELECT * FROM range(1e12)`) is stopped before it fills the server's memory."""
        reader = self.con.sql(sql).to_arrow_reader(RESULT_BATCH_ROWS)
        batches, size = [], 0
        try:
            for batch in reader:
                size += batch.nbytes
                if size > self.max_result_bytes:
                    self.con.interrupt()
                    raise InvalidInput(
                        f"the SQL query's result is larger than {self.max_result_bytes:,} bytes",
                        {"field": field_name, "fix": "aggregate, filter or add a LIMIT"},
                    )
                batches.append(batch)
        finally:
            reader.close()
        return pa.Table.from_batches(batches, schema=reader.schema)

    def run_platform_sql(self, sql: str, field_name: str = "query") -> pa.Table:
        return self._execute(sql, field_name)

    def _execute(self, sql: str, field_name: str) -> pa.Table:
        # A runaway query (a huge range, a recursive CTE) must not hold a server thread.
        ticket = _watchdog.arm(self.timeout, self.con.interrupt)
        try:
            table = self._bounded_result(sql, field_name)
        except duckdb.InterruptException as exc:
            raise InvalidInput(
                f"the SQL query ran longer than {self.timeout:g} s and was stopped",
                {"field": field_name, "fix": "read less data or aggregate earlier"},
            ) from exc
        except duckdb.Error as exc:
            raise InvalidInput(
                f"the SQL query failed: {self.scrub(str(exc))}",
                {"field": field_name, "fix": "correct the query"},
            ) from exc
        finally:
            _watchdog.disarm(ticket)
        return table


def _scrubber(relations: Sequence[Relation], hide: Mapping[str, str]) -> Callable[[str], str]:
    """Replaces every file of `relations` with its label, and each key of `hide` (a home
    path, the masking key's texts) with its value."""
    replacements: list[tuple[str, str]] = [(k, v) for k, v in hide.items() if k]
    for relation in relations:
        for path in relation.files:
            replacements.append((path, relation.label or relation.display))
    # Longest first, so a path is replaced before any prefix of it.
    replacements.sort(key=lambda pair: len(pair[0]), reverse=True)
    home_like = re.compile(r"(/[^\s'\"]*)?/blobs/sha256/[0-9a-f]{2}/[0-9a-f]{64}")

    def scrub(message: str) -> str:
        for old, new in replacements:
            message = message.replace(old, new)
        return home_like.sub("<snapshot>", message)

    return scrub


def run_user_sql(
    query: str | UserQuery,
    relations: Sequence[Relation],
    *,
    field_name: str = "query",
    hide: Mapping[str, str] | None = None,
    timeout: float = TIMEOUT_SECONDS,
) -> pa.Table:
    """Run one user SELECT over `relations` in a fresh sandbox."""
    parsed = query if isinstance(query, UserQuery) else parse(query, field_name)
    with Sandbox(relations, hide=hide, timeout=timeout) as sandbox:
        return sandbox.run_user_sql(parsed, field_name)
