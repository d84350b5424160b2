"""Policies as code: CEL expressions (the `celpy` implementation of the Common Expression
Language) over a target's input document (`documents.py`).

A policy's expression sees the document's top-level fields as variables and returns either
a bool (true = compliant) or a list (empty = compliant; the items name what is wrong and
go into the explanation). Expressions are compiled and evaluated against the target's
sample documents when a policy is saved, so syntax and type errors surface then, with
their position, never at a gate.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any, cast

import celpy
import yaml
from celpy import celtypes
from celpy.adapter import json_to_cel
from celpy.celparser import CELParseError
from celpy.evaluation import CELEvalError
from sqlalchemy import Connection

from meshops.governance.documents import SAMPLES, check_target
from meshops.governance.models import GLOBAL_SCOPE, Outcome, Policy
from meshops.kernel.bounds import check_expression
from meshops.kernel.db import insert_ignoring_conflicts, utcnow
from meshops.kernel.errors import InvalidInput

POLICY_ID = re.compile(r"^[a-z0-9][a-z0-9_.\-]{1,99}$")
GOVERNANCE_GROUP = "governance-group"
_ENV_LOCK = threading.Lock()


@dataclass(frozen=True)
class Outcomes:
    outcome: Outcome
    explanation: str


@lru_cache(maxsize=1)
def _environment() -> celpy.Environment:
    return celpy.Environment()


@lru_cache(maxsize=1024)
def _program(expression: str) -> Any:
    # Compiling parses with lark, which is slow; gates evaluate the same few policies often.
    with _ENV_LOCK:
        env = _environment()
        return env.program(env.compile(expression))


def compile_expression(expression: str) -> Any:
    """Compile or raise InvalidInput naming the line and column of the syntax error."""
    if not expression.strip():
        raise InvalidInput(
            "the policy expression is empty",
            {"field": "expression", "fix": "write a CEL expression, e.g. size(product.owners) > 0"},
        )
    check_expression(expression)  # length and nesting, before lark recurses (kernel.bounds)
    try:
        return _program(expression)
    except CELParseError as exc:
        line, column = getattr(exc, "line", None), getattr(exc, "column", None)
        raise InvalidInput(
            f"syntax error in policy expression at line {line}, column {column}: "
            f"{str(exc).splitlines()[0].strip()}",
            {
                "field": "expression",
                "line": line,
                "column": column,
                "fix": "correct the CEL syntax (see https://cel.dev)",
            },
        ) from exc


def _activation(document: dict[str, Any]) -> dict[str, Any]:
    return {key: json_to_cel(value) for key, value in document.items()}


def _clean_message(exc: CELEvalError) -> str:
    message = str(exc.args[0]) if exc.args else str(exc)
    return message.split(" (in activation")[0]


def _locate(expression: str, message: str) -> tuple[int, int] | None:
    """Where in the expression the token an evaluation error names appears (1-based)."""
    quoted = re.search(r"'([A-Za-z_][A-Za-z0-9_]*)'", message)
    if not quoted:
        return None
    match = re.search(rf"\b{re.escape(quoted.group(1))}\b", expression)
    if not match:
        return None
    before = expression[: match.start()]
    return before.count("\n") + 1, match.start() - (before.rfind("\n") + 1) + 1


def run(expression: str, document: dict[str, Any]) -> Outcomes:
    """Evaluate a compiled-before expression over a normalised document."""
    program = compile_expression(expression)
    try:
        value = program.evaluate(_activation(document))
    except CELEvalError as exc:
        return Outcomes("error", f"evaluation error: {_clean_message(exc)}")
    return _interpret(value)


def _interpret(value: Any) -> Outcomes:
    if isinstance(value, celtypes.BoolType | bool):
        return Outcomes("pass", "") if bool(value) else Outcomes("fail", "")
    if isinstance(value, celtypes.ListType | list):
        items = [str(item) for item in cast(list[Any], value)]
        return Outcomes("pass", "") if not items else Outcomes("fail", ", ".join(items))
    if isinstance(value, CELEvalError):
        return Outcomes("error", f"evaluation error: {_clean_message(value)}")
    return Outcomes("error", f"the expression returned {type(value).__name__}, not bool or list")


def check_policy(policy: Policy) -> None:
    """Everything that makes a policy unsaveable, raised as InvalidInput with the fix."""
    if not POLICY_ID.match(policy.id):
        raise InvalidInput(
            f"invalid policy id {policy.id!r}",
            {"field": "id", "fix": "use 2-100 lowercase letters, digits, '.', '_' or '-'"},
        )
    check_target(policy.target)
    if not policy.rationale.strip():
        raise InvalidInput(
            "a policy needs a rationale", {"field": "rationale", "fix": "say why it exists"}
        )
    compile_expression(policy.expression)
    for number, sample in enumerate(SAMPLES[policy.target], start=1):
        try:
            value = _program(policy.expression).evaluate(_activation(sample))
        except CELEvalError as exc:
            _raise_type_error(policy, _clean_message(exc), number)
        outcome = _interpret(value)
        if outcome.outcome == "error":
            _raise_type_error(policy, outcome.explanation, number)


def _raise_type_error(policy: Policy, message: str, sample: int) -> None:
    position = _locate(policy.expression, message)
    where = f" at line {position[0]}, column {position[1]}" if position else ""
    raise InvalidInput(
        f"policy {policy.id!r} does not evaluate on a {policy.target} document{where}: {message}",
        {
            "field": "expression",
            "line": position[0] if position else None,
            "column": position[1] if position else None,
            "sample": sample,
            "fix": f"use the fields of the {policy.target} input document "
            "(docs/governance.md) and return a bool or a list",
        },
    )


def explanation(policy: Policy, outcomes: Outcomes) -> str:
    if outcomes.outcome == "pass":
        return "ok"
    if outcomes.outcome == "error":
        return f"{outcomes.explanation} (treated as a violation: {policy.rationale})"
    offending = f" [{outcomes.explanation}]" if outcomes.explanation else ""
    return f"{policy.rationale}{offending}"


def load_pack(name: str = "default") -> list[Policy]:
    """The policies of a pack shipped in `governance/policy_pack/<name>.yaml`."""
    text = resources.files("meshops.governance.policy_pack").joinpath(f"{name}.yaml").read_text()
    entries = yaml.safe_load(text)["policies"]
    policies = [Policy.model_validate({"owner": GOVERNANCE_GROUP, **entry}) for entry in entries]
    for policy in policies:
        check_policy(policy)
    return policies


def install_default_pack(conn: Connection) -> None:
    """Insert the default pack's policies that the home does not have yet."""
    from meshops.governance.store import policies

    now = utcnow()
    rows = [
        {
            "id": p.id,
            "scope": GLOBAL_SCOPE,
            "target": p.target,
            "expression": p.expression,
            "severity": p.severity,
            "rationale": p.rationale,
            "owner": p.owner,
            "description": p.description,
            "version": 1,
            "updated_at": now,
            "updated_by": "system",
        }
        for p in load_pack()
    ]
    insert_ignoring_conflicts(conn, policies, rows, ["id"])
