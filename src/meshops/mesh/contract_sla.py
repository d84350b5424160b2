"""The SLA part of a contract test: ODCS `slaProperties` of an output port.

latency / freshness are judged from the element's newest value in the data, endOfSupport /
endOfLife against today; every other property is reported "not checked" with the reason
(SLA_NOT_CHECKED). Property names are matched case-insensitively and through the ODCS
synonyms (`ly` for latency, `fy` for frequency, ...). Called by `contracts.run_contract_test`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa

from meshops.kernel.errors import InvalidInput
from meshops.mesh.contract_scan import quote
from meshops.mesh.contracts import arrow_type_family, fetch_one
from meshops.mesh.models import NOT_CHECKED, RuleResult

if TYPE_CHECKING:
    from meshops.mesh.contracts import _Property

SLA_SYNONYMS = {
    "av": "availability",
    "th": "throughput",
    "er": "errorRate",
    "ga": "generalAvailability",
    "es": "endOfSupport",
    "el": "endOfLife",
    "re": "retention",
    "fy": "frequency",
    "ly": "latency",
    "td": "timeToDetect",
    "tn": "timeToNotify",
    "tr": "timeToRepair",
}
_SLA_NAMES = {
    name.lower(): name
    for name in (
        *SLA_SYNONYMS.values(),
        "freshness",
        "timeOfAvailability",
    )
}
# Why each SLA property meshops does not measure is reported, not checked.
SLA_NOT_CHECKED = {
    "availability": "service uptime: meshops does not monitor the serving system",
    "throughput": "a service rate: meshops does not measure it",
    "errorRate": "a service error rate: meshops does not measure it",
    "generalAvailability": "a date the product became available: declared, nothing to measure",
    "retention": "meshops keeps every published version until it is deleted; it does not "
    "measure how long the source keeps its data",
    "frequency": "one contract test sees one version; the catalog's SLO page compares "
    "publish times",
    "timeOfAvailability": "the time of day of a publish is not known when the data is tested",
    "timeToDetect": "an operations process time: meshops does not measure it",
    "timeToNotify": "an operations process time: meshops does not measure it",
    "timeToRepair": "an operations process time: meshops does not measure it",
}
_SECONDS = {
    "ms": 0.001,
    "millisecond": 0.001,
    "s": 1,
    "sec": 1,
    "second": 1,
    "m": 60,
    "min": 60,
    "minute": 60,
    "h": 3600,
    "hr": 3600,
    "hour": 3600,
    "d": 86400,
    "day": 86400,
    "w": 604800,
    "wk": 604800,
    "week": 604800,
    "y": 31536000,
    "yr": 31536000,
    "year": 31536000,
}


def sla_property_name(prop: dict[str, Any]) -> str:
    """The SLA property's standard name (case-insensitive, synonyms resolved)."""
    raw = str(prop.get("property") or "")
    return SLA_SYNONYMS.get(raw.lower(), _SLA_NAMES.get(raw.lower(), raw))


def duration_seconds(value: Any, unit: Any) -> float | None:
    """value × unit in seconds (units d, day, days, h, m, min, s, w, y, yr, years...); None
    when the unit is not one of those or the value is not a number."""
    key = str(unit or "d").strip().lower()
    factor = _SECONDS.get(key) or _SECONDS.get(key.removesuffix("s"))
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number * factor if factor is not None else None


def freshness_limit(prop: dict[str, Any]) -> float:
    """The freshness/latency limit in seconds (days when the unit is unknown)."""
    seconds = duration_seconds(prop.get("value") or 0, prop.get("unit"))
    return seconds if seconds is not None else float(prop.get("value") or 0) * 86400


def _as_datetime(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def _object_names(schema_object: dict[str, Any], port: str) -> set[str]:
    names = {port}
    for key in ("name", "physicalName", "id"):
        if schema_object.get(key):
            names.add(str(schema_object[key]))
    return names


def _resolve_element(
    element: str,
    port: str,
    schema_object: dict[str, Any],
    props: list[_Property],
    contract: dict[str, Any] | None,
) -> tuple[_Property | None, str]:
    """The property an SLA element (`object.property` or `property`) names on this port:
    (property, "") when found here; (None, "other") when it names another object of the
    contract; (None, why) when it names nothing here."""
    obj, _, name = element.strip().rpartition(".")
    mine = _object_names(schema_object, port)
    objects = [o for o in (contract or {}).get("schema") or [] if isinstance(o, dict)]
    note = ""
    if obj and obj not in mine:
        others = set().union(*(_object_names(o, "") for o in objects)) - {""} if objects else set()
        if obj in others:
            return None, "other"
        if len(objects) > 1:
            return None, f"object {obj!r} is not in the contract"
        # "If there is only one object in the contract, the object name is not required"
        note = f"object {obj!r} is not in the contract; its only object {port} is meant"
    for prop in props:
        if name in (prop.name, prop.column, str(prop.spec.get("id") or "")):
            return prop, note
    return None, f"{element} names no property of {port}"


@dataclass(frozen=True)
class SlaScope:
    """What SLA checks of one port see: its data (the DuckDB view `port`), its object and
    properties, the whole contract when known, and the moment of the test."""

    con: Callable[[], duckdb.DuckDBPyConnection]
    port: str
    schema_object: dict[str, Any]
    props: list[_Property]
    present: dict[str, pa.DataType]
    moment: datetime
    contract: dict[str, Any] | None = None


def sla_checks(scope: SlaScope, properties: list[dict[str, Any]]) -> list[RuleResult]:
    """One result per SLA property: latency / freshness from the newest value of the
    element, endOfSupport / endOfLife against today, the rest declared and not checked."""
    results: list[RuleResult] = []
    default_element = str((scope.contract or {}).get("slaDefaultElement") or "")
    slas = [p for p in properties if isinstance(p, dict)]
    names = [sla_property_name(p) for p in slas]
    for index, (sla, name) in enumerate(zip(slas, names, strict=True)):
        label = str(sla.get("id") or name)
        rule = f"sla.{scope.port}.{label}"
        if names.count(name) > 1 and not sla.get("id"):
            rule += f".{index}"
        unit = f" {sla['unit']}" if sla.get("unit") else ""
        declared = f"{name} {sla.get('value')}{unit}"
        if name in ("latency", "freshness"):
            element = str(sla.get("element") or sla.get("column") or default_element)
            if not element:
                results.append(
                    _sla_not_checked(rule, None, declared, "no element: nothing to measure")
                )
                continue
            for part in element.split(","):
                results.extend(_latency(scope, rule, name, sla, part.strip()))
        elif name in ("endOfSupport", "endOfLife"):
            results.append(_end_of(rule, name, sla, scope.moment))
        else:
            why = SLA_NOT_CHECKED.get(name, f"{name!r} is not an ODCS SLA property")
            results.append(_sla_not_checked(rule, None, declared, why))
    return results


def _sla_not_checked(rule: str, column: str | None, declared: str, why: str) -> RuleResult:
    return RuleResult(
        rule=rule,
        kind="sla",
        column=column,
        passed=True,
        observed=NOT_CHECKED,
        expected=declared,
        message=why,
        severity="info",
    )


def _end_of(rule: str, name: str, sla: dict[str, Any], moment: datetime) -> RuleResult:
    when = _as_datetime(sla.get("value"))
    if when is None:
        raise InvalidInput(
            f"SLA {name} value {sla.get('value')!r} is not a date",
            {"field": "slaProperties.value", "fix": "write an ISO date, e.g. '2032-05-12'"},
        )
    passed = moment < when
    phase = "support" if name == "endOfSupport" else "life"
    return RuleResult(
        rule=rule,
        kind="sla",
        passed=passed,
        observed=moment.isoformat(),
        expected=f"before {name} {sla.get('value')}",
        message="" if passed else f"the contract is past its end of {phase} ({sla.get('value')})",
        # past end of support the data is still usable; past end of life it must not be
        severity="warning" if name == "endOfSupport" else "error",
    )


def _latency(
    scope: SlaScope, rule: str, name: str, sla: dict[str, Any], element: str
) -> list[RuleResult]:
    port, present = scope.port, scope.present
    declared = f"{name} {sla.get('value')}{sla.get('unit') or 'd'}"
    prop, note = _resolve_element(element, port, scope.schema_object, scope.props, scope.contract)
    if note == "other":
        return []  # checked with the port of that object
    if prop is None or prop.column not in present:
        why = note or f"{element} is not in the data"
        return [
            RuleResult(
                rule=rule,
                kind="sla",
                column=prop.name if prop else None,
                passed=False,
                expected=f"element {element.strip()} exists",
                message=f"{name} element {element.strip()}: {why}",
            )
        ]
    limit = duration_seconds(sla.get("value"), sla.get("unit"))
    if limit is None:
        return [
            _sla_not_checked(
                rule,
                prop.name,
                declared,
                f"value {sla.get('value')!r} / unit {sla.get('unit')!r} is no duration",
            )
        ]
    family = arrow_type_family(present[prop.column])
    if family not in ("date", "timestamp"):
        return [
            _sla_not_checked(
                rule, prop.name, declared, f"element {prop.name} is {family}, not a date or time"
            )
        ]
    newest = fetch_one(scope.con(), f"SELECT max({quote(prop.column)}) FROM {quote(port)}")
    newest_at = _as_datetime(newest[0] if newest else None)
    age = (scope.moment - newest_at).total_seconds() if newest_at else None
    passed = age is not None and age <= limit
    message = (
        ""
        if passed
        else (f"newest {prop.name} is {round(age)} s old" if age is not None else "no value")
    )
    return [
        RuleResult(
            rule=rule,
            kind="sla",
            column=prop.name,
            passed=passed,
            observed=age,
            expected=f"newest {prop.name} at most {sla.get('value')}{sla.get('unit') or 'd'} old",
            message="; ".join(m for m in (message, note) if m),
        )
    ]
