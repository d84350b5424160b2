"""FastAPI routes derived from the operations declared on an area's Protocol.

`meshops.kernel.rpc` states the rules of the wire; this module is their server half. For
each declared operation it builds one endpoint whose signature FastAPI reads: path and
query parameters with their (bounded) types, a request body model derived from the
method's signature (or the lone pydantic model parameter itself), table uploads as file
parts, and the return type as the documented response model. The endpoint asks the wired
service for the caller's context and calls the method; nothing else happens here, so a
route cannot drift from the SDK method it serves.
"""

from __future__ import annotations

import inspect
import json
import typing
from collections.abc import Callable
from types import UnionType
from typing import Any

from fastapi import APIRouter, Body, Depends, File, Form, Query, Request, UploadFile
from fastapi.responses import Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, TypeAdapter, ValidationError, create_model

from meshops.api.deps import get_context
from meshops.kernel.errors import InvalidInput
from meshops.kernel.home import Context
from meshops.kernel.responses import SafeJSONResponse
from meshops.kernel.rpc import Operation, Parameter, operations
from meshops.kernel.wire import ARROW_STREAM, decode_table, encode_table

Service = Callable[[Context], Any]


def router_for(protocol: type, service: Service, *, tags: list[str]) -> APIRouter:
    """The routes of every operation declared on `protocol`, served by `service(ctx)`."""
    router = APIRouter(tags=list(tags))
    for op in operations(protocol):
        add_route(router, op, service, area=tags[0] if tags else "")
    return router


def add_route(router: APIRouter, op: Operation, service: Service, *, area: str = "") -> None:
    declaration = op.declaration
    body_model = _body_model(op)
    endpoint = _endpoint(op, service, body_model)
    router.add_api_route(
        declaration.path,
        endpoint,
        methods=[declaration.verb],
        status_code=204 if _returns_nothing(op) else declaration.status,
        name=op.name,
        # Unique across areas (mesh and registry both have get_version): area_method.
        operation_id=f"{area}_{op.name}" if area else op.name,
        # The summary is the method's name ("List Alerts", as FastAPI names hand routes);
        # the docstring, whole, is the description.
        summary=op.name.replace("_", " ").title(),
        description=op.doc or None,
        response_model=_response_model(op),
        response_class=SafeJSONResponse,
        tags=list(declaration.tags) or None,
        responses=_documented_media(op),
        route_class_override=_json_body_route(_body_type(op, body_model)),
    )


def _documented_media(op: Operation) -> dict[int | str, dict[str, Any]] | None:
    if op.returns_table:
        return {op.declaration.status: {"content": {ARROW_STREAM: {}}}}
    if op.declaration.media_type:
        return {op.declaration.status: {"content": {op.declaration.media_type: {}}}}
    return None


def _returns_nothing(op: Operation) -> bool:
    return op.returns in (None, type(None))


def _response_model(op: Operation) -> Any:
    if op.returns_table or op.declaration.media_type or _returns_nothing(op):
        return None
    return op.returns


def _body_model(op: Operation) -> type[BaseModel] | None:
    """The JSON object of the body parameters, named after the operation."""
    body = op.where("body")
    if not body or op.where("table") or op.body_model is not None:
        return None
    fields: dict[str, Any] = {p.name: (p.hint, ... if p.required else p.default) for p in body}
    name = "".join(part.title() for part in op.name.split("_")) + "Request"
    return create_model(name, **fields)


def _body_type(op: Operation, body_model: type[BaseModel] | None) -> type[BaseModel] | None:
    """The model the whole JSON body is validated into, if the route has one."""
    if body_model is not None:
        return body_model
    return op.body_model.hint if op.body_model is not None else None


def _json_body_route(body_type: type[BaseModel] | None) -> type[APIRoute] | None:
    """A route class whose requests read a JSON body straight into `body_type` (see
    `_JsonBodyRequest`); None (FastAPI's own) for routes without such a body."""
    if body_type is None:
        return None
    adapter = TypeAdapter(body_type)

    class JsonBodyRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Any]:
            handle = super().get_route_handler()

            async def route(request: Request) -> Response:
                fast = _JsonBodyRequest(request.scope, request.receive)
                fast.body_adapter = adapter
                response: Response = await handle(fast)
                return response

            return route

    return JsonBodyRoute


class _JsonBodyRequest(Request):
    """A request whose JSON body FastAPI gets already validated: pydantic reads the bytes
    into the body model in one pass (`validate_json`), about half the CPU of `json.loads`
    and then validating the dicts (a 5,000-run `create_runs` body: 0.33 s instead of
    0.63 s), and FastAPI's own validation of an instance of the model returns it as is.
    A body that does not validate is handed to FastAPI as parsed JSON, so its errors (422
    naming each field, 422 for malformed JSON) are FastAPI's as before."""

    body_adapter: TypeAdapter[Any]

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            try:
                self._json = self.body_adapter.validate_json(await self.body())
            except ValidationError:
                return await super().json()
        return self._json


def _endpoint(op: Operation, service: Service, body_model: type[BaseModel] | None) -> Any:
    parameters = [_signature_parameter(p) for p in op.where("path", "query")]
    if body_model is not None:
        parameters.append(_keyword("body", body_model, Body(...)))
    elif op.body_model is not None:
        model = op.body_model
        parameters.append(_keyword(model.name, model.hint, Body(...)))
    tables = op.where("table")
    if tables:
        parameters += [_keyword(p.name, str | None, Form(None)) for p in op.where("body")]
        parameters += [_keyword(p.name, UploadFile | None, File(None)) for p in tables]
    parameters.append(_keyword("ctx", Context, Depends(get_context)))

    def endpoint(**received: Any) -> Any:
        ctx = received.pop("ctx")
        arguments = _arguments(op, received)
        result = getattr(service(ctx), op.name)(**arguments)
        return _respond(op, result)

    endpoint.__name__ = op.name
    endpoint.__doc__ = op.doc
    endpoint.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    return endpoint


def _keyword(name: str, annotation: Any, default: Any) -> inspect.Parameter:
    return inspect.Parameter(
        name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation, default=default
    )


def _signature_parameter(p: Parameter) -> inspect.Parameter:
    default = p.default
    if p.where == "query" and _is_list(p.hint):
        default = Query(... if p.required else p.default)
    return _keyword(p.name, p.hint, default)


def _is_list(hint: Any) -> bool:
    """`list[X]`, possibly optional or annotated: FastAPI reads it from the query only
    when told to (`Query`)."""
    if typing.get_origin(hint) is typing.Annotated:
        hint = typing.get_args(hint)[0]
    options = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, UnionType) else ()
    return any(typing.get_origin(option) in (list, set, tuple) for option in options or (hint,))


def _arguments(op: Operation, received: dict[str, Any]) -> dict[str, Any]:
    arguments = {p.name: received[p.name] for p in op.where("path", "query")}
    if op.where("table"):
        for p in op.where("body"):
            arguments[p.name] = _form_value(p, received[p.name])
        for p in op.where("table"):
            upload = received[p.name]
            arguments[p.name] = None if upload is None else decode_table(upload.file.read(), p.name)
    elif op.body_model is not None:
        arguments[op.body_model.name] = received[op.body_model.name]
    elif op.where("body"):
        body = received["body"]
        arguments.update({p.name: getattr(body, p.name) for p in op.where("body")})
    return arguments


def _form_value(p: Parameter, text: str | None) -> Any:
    """A form field of a multipart call: JSON of the parameter's type."""
    if text is None:
        if p.required:
            raise InvalidInput(f"{p.name} is required", {"field": p.name})
        return p.default
    try:
        return p.adapter.validate_python(json.loads(text))
    except (ValueError, ValidationError) as exc:
        raise InvalidInput(
            f"{p.name}: not valid JSON of its type: {_first_error(exc)}",
            {"field": p.name, "fix": "send the form field as JSON"},
        ) from exc


def _first_error(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        return f"{where}: {first['msg']}" if where else str(first["msg"])
    return str(exc)


def _respond(op: Operation, result: Any) -> Response:
    status = op.declaration.status
    if op.returns_table:
        return Response(encode_table(result), status_code=status, media_type=ARROW_STREAM)
    if _returns_nothing(op):
        return Response(status_code=204)
    if op.declaration.media_type:
        return Response(str(result), status_code=status, media_type=op.declaration.media_type)
    content = op.return_adapter.dump_python(result, mode="json")
    return SafeJSONResponse(content, status_code=status)
