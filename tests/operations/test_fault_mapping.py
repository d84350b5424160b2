"""Which errors count as faults (`kernel.errors.outage_error`) and how they travel: the
server's 503/507 bodies become the same error types in the HTTP client."""

from __future__ import annotations

import errno
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import psycopg
import redis
from sqlalchemy import exc as sa_exc

from meshops.kernel.errors import NoSpace, Unavailable, error_from_json, outage_error


def _wrapped(orig: Exception) -> sa_exc.OperationalError:
    return sa_exc.OperationalError("SELECT 1", {}, orig)


def test_a_database_that_does_not_answer_is_unavailable() -> None:
    error = outage_error(_wrapped(psycopg.OperationalError("connection refused")))
    assert isinstance(error, Unavailable) and error.http_status == 503
    assert error.detail == {"service": "metadata database", "retry_after": 2}
    locked = outage_error(_wrapped(sqlite3.OperationalError("database is locked")))
    assert isinstance(locked, Unavailable)


def test_redis_that_does_not_answer_is_unavailable_even_when_wrapped() -> None:
    try:
        try:
            raise redis.exceptions.ConnectionError("Error 111 connecting")
        except redis.exceptions.ConnectionError as exc:
            raise RuntimeError("lookup failed") from exc
    except RuntimeError as outer:
        error = outage_error(outer)
    assert isinstance(error, Unavailable) and error.detail["service"] == "online store (Redis)"


def test_a_full_disk_is_no_space() -> None:
    for exc in (
        OSError(errno.ENOSPC, "No space left on device"),
        _wrapped(sqlite3.OperationalError("database or disk is full")),
    ):
        error = outage_error(exc)
        assert isinstance(error, NoSpace) and error.http_status == 507
        assert "no space left" in error.message


def test_mistakes_are_not_faults() -> None:
    assert outage_error(_wrapped(sqlite3.OperationalError("no such table: x"))) is None
    assert outage_error(ValueError("bad")) is None
    assert outage_error(OSError(errno.EACCES, "Permission denied")) is None


def test_the_client_rebuilds_the_servers_fault_errors() -> None:
    for error in (Unavailable("down", {"retry_after": 2}), NoSpace("no space left")):
        rebuilt = error_from_json(error.http_status, error.to_json())
        assert type(rebuilt) is type(error) and rebuilt.message == error.message


def test_the_cli_exits_unavailable_when_the_metadata_database_does_not_answer(
    tmp_path: Path,
) -> None:
    # Nothing listens on port 1: the CLI says what is down and exits 8, with no traceback.
    env = {
        **os.environ,
        "MESHOPS_HOME": str(tmp_path / "home"),
        "MESHOPS_DATABASE_URL": "postgresql+psycopg://postgres@127.0.0.1:1/test",
    }
    meshops = Path(sys.executable).parent / "meshops"
    done = subprocess.run(
        [str(meshops), "product", "list"],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 8, done.stderr
    assert "unavailable" in done.stderr and "metadata database" in done.stderr
    assert "Traceback" not in done.stderr
