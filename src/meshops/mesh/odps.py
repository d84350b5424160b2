"""Open Data Product Standard descriptors: ODPS v0.9.0 and v1.0.0.

Reading (`read`): `apiVersion` picks the version (an unknown one is refused, naming the
supported ones); the descriptor is validated against its own version's JSON Schema, or, for
a v0.9.0 descriptor written in the 1.0.0 forms (the official `customer-data-product`
example: a `team` object), against the 1.0.0 schema, whose `apiVersion` enum lists v0.9.0.
The internal model has the 1.0.0 shape (a 0.9 `team` list becomes `team: {members: [...]}`).

Exporting (`export`): the descriptor as written, with the product's lifecycle state in
`status` when meshops changed it (deprecated, retired), checked against its schema.

What meshops needs beyond the standard (a domain, a version, an identifier-safe name, unique
port names, the schema object of each port) is resolved in `specs.py`.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import jsonschema

from meshops.mesh.standards.documents import (
    YamlDoc,
    dump_yaml,
    raise_schema_error,
    schema_errors,
    schema_of,
    validate_versioned,
    validator_for,
)

STANDARD = "ODPS"
LATEST = "v1.0.0"
SUPPORTED = ("v0.9.0", "v1.0.0")
SCHEMA_FILE = "odps-json-schema-v1.0.0.json"

# meshops lifecycle -> ODPS `status` (the standard's examples: proposed, draft, active,
# deprecated, retired). `published` keeps what the descriptor says.
LIFECYCLE_STATUS = {"deprecated": "deprecated", "retired": "retired"}

# The customProperty that binds an output port to a schema object of its contract: on the
# port (1.0.0: `outputPorts[].customProperties`), or, for 0.9.0 whose ports have no
# customProperties, on the descriptor as a mapping {port name: object name}.
SCHEMA_OBJECT_PROPERTY = "meshops.schemaObject"
SCHEMA_OBJECTS_PROPERTY = "meshops.schemaObjects"
# The product's identifier when the descriptor's `name` is a display name (see specs.py).
NAME_PROPERTY = "meshops.name"


def _derive_v090(v100: dict[str, Any]) -> dict[str, Any]:
    """The ODPS v0.9.0 JSON Schema: v1.0.0's, less what 1.0.0 changed (from the standard's
    changelog and the two official schema files): `team` was a list of members (no `Team`
    object), ports had no `tags`/`customProperties`/`authoritativeDefinitions`, a member's
    `username` was optional, `authoritativeDefinitions[].type` an enum, and the `apiVersion`
    enum held v0.9.0 only."""
    schema = copy.deepcopy(v100)
    props = schema["properties"]
    props["apiVersion"]["enum"] = ["v0.9.0"]
    props["apiVersion"]["default"] = "v0.9.0"
    props["team"] = {
        "type": "array",
        "description": "Team members associated with the data product.",
        "items": {"$ref": "#/$defs/TeamMember"},
    }
    defs = schema["$defs"]
    del defs["Team"]
    del defs["TeamMember"]["required"]
    for port in ("InputPort", "OutputPort"):
        for key in ("tags", "customProperties", "authoritativeDefinitions"):
            del defs[port]["properties"][key]
    kind = defs["AuthoritativeDefinition"]["properties"]["type"]
    kind["enum"] = kind.pop("examples")
    return schema


@lru_cache(maxsize=4)
def schema(version: str) -> dict[str, Any]:
    if version == "v0.9.0":
        return _derive_v090(schema_of(SCHEMA_FILE))
    return schema_of(SCHEMA_FILE)


@lru_cache(maxsize=4)
def _validator(version: str) -> jsonschema.protocols.Validator:
    return validator_for(schema(version))


def is_valid(version: str, data: dict[str, Any]) -> bool:
    """Whether `data` is valid under the JSON Schema of `version`."""
    return bool(_validator(version).is_valid(data))


@dataclass(frozen=True)
class Descriptor:
    document: dict[str, Any]  # as written
    api_version: str
    schema_version: str
    model: dict[str, Any]  # 1.0.0 shape


def api_version_of(doc: YamlDoc) -> str:
    version = doc.data.get("apiVersion")
    if not isinstance(version, str) or version not in SUPPORTED:
        shown = "missing" if version is None else repr(version)
        raise doc.error(
            f"apiVersion is {shown}: meshops reads ODPS {', '.join(SUPPORTED)}",
            ["apiVersion"],
            f"set `apiVersion:` to one of {', '.join(SUPPORTED)}",
        )
    return version


def validate(doc: YamlDoc) -> tuple[str, str]:
    return validate_versioned(doc, api_version_of(doc), _validator, LATEST, STANDARD)


def upgrade(document: dict[str, Any]) -> dict[str, Any]:
    model = copy.deepcopy(document)
    if isinstance(model.get("team"), list):
        model["team"] = {"members": model["team"]}
    return model


def read(doc: YamlDoc) -> Descriptor:
    api_version, schema_version = validate(doc)
    return Descriptor(doc.data, api_version, schema_version, upgrade(doc.data))


def read_document(document: dict[str, Any], label: str = "<descriptor>") -> Descriptor:
    return read(YamlDoc(label, document, None))


def custom_property(item: dict[str, Any], name: str) -> Any:
    for prop in item.get("customProperties") or []:
        if isinstance(prop, dict) and prop.get("property") == name:
            return prop.get("value")
    return None


def export_document(document: dict[str, Any], lifecycle: str | None = None) -> dict[str, Any]:
    """The descriptor to export: as written, `status` following the product's lifecycle."""
    descriptor = read_document(document, "<export>")
    out = descriptor.document
    status = LIFECYCLE_STATUS.get(lifecycle or "")
    if status is not None and out.get("status") != status:
        out = {**out, "status": status}
        errors = schema_errors(_validator(descriptor.schema_version), out)
        if errors:  # pragma: no cover - status is a free string in both schemas
            raise_schema_error(YamlDoc("<export>", out, None), errors, STANDARD)
    return out


def export(document: dict[str, Any], lifecycle: str | None = None) -> str:
    return dump_yaml(export_document(document, lifecycle))
