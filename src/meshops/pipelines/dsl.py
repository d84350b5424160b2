"""`@step` and `@pipeline`: the graph comes from data dependencies.

Calling a step inside a `@pipeline` function does not run it: it records a node and returns
handles to its outputs. Passing a handle to another step is an edge; any other argument is
a parameter (JSON). Outside a pipeline, a step is a plain function (easy to unit-test).
"""

from __future__ import annotations

import contextvars
import functools
import hashlib
import importlib
import importlib.util
import inspect
import json
import sys
import textwrap
import typing
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, overload

from pydantic import TypeAdapter, ValidationError

from meshops.kernel import ports
from meshops.kernel.errors import InvalidInput
from meshops.pipelines.models import Resources

_builder: contextvars.ContextVar[GraphBuilder | None] = contextvars.ContextVar(
    "meshops_pipeline_builder", default=None
)


@dataclass(frozen=True)
class StepOutput:
    """A handle to one output of a step node, only meaningful while a pipeline is built."""

    node: str
    index: int
    name: str


@dataclass(frozen=True)
class StepOptions:
    retries: int = 0
    retry_backoff: float = 1.0  # seconds before the first retry; doubles each time
    timeout: float | None = None  # seconds per attempt
    cache: bool = True
    resources: Resources = field(default_factory=Resources)


class StepDefinition:
    """A function turned into a pipeline step by `@step`."""

    def __init__(
        self, fn: Callable[..., Any], name: str, options: StepOptions, outputs: list[str]
    ) -> None:
        self.fn = fn
        self.name = name
        self.options = options
        self.outputs = outputs
        self.signature = inspect.signature(fn)
        self.hints = _type_hints(fn)
        self._param_adapters: dict[str, TypeAdapter[Any]] = {}
        functools.update_wrapper(self, fn)

    @functools.cached_property
    def code_digest(self) -> str:
        """sha256 of the function's source: editing the step invalidates its cache."""
        try:
            source = textwrap.dedent(inspect.getsource(self.fn))
        except (OSError, TypeError):
            source = f"{self.fn.__module__}:{self.fn.__qualname__}"
        return hashlib.sha256(source.encode()).hexdigest()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        builder = _builder.get()
        if builder is None:
            return self.fn(*args, **kwargs)
        return builder.add(self, args, kwargs)

    def __reduce__(self) -> tuple[Any, ...]:
        # Importable steps travel by reference; others (scripts, notebooks) by value.
        ref = _importable_ref(self.fn)
        if ref is not None and _resolves_to(ref, self):
            return (resolve_step, (ref,))
        import cloudpickle

        state = (cloudpickle.dumps(self.fn), self.name, self.options, self.outputs)
        return (_step_from_value, state)

    def check_param(self, arg: str, value: Any) -> None:
        hint = self.hints.get(arg)
        if hint is None or hint is Any:
            return
        adapter = self._param_adapters.get(arg)
        if adapter is None:
            adapter = self._param_adapters[arg] = TypeAdapter(hint)
        try:
            adapter.validate_python(value, strict=False)
        except ValidationError as exc:
            raise InvalidInput(
                f"step {self.name}: parameter {arg}={value!r} does not match {hint}",
                {"field": arg, "fix": f"pass a value of type {hint}"},
            ) from exc

    def __repr__(self) -> str:
        return f"<step {self.name}>"


def _step_from_value(
    fn_bytes: bytes, name: str, options: StepOptions, outputs: list[str]
) -> StepDefinition:
    import cloudpickle

    return StepDefinition(cloudpickle.loads(fn_bytes), name, options, outputs)


def _type_hints(fn: Callable[..., Any]) -> dict[str, Any]:
    try:
        return typing.get_type_hints(fn)
    except Exception:  # unresolvable forward references: skip checks rather than fail
        return {}


def _output_names(fn: Callable[..., Any], outputs: list[str] | None) -> list[str]:
    if outputs:
        return list(outputs)
    ret = _type_hints(fn).get("return")
    if typing.get_origin(ret) is tuple:
        args = typing.get_args(ret)
        if args and args[-1] is not Ellipsis:
            return [f"output_{i}" for i in range(len(args))]
    return ["output"]


@overload
def step(fn: Callable[..., Any], /) -> StepDefinition: ...


@overload
def step(
    *,
    name: str | None = None,
    retries: int = 0,
    retry_backoff: float = 1.0,
    timeout: float | None = None,
    cache: bool = True,
    cpus: float = 1.0,
    gpus: float = 0.0,
    memory: int | None = None,
    outputs: list[str] | None = None,
) -> Callable[[Callable[..., Any]], StepDefinition]: ...


def step(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    retries: int = 0,
    retry_backoff: float = 1.0,
    timeout: float | None = None,
    cache: bool = True,
    cpus: float = 1.0,
    gpus: float = 0.0,
    memory: int | None = None,
    outputs: list[str] | None = None,
) -> StepDefinition | Callable[[Callable[..., Any]], StepDefinition]:
    """Declare a pipeline step. A `tuple[A, B]` return annotation (or `outputs=[...]`)
    gives the step several outputs, each its own artifact."""
    if retries < 0 or retry_backoff < 0 or (timeout is not None and timeout <= 0):
        raise InvalidInput(
            "retries and retry_backoff must be >= 0 and timeout > 0",
            {"fix": "e.g. @step(retries=2, retry_backoff=0.5, timeout=60)"},
        )
    options = StepOptions(
        retries=retries,
        retry_backoff=retry_backoff,
        timeout=timeout,
        cache=cache,
        resources=Resources(cpus=cpus, gpus=gpus, memory=memory),
    )

    def wrap(func: Callable[..., Any]) -> StepDefinition:
        return StepDefinition(func, name or func.__name__, options, _output_names(func, outputs))

    return wrap(fn) if fn is not None else wrap


@dataclass
class Node:
    """One call of a step in a pipeline."""

    id: str
    step: StepDefinition
    params: dict[str, Any]  # argument -> JSON value
    inputs: dict[str, StepOutput]  # argument -> upstream output
    deps: tuple[str, ...]


@dataclass
class Graph:
    pipeline: str
    params: dict[str, Any]
    nodes: dict[str, Node]
    outputs: list[StepOutput]


class GraphBuilder:
    def __init__(self) -> None:
        self.nodes: dict[str, Node] = {}
        self._name_counts: dict[str, int] = {}

    def add(self, step_def: StepDefinition, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        try:
            bound = step_def.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise InvalidInput(
                f"step {step_def.name}: {exc}", {"fix": "call the step with its signature"}
            ) from exc
        bound.apply_defaults()
        node_id = self._node_id(step_def.name)
        params: dict[str, Any] = {}
        inputs: dict[str, StepOutput] = {}
        for arg, value in bound.arguments.items():
            if isinstance(value, StepOutput):
                if value.node not in self.nodes:
                    raise InvalidInput(f"step {step_def.name}: {arg} comes from another pipeline")
                inputs[arg] = value
            else:
                params[arg] = _json_param(step_def, arg, value)
        deps = tuple(dict.fromkeys(h.node for h in inputs.values()))
        self.nodes[node_id] = Node(node_id, step_def, params, inputs, deps)
        handles = [StepOutput(node_id, i, n) for i, n in enumerate(step_def.outputs)]
        return handles[0] if len(handles) == 1 else tuple(handles)

    def _node_id(self, name: str) -> str:
        count = self._name_counts.get(name, 0) + 1
        self._name_counts[name] = count
        return name if count == 1 else f"{name}_{count}"


def _json_param(step_def: StepDefinition, arg: str, value: Any) -> Any:
    if _contains_handle(value):
        raise InvalidInput(
            f"step {step_def.name}: {arg} holds step outputs inside a container",
            {"field": arg, "fix": "pass each step output as its own argument"},
        )
    try:
        json.dumps(value)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(
            f"step {step_def.name}: parameter {arg} is not JSON ({type(value).__name__})",
            {"field": arg, "fix": "parameters are JSON values; pass data through steps"},
        ) from exc
    step_def.check_param(arg, value)
    return value


def _contains_handle(value: Any) -> bool:
    if isinstance(value, StepOutput):
        return True
    if isinstance(value, list | tuple | set):
        return any(_contains_handle(v) for v in value)
    if isinstance(value, dict):
        return any(_contains_handle(v) for v in value.values())
    return False


class PipelineDefinition:
    """A function turned into a pipeline by `@pipeline`; its arguments are parameters."""

    def __init__(self, fn: Callable[..., Any], name: str) -> None:
        self.fn = fn
        self.name = name
        self.signature = inspect.signature(fn)
        functools.update_wrapper(self, fn)

    @property
    def ref(self) -> str:
        ref = _importable_ref(self.fn)
        if ref is None:
            raise InvalidInput(
                f"pipeline {self.name} is not importable (defined in __main__ or a function)",
                {"fix": "define it at module level in a module or file the worker can load"},
            )
        return ref

    def build(self, params: dict[str, Any] | None = None) -> Graph:
        params = dict(params or {})
        try:
            bound = self.signature.bind(**params)
        except TypeError as exc:
            raise InvalidInput(
                f"pipeline {self.name}: {exc}",
                {"field": "params", "fix": f"parameters are {list(self.signature.parameters)}"},
            ) from exc
        bound.apply_defaults()
        with building() as builder:
            result = self.fn(**bound.arguments)
        outputs = _handles(result)
        if not builder.nodes:
            raise InvalidInput(f"pipeline {self.name} calls no steps")
        return Graph(self.name, dict(bound.arguments), builder.nodes, outputs)

    def __call__(self, **params: Any) -> Any:
        """Run the pipeline inline on the default platform (see `meshops.connect`)."""
        with ports.PLATFORM_OPENER.get().open() as platform:
            return platform.pipelines.run(self, params=params, executor="inline")

    def __repr__(self) -> str:
        return f"<pipeline {self.name}>"


def _handles(result: Any) -> list[StepOutput]:
    if isinstance(result, StepOutput):
        return [result]
    if isinstance(result, tuple | list):
        return [h for h in result if isinstance(h, StepOutput)]
    if isinstance(result, dict):
        return [h for h in result.values() if isinstance(h, StepOutput)]
    return []


def pipeline(fn: Callable[..., Any] | None = None, /, *, name: str | None = None) -> Any:
    """Declare a pipeline: a function that calls steps, wiring outputs to inputs."""

    def wrap(func: Callable[..., Any]) -> PipelineDefinition:
        return PipelineDefinition(func, name or func.__name__)

    return wrap(fn) if fn is not None else wrap


@contextmanager
def building() -> Iterator[GraphBuilder]:
    builder = GraphBuilder()
    token = _builder.set(builder)
    try:
        yield builder
    finally:
        _builder.reset(token)


# --- references: `package.module:function` or `path/to/file.py:function` -----------------

_FILE_MODULE_PREFIX = "meshops_pipeline_file_"


def _importable_ref(fn: Callable[..., Any]) -> str | None:
    module_name = getattr(fn, "__module__", None)
    qualname = getattr(fn, "__qualname__", "")
    if not module_name or module_name == "__main__" or "<locals>" in qualname:
        return None
    module = sys.modules.get(module_name)
    file_path = getattr(module, "__meshops_file__", None)
    if file_path:
        return f"{file_path}:{qualname}"
    return f"{module_name}:{qualname}"


def _resolves_to(ref: str, obj: object) -> bool:
    try:
        return _resolve(ref) is obj
    except Exception:
        return False


def _load_module(module_ref: str) -> Any:
    if module_ref.endswith(".py"):
        path = Path(module_ref).expanduser().resolve()
        if not path.is_file():
            raise InvalidInput(
                f"pipeline file {path} does not exist",
                {"file": str(path), "fix": "give a path the worker can read"},
            )
        name = _FILE_MODULE_PREFIX + hashlib.sha256(str(path).encode()).hexdigest()[:16]
        if name in sys.modules:
            return sys.modules[name]
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        module.__meshops_file__ = str(path)  # type: ignore[attr-defined]
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            sys.modules.pop(name, None)
            raise
        return module
    try:
        return importlib.import_module(module_ref)
    except ImportError as exc:
        raise InvalidInput(
            f"cannot import {module_ref}: {exc}",
            {"fix": "use module:function on the worker's PYTHONPATH, or path/to/file.py:function"},
        ) from exc


def _resolve(ref: str) -> Any:
    module_ref, sep, qualname = ref.rpartition(":")
    if not sep or not module_ref or not qualname:
        raise InvalidInput(
            f"not a pipeline reference: {ref!r}",
            {"field": "ref", "fix": "use package.module:function or path/to/file.py:function"},
        )
    obj: Any = _load_module(module_ref)
    for part in qualname.split("."):
        if not hasattr(obj, part):
            raise InvalidInput(f"{module_ref} has no attribute {qualname}", {"field": "ref"})
        obj = getattr(obj, part)
    return obj


def load_pipeline(ref: str) -> PipelineDefinition:
    obj = _resolve(ref)
    if not isinstance(obj, PipelineDefinition):
        raise InvalidInput(
            f"{ref} is not a @pipeline (it is {type(obj).__name__})",
            {"field": "ref", "fix": "decorate the function with @meshops.pipelines.pipeline"},
        )
    return obj


def resolve_step(ref: str) -> StepDefinition:
    obj = _resolve(ref)
    if not isinstance(obj, StepDefinition):
        raise InvalidInput(f"{ref} is not a @step")
    return obj
