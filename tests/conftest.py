"""Shared fixtures: homes on SQLite and PostgreSQL, a real server on a loopback port, and
a `platform` fixture that runs the same test over the embedded and the HTTP transport."""

from __future__ import annotations

import os
import re
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from pathlib import Path

import pytest
import uvicorn
from sqlalchemy import create_engine, text

from meshops.api.app import create_app
from meshops.client import Platform
from meshops.kernel.config import Settings, load_settings
from meshops.kernel.home import Home
from meshops.kernel.http import HttpTransport

POSTGRES_ENV = "MESHOPS_TEST_POSTGRES_URL"
REDIS_ENV = "MESHOPS_TEST_REDIS_URL"
CHROMIUM_ENV = "MESHOPS_TEST_CHROMIUM"


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _postgres_accepts(host: str, port: int) -> bool:
    if not _answers(host, port):
        return False
    try:
        import psycopg

        psycopg.connect(f"postgresql://postgres@{host}:{port}/test", connect_timeout=2).close()
        return True
    except Exception:  # not installed, or the server refuses this user: no PostgreSQL tests
        return False


def detect_local_services(
    host: str = "127.0.0.1",
    postgres_port: int = 5432,
    redis_port: int = 6379,
    which: Callable[[str], str | None] = shutil.which,
) -> dict[str, str]:
    """The value of each test variable for the services that answer on `host` (PostgreSQL
    as user postgres on database test, Redis) and the `chromium` that `which` finds; empty
    for a service that is not there."""
    postgres = f"postgresql+psycopg://postgres@{host}:{postgres_port}/test"
    return {
        POSTGRES_ENV: postgres if _postgres_accepts(host, postgres_port) else "",
        REDIS_ENV: f"redis://{host}:{redis_port}/0" if _answers(host, redis_port) else "",
        CHROMIUM_ENV: which("chromium") or "",
    }


def fill_from_local_services(
    environ: MutableMapping[str, str], found: Mapping[str, str]
) -> list[str]:
    """`make test` on a machine where the services run uses them without extra set-up: each
    variable left unset is filled in when its service was found (an explicit value, even
    empty, is kept: `MESHOPS_TEST_REDIS_URL= make test` leaves the Redis tests off).
    Returns the names filled in."""
    filled = [name for name, value in found.items() if name not in environ and value]
    for name in filled:
        environ[name] = found[name]
    return filled


def _find_local_services() -> None:
    missing = [name for name in (POSTGRES_ENV, REDIS_ENV, CHROMIUM_ENV) if name not in os.environ]
    if missing:  # probing costs a connection attempt or two: only for what is unset
        fill_from_local_services(os.environ, detect_local_services())


_find_local_services()

# `make test` spreads the tests over two processes (pytest-xdist, `--dist loadgroup`). A test
# module that starts a local Ray cluster takes both cores and a few GB for a while, so those
# modules all go to one process, one after the other, instead of two clusters at once.
_STARTS_RAY = re.compile(
    r"\bray\.init\(|engine: ray|engine=\"ray\"|\b_stop_ray\b|^import ray\b", re.M
)
_starts_ray_by_file: dict[Path, bool] = {}


def _starts_ray(module: Path) -> bool:
    if module not in _starts_ray_by_file:
        _starts_ray_by_file[module] = bool(_STARTS_RAY.search(module.read_text(encoding="utf-8")))
    return _starts_ray_by_file[module]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _starts_ray(Path(item.fspath)):
            item.add_marker(pytest.mark.xdist_group("ray"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """A real S3-compatible server (moto) on a loopback port, shared by the session (each
    test makes its own bucket)."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


def postgres_url_or_skip() -> str:
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        pytest.skip(
            f"PostgreSQL tests need {POSTGRES_ENV} "
            "(e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test)"
        )
    return url


@contextmanager
def postgres_schema() -> Iterator[str]:
    """A database URL whose search path is a fresh schema of the test database, dropped
    afterwards (much faster than a database per test)."""
    base = postgres_url_or_skip()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    engine = create_engine(base)
    with engine.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    sep = "&" if "?" in base else "?"
    try:
        yield f"{base}{sep}options=-csearch_path%3D{schema}"
    finally:
        with engine.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        engine.dispose()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    with postgres_schema() as url:
        yield url


def make_settings(home_dir: Path, database_url: str | None = None) -> Settings:
    settings = load_settings(home=home_dir, env={"MESHOPS_USER": "alice"})
    # What the test server's admin allows: monitor sources in the test's own folder (beside
    # the home), and the on-demand feature function the feature tests define.
    trusted = {
        "monitoring": {"source_paths": [str(home_dir.parent)]},
        "features": {"trusted_on_demand_functions": ["tests.features.ondemand_funcs:amount_ratio"]},
    }
    settings = replace(settings, extra={**settings.extra, **trusted})
    if database_url:
        settings = replace(settings, database_url=database_url)
    return settings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path / "home")


@pytest.fixture(params=["sqlite", "postgres"])
def home(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Home]:
    """A home on each metadata database."""
    url = request.getfixturevalue("postgres_url") if request.param == "postgres" else None
    h = Home(make_settings(tmp_path / "home", url))
    yield h
    h.close()


@pytest.fixture
def sqlite_home(settings: Settings) -> Iterator[Home]:
    h = Home(settings)
    yield h
    h.close()


class LiveServer:
    """uvicorn serving a home on a free loopback port, in a background thread.

    Like `meshops server`, it requires an API token (governance's authenticator); `token`
    is one made for the home's local user, `headers` carries it for raw HTTP calls.
    `governed=False` serves as the local user without tokens (raw error-mapping tests)."""

    def __init__(self, home: Home, *, governed: bool = True) -> None:
        from meshops.api.app import local_user
        from meshops.governance.authn import authenticate_token
        from meshops.governance.service import GovernanceService

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.token = GovernanceService(home.context()).create_token("tests").token
        self.headers = {"authorization": f"Bearer {self.token}"}
        authenticate = authenticate_token if governed else local_user
        config = uvicorn.Config(
            create_app(home, authenticate=authenticate),
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture
def live_server(sqlite_home: Home) -> Iterator[LiveServer]:
    # Ungoverned: raw-HTTP tests of routing and error mapping send no token.
    with LiveServer(sqlite_home, governed=False) as server:
        yield server


TRANSPORTS = ["embedded", "http", "embedded-postgres"]


@contextmanager
def open_platform(transport: str, home_dir: Path) -> Iterator[Platform]:
    """A platform over `transport` on a new home in `home_dir`: embedded, over HTTP to a
    live server, or embedded on a PostgreSQL schema."""
    with ExitStack() as stack:
        url = stack.enter_context(postgres_schema()) if transport == "embedded-postgres" else None
        settings = make_settings(home_dir, url)
        home = Home(settings)
        stack.callback(home.close)
        if transport == "http":
            server = stack.enter_context(LiveServer(home))
            remote = replace(settings, uri=server.url, token=server.token)
            platform = Platform(remote, http=HttpTransport(server.url, server.token))
        else:
            platform = Platform(settings, home=home)
        stack.callback(platform.close)
        yield platform


@pytest.fixture(params=TRANSPORTS)
def platform(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Platform]:
    """The same platform interface over each transport (and the embedded one on PostgreSQL)."""
    with open_platform(request.param, tmp_path / "home") as p:
        yield p


@pytest.fixture(scope="module", params=TRANSPORTS)
def shared_platform(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Platform]:
    """One platform per transport for a whole test module (opening a fresh home migrates
    every area's schema, which costs seconds); tests keep apart by using their own names."""
    with open_platform(request.param, tmp_path_factory.mktemp("shared") / "home") as p:
        yield p
