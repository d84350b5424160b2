"""Open Data Contract Standard documents: ODCS v3.0.0, v3.0.1, v3.0.2 and v3.1.0.

Reading a contract (`read`):
  1. `apiVersion` picks the version; an unknown one is refused, naming the supported ones.
  2. The document is validated against ITS OWN version's official JSON Schema. A document
     that declares a 3.0.x version but is written in the 3.1.0 forms (the current official
     examples `all-data-types`, `basic-four-dpo` and `column-completeness` do this) is
     accepted when the 3.1.0 schema, whose `apiVersion` enum lists every 3.0.x version,
     accepts it; `Contract.schema_version` records which schema that was.
  3. The document is upgraded to one internal model in the 3.1.0 shape (`upgrade`), which
     the contract checks read, without losing a field:
       - `team` as a 3.0 list of members  -> `team: {members: [...]}`
       - a quality item with the 3.0 `rule:` form keeps `rule` and every other key as
         written; `type: library` is set when the item had no `type` (3.0's default)
       - `logicalTypeOptions` with boolean `exclusiveMaximum`/`exclusiveMinimum` (3.0) ->
         the 3.1.0 numeric/string bound (`{maximum: 5, exclusiveMaximum: true}` ->
         `{exclusiveMaximum: 5}`; `false` -> the inclusive bound stays), at every nesting level
       - `slaProperties[].column` (3.0) -> `element` (unless `element` is also given)
       - a `customProperties` item without `value` gets `value: null` (3.1.0 requires it)

Exporting (`export`): the document as written (it was valid under its schema when read, and
is checked again), so import -> export -> import gives the same document; or, on request, the
3.1.0 form of it (`to_v310`), checked against the 3.1.0 schema (a 3.0 `rule:` item becomes a
3.1.0 `metric` where the standard has one, else a `custom` item carrying the 3.0 rule).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import jsonschema

from meshops.kernel.errors import InvalidInput
from meshops.mesh.standards.documents import (
    YamlDoc,
    dump_yaml,
    raise_schema_error,
    schema_errors,
    schema_of,
    validate_versioned,
    validator_for,
)

STANDARD = "ODCS"
LATEST = "v3.1.0"
SUPPORTED = ("v3.0.0", "v3.0.1", "v3.0.2", "v3.1.0")
SCHEMA_FILES = {
    "v3.0.1": "odcs-json-schema-v3.0.1.json",
    "v3.0.2": "odcs-json-schema-v3.0.2.json",
    "v3.1.0": "odcs-json-schema-v3.1.0.json",
}

# The 3.0 library rule names with a 3.1.0 metric of the same meaning (used by `to_v310`).
# (3.0 docs: duplicateCount, validValues, rowCount; 3.0 examples: nullCheck, countCheck.)
RULE_METRICS = {
    "nullCheck": "nullValues",
    "countCheck": "rowCount",
    "rowCount": "rowCount",
    "duplicateCount": "duplicateValues",
    "validValues": "invalidValues",
}
OPERATORS = (
    "mustBe",
    "mustNotBe",
    "mustBeGreaterThan",
    "mustBeGreaterOrEqualTo",
    "mustBeLessThan",
    "mustBeLessOrEqualTo",
    "mustBeBetween",
    "mustNotBeBetween",
)
# Keys of a quality item that describe it, whatever its type (kept on every conversion).
_QUALITY_COMMON = (
    "id",
    "name",
    "description",
    "dimension",
    "method",
    "schedule",
    "scheduler",
    "severity",
    "businessImpact",
    "unit",
    "tags",
    "customProperties",
    "authoritativeDefinitions",
)
CUSTOM_ENGINE_V30 = "odcs-v3.0-library"


def _derive_v300(v301: dict[str, Any]) -> dict[str, Any]:
    """The ODCS v3.0.0 JSON Schema: v3.0.1's, less what v3.0.1 added (from the standard's
    changelog and the two official schema files: `authoritativeDefinitions` and
    `customProperties` on the contract's `description`, `authoritativeDefinitions` at the top
    level, `customProperties` on roles, and `v3.0.1` in the `apiVersion` enum)."""
    schema = copy.deepcopy(v301)
    props = schema["properties"]
    props["apiVersion"]["enum"] = [v for v in props["apiVersion"]["enum"] if v != "v3.0.1"]
    props["apiVersion"]["default"] = "v3.0.0"
    del props["authoritativeDefinitions"]
    for key in ("authoritativeDefinitions", "customProperties"):
        del props["description"]["properties"][key]
    del schema["$defs"]["Role"]["properties"]["customProperties"]
    return schema


@lru_cache(maxsize=8)
def schema(version: str) -> dict[str, Any]:
    """The JSON Schema of one supported ODCS version."""
    if version == "v3.0.0":
        return _derive_v300(schema_of(SCHEMA_FILES["v3.0.1"]))
    return schema_of(SCHEMA_FILES[version])


@lru_cache(maxsize=8)
def _validator(version: str) -> jsonschema.protocols.Validator:
    return validator_for(schema(version))


def is_valid(version: str, data: dict[str, Any]) -> bool:
    """Whether `data` is valid under the JSON Schema of `version`."""
    return bool(_validator(version).is_valid(data))


@dataclass(frozen=True)
class Contract:
    """One ODCS contract as read: the document as written and its internal model."""

    document: dict[str, Any]  # as written (valid under `schema_version`)
    api_version: str  # what the document declares
    schema_version: str  # the JSON Schema it is valid under
    model: dict[str, Any]  # the internal model (3.1.0 shape, see the module doc)


def api_version_of(doc: YamlDoc) -> str:
    version = doc.data.get("apiVersion")
    if not isinstance(version, str) or version not in SUPPORTED:
        shown = "missing" if version is None else repr(version)
        raise doc.error(
            f"apiVersion is {shown}: meshops reads ODCS {', '.join(SUPPORTED)}",
            ["apiVersion"],
            f"set `apiVersion:` to one of {', '.join(SUPPORTED)} (the version the contract "
            "is written in)",
        )
    return version


def validate(doc: YamlDoc) -> tuple[str, str]:
    """(declared apiVersion, schema version it is valid under), or InvalidInput."""
    return validate_versioned(doc, api_version_of(doc), _validator, LATEST, STANDARD)


def read(doc: YamlDoc) -> Contract:
    """Validate a contract against its version's schema and upgrade it (module doc)."""
    api_version, schema_version = validate(doc)
    return Contract(doc.data, api_version, schema_version, upgrade(doc.data))


def read_document(document: dict[str, Any], label: str = "<contract>") -> Contract:
    """`read` for a mapping held in memory (a published contract, an SDK argument)."""
    return read(YamlDoc(label, document, None))


# --- upgrade to the internal model (3.1.0 shape) ---


def upgrade(document: dict[str, Any]) -> dict[str, Any]:
    model = copy.deepcopy(document)
    team = model.get("team")
    if isinstance(team, list):
        model["team"] = {"members": team}
    for obj in model.get("schema") or []:
        if isinstance(obj, dict):
            _upgrade_element(obj)
    for sla in model.get("slaProperties") or []:
        if isinstance(sla, dict) and "column" in sla:
            column = sla.pop("column")
            sla.setdefault("element", column)
    _fill_custom_values(model)
    return model


def _upgrade_element(element: dict[str, Any]) -> None:
    for item in element.get("quality") or []:
        if isinstance(item, dict) and "rule" in item and "type" not in item:
            item["type"] = "library"
    options = element.get("logicalTypeOptions")
    if isinstance(options, dict):
        for exclusive, bound in (("exclusiveMaximum", "maximum"), ("exclusiveMinimum", "minimum")):
            value = options.get(exclusive)
            if isinstance(value, bool):
                if value and bound in options:
                    options[exclusive] = options.pop(bound)
                else:
                    del options[exclusive]
    for prop in element.get("properties") or []:
        if isinstance(prop, dict):
            _upgrade_element(prop)
    items = element.get("items")
    if isinstance(items, dict):
        _upgrade_element(items)


def _fill_custom_values(value: Any) -> None:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, child in item.items():
                if key == "customProperties" and isinstance(child, list):
                    for prop in child:
                        if isinstance(prop, dict) and "property" in prop:
                            prop.setdefault("value", None)
                stack.append(child)
        elif isinstance(item, list):
            stack.extend(item)


# --- export ---


def to_v310(document: dict[str, Any]) -> dict[str, Any]:
    """The contract in the ODCS 3.1.0 form, valid under the 3.1.0 schema, or InvalidInput
    naming the field that 3.1.0 cannot express."""
    out = upgrade(document)
    out["apiVersion"] = LATEST
    for member in (out.get("team") or {}).get("members") or []:
        _member_to_v310(member)
    for obj in out.get("schema") or []:
        if isinstance(obj, dict):
            _quality_to_v310(obj)
    errors = schema_errors(_validator(LATEST), out)
    if errors:
        raise_schema_error(
            YamlDoc("<export v3.1.0>", out, None),
            errors,
            f"{STANDARD} {LATEST}",
            f"export the contract in its own version ({document.get('apiVersion')}) instead",
        )
    return out


_MEMBER_KEYS = {
    "id",
    "username",
    "name",
    "description",
    "role",
    "dateIn",
    "dateOut",
    "replacedByUsername",
    "tags",
    "customProperties",
    "authoritativeDefinitions",
}


def _member_to_v310(member: Any) -> None:
    """A 3.0 team member's own keys (e.g. `comment`) become its customProperties."""
    if not isinstance(member, dict):
        return
    extra = [k for k in member if k not in _MEMBER_KEYS]
    if extra:
        custom = list(member.get("customProperties") or [])
        custom += [{"property": k, "value": member.pop(k)} for k in extra]
        member["customProperties"] = custom


def _quality_to_v310(element: dict[str, Any]) -> None:
    quality = element.get("quality")
    if isinstance(quality, list):
        element["quality"] = [
            _rule_to_v310(q) if isinstance(q, dict) and "rule" in q and "metric" not in q else q
            for q in quality
        ]
    for prop in element.get("properties") or []:
        if isinstance(prop, dict):
            _quality_to_v310(prop)
    items = element.get("items")
    if isinstance(items, dict):
        _quality_to_v310(items)


def _rule_to_v310(item: dict[str, Any]) -> dict[str, Any]:
    metric = RULE_METRICS.get(str(item["rule"]))
    if metric is not None and item.get("type", "library") == "library":
        out = {**item, "type": "library", "metric": metric}
        if "validValues" in out:  # 3.0 wrote the list beside the rule; 3.1.0 in arguments
            out["arguments"] = {**out.get("arguments", {}), "validValues": out.pop("validValues")}
        if metric in ("nullValues", "invalidValues") and not any(k in out for k in OPERATORS):
            out["mustBe"] = 0  # the 3.0 check: none at all
        if any(k in out for k in OPERATORS):  # 3.1.0 needs one; else: carried as custom
            return out
    kept = {k: item[k] for k in _QUALITY_COMMON if k in item}
    rule = {k: v for k, v in item.items() if k not in _QUALITY_COMMON and k != "type"}
    return {**kept, "type": "custom", "engine": CUSTOM_ENGINE_V30, "implementation": rule}


def export_document(document: dict[str, Any], version: str | None = None) -> dict[str, Any]:
    """The mapping to export: as written (`version` None or the document's own), or 3.1.0."""
    contract = read_document(document, "<export>")
    if version in (None, contract.api_version):
        return contract.document
    if version == LATEST:
        return to_v310(contract.document)
    raise InvalidInput(
        f"cannot export an ODCS {contract.api_version} contract as {version}",
        {
            "field": "version",
            "fix": f"export it as {contract.api_version} (as written) or {LATEST}",
        },
    )


def export(document: dict[str, Any], version: str | None = None) -> str:
    """ODCS YAML of a contract (see `export_document`)."""
    return dump_yaml(export_document(document, version))
