"""`make test` finds the local PostgreSQL, Redis and Chromium by itself (tests/conftest.py).

The detection is probed directly (real sockets against the real services, and against
loopback ports nobody listens on), then end to end: a pytest subprocess with the
`MESHOPS_TEST_*` variables unset runs three sample tests through the suite's own skip
points (the `postgres_url` fixture, the Redis tests' `redis_url_or_skip`, the browser tests'
`browser` fixture). With the services there they run; with the probes pointed at closed
ports and a PATH without chromium they are skipped, each with a reason naming its variable.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import (
    CHROMIUM_ENV,
    POSTGRES_ENV,
    REDIS_ENV,
    detect_local_services,
    fill_from_local_services,
    free_port,
)

ROOT = Path(__file__).resolve().parents[2]
VARIABLES = (POSTGRES_ENV, REDIS_ENV, CHROMIUM_ENV)

# One test per skip point of the suite, each doing the least real work with its service.
SAMPLE_TESTS = """
from sqlalchemy import create_engine, text

from tests.conftest import postgres_url
from tests.features.test_online_stores import redis_url_or_skip
from tests.ui.test_browser import browser


def test_postgres(postgres_url):
    engine = create_engine(postgres_url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT 1")).scalar() == 1
    engine.dispose()


def test_redis():
    import redis

    client = redis.Redis.from_url(redis_url_or_skip())
    assert client.ping()
    client.close()


def test_browser(browser):
    page = browser.new_page()
    page.set_content("<p id=x>ok</p>")
    assert page.inner_text("#x") == "ok"
    page.close()
"""

# Run in a subprocess: with CLOSED set, the variables are kept off while tests.conftest is
# imported (an explicit empty value is kept), then unset and filled by the detection pointed
# at closed ports and an empty PATH, as a machine without the services would; pytest then
# reuses that imported conftest. Without CLOSED, importing conftest detects the real ones.
DRIVER = """
import os, shutil, sys
import pytest

names = ("MESHOPS_TEST_POSTGRES_URL", "MESHOPS_TEST_REDIS_URL", "MESHOPS_TEST_CHROMIUM")
closed = os.environ.pop("CLOSED", "")
if closed:
    for name in names:
        os.environ[name] = ""
import tests.conftest as conftest

if closed:
    for name in names:
        del os.environ[name]
    pg, redis_port, empty = closed.split(":")
    found = conftest.detect_local_services(
        "127.0.0.1", int(pg), int(redis_port), lambda name: shutil.which(name, path=empty)
    )
    conftest.fill_from_local_services(os.environ, found)
print("VARIABLES", {name: os.environ.get(name) for name in names})
sys.exit(pytest.main([sys.argv[1], "-q", "-rs", "-p", "no:cacheprovider"]))
"""


def _services_here() -> dict[str, str]:
    found = detect_local_services()
    absent = [name for name, value in found.items() if not value]
    if absent:
        pytest.skip(
            f"needs the local services of {', '.join(absent)} (PostgreSQL on 127.0.0.1:5432 "
            "with user postgres and database test, Redis on 127.0.0.1:6379, chromium on PATH)"
        )
    return found


def _run_samples(tmp_path: Path, closed: str | None) -> subprocess.CompletedProcess[str]:
    sample = tmp_path / "test_samples.py"
    sample.write_text(SAMPLE_TESTS, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k not in VARIABLES}
    env["PYTHONPATH"] = str(ROOT)
    if closed is not None:
        env["CLOSED"] = closed
    return subprocess.run(
        [sys.executable, "-c", DRIVER, str(sample)],
        check=False,
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_detection_finds_the_services_that_answer() -> None:
    found = _services_here()
    assert found[POSTGRES_ENV] == "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    assert found[REDIS_ENV] == "redis://127.0.0.1:6379/0"
    assert Path(found[CHROMIUM_ENV]).name == "chromium"


def test_detection_finds_nothing_on_closed_ports_and_a_path_without_chromium(
    tmp_path: Path,
) -> None:
    found = detect_local_services(
        "127.0.0.1", free_port(), free_port(), lambda name: shutil.which(name, path=str(tmp_path))
    )
    assert found == dict.fromkeys(VARIABLES, "")


def test_unset_variables_are_filled_and_explicit_ones_kept() -> None:
    found = {POSTGRES_ENV: "postgresql://found", REDIS_ENV: "redis://found", CHROMIUM_ENV: ""}
    environ = {REDIS_ENV: ""}  # `MESHOPS_TEST_REDIS_URL= make test`: Redis tests off
    assert fill_from_local_services(environ, found) == [POSTGRES_ENV]
    assert environ == {POSTGRES_ENV: "postgresql://found", REDIS_ENV: ""}


def test_make_test_turns_the_service_tests_on_when_the_services_answer(tmp_path: Path) -> None:
    _services_here()
    result = _run_samples(tmp_path, closed=None)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout, result.stdout
    assert "skipped" not in result.stdout, result.stdout


def test_make_test_skips_them_with_a_named_reason_when_nothing_answers(tmp_path: Path) -> None:
    empty_path = tmp_path / "no-chromium"
    empty_path.mkdir()
    result = _run_samples(tmp_path, closed=f"{free_port()}:{free_port()}:{empty_path}")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 skipped" in result.stdout, result.stdout
    reasons = [line for line in result.stdout.splitlines() if line.startswith("SKIPPED")]
    assert len(reasons) == 3, result.stdout
    for name, service in ((POSTGRES_ENV, "PostgreSQL"), (REDIS_ENV, "Redis"), (CHROMIUM_ENV, "")):
        assert any(name in line and service in line for line in reasons), (name, reasons)
