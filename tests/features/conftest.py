"""One platform per transport for a whole test module (opening a fresh home migrates every
area's schema, which costs seconds); tests keep apart by using their own names."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import replace

import pytest
from sqlalchemy import create_engine, text

from meshops.client import Platform
from meshops.kernel.home import Home
from meshops.kernel.http import HttpTransport
from tests.conftest import LiveServer, make_settings, postgres_url_or_skip


@pytest.fixture(scope="module", params=["embedded", "http", "embedded-postgres"])
def shared_platform(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Platform]:
    url = None
    schema = f"t_{uuid.uuid4().hex[:12]}"
    if request.param == "embedded-postgres":
        base = postgres_url_or_skip()
        engine = create_engine(base)
        with engine.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
        url = f"{base}{'&' if '?' in base else '?'}options=-csearch_path%3D{schema}"
    home = Home(make_settings(tmp_path_factory.mktemp("features") / "home", url))
    try:
        if request.param == "http":
            with LiveServer(home) as server:
                # The server wants an API token (see LiveServer); the settings carry it too.
                token = getattr(server, "token", None)
                remote = replace(home.settings, uri=server.url, token=token)
                platform = Platform(remote, http=HttpTransport(server.url, token))
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
