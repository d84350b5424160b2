"""The user-SQL sandbox (kernel/sandbox.py): what it refuses, what it runs, what it hides.

Unit level, no home: relations are Arrow tables and a Parquet file in tmp_path. The HTTP
side (real server, every interface that takes SQL) is tests/security/test_sql_sandbox.py.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meshops.kernel import sandbox
from meshops.kernel.errors import InvalidInput
from meshops.kernel.sandbox import Relation, Sandbox, governed_select, parquet_source

KEY = bytes(range(32))


@pytest.fixture
def snapshot(tmp_path: Path) -> Path:
    path = tmp_path / "blobs" / "sha256" / "ab" / ("ab" + "0" * 62)
    path.parent.mkdir(parents=True)
    table = pa.table(
        {
            "id": [1, 2, 3, 4],
            "region": ["EU", "US", "EU", None],
            "email": ["a@x", "b@x", None, "d@x"],
            "income": [1.5, 2.5, 3.5, 4.5],
        }
    )
    pq.write_table(table, path)
    return path


def orders(path: Path, masks: dict[str, sandbox.MaskMethod] | None = None) -> Relation:
    select = governed_select(
        parquet_source(str(path)),
        ["id", "region", "email", "income"],
        masks or {},
        KEY,
        row_filter="region = 'EU' OR region IS NULL",
    )
    return Relation("orders", "sales", select=select, files=(str(path),), label="sales.orders")


def _hmac(text: str) -> str:
    return hmac.new(KEY, text.encode(), hashlib.sha256).hexdigest()


# --- masking ----------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(st.lists(st.one_of(st.none(), st.text(max_size=30)), min_size=1, max_size=20))
def test_hash_masking_in_sql_is_python_hmac_sha256(values: list[str | None]) -> None:
    """Including backslashes, quotes and non-ASCII text (`encode`, not a BLOB cast that
    would read `\\x41` as an escape)."""
    table = pa.table({"v": pa.array(values, pa.string())})
    expression = sandbox.mask_expression("v", "hash", KEY)
    with Sandbox([Relation("t", table=table)]) as box:
        hashed = box.run_platform_sql(f"SELECT {expression} AS v FROM t").column("v").to_pylist()
    assert hashed == [None if v is None else _hmac(v) for v in values]


def test_governed_view_masks_filters_and_keeps_types(snapshot: Path) -> None:
    masks: dict[str, sandbox.MaskMethod] = {"email": "hash", "region": "redact", "income": "null"}
    with Sandbox([orders(snapshot, masks)]) as box:
        table = box.run_user_sql("SELECT * FROM sales.orders ORDER BY id")
    assert table.column("id").to_pylist() == [1, 3, 4]  # the row filter applied
    assert table.column("email").to_pylist() == [_hmac("a@x"), None, _hmac("d@x")]
    assert table.column("region").to_pylist() == ["****", "****", None]
    assert table.column("income").null_count == 3
    assert table.schema.field("income").type == pa.float64()


# --- what runs --------------------------------------------------------------------------------

ALLOWED = [
    "SELECT count(*) AS n FROM sales.orders",
    "select region, sum(income) from SALES.Orders group by all order by 1",
    "WITH eu AS (SELECT * FROM sales.orders WHERE region = 'EU') SELECT count(*) FROM eu",
    "WITH RECURSIVE r AS (SELECT 1 AS i UNION ALL SELECT i + 1 FROM r WHERE i < 5) "
    "SELECT sum(i) FROM r",
    "SELECT o.id, x.range FROM sales.orders o, range(2) x",
    "SELECT * FROM generate_series(1, 3), unnest([1, 2])",
    "SELECT id, row_number() OVER (ORDER BY income DESC) FROM sales.orders",
    "SELECT * FROM (VALUES (1, 'a')) v(a, b)",
    "FROM sales.orders SELECT id LIMIT 1",
    "SELECT a.id FROM sales.orders a JOIN sales.orders b USING (id)",
    "SELECT list_transform([1, 2], lambda x: x + 1), 'abc'.upper()",
]


@pytest.mark.parametrize("query", ALLOWED)
def test_ordinary_queries_run(snapshot: Path, query: str) -> None:
    with Sandbox([orders(snapshot)]) as box:
        assert box.run_user_sql(query).num_rows >= 1


# --- what is refused --------------------------------------------------------------------------


def refused_queries(canary: Path, out: Path) -> dict[str, str]:
    """name -> a query that must be refused (before it runs)."""
    return {
        "read_csv": f"SELECT * FROM read_csv('{canary}')",
        "read_text": f"SELECT * FROM read_text('{canary}')",
        "read_blob": f"SELECT * FROM read_blob('{canary}')",
        "read_parquet": f"SELECT * FROM read_parquet('{canary}')",
        "replacement scan": f"SELECT * FROM '{canary}'",
        "quoted replacement scan": f'SELECT * FROM "{canary}"',
        "glob": "SELECT * FROM glob('/*')",
        "query()": "SELECT * FROM query('SELECT 1')",
        "query_table()": "SELECT * FROM query_table('sales.orders')",
        "duckdb_views()": "SELECT sql FROM duckdb_views()",
        "duckdb_settings view": "SELECT * FROM duckdb_settings",
        "system catalog": "SELECT * FROM system.main.duckdb_views",
        "information_schema": "SELECT * FROM information_schema.tables",
        "pg_catalog": "SELECT * FROM pg_catalog.pg_class",
        "sqlite_master": "SELECT * FROM sqlite_master",
        "pragma function": "SELECT * FROM pragma_table_info('sales.orders')",
        "current_setting": "SELECT current_setting('allowed_paths')",
        "getenv": "SELECT getenv('HOME')",
        "getvariable": "SELECT getvariable('x')",
        "pg_get_viewdef": "SELECT pg_get_viewdef(1)",
        "json_serialize_plan": "SELECT json_serialize_plan('SELECT * FROM sales.orders')",
        "stats": "SELECT stats(income) FROM sales.orders",
        "schema-qualified function": "SELECT main.abs(1)",
        "nested table function": f"SELECT (SELECT count(*) FROM read_text('{canary}'))",
        "table function in a CTE": f"WITH c AS (SELECT * FROM read_csv('{canary}')) "
        "SELECT * FROM c",
        "table function in a union": f"SELECT 1 UNION ALL SELECT count(*) FROM glob('{canary}')",
        "out-of-scope CTE": "SELECT * FROM (WITH d AS (SELECT 1) SELECT 1), d",
        "describe": "DESCRIBE sales.orders",
        "summarize": "SUMMARIZE sales.orders",
        "show tables": "SHOW TABLES",
        "pivot": "PIVOT sales.orders ON region USING sum(income)",
        "copy": f"COPY (SELECT 1) TO '{out}'",
        "copy in a second statement": f"SELECT 1; COPY (SELECT 1) TO '{out}'",
        "two selects": "SELECT 1; SELECT 2",
        "attach": f"ATTACH '{out}' AS x",
        "detach": "DETACH x",
        "export database": f"EXPORT DATABASE '{out.parent / 'export'}'",
        "import database": f"IMPORT DATABASE '{out.parent}'",
        "pragma": "PRAGMA version",
        "set": "SET enable_external_access = true",
        "set variable": "SET VARIABLE x = 1",
        "reset": "RESET threads",
        "install": "INSTALL httpfs",
        "load": "LOAD httpfs",
        "call": "CALL duckdb_settings()",
        "create": "CREATE TABLE t AS SELECT 1",
        "create macro": "CREATE MACRO m() AS TABLE SELECT * FROM read_text('/etc/passwd')",
        "drop": "DROP VIEW sales.orders",
        "insert": "INSERT INTO sales.orders VALUES (1)",
        "update": "UPDATE sales.orders SET id = 1",
        "delete": "DELETE FROM sales.orders",
        "explain": "EXPLAIN SELECT * FROM sales.orders",
        "prepare": "PREPARE p AS SELECT 1",
        "checkpoint": "CHECKPOINT",
        "use": "USE sales",
        "empty": "   ",
    }


@pytest.mark.parametrize("name", sorted(refused_queries(Path("/c"), Path("/o"))))
def test_refused_constructs_are_named_and_never_run(
    snapshot: Path, tmp_path: Path, name: str
) -> None:
    canary, out = tmp_path / "canary.csv", tmp_path / "out.csv"
    canary.write_text("secret\nCANARY-VALUE\n")
    query = refused_queries(canary, out)[name]
    with Sandbox([orders(snapshot)]) as box, pytest.raises(InvalidInput) as info:
        box.run_user_sql(query)
    assert info.value.detail["field"] == "query"
    assert "CANARY-VALUE" not in info.value.message
    assert not out.exists() and not (tmp_path / "export").exists()


def test_the_refusal_names_the_construct(snapshot: Path) -> None:
    cases = {
        "SELECT * FROM read_csv('/etc/passwd')": "read_csv()",
        "COPY (SELECT 1) TO '/tmp/x'": "COPY",
        "INSTALL httpfs": "INSTALL",
        "SELECT 1; SELECT 2": "several statements",
        "SELECT current_setting('threads')": "current_setting()",
        "SELECT * FROM '/etc/passwd'": "replacement scan",
        "ATTACH 'x.db'": "ATTACH",
    }
    with Sandbox([orders(snapshot)]) as box:
        for query, construct in cases.items():
            with pytest.raises(InvalidInput) as info:
                box.run_user_sql(query)
            assert construct in info.value.message, (query, info.value.message)


# Random refused constructs, wrapped at random places of a valid query, with random case and
# comments: none runs (the canary is never read, the output file never written).
_ATTACKS = [
    "(SELECT count(*) FROM read_text('{canary}'))",
    "(SELECT count(*) FROM read_csv('{canary}'))",
    "(SELECT count(*) FROM '{canary}')",
    "(SELECT count(*) FROM glob('{canary}'))",
    "(SELECT count(*) FROM query('SELECT 1'))",
    "(SELECT count(*) FROM duckdb_views())",
    "(SELECT count(*) FROM information_schema.tables)",
    "current_setting('allowed_paths')",
    "getvariable('k')",
    "(SELECT count(*) FROM read_parquet('{snapshot}'))",
]
_PLACES = [
    "SELECT {x} AS v FROM sales.orders",
    "SELECT id FROM sales.orders WHERE {x} IS NOT NULL",
    "WITH w AS (SELECT {x} AS v) SELECT * FROM w",
    "SELECT id FROM sales.orders UNION ALL SELECT {x}",
    "SELECT * FROM sales.orders o, LATERAL (SELECT {x} AS v) l",
    "SELECT (SELECT (SELECT {x})) AS v",
    "SELECT id FROM sales.orders GROUP BY id HAVING {x} IS NOT NULL",
    "SELECT id FROM sales.orders ORDER BY {x}",
    "SELECT * FROM range(1) r({x})",
]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    attack=st.sampled_from(_ATTACKS),
    place=st.sampled_from(_PLACES),
    upper=st.booleans(),
    comment=st.sampled_from(["", " /* ; */ ", " -- x\n", "\n\t"]),
    suffix=st.sampled_from(["", ";", "; COPY (SELECT 1) TO '{out}'"]),
)
def test_random_refused_constructs_never_execute(  # noqa: PLR0917 - hypothesis arguments
    snapshot: Path,
    tmp_path: Path,
    attack: str,
    place: str,
    upper: bool,
    comment: str,
    suffix: str,
) -> None:
    canary, out = tmp_path / "canary.txt", tmp_path / "written.csv"
    canary.write_text("NEEDLE-7F3A")
    fill = {"canary": canary, "snapshot": snapshot, "out": out}
    query = place.format(x=comment + attack.format(**fill) + comment) + suffix.format(**fill)
    if upper:
        query = query.upper()
    with Sandbox([orders(snapshot)]) as box:
        try:
            result = box.run_user_sql(query)
        except InvalidInput as exc:
            assert "NEEDLE-7F3A" not in exc.message.upper()
        else:  # only reachable if a refused construct was let through
            pytest.fail(f"ran: {query!r} -> {result.to_pylist()[:2]}")
    assert not out.exists()


# --- bounds -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        "SELECT " + "(" * 1500 + "1" + ")" * 1500,
        "SELECT " + "+".join(["1"] * 1200),
        "SELECT * FROM " + "(SELECT * FROM " * 400 + "sales.orders" + ")" * 400,
        "SELECT " + "abs(" * 600 + "1" + ")" * 600,
    ],
)
def test_deep_nesting_is_invalid_input_not_a_crash(snapshot: Path, query: str) -> None:
    with Sandbox([orders(snapshot)]) as box, pytest.raises(InvalidInput, match="nested too deeply"):
        box.run_user_sql(query)


def test_query_length_is_bounded() -> None:
    with pytest.raises(InvalidInput, match="characters long"):
        sandbox.parse("SELECT 1 " + " " * sandbox.MAX_QUERY_CHARS)


def test_a_runaway_query_is_stopped(snapshot: Path) -> None:
    box = Sandbox([orders(snapshot)], timeout=0.3)
    with box, pytest.raises(InvalidInput, match="longer than"):
        box.run_user_sql("SELECT count(*) FROM range(100000000000)")


# --- the walls hold even for platform SQL -----------------------------------------------------


def test_configuration_is_locked_and_files_outside_are_closed(
    snapshot: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other.parquet"
    pq.write_table(pa.table({"x": [1]}), other)
    with Sandbox([orders(snapshot)]) as box:
        with pytest.raises(InvalidInput, match="locked"):
            box.run_platform_sql("SET enable_external_access = true")
        with pytest.raises(InvalidInput, match="Permission"):
            box.run_platform_sql(f"SELECT * FROM read_parquet('{other}')")
        with pytest.raises(InvalidInput, match=r"Permission|disabled"):
            box.run_platform_sql("INSTALL httpfs")
        (setting,) = box.run_platform_sql(
            "SELECT value FROM duckdb_settings() WHERE name = 'autoload_known_extensions'"
        ).column(0)
        assert setting.as_py() == "false"


def test_no_path_or_key_in_error_messages(snapshot: Path, tmp_path: Path) -> None:
    """A view whose evaluation fails with its own text (paths, key material) in the error:
    the message the user gets names the product instead."""
    pads = list(sandbox.key_texts(KEY))
    failing = (
        f"SELECT error('boom at ' || '{snapshot}' || ' ' || '{pads[0]}' || ' {tmp_path}') AS x "
        f"FROM {parquet_source(str(snapshot))}"
    )
    relation = Relation("broken", "sales", select=failing, files=(str(snapshot),), label="sales.x")
    hide = {str(tmp_path): "<home>", **sandbox.key_texts(KEY)}
    with Sandbox([relation], hide=hide) as box, pytest.raises(InvalidInput) as info:
        box.run_user_sql("SELECT * FROM sales.broken")
    message = info.value.message
    assert "boom at sales.x" in message
    assert str(tmp_path) not in message and str(snapshot) not in message
    assert not any(pad in message for pad in pads)


def test_relations_outside_the_governed_set_are_refused(snapshot: Path) -> None:
    with Sandbox([orders(snapshot), Relation("arrow_in", table=pa.table({"a": [1]}))]) as box:
        assert box.run_user_sql("SELECT a FROM arrow_in").num_rows == 1
        for query in (
            "SELECT * FROM main.arrow_in",
            "SELECT * FROM temp.arrow_in",
            "SELECT * FROM memory.sales.orders",
            "SELECT * FROM sales.other",
        ):
            with pytest.raises(InvalidInput, match="may not use the table"):
                box.run_user_sql(query)


@pytest.mark.parametrize(
    "predicate",
    [
        "region = (SELECT content FROM read_text('/etc/passwd'))",
        "email IN (SELECT email FROM sales.orders)",
        "current_setting('allowed_paths') IS NOT NULL",
        "true) UNION SELECT * FROM glob('/*') WHERE (true",
        "true); COPY (SELECT 1) TO '/tmp/x'; SELECT (1",
    ],
)
def test_row_filters_read_no_table_and_call_nothing_refused(predicate: str) -> None:
    with pytest.raises(InvalidInput) as info:
        sandbox.check_predicate(predicate)
    assert info.value.detail["field"] == "row_filter"


def test_a_plain_row_filter_passes() -> None:
    assert sandbox.check_predicate("region = 'EU' AND income > 1") == (
        "region = 'EU' AND income > 1"
    )


def test_arrow_masking_equals_the_sql_read_path_for_every_type() -> None:
    """governance.masking (Arrow: online lookups, training sets) and the governed views
    give the same pseudonyms: one expression, the same session (UTC)."""
    from datetime import UTC, date, datetime

    from meshops.governance.masking import mask_array

    columns = {
        "i": pa.array([1, None, -7], pa.int64()),
        "f": pa.array([1.5, 1e20, None], pa.float64()),
        "b": pa.array([True, False, None]),
        "d": pa.array([date(2024, 2, 29), None, date(1970, 1, 1)]),
        "t": pa.array(
            [datetime(2024, 1, 1, 12, tzinfo=UTC), None, datetime(1999, 12, 31, tzinfo=UTC)],
            pa.timestamp("us", tz="UTC"),
        ),
        "s": pa.array(["a\\x41", "é", None]),
    }
    table = pa.table(columns)
    select = governed_select("t", list(columns), dict.fromkeys(columns, "hash"), KEY)
    with Sandbox([Relation("t", table=table)]) as box:
        in_sql = box.run_platform_sql(select)
    for name, values in columns.items():
        assert mask_array(values, "hash", KEY).to_pylist() == in_sql.column(name).to_pylist()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork only")
def test_a_forked_child_runs_sandboxes_of_its_own() -> None:
    """Spare databases and the watchdog belong to the parent; a forked worker starts its
    own (a parent's DuckDB used or destroyed in the child crashes it)."""
    for _ in range(3):  # past the first use: the parent keeps spares and a worker thread
        with Sandbox([Relation("t", table=pa.table({"a": [1]}))]) as box:
            box.run_user_sql("SELECT * FROM t")
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through its exit status
        code = 1
        try:
            for _ in range(3):
                with Sandbox([Relation("t", table=pa.table({"a": [2]}))]) as box:
                    code = 0 if box.run_user_sql("SELECT a FROM t").column(0)[0].as_py() == 2 else 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_a_result_too_large_is_stopped(snapshot: Path) -> None:
    box = Sandbox([orders(snapshot)], max_result_bytes=1_000_000)
    with box:
        assert box.run_user_sql("SELECT * FROM range(1000)").num_rows == 1000
        with pytest.raises(InvalidInput, match="larger than"):
            box.run_user_sql("SELECT * FROM range(1000000000000)")
        assert box.run_user_sql("SELECT * FROM sales.orders WHERE id < 0").num_rows == 0
