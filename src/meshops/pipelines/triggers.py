"""Which events start which pipelines, and when cron schedules fire.

A trigger listens to one outbox topic and filters events by a field match on the payload
(`{"domain": "sales"}`; dotted keys reach into nested objects) and/or a CEL expression over
`event` (`event.payload.severity == "critical"`). An expression that cannot be evaluated on
an event (a missing field) does not match it.
"""

from __future__ import annotations

import functools
import typing
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from meshops.kernel import outbox
from meshops.kernel.bounds import check_expression
from meshops.kernel.errors import InvalidInput
from meshops.kernel.outbox import Event
from meshops.mesh import events as mesh_events
from meshops.monitoring import events as monitoring_events
from meshops.pipelines import events as pipelines_events
from meshops.pipelines.models import Trigger
from meshops.registry import events as registry_events

# Their payload models register with the outbox on import (`check_match` reads them). The
# project area's (`webhook.received`) is imported by the wiring module (`meshops.assembly`):
# project builds on pipelines, so pipelines does not import it.
PAYLOAD_MODULES = (mesh_events, monitoring_events, pipelines_events, registry_events)

TRIGGER_TOPICS = (
    outbox.DATAPRODUCT_PUBLISHED,
    outbox.MODEL_VERSION_REGISTERED,
    outbox.MONITOR_ALERT,
    outbox.WEBHOOK_RECEIVED,
    outbox.MODEL_ALIAS_MOVED,
    outbox.PIPELINE_RUN_FINISHED,
)


def check_topic(topic: str) -> str:
    if topic not in TRIGGER_TOPICS:
        raise InvalidInput(
            f"cannot trigger on topic {topic!r}",
            {"field": "topic", "fix": f"use one of {', '.join(TRIGGER_TOPICS)}"},
        )
    return topic


def check_match(topic: str, match: dict[str, Any]) -> dict[str, Any]:
    """`match`, or InvalidInput naming the first key that is not a field of the topic's
    payload (a dotted key must name a field at each level it reaches into, until a field
    that holds free-form JSON)."""
    model = outbox.payload_model(topic)
    if model is None:
        raise InvalidInput(
            f"no payload model is registered for topic {topic!r} in this process",
            {"field": "topic", "fix": "import the events module of the area that emits it"},
        )
    for key in match:
        _check_key(model, key, topic)
    return match


def _check_key(model: type[BaseModel], key: str, topic: str) -> None:
    current: Any = model
    for depth, part in enumerate(key.split(".")):
        fields = _fields_of(current)
        if fields is None:  # free-form JSON below: anything may be there
            return
        if part not in fields:
            where = ".".join(key.split(".")[:depth]) or "the payload"
            raise InvalidInput(
                f"match key {key!r}: {part!r} is not a field of {where} of {topic!r} events",
                {
                    "field": f"match.{key}",
                    "valid_keys": sorted(fields),
                    "fix": f"match on one of {', '.join(sorted(fields))}",
                },
            )
        current = fields[part]


def _fields_of(hint: Any) -> dict[str, Any] | None:
    """The fields below a value of type `hint`: a model's, none for a scalar, None (any)
    for free-form JSON (a dict, Any)."""
    candidates = [a for a in typing.get_args(hint) if a is not type(None)] or [hint]
    if typing.get_origin(hint) is dict or hint is Any or Any in candidates:
        return None
    for candidate in candidates:
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return {name: f.annotation for name, f in candidate.model_fields.items()}
        if typing.get_origin(candidate) is dict:
            return None
    return {}


@functools.lru_cache(maxsize=256)
def compile_expression(expression: str) -> Any:
    import celpy

    check_expression(expression)  # length and nesting, before lark recurses (kernel.bounds)
    env = celpy.Environment()
    try:
        return env.program(env.compile(expression))
    except Exception as exc:
        raise InvalidInput(
            f"invalid CEL filter {expression!r}: {exc}",
            {"field": "expression", "fix": 'e.g. event.payload.severity == "critical"'},
        ) from exc


def _field(payload: dict[str, Any], dotted: str) -> Any:
    value: Any = payload
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return _ABSENT
        value = value[part]
    return value


_ABSENT = object()


def matches(trigger: Trigger, event: Event) -> bool:
    if not trigger.enabled or event.topic != trigger.topic:
        return False
    for key, expected in trigger.match.items():
        if _field(event.payload, key) != expected:
            return False
    if trigger.expression:
        import celpy

        document = {
            "topic": event.topic,
            "subject": event.subject,
            "payload": event.payload,
            "actor": event.actor,
        }
        try:
            result = compile_expression(trigger.expression).evaluate(
                {"event": celpy.json_to_cel(document)}  # type: ignore[attr-defined]
            )
        except Exception:  # e.g. the expression reads a field this event does not have
            return False
        return bool(result)
    return True


def next_fire(cron: str, after: datetime) -> datetime:
    from croniter import croniter

    try:
        nxt: datetime = croniter(cron, after).get_next(datetime)
    except (ValueError, KeyError) as exc:
        raise InvalidInput(
            f"invalid cron expression {cron!r}: {exc}",
            {"field": "cron", "fix": "five fields: minute hour day month weekday, e.g. 0 3 * * *"},
        ) from exc
    return nxt
