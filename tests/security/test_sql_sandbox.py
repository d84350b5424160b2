"""User SQL runs in the sandbox everywhere (issue #14 findings 1, 2, 4 and 12).

Against the suite's real server (conftest.py `sec`): a consumer with a masked grant sends
SQL through `POST /v1/mesh/sql` (= `product sql` over HTTP), training-set SQL and the CLI;
a domain owner publishes a contract whose quality rule carries SQL. Every construct that
reached the machine before is refused with `invalid_input` (400, exit 2) naming it, nothing
is read or written, and no path of the home appears in any answer.
"""

from __future__ import annotations

import hashlib
import hmac
import sysconfig
import uuid
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pytest

from meshops.kernel.errors import BadRequest, InvalidInput, MeshopsError
from meshops.kernel.secrets import derived_key
from tests.security.conftest import CLEAR, FEATURES, PRODUCT, SecurityHome
from tests.support.products import data_contract, data_product

ATTACKER = "consumer-masked"  # one masked grant on crm.customers, nothing else
OWNER = "crm-owner"
TRAINER = "ds-masked"  # a data scientist (features.read) with a masked grant


def _paths(sec: SecurityHome) -> dict[str, Path]:
    home = Path(sec.settings.home)
    database = sec.settings.database_url.split("///", 1)[-1]
    snapshot = Path(sec.settings.blob_url) / "sha256" / sec.snapshot_digest[:2]
    return {
        "home": home,
        "toml": home / "meshops.toml",
        "key": home / "secret.key",
        "database": Path(database),
        "snapshot": snapshot / sec.snapshot_digest,
        "blobs_glob": Path(sec.settings.blob_url) / "sha256" / "*" / "*",
        "out": sec.scratch / f"written-{uuid.uuid4().hex}.csv",
        "pth": Path(sysconfig.get_paths()["purelib"]) / f"meshops_probe_{uuid.uuid4().hex}.pth",
    }


def _sql(sec: SecurityHome, query: str, who: str = ATTACKER) -> httpx.Response:
    return sec.client(who).post("/v1/mesh/sql", json={"query": query})


def _assert_refused(sec: SecurityHome, response: httpx.Response, construct: str) -> None:
    assert response.status_code == BadRequest.http_status == 400, response.text[:500]
    body = response.json()
    assert body["error"] == "invalid_input", body
    assert construct.lower() in body["message"].lower(), (construct, body["message"])
    assert str(sec.settings.home) not in response.text  # no path of the home, ever


# name -> (query template, the construct the refusal must name)
REFUSED: dict[str, tuple[str, str]] = {
    "read_csv /etc/passwd": ("SELECT * FROM read_csv('/etc/passwd')", "read_csv()"),
    "read_text meshops.toml": ("SELECT * FROM read_text('{toml}')", "read_text()"),
    "read_text secret.key": ("SELECT content FROM read_text('{key}')", "read_text()"),
    "read_blob metadata db": ("SELECT * FROM read_blob('{database}')", "read_blob()"),
    "glob": ("SELECT * FROM glob('{home}/*')", "glob()"),
    "copy to": ("COPY (SELECT 1) TO '{out}'", "COPY"),
    "copy a .pth into site-packages": ("COPY (SELECT 'import os') TO '{pth}'", "COPY"),
    "attach": ("ATTACH '{database}' AS meta (TYPE sqlite)", "ATTACH"),
    "detach": ("DETACH meta", "DETACH"),
    "statements after ;": (f"SELECT 1 FROM {PRODUCT}; COPY (SELECT 1) TO '{{out}}'", "statements"),
    "install": ("INSTALL httpfs", "INSTALL"),
    "load": ("LOAD httpfs", "LOAD"),
    "export database": ("EXPORT DATABASE '{home}/export'", "EXPORT"),
    "import database": ("IMPORT DATABASE '{home}'", "IMPORT"),
    "pragma": ("PRAGMA database_list", "PRAGMA"),
    "set": ("SET enable_external_access = true", "SET"),
    "reset": ("RESET enable_external_access", "RESET"),
    "call": ("CALL duckdb_settings()", "CALL"),
    "create": (f"CREATE TABLE t AS SELECT * FROM {PRODUCT}", "CREATE"),
    "drop": (f"DROP VIEW {PRODUCT}", "DROP"),
    "insert": (f"INSERT INTO {PRODUCT} VALUES (1)", "INSERT"),
    "update": (f"UPDATE {PRODUCT} SET email = 'x'", "UPDATE"),
    "delete": (f"DELETE FROM {PRODUCT}", "DELETE"),
    "duckdb_views() path leak": ("SELECT sql FROM duckdb_views()", "duckdb_views()"),
    "duckdb_settings": ("SELECT * FROM duckdb_settings()", "duckdb_settings()"),
    "current_setting": ("SELECT current_setting('allowed_paths')", "current_setting()"),
    "getenv": ("SELECT getenv('MESHOPS_SECRET_KEY')", "getenv()"),
    "getvariable": ("SELECT getvariable('k')", "getvariable()"),
    "pg_get_viewdef": ("SELECT pg_get_viewdef(1)", "pg_get_viewdef()"),
    "information_schema": ("SELECT view_definition FROM information_schema.views", "table"),
    "pg_catalog": ("SELECT * FROM pg_catalog.pg_views", "table"),
    "query()": ("SELECT * FROM query('SELECT * FROM duckdb_views()')", "query()"),
    "query_table()": (f"SELECT * FROM query_table('{PRODUCT}')", "query_table()"),
    "read_parquet of the snapshot": ("SELECT * FROM read_parquet('{snapshot}')", "read_parquet()"),
    "read_parquet of every blob": ("SELECT * FROM read_parquet('{blobs_glob}')", "read_parquet()"),
    "replacement scan of the snapshot": ("SELECT email FROM '{snapshot}'", "replacement scan"),
    "replacement scan /etc/passwd": ("SELECT * FROM '/etc/passwd'", "replacement scan"),
    "describe": (f"DESCRIBE {PRODUCT}", "DESCRIBE"),
    "explain": (f"EXPLAIN SELECT * FROM {PRODUCT}", "EXPLAIN"),
    "stats of unfiltered data": (f"SELECT stats(income) FROM {PRODUCT}", "stats()"),
    "nested read_text": (
        f"SELECT (SELECT content FROM read_text('{{toml}}')) FROM {PRODUCT}",
        "read_text()",
    ),
}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_product_sql_refuses(sec: SecurityHome, name: str) -> None:
    paths = _paths(sec)
    template, construct = REFUSED[name]
    response = _sql(sec, template.format(**paths))
    _assert_refused(sec, response, construct)
    assert b"root:" not in response.content  # /etc/passwd was not read
    assert not paths["out"].exists() and not paths["pth"].exists()
    assert not (paths["home"] / "export").exists()


def test_masked_values_stay_masked_and_hash_is_keyed(sec: SecurityHome) -> None:
    """Finding 12: `hash` is HMAC-SHA256 with the home's key, not a guessable sha256."""
    response = _sql(sec, f"SELECT customer_id, email FROM {PRODUCT} ORDER BY customer_id")
    assert response.status_code == 200, response.text[:300]
    with pa.ipc.open_stream(response.content) as reader:
        emails = reader.read_all().column("email").to_pylist()
    key = derived_key(sec.settings, "masking")
    assert emails == [hmac.new(key, e.encode(), hashlib.sha256).hexdigest() for e in CLEAR.emails()]
    assert not set(emails) & {hashlib.sha256(e.encode()).hexdigest() for e in CLEAR.emails()}


def test_an_unknown_product_is_not_found(sec: SecurityHome) -> None:
    response = _sql(sec, "SELECT * FROM nope.x")
    assert response.status_code == 404, response.text[:300]
    assert "nope.x" in response.json()["message"]


def test_deep_nesting_is_a_client_error(sec: SecurityHome) -> None:
    depth = 1500
    response = _sql(sec, "SELECT " + "(" * depth + "1" + ")" * depth + f" FROM {PRODUCT}")
    assert response.status_code == InvalidInput.http_status, response.text[:300]
    assert "nested too deeply" in response.json()["message"]


def test_failing_queries_show_no_path(sec: SecurityHome) -> None:
    """A runtime error inside the governed view names the product, never the snapshot."""
    response = _sql(sec, f"SELECT CAST(note AS INTEGER) FROM {PRODUCT}")
    assert response.status_code == InvalidInput.http_status, response.text[:300]
    assert str(sec.settings.home) not in response.text
    assert sec.snapshot_digest not in response.text


def test_cli_product_sql_exits_2(sec: SecurityHome) -> None:
    out = _paths(sec)["out"]
    done = sec.cli(ATTACKER, "product", "sql", f"COPY (SELECT 1) TO '{out}'")
    assert done.returncode == InvalidInput.exit_code, done.stderr[-500:]
    assert b"COPY" in done.stdout + done.stderr
    assert not out.exists()


def _training_set(sec: SecurityHome, query: str) -> httpx.Response:
    params: dict[str, Any] = {"feature": FEATURES, "name": "sandbox-probe", "sql": query}
    return sec.client(TRAINER).post("/v1/features/training-sets", params=params, content=b"")


@pytest.mark.parametrize(
    ("query", "construct"),
    [
        ("SELECT * FROM read_csv('/etc/passwd')", "read_csv()"),
        ("COPY (SELECT 1 AS customer_id) TO '{out}'", "COPY"),
        ("SELECT customer_id, now() AS event_timestamp FROM '{snapshot}'", "replacement scan"),
    ],
)
def test_training_set_sql_is_sandboxed(sec: SecurityHome, query: str, construct: str) -> None:
    paths = _paths(sec)
    response = _training_set(sec, query.format(**paths))
    _assert_refused(sec, response, construct)
    assert not paths["out"].exists()


def _probe_contract(rule_sql: str) -> dict[str, Any]:
    properties = [{"name": "id", "logicalType": "integer"}]
    quality = [{"type": "sql", "query": rule_sql, "mustBe": 0}]
    return data_contract("sandbox-probe", "main", properties, quality=quality)


def _probe_descriptor(name: str) -> dict[str, Any]:
    return data_product(
        f"crm.{name}", "sandbox-probe", port="main", owner=OWNER, purpose="sandbox probe"
    )


@pytest.mark.parametrize(
    "rule_sql",
    [
        "COPY (SELECT 1) TO '{out}'; SELECT count(*) FROM {{object}}",
        "SELECT count(*) FROM read_text('{toml}')",
        "SELECT count(*) FROM read_parquet('{snapshot}')",
    ],
)
def test_contract_sql_rules_are_sandboxed_at_publish(sec: SecurityHome, rule_sql: str) -> None:
    """Finding 4: a data engineer's rule runs in the server at publish: refused, 422,
    nothing written, no version published."""
    paths = _paths(sec)
    name = f"probe_{uuid.uuid4().hex[:8]}"
    table = pa.table({"id": pa.array([1, 2], pa.int64())})
    with sec.remote(OWNER) as owner, pytest.raises(MeshopsError) as info:
        owner.mesh.publish_arrow(
            _probe_descriptor(name),
            {"main": _probe_contract(rule_sql.format(**paths))},
            {"main": table},
        )
    assert info.value.http_status == InvalidInput.http_status, info.value.message
    assert "sql quality rule failed" in info.value.message
    assert str(sec.settings.home) not in info.value.message
    assert not paths["out"].exists()
    versions = sec.client(OWNER).get(f"/v1/mesh/products/crm.{name}/version")
    assert versions.status_code == 404, versions.text[:300]


def test_a_clean_contract_sql_rule_still_runs(sec: SecurityHome) -> None:
    name = f"probe_{uuid.uuid4().hex[:8]}"
    table = pa.table({"id": pa.array([1, 2], pa.int64())})
    contract = _probe_contract("SELECT count(*) FROM {object} WHERE id IS NULL")
    with sec.remote(OWNER) as owner:
        version = owner.mesh.publish_arrow(
            _probe_descriptor(name), {"main": contract}, {"main": table}
        )
    assert version.version == "1.0.0"


KEY_PROBES = [
    "SELECT sql FROM duckdb_views()",
    "SELECT view_definition FROM information_schema.views",
    "SELECT * FROM pg_catalog.pg_views",
    "SELECT pg_get_viewdef('crm.customers'::regclass)",
    f"SELECT json_serialize_plan('SELECT email FROM {PRODUCT}')",
    f"EXPLAIN SELECT email FROM {PRODUCT}",
    f"SELECT sql FROM duckdb_views() WHERE view_name = 'customers' UNION ALL "
    f"SELECT email FROM {PRODUCT}",
    f"SELECT CAST(email AS INTEGER) FROM {PRODUCT}",  # an error inside the view's expression
]


@pytest.mark.parametrize("query", KEY_PROBES)
def test_the_masking_key_is_out_of_reach(sec: SecurityHome, query: str) -> None:
    """The governed view's text holds the HMAC pads of the masking key: no answer, refusal
    or error carries them (or the key), nor a path of the home."""
    key = derived_key(sec.settings, "masking")
    block = key.ljust(64, b"\0")
    secrets = [
        key.hex(),
        bytes(b ^ 0x36 for b in block).hex(),
        bytes(b ^ 0x5C for b in block).hex(),
    ]
    response = _sql(sec, query)
    assert response.status_code in (400, InvalidInput.http_status, 200), response.text[:300]
    assert not any(s.encode() in response.content for s in secrets)
    assert str(sec.settings.home).encode() not in response.content
