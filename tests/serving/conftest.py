from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import replace

import pytest
from sqlalchemy import create_engine, text

from meshops.client import Platform
from meshops.kernel.home import Home
from meshops.kernel.http import HttpTransport
from meshops.serving.runtime import close_all_runtimes
from tests.conftest import LiveServer, make_settings, postgres_url_or_skip


@pytest.fixture(autouse=True)
def _close_runtimes() -> Iterator[None]:
    """Each test's serving threads stop with it (a shared home gets a fresh runtime)."""
    yield
    close_all_runtimes()


@pytest.fixture(scope="module", params=["embedded", "http", "embedded-postgres"])
def shared_platform(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Platform]:
    """One platform per transport for a whole module (opening a home migrates every area's
    schema, which costs seconds); tests keep apart by their own model/endpoint names."""
    url = None
    schema = f"t_{uuid.uuid4().hex[:12]}"
    if request.param == "embedded-postgres":
        base = postgres_url_or_skip()
        engine = create_engine(base)
        with engine.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
        url = f"{base}{'&' if '?' in base else '?'}options=-csearch_path%3D{schema}"
    home = Home(make_settings(tmp_path_factory.mktemp("serving") / "home", url))
    try:
        if request.param == "http":
            with LiveServer(home) as server:
                remote = replace(home.settings, uri=server.url, token=server.token)
                platform = Platform(remote, http=HttpTransport(server.url, server.token))
                yield platform
                platform.close()
        else:
            platform = Platform(home.settings, home=home)
            yield platform
            platform.close()
    finally:
        home.close()
        if url:
            with engine.begin() as conn:
                conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
            engine.dispose()


_names = iter(range(1_000_000))


@pytest.fixture
def uniq() -> str:
    """A short suffix so tests sharing a platform never collide on names."""
    return f"t{next(_names)}"
