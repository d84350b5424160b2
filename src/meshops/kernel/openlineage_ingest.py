"""OpenLineage in: events from Airflow, Spark, dbt, Flink ... recorded in the one lineage graph.

`POST /api/v1/lineage` (the path Marquez serves, so any OpenLineage HTTP transport can point
at a meshops server) hands the body here. The event is checked against
`openlineage_event.schema.json` (meshops's own schema of the 2-0-2 rules: event kinds,
required fields and formats, every facet's base fields, the schema, parent and errorMessage
facets), or, when `MESHOPS_OPENLINEAGE_SPEC` names a folder of the official `OpenLineage.json`
and `facets/*.json`, against those (each standard facet against its own schema); the first
problem is refused with the field's path. Then:

- a RunEvent: `job --ran--> run`, `input --input_to--> run`, `run --produced--> output`, and
  `parent run --parent_of--> run` (with `parent job --ran--> parent run`) from the `parent`
  facet;
- a JobEvent: `input --input_to--> job --produced--> output`;
- a DatasetEvent: validated and accepted; a dataset alone is no edge, so nothing is stored.

Nodes are URNs: `meshops:job:<namespace>:<name>`, `meshops:olrun:<runId>`,
`meshops:oldataset:<namespace>:<name>` (namespace and name escaped: every character a URN
part does not allow is written `~XX`, its UTF-8 bytes in hex). A dataset of this home's
namespace named `<domain>.<product>.<port>` (the names meshops emits, see
kernel/openlineage.py) is that product's version node instead, `meshops:dataproduct:
<domain>.<product>:<version>` (the version of its `version` facet, else the latest), so
external jobs that read or write a product port join its lineage.
"""

from __future__ import annotations

import json
import os
import re
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from meshops.kernel import lineage
from meshops.kernel.errors import BadRequest

if TYPE_CHECKING:
    from jsonschema import Draft202012Validator

    from meshops.kernel.home import Context

OWN_SCHEMA = Path(__file__).resolve().parent / "openlineage_event.schema.json"


def official_spec() -> Path | None:
    """A folder of the official OpenLineage schemas, when the operator provides one."""
    folder = os.environ.get("MESHOPS_OPENLINEAGE_SPEC", "")
    return Path(folder) if folder and (Path(folder) / "OpenLineage.json").is_file() else None


MAX_EVENT_BYTES = 5 * 1024 * 1024
MAX_DATASETS = 1000  # inputs plus outputs of one event
_SAFE = re.compile(r"[A-Za-z0-9_.\-@/^<>=*+]")


# --- node names ----------------------------------------------------------------------------------


def escape(text: str) -> str:
    """A URN part for any text: characters a part does not allow (and `~`) become `~XX`."""
    if not text:
        return "~"
    return "".join(
        ch if _SAFE.fullmatch(ch) else "".join(f"~{b:02X}" for b in ch.encode()) for ch in text
    )


def unescape(part: str) -> str:
    if part == "~":
        return ""
    raw = bytearray()
    i = 0
    while i < len(part):
        if part[i] == "~":
            raw.append(int(part[i + 1 : i + 3], 16))
            i += 3
        else:
            raw.extend(part[i].encode())
            i += 1
    return raw.decode()


def job_urn(namespace: str, name: str) -> str:
    return f"meshops:job:{escape(namespace)}:{escape(name)}"


def run_urn(run_id: str) -> str:
    return f"meshops:olrun:{escape(run_id)}"


def dataset_urn(namespace: str, name: str) -> str:
    return f"meshops:oldataset:{escape(namespace)}:{escape(name)}"


# --- validation ----------------------------------------------------------------------------------


@cache
def _schemas() -> tuple[Any, dict[str, Any], dict[str, list[dict[str, Any]]]]:
    from referencing import Registry, Resource

    spec = official_spec()
    core = json.loads((spec / "OpenLineage.json" if spec else OWN_SCHEMA).read_text())
    resources = [(core["$id"], Resource.from_contents(core))]
    by_key: dict[str, list[dict[str, Any]]] = {}
    for path in sorted((spec / "facets").glob("*.json")) if spec else []:
        schema = json.loads(path.read_text())
        resources.append((schema["$id"], Resource.from_contents(schema)))
        for key in schema.get("properties", {}):
            by_key.setdefault(key, []).append(schema)
    return Registry().with_resources(resources), core, by_key


def _validator(schema: dict[str, Any]) -> Draft202012Validator:
    from jsonschema import Draft202012Validator

    registry, _, _ = _schemas()
    return Draft202012Validator(
        schema, registry=registry, format_checker=Draft202012Validator.FORMAT_CHECKER
    )


@cache
def _event_validator(kind: str) -> Draft202012Validator:
    _, core, _ = _schemas()
    return _validator({"$ref": f"{core['$id']}#/$defs/{kind}"})


@cache
def _facet_validators(key: str) -> tuple[Draft202012Validator, ...]:
    _, _, by_key = _schemas()
    return tuple(_validator(schema) for schema in by_key.get(key, []))


def _path(parts: list[Any]) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(event)"


def _first(errors: Any) -> Any:
    """The most telling error: jsonschema's best match, followed into `anyOf` branches."""
    from jsonschema.exceptions import best_match

    error = best_match(errors)
    while error is not None and error.context:
        error = best_match(error.context)
    return error


def _field(error: Any) -> str:
    """The path of the field at fault; for a missing property, that property's path."""
    parts = list(error.absolute_path)
    if error.validator == "required" and isinstance(error.instance, dict):
        missing = [p for p in error.validator_value if p not in error.instance]
        parts.extend(missing[:1])
    return _path(parts)


def _refuse(field: str, message: str) -> BadRequest:
    return BadRequest(
        f"not a valid OpenLineage event: {field}: {message}",
        {
            "field": field,
            "fix": "send an event valid under https://openlineage.io/spec/2-0-2/OpenLineage.json "
            "and the facet schemas",
        },
    )


def kind_of(event: Any) -> str:
    if not isinstance(event, dict):
        raise _refuse("(event)", "the body must be a JSON object")
    if "run" in event:
        return "RunEvent"
    if "dataset" in event:
        return "DatasetEvent"
    if "job" in event:
        return "JobEvent"
    raise _refuse("run", "'run' is a required property (or 'job' / 'dataset')")


def _facet_containers(event: dict[str, Any]) -> list[tuple[list[Any], Any]]:
    found: list[tuple[list[Any], Any]] = []
    for where in ("run", "job", "dataset"):
        if isinstance(event.get(where), dict):
            found.append(([where, "facets"], event[where].get("facets")))
    for side, extra in (("inputs", "inputFacets"), ("outputs", "outputFacets")):
        datasets = event.get(side)
        for i, dataset in enumerate(datasets if isinstance(datasets, list) else []):
            if isinstance(dataset, dict):
                found.append(([side, i, "facets"], dataset.get("facets")))
                found.append(([side, i, extra], dataset.get(extra)))
    return found


def validate(event: Any) -> str:
    """The event's kind, or BadRequest naming the first field that breaks the official
    schemas: the event's own definition, then each standard facet's schema."""
    kind = kind_of(event)
    error = _first(_event_validator(kind).iter_errors(event))
    if error is not None:
        raise _refuse(_field(error), error.message)
    for where, facets in _facet_containers(event):
        for key, facet in (facets or {}).items():
            validators = _facet_validators(key)
            if not validators:  # a custom facet: the core schema checked its base fields
                continue
            problems = [_first(v.iter_errors({key: facet})) for v in validators]
            if all(problems):
                error = problems[0]
                assert error is not None
                raise _refuse(_path([*where]) + "." + _field(error), error.message)
    datasets = len(event.get("inputs") or []) + len(event.get("outputs") or [])
    if datasets > MAX_DATASETS:
        raise _refuse("inputs", f"{datasets} datasets in one event (at most {MAX_DATASETS})")
    return kind


def parse(body: bytes) -> dict[str, Any]:
    if len(body) > MAX_EVENT_BYTES:
        raise BadRequest(
            f"the event has {len(body)} bytes (at most {MAX_EVENT_BYTES})",
            {"field": "(body)", "fix": "send smaller events (fewer datasets or facets)"},
        )
    try:
        event = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(
            f"the body is not JSON: {exc}", {"field": "(body)", "fix": "send a JSON event"}
        ) from exc
    if not isinstance(event, dict):
        raise _refuse("(event)", "the body must be a JSON object")
    return event


# --- recording -----------------------------------------------------------------------------------


def _dataset_node(ctx: Context, dataset: dict[str, Any], home_namespace: str) -> str:
    """A product port of this home joins its product version's node; any other dataset is
    an `oldataset` node."""
    namespace, name = str(dataset["namespace"]), str(dataset["name"])
    if namespace == home_namespace and name.count(".") >= 2:
        domain, product, port = name.split(".", 2)
        version = ((dataset.get("facets") or {}).get("version") or {}).get("datasetVersion")
        from meshops.kernel import ports

        try:
            facts = ports.PRODUCT_FACTS.get().port_facts(
                ctx, f"{domain}.{product}", port, str(version) if version else None
            )
            return facts.urn
        except Exception:  # not a product port here (or that version is not): a dataset
            pass
    return dataset_urn(namespace, name)


def edges_of(ctx: Context, event: dict[str, Any], kind: str) -> list[tuple[str, str, str]]:
    from meshops.kernel.openlineage import namespace as home_namespace

    if kind == "DatasetEvent":
        return []
    here = home_namespace(ctx.home.settings)
    job = job_urn(event["job"]["namespace"], event["job"]["name"])
    inputs = [_dataset_node(ctx, d, here) for d in event.get("inputs") or []]
    outputs = [_dataset_node(ctx, d, here) for d in event.get("outputs") or []]
    if kind == "JobEvent":
        return [
            *((i, job, "input_to") for i in inputs),
            *((job, o, "produced") for o in outputs),
        ]
    run = run_urn(event["run"]["runId"])
    edges = [(job, run, "ran")]
    edges.extend((i, run, "input_to") for i in inputs)
    edges.extend((run, o, "produced") for o in outputs)
    parent = (event["run"].get("facets") or {}).get("parent")
    if isinstance(parent, dict):
        parent_run = run_urn(parent["run"]["runId"])
        edges.append(
            (job_urn(parent["job"]["namespace"], parent["job"]["name"]), parent_run, "ran")
        )
        edges.append((parent_run, run, "parent_of"))
    return list(dict.fromkeys(edges))


def record(ctx: Context, event: dict[str, Any]) -> dict[str, Any]:
    """Validate and record one event (`lineage.write`); returns what was recorded."""
    ctx.authorize("lineage.write")
    kind = validate(event)
    edges = edges_of(ctx, event, kind)
    subject = (
        run_urn(event["run"]["runId"])
        if kind == "RunEvent"
        else job_urn(event["job"]["namespace"], event["job"]["name"])
        if kind == "JobEvent"
        else dataset_urn(event["dataset"]["namespace"], event["dataset"]["name"])
    )
    properties = {
        "source": "openlineage",
        "eventType": event.get("eventType"),
        "eventTime": event.get("eventTime"),
        "producer": event.get("producer"),
    }
    with ctx.db.begin() as conn:
        if edges:
            lineage.add_edges(conn, edges, properties)
        ctx.audit(
            conn,
            "lineage.openlineage_event",
            subject,
            detail={"kind": kind, "eventType": event.get("eventType"), "edges": len(edges)},
        )
    return {
        "kind": kind,
        "subject": subject,
        "edges": [{"upstream": u, "downstream": d, "relation": r} for u, d, r in edges],
    }
