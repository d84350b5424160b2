"""Schemathesis over the live OpenAPI document of a real server (issue #14, "Bounds
everywhere"): every operation, with valid (positive) and invalid (negative) inputs
generated from the schema, as the platform admin (the caller who may reach every route),
against a home that has data (a published product, a run with a NaN metric, a model).

Three passes per operation: Schemathesis' coverage phase (deterministic boundary
values: each minimum/maximum, one past it, wrong types, missing parameters), then
Hypothesis-generated positive and negative cases, and positive cases again with the path
naming the seeded objects (so queries and bodies reach real data, not only 404s).

Asserted over the whole run: no response with a status >= 500, and every 4xx body in the
documented error shape `{"error": str, "message": str, "detail": {...}}`. The run is
seeded (reproducible) and bounded: EXAMPLES per operation and mode (env
MESHOPS_SCHEMATHESIS_EXAMPLES), at most COVERAGE_CASES boundary cases per operation, a
20 s timeout per request: about 7,900 calls in two minutes on 2 busy cores (measured;
see the timing printed with `-s`). 30 examples (8,700 calls, no coverage pass) found
nothing more.

No operation is excluded: the streaming ones (training-set data, Arrow reads) and the
long-running ones (batch scoring, materialization, plan/apply) answer quickly here because
generated names do not exist.
"""

from __future__ import annotations

import itertools
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from tests.security.seeded import EXPERIMENT, MODEL, PRODUCT, Seeded, seeded_server

EXAMPLES = int(os.environ.get("MESHOPS_SCHEMATHESIS_EXAMPLES", "10"))
SEED = 14_2026
REQUEST_TIMEOUT = 20.0
COVERAGE_CASES = 200  # boundary cases per operation (most have fewer)
ERROR_KEYS = {"error", "message", "detail"}
# The MLflow REST API answers in the MLflow client's own error shape (docs/mlflow.md).
MLFLOW_PREFIXES = ("/api/2.0/mlflow", "/ajax-api/2.0/mlflow")

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


@dataclass
class Findings:
    calls: int = 0
    problems: list[str] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    unsatisfiable: list[str] = field(default_factory=list)

    def add(self, label: str, case: Any, status: int, problem: str) -> None:
        if len(self.problems) < 200:  # the report stays readable
            request = f"{case.method} {case.formatted_path} query={case.query} body={_short(case)}"
            self.problems.append(f"{label}: {status} {problem} <- {request}")


def _short(case: Any) -> str:
    try:
        return json.dumps(case.body, default=str)[:200]
    except (TypeError, ValueError):
        return repr(case.body)[:200]


def shape_problem(body: bytes) -> str | None:
    """Why a 4xx body is not the documented error shape (None: it is)."""
    try:
        data = json.loads(body)
    except ValueError:
        return f"4xx body is not JSON: {body[:200]!r}"
    if not isinstance(data, dict) or not set(data) >= ERROR_KEYS:
        return f"4xx body lacks error/message/detail: {body[:200]!r}"
    if not isinstance(data["error"], str) or not isinstance(data["message"], str):
        return f"4xx error/message are not strings: {body[:200]!r}"
    if not isinstance(data["detail"], dict):
        return f"4xx detail is not an object: {body[:200]!r}"
    return None


def mlflow_shape_problem(body: bytes) -> str | None:
    """Why a 4xx body of an MLflow route is not MLflow's error shape (None: it is)."""
    try:
        data = json.loads(body)
    except ValueError:
        return f"4xx body is not JSON: {body[:200]!r}"
    if not isinstance(data, dict) or not isinstance(data.get("error_code"), str):
        return f"4xx body lacks MLflow's error_code: {body[:200]!r}"
    if not isinstance(data.get("message"), str):
        return f"4xx MLflow message is not a string: {body[:200]!r}"
    return None


def check(findings: Findings, label: str, case: Any, response: Any) -> None:
    status = int(response.status_code)
    findings.calls += 1
    findings.statuses[status] = findings.statuses.get(status, 0) + 1
    if status >= 500:
        findings.add(label, case, status, response.text[:300])
    elif status >= 400:
        problem = shape_problem(response.content)
        if problem and str(case.path).startswith(MLFLOW_PREFIXES):
            # MLflow's own shape; the framework's answers (405, 413) keep meshops's shape
            problem = mlflow_shape_problem(response.content)
        if problem:
            findings.add(label, case, status, problem)


def known_path_parameters(path: str, server: Seeded) -> dict[str, Any] | None:
    """Path parameters naming the seeded objects, so that generated queries and bodies
    reach real data and not only 404s (None: the path names nothing seeded)."""
    prefixes: list[tuple[str, dict[str, Any]]] = [
        ("/v1/models/{name}", {"name": MODEL, "version": 1}),
        ("/v1/project/models/{model}", {"model": MODEL, "version": 1}),
        ("/v1/runs/{run_id}", {"run_id": server.run_id}),
        ("/v1/mesh/products/{product}", {"product": PRODUCT}),
        ("/v1/governance/usage/products/{product}", {"product": PRODUCT}),
        ("/v1/mesh/domains/{name}", {"name": PRODUCT.split(".")[0]}),
        ("/v1/experiments/{name_or_id}", {"name_or_id": EXPERIMENT}),
    ]
    for prefix, values in prefixes:
        if path.startswith(prefix):
            wanted = {part[1:-1].split(":")[0] for part in path.split("/") if part[:1] == "{"}
            return {key: values[key] for key in wanted} if wanted <= set(values) else None
    return None


def exercise(
    operation: Any,
    mode: GenerationMode,
    server: Seeded,
    findings: Findings,
    path_parameters: dict[str, Any] | None = None,
) -> None:
    """EXAMPLES generated cases of one operation in one mode, each sent to the server."""
    label = f"{operation.label} [{mode.value}{' on seeded data' if path_parameters else ''}]"
    strategy = operation.as_strategy(generation_mode=mode, path_parameters=path_parameters)

    @seed(SEED)
    @settings(
        max_examples=EXAMPLES,
        deadline=None,  # the bound is REQUEST_TIMEOUT per call, not Hypothesis' clock
        database=None,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: findings are collected
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def run(case: Any) -> None:
        try:
            response = case.call(
                base_url=server.url, headers=server.headers, timeout=REQUEST_TIMEOUT
            )
        except Exception as exc:  # a connection reset or a timeout is a finding too
            findings.add(label, case, 0, f"no response: {type(exc).__name__}: {exc}")
            return
        check(findings, label, case, response)

    try:
        run()
    except Unsatisfiable:  # nothing to make invalid (e.g. no parameters, no body)
        findings.unsatisfiable.append(label)


def cover(schema: Any, operation: Any, server: Seeded, findings: Findings) -> None:
    """Schemathesis' coverage phase: deterministic boundary cases of every parameter
    (each minimum and maximum, one past them, missing and wrong-typed values)."""
    label = f"{operation.label} [coverage]"
    cases = schema.iter_coverage_cases(
        operation,
        generation_modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
        generation_config=schema.config.generation_for(operation=operation),
    )
    for case in itertools.islice(cases, COVERAGE_CASES):
        try:
            response = case.call(
                base_url=server.url, headers=server.headers, timeout=REQUEST_TIMEOUT
            )
        except Exception as exc:
            findings.add(label, case, 0, f"no response: {type(exc).__name__}: {exc}")
            continue
        check(findings, label, case, response)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    with seeded_server(tmp_path_factory.mktemp("schemathesis") / "home") as server:
        yield server


def test_no_5xx_and_every_4xx_in_the_error_shape(served: Seeded) -> None:
    started = time.monotonic()
    schema = schemathesis.openapi.from_url(f"{served.url}/openapi.json")
    findings = Findings()
    operations = seeded_operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            exercise(operation, mode, served, findings)
        cover(schema, operation, served, findings)
        known = known_path_parameters(operation.path, served)
        if known:
            seeded_operations += 1
            exercise(operation, GenerationMode.POSITIVE, served, findings, known)
    elapsed = time.monotonic() - started
    print(
        f"\nschemathesis: {operations} operations ({seeded_operations} also on seeded data), "
        f"{findings.calls} calls in {elapsed:.0f} s; "
        f"statuses {dict(sorted(findings.statuses.items()))}; "
        f"{len(findings.unsatisfiable)} operation modes had nothing to generate"
    )
    assert operations > 100  # the whole API was found, not an empty document
    assert findings.calls > operations * 2
    assert seeded_operations > 20
    assert not findings.problems, "\n".join(findings.problems)


def test_shape_check_rejects_what_it_should() -> None:
    """The checker itself: the documented shape passes, anything else is named."""
    assert shape_problem(b'{"error":"not_found","message":"m","detail":{}}') is None
    assert shape_problem(b'{"detail":"There was an error parsing the body"}') is not None
    assert shape_problem(b"Internal Server Error") is not None
    assert mlflow_shape_problem(b'{"error_code":"INVALID_PARAMETER_VALUE","message":"m"}') is None
    assert mlflow_shape_problem(b'{"error":"x","message":"m","detail":{}}') is not None
    assert shape_problem(b'{"error":"x","message":"m","detail":"text"}') is not None


def test_seeded_home_is_served(served: Seeded) -> None:
    import httpx

    with httpx.Client(base_url=served.url, headers=served.headers) as client:
        assert client.get(f"/v1/runs/{served.run_id}").status_code == 200
        assert client.get("/v1/models/churn").status_code == 200
        assert client.get("/v1/mesh/products/shop.items").status_code == 200
