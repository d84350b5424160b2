"""The RPC layer on a toy area: one declaration gives a route and a client that agree.

The client talks to the derived FastAPI app through Starlette's in-process transport (the
`transport=` seam of `HttpTransport`), so each wire rule is checked without a socket; the
areas' own suites run the same derivation over a real server."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Protocol

import httpx
import pyarrow as pa
import pytest
from fastapi import FastAPI
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel
from starlette.testclient import TestClient

from meshops.api import deps
from meshops.api.rpc import router_for
from meshops.kernel import rpc
from meshops.kernel.auth import Actor
from meshops.kernel.bounds import Limit
from meshops.kernel.errors import InvalidInput, NotFound
from meshops.kernel.home import Context
from meshops.kernel.http import HttpTransport
from meshops.kernel.responses import install_error_shape


class Thing(BaseModel):
    name: str
    size: int = 0
    tags: list[str] = []
    seen: datetime | None = None


class Things(Protocol):
    @rpc.post("/v1/things", status=201)
    def create(self, thing: Thing) -> Thing: ...

    @rpc.get("/v1/things/{name}")
    def get(self, name: str) -> Thing: ...

    @rpc.get("/v1/things")
    def search(self, tags: list[str] | None = None, limit: Limit = 10) -> list[Thing]: ...

    @rpc.put("/v1/things/{name}/size")
    def resize(self, name: str, size: int, note: str = "") -> Thing: ...

    @rpc.delete("/v1/things/{name}")
    def remove(self, name: str) -> None: ...

    @rpc.post("/v1/things/{name}/rows")
    def double(self, name: str, rows: pa.Table, factor: int = 2) -> pa.Table: ...

    @rpc.get("/v1/things/{name}/page", media_type="text/html")
    def page(self, name: str) -> str: ...

    @rpc.get("/v1/files/{path:path}")
    def file(self, path: str) -> str: ...


class ThingService:
    """Keeps things in a dict shared by every context (the test's 'database')."""

    store: dict[str, Thing] = {}

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def create(self, thing: Thing) -> Thing:
        if not thing.name:
            raise InvalidInput("a thing needs a name", {"field": "name"})
        self.store[thing.name] = thing
        return thing

    def get(self, name: str) -> Thing:
        if name not in self.store:
            raise NotFound(f"no thing {name!r}", {"field": "name"})
        return self.store[name]

    def search(self, tags: list[str] | None = None, limit: Limit = 10) -> list[Thing]:
        found = [t for t in self.store.values() if not tags or set(tags) & set(t.tags)]
        return sorted(found, key=lambda t: t.name)[:limit]

    def resize(self, name: str, size: int, note: str = "") -> Thing:
        thing = self.get(name).model_copy(update={"size": size, "tags": [note] if note else []})
        self.store[name] = thing
        return thing

    def remove(self, name: str) -> None:
        self.store.pop(name, None)

    def double(self, name: str, rows: pa.Table, factor: int = 2) -> pa.Table:
        return pa.table(
            {"x": [v * factor for v in rows.column("x").to_pylist()], "by": [name] * len(rows)}
        )

    def page(self, name: str) -> str:
        return f"<h1>{name}</h1>"

    def file(self, path: str) -> str:
        return path


class InProcess(httpx.BaseTransport):
    """An httpx transport that hands each request to an ASGI app in this process."""

    def __init__(self, app: FastAPI) -> None:
        self.client = TestClient(app)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        answer = self.client.request(
            request.method, str(request.url), headers=request.headers, content=request.read()
        )
        return httpx.Response(answer.status_code, headers=answer.headers, content=answer.content)


def _app() -> FastAPI:
    ThingService.store = {}
    app = FastAPI()
    install_error_shape(app)
    app.include_router(router_for(Things, ThingService, tags=["things"]))
    app.dependency_overrides[deps.get_context] = _context
    return app


def _context() -> Context:
    class _Home:
        pass

    return Context(_Home(), Actor("tester"))  # type: ignore[arg-type]


@pytest.fixture
def things() -> Iterator[Things]:
    http = HttpTransport("http://testserver", transport=InProcess(_app()))
    yield rpc.remote(Things, http)
    http.close()


def test_a_model_body_a_path_and_a_query_round_trip(things: Things) -> None:
    seen = datetime(2026, 1, 2, 3, 4, 5)
    created = things.create(Thing(name="a", size=3, tags=["x"], seen=seen))
    things.create(Thing(name="b", tags=["y"]))
    assert created == Thing(name="a", size=3, tags=["x"], seen=seen)
    assert things.get("a") == created
    assert [t.name for t in things.search(tags=["x", "y"])] == ["a", "b"]
    assert [t.name for t in things.search(tags=["y"])] == ["b"]
    assert [t.name for t in things.search(limit=1)] == ["a"]


def test_named_body_fields_none_answers_and_html(things: Things) -> None:
    things.create(Thing(name="a"))
    assert things.resize("a", 7, note="grew") == Thing(name="a", size=7, tags=["grew"])
    assert things.page("a") == "<h1>a</h1>"
    assert things.remove("a") is None
    with pytest.raises(NotFound, match="no thing 'a'"):
        things.get("a")


def test_tables_travel_both_ways_in_the_wire_codec(things: Things) -> None:
    out = things.double("t", pa.table({"x": [1, 2, 3]}), factor=10)
    assert out.to_pydict() == {"x": [10, 20, 30], "by": ["t", "t", "t"]}


def test_errors_come_back_as_the_same_class(things: Things) -> None:
    with pytest.raises(InvalidInput, match="needs a name"):
        things.create(Thing(name=""))


def test_a_bound_is_enforced_by_the_route(things: Things) -> None:
    with pytest.raises(InvalidInput):
        things.search(limit=0)


def test_a_path_parameter_spanning_segments_keeps_its_slashes(things: Things) -> None:
    assert things.file("a/b/c.txt") == "a/b/c.txt"


@settings(max_examples=60, deadline=None)
@given(st.text(min_size=1, max_size=40).filter(lambda s: s not in (".", "..") and "/" not in s))
def test_any_name_is_escaped_by_construction(name: str) -> None:
    # "/" is the one character a segment cannot carry: Starlette decodes %2F before it
    # routes, so the areas refuse names with a slash (and `{x:path}` spans segments).
    http = HttpTransport("http://testserver", transport=InProcess(_app()))
    client = rpc.remote(Things, http)
    client.create(Thing(name=name))
    assert client.get(name).name == name
    assert client.page(name) == f"<h1>{name}</h1>"


def test_an_undeclared_and_unwritten_method_is_refused() -> None:
    class Partial(Protocol):
        @rpc.get("/v1/x")
        def declared(self) -> int: ...

        def forgotten(self) -> int: ...

    with pytest.raises(TypeError, match="forgotten"):
        rpc.remote_class(Partial)


def test_a_hand_written_method_wins_over_the_derived_one() -> None:
    class Area(Protocol):
        @rpc.get("/v1/x")
        def value(self) -> int: ...

    class Written(rpc.RemoteArea):
        def value(self) -> int:
            return 42

    klass = rpc.remote_class(Area, Written)
    assert klass.value is Written.value
