"""Which events start which pipelines, and when cron schedules fire.

A trigger listens to one outbox topic and filters events by a field match on the payload
(`{"domain": "sales"}`; dotted keys reach into nested objects) and/or a CEL expression over
`event` (`event.payload.severity == "critical"`). An expression that cannot be evaluated on
an event (a missing field) does not match it.
"""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any

from meshops.kernel import outbox
from meshops.kernel.bounds import check_expression
from meshops.kernel.errors import InvalidInput
from meshops.kernel.outbox import Event
from meshops.pipelines.models import Trigger

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
