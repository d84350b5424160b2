"""Each operation declared once: on the area's Protocol, with its HTTP verb and path.

    class Monitoring(Protocol):
        @rpc.get("/v1/monitors/{monitor}")
        def get_monitor(self, monitor: str) -> Monitor: ...

From that one declaration the API server derives the route (`meshops.api.rpc`: the request
model from the signature, the response model from the return type, both in the OpenAPI
document) and the SDK derives the HTTP client method (`remote_class` here). The embedded
transport is the service itself, which implements the Protocol (mypy checks it where the
area is wired). The rules of the wire, in one place:

- a name in `{braces}` of the path is a path parameter, escaped by construction;
- GET and DELETE send the other parameters in the query string (None is left out);
- POST, PUT and PATCH send them as a JSON object of their names, except a lone pydantic
  model parameter, which is the body itself; `query=(...)` keeps named ones in the query;
- `pyarrow.Table` parameters make the request multipart: each table is a file part in the
  kernel's wire codec (`meshops.kernel.wire`), each other parameter a form field of JSON;
- a `pyarrow.Table` answer is an Arrow IPC stream, `None` is 204, anything else is JSON
  validated against the return type on the way in.

Where a transport really differs (client-side folders, streams, buffers, uploads of
files), the remote class of the area subclasses the generated one and writes that method by
hand; `remote_class` refuses a Protocol method that is neither declared nor written.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import inspect
import json
import re
import sys
import typing
from collections.abc import Callable
from typing import Any, TypeVar, cast
from urllib.parse import quote

from pydantic import BaseModel, TypeAdapter

if typing.TYPE_CHECKING:
    from meshops.kernel.http import HttpTransport

F = TypeVar("F", bound=Callable[..., Any])
P = TypeVar("P")

RPC_ATTRIBUTE = "__meshops_rpc__"
PATH_PARAMETER = re.compile(r"{([A-Za-z_][A-Za-z0-9_]*)(?::path)?}")
# Names the Protocols import only for type checkers; resolved here on first use.
LAZY_NAMES = {"pa": "pyarrow", "pd": "pandas"}


@dataclasses.dataclass(frozen=True)
class Declaration:
    verb: str
    path: str
    status: int = 200
    query: tuple[str, ...] = ()
    media_type: str | None = None  # of a `str` answer that is not JSON (e.g. "text/html")
    tags: tuple[str, ...] = ()


def _declare(verb: str) -> Callable[..., Callable[[F], F]]:
    def declare(
        path: str,
        *,
        status: int = 200,
        query: tuple[str, ...] = (),
        media_type: str | None = None,
        tags: tuple[str, ...] = (),
    ) -> Callable[[F], F]:
        declaration = Declaration(verb, path, status, query, media_type, tags)

        def mark(fn: F) -> F:
            setattr(fn, RPC_ATTRIBUTE, declaration)
            return fn

        return mark

    return declare


get = _declare("GET")
post = _declare("POST")
put = _declare("PUT")
patch = _declare("PATCH")
delete = _declare("DELETE")


@dataclasses.dataclass(frozen=True)
class Parameter:
    name: str
    hint: Any
    default: Any  # inspect.Parameter.empty when required
    where: str  # "path" | "query" | "body" | "table"

    @functools.cached_property
    def adapter(self) -> TypeAdapter[Any]:
        return TypeAdapter(self.hint)

    @property
    def required(self) -> bool:
        return self.default is inspect.Parameter.empty


@dataclasses.dataclass(frozen=True)
class Operation:
    """A declared method of a Protocol, its types resolved."""

    name: str
    declaration: Declaration
    signature: inspect.Signature
    parameters: tuple[Parameter, ...]
    returns: Any
    doc: str

    def where(self, *kinds: str) -> list[Parameter]:
        return [p for p in self.parameters if p.where in kinds]

    @property
    def body_model(self) -> Parameter | None:
        """The lone pydantic-model parameter that is the whole JSON body, if so declared."""
        body = self.where("body")
        if len(body) == 1 and _is_model(body[0].hint) and not self.where("table"):
            return body[0]
        return None

    @property
    def returns_table(self) -> bool:
        return is_table(self.returns)

    @functools.cached_property
    def return_adapter(self) -> TypeAdapter[Any]:
        return TypeAdapter(self.returns)


def _is_model(hint: Any) -> bool:
    return isinstance(hint, type) and issubclass(hint, BaseModel)


def is_table(hint: Any) -> bool:
    """`pyarrow.Table` or `pyarrow.Table | None`."""
    args = typing.get_args(hint)
    candidates = [a for a in args if a is not type(None)] if args else [hint]
    if len(candidates) != 1 or not isinstance(candidates[0], type):
        return False
    return candidates[0].__module__.startswith("pyarrow") and candidates[0].__name__ == "Table"


def _hints(fn: Callable[..., Any]) -> dict[str, Any]:
    module = sys.modules[fn.__module__]
    namespace = dict(vars(module))
    for _ in range(len(LAZY_NAMES) + 1):
        try:
            return typing.get_type_hints(fn, globalns=namespace, include_extras=True)
        except NameError as exc:
            missing = exc.name
            if missing not in LAZY_NAMES or missing in namespace:
                raise TypeError(
                    f"{fn.__qualname__}: cannot resolve {missing!r}; import it at module "
                    "level in the Protocol's module (only pa and pd may stay type-only)"
                ) from exc
            namespace[missing] = importlib.import_module(LAZY_NAMES[missing])
    raise AssertionError("unreachable")


def _operation(fn: Callable[..., Any], declaration: Declaration) -> Operation:
    hints = _hints(fn)
    signature = inspect.signature(fn)
    in_path = set(PATH_PARAMETER.findall(declaration.path))
    parameters = []
    for param in list(signature.parameters.values())[1:]:  # past self
        hint = hints.get(param.name, Any)
        if param.name in in_path:
            where = "path"
        elif is_table(hint):
            where = "table"
        elif declaration.verb in ("GET", "DELETE") or param.name in declaration.query:
            where = "query"
        else:
            where = "body"
        parameters.append(Parameter(param.name, hint, param.default, where))
    unknown = in_path - {p.name for p in parameters}
    if unknown:
        raise TypeError(f"{fn.__qualname__}: path names {sorted(unknown)} are not parameters")
    return Operation(
        name=fn.__name__,
        declaration=declaration,
        signature=signature,
        parameters=tuple(parameters),
        returns=hints.get("return", Any),
        doc=inspect.getdoc(fn) or "",
    )


@functools.cache
def operations(protocol: type) -> tuple[Operation, ...]:
    """The declared operations of `protocol` (and of the Protocols it extends)."""
    found: dict[str, Operation] = {}
    for klass in reversed(protocol.__mro__):
        for name, fn in vars(klass).items():
            declaration = getattr(fn, RPC_ATTRIBUTE, None)
            if declaration is not None:
                found[name] = _operation(fn, declaration)
    return tuple(found.values())


def protocol_methods(protocol: type) -> set[str]:
    return {
        name
        for klass in protocol.__mro__
        if klass not in (object, typing.Protocol, typing.Generic)
        for name, fn in vars(klass).items()
        if callable(fn) and not name.startswith("_")
    }


# --- the HTTP client ---------------------------------------------------------------------


def to_json(parameter: Parameter, value: Any) -> Any:
    """A value as JSON data, dumped by its declared type (models, datetimes, paths)."""
    return parameter.adapter.dump_python(value, mode="json")


def _query_value(parameter: Parameter, value: Any) -> Any:
    data = to_json(parameter, value)
    if isinstance(data, bool):
        return "true" if data else "false"
    return data


def _request(op: Operation, bound: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments of `HttpTransport.request` for one call."""
    path = op.declaration.path
    for p in op.where("path"):
        text = str(to_json(p, bound[p.name]))
        # A `{name:path}` parameter spans segments: its slashes stay, all else is escaped.
        path = path.replace("{" + p.name + "}", quote(text, safe=""))
        path = path.replace("{" + p.name + ":path}", quote(text, safe="/"))
    query = {
        p.name: _query_value(p, bound[p.name])
        for p in op.where("query")
        if bound[p.name] is not None
    }
    request: dict[str, Any] = {"params": query}
    tables = op.where("table")
    body = op.where("body")
    if tables:
        request["multipart"] = (
            {p.name: json.dumps(to_json(p, bound[p.name])) for p in body},
            {p.name: bound[p.name] for p in tables if bound[p.name] is not None},
        )
    elif op.body_model is not None:
        model = op.body_model
        request["json"] = to_json(model, bound[model.name])
    elif body:
        request["json"] = {p.name: to_json(p, bound[p.name]) for p in body}
    return {"method": op.declaration.verb, "path": path, **request}


def _answer(op: Operation, data: Any) -> Any:
    if op.returns_table:
        from meshops.kernel.wire import decode_table

        return None if data is None else decode_table(data, "the answer")
    if op.returns is None or op.returns is type(None):
        return None
    if isinstance(data, bytes) and op.declaration.media_type:
        return data.decode()
    # Typed floats read "NaN"/"Infinity" back (kernel.jsontext); pydantic does that.
    return op.return_adapter.validate_python(data)


def _client_method(op: Operation) -> Callable[..., Any]:
    signature = op.signature

    def call(self: RemoteArea, *args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        return _answer(op, self.http.call(**_request(op, bound.arguments)))

    call.__name__ = call.__qualname__ = op.name
    call.__doc__ = op.doc
    call.__signature__ = signature  # type: ignore[attr-defined]
    return call


class RemoteArea:
    """The base of every generated HTTP client: one transport, shared by the platform."""

    def __init__(self, http: HttpTransport) -> None:
        self.http = http


@functools.cache
def remote_class(protocol: type, base: type = RemoteArea) -> type:
    """An HTTP client class for `protocol`: a method per declared operation, on top of
    `base` (whose own methods win: the hand-written ones). Refuses a Protocol method that
    is neither declared nor written on `base`."""
    methods: dict[str, Any] = {}
    for op in operations(protocol):
        if not _written_on(base, op.name):
            methods[op.name] = _client_method(op)
    missing = sorted(
        name
        for name in protocol_methods(protocol)
        if name not in methods and not _written_on(base, name)
    )
    if missing:
        raise TypeError(
            f"{protocol.__name__}: {missing} are neither declared with meshops.kernel.rpc "
            f"nor written on {base.__name__}"
        )
    return type(f"Remote{protocol.__name__}", (base,), methods)


def _written_on(base: type, name: str) -> bool:
    return any(name in vars(klass) for klass in base.__mro__ if klass is not object)


def remote(protocol: type[P], http: HttpTransport, base: type = RemoteArea, **extra: Any) -> P:
    """An HTTP client satisfying `protocol` (`extra` goes to the constructor of `base`)."""
    klass = remote_class(cast(type, protocol), base)
    return cast(P, klass(http, **extra))
