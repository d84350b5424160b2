"""Spec files of a data product folder: load, validate, export.

A product folder holds
  dataproduct.yaml   the ODPS 1.0 descriptor (validated with the official JSON Schema)
  *.odcs.yaml        one ODCS 3.x contract per output port (JSON Schema + the ODCS pydantic
                     model); a port names its contract by `contractId` == contract `id`
  build.yaml         the meshops build recipe (inputs and transform, see builds.py)

Errors name the file, the line (from the YAML node marks) and the field, and say how to fix it.
Documents are kept as the parsed mappings, so exporting them loses nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from open_data_contract_standard.model import OpenDataContractStandard
from pydantic import BaseModel, ConfigDict
from pydantic import ValidationError as PydanticValidationError

from meshops.kernel.bounds import check_nesting, check_yaml_node, yaml_too_large
from meshops.kernel.errors import InvalidInput
from meshops.mesh.models import ColumnSpec, SemVer, check_name

STANDARDS = Path(__file__).resolve().parent / "standards"
ODPS_SCHEMA_FILE = STANDARDS / "odps-json-schema-v1.0.0.json"
ODCS_SCHEMA_FILE = STANDARDS / "odcs-json-schema-v3.1.0.json"
DESCRIPTOR_FILE = "dataproduct.yaml"
BUILD_FILE = "build.yaml"
CONTRACT_GLOB = "*.odcs.yaml"


@lru_cache(maxsize=2)
def _validator(path: Path) -> jsonschema.protocols.Validator:
    schema = json.loads(path.read_text())
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema)


# --- YAML with line numbers ---


@dataclass
class YamlDoc:
    """A parsed YAML mapping and its node tree, to find the line of any field."""

    path: str
    data: dict[str, Any]
    node: yaml.Node | None

    def line_of(self, location: list[str | int] | tuple[str | int, ...]) -> int | None:
        node = self.node
        line = node.start_mark.line + 1 if node is not None else None
        for key in location:
            if isinstance(node, yaml.MappingNode):
                match = next(
                    ((k, v) for k, v in node.value if getattr(k, "value", None) == key), None
                )
                if match is None:
                    break
                line = match[0].start_mark.line + 1
                node = match[1]
            elif isinstance(node, yaml.SequenceNode) and isinstance(key, int):
                if key >= len(node.value):
                    break
                node = node.value[key]
                line = node.start_mark.line + 1
            else:
                break
        return line

    def error(self, message: str, location: list[str | int], fix: str) -> InvalidInput:
        dotted = _dotted(location)
        line = self.line_of(location)
        where = f"{self.path}:{line}" if line else self.path
        return InvalidInput(
            f"{where}: {dotted or '(document)'}: {message}",
            {"file": self.path, "line": line, "field": dotted, "fix": fix},
        )


def _dotted(location: list[str | int] | tuple[str | int, ...]) -> str:
    out = ""
    for part in location:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def parse_yaml(text: str, path: str) -> YamlDoc:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        check_yaml_node(node, path)  # depth and alias expansion, before data is built
        data = yaml.safe_load(text)
    except RecursionError as exc:  # PyYAML composes recursively: ~300 levels is its end
        raise yaml_too_large(path, "the document nests too deeply") from exc
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise InvalidInput(
            f"{path}:{line}: malformed YAML: {exc.problem or exc}",
            {
                "file": path,
                "line": line,
                "fix": "check indentation, colons and quoting around this line",
            },
        ) from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise InvalidInput(
            f"{path}: expected a mapping at the top level, found {type(data).__name__}",
            {"file": path, "line": 1, "fix": "start the file with `key: value` lines"},
        )
    return YamlDoc(path, data, node)


def load_yaml(path: Path) -> YamlDoc:
    if not path.is_file():
        raise InvalidInput(
            f"{path} does not exist", {"file": str(path), "fix": "create it or check the path"}
        )
    return parse_yaml(path.read_text(encoding="utf-8"), str(path))


def dump_yaml(data: dict[str, Any]) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


# --- validation ---


def _schema_errors(doc: YamlDoc, schema_file: Path, standard: str) -> None:
    validator = _validator(schema_file)
    errors = sorted(validator.iter_errors(doc.data), key=lambda e: list(e.absolute_path))
    if errors:
        first = errors[0]
        location = list(first.absolute_path)
        fix = f"see the {standard} specification for the field; "
        if first.validator == "required":
            fix += "add the missing field"
        elif first.validator == "enum":
            fix += f"use one of {first.validator_value}"
        elif first.validator == "additionalProperties":
            fix += "remove or rename the unknown field"
        else:
            fix += f"expected {first.validator}: {first.validator_value}"
        err = doc.error(first.message, location, fix)
        err.detail["errors"] = [
            {"field": _dotted(list(e.absolute_path)), "problem": e.message} for e in errors[:20]
        ]
        raise err


def validate_descriptor(doc: YamlDoc) -> None:
    """Check an ODPS descriptor against the official ODPS 1.0 JSON Schema."""
    _schema_errors(doc, ODPS_SCHEMA_FILE, "ODPS 1.0")


def validate_contract(doc: YamlDoc) -> OpenDataContractStandard:
    """Check an ODCS contract against the ODCS JSON Schema and the ODCS pydantic model."""
    _schema_errors(doc, ODCS_SCHEMA_FILE, "ODCS 3.x")
    try:
        return OpenDataContractStandard.model_validate(doc.data)
    except PydanticValidationError as exc:
        first = exc.errors()[0]
        loc = [
            p if isinstance(p, int) else ("schema" if p == "schema_" else p) for p in first["loc"]
        ]
        raise doc.error(first["msg"], loc, "see the ODCS 3.x specification") from exc


# --- the product folder ---


class InputSpec(BaseModel):
    """One input of a build: exactly one of path / product / url+query."""

    model_config = ConfigDict(extra="forbid")

    path: str | None = None  # file, glob or fsspec URL (relative paths: to the product folder)
    format: str | None = None  # csv | parquet | json (default: from the file extension)
    options: dict[str, Any] = {}  # passed to the DuckDB reader (e.g. delim, header)
    product: str | None = None  # "<domain>.<name>@<range>"
    port: str | None = None
    url: str | None = None  # SQLAlchemy URL
    query: str | None = None


class TransformSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sql: str | None = None  # inline DuckDB SQL over the inputs as named relations
    sql_file: str | None = None
    python: str | None = None  # "file.py:function" or "package.module:function"


class BuildSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    inputs: dict[str, InputSpec] = {}
    transform: TransformSpec | None = None  # for the first output port
    transforms: dict[str, TransformSpec] = {}  # per output port, when there are several


@dataclass
class PortContract:
    port: str
    contract_id: str
    document: dict[str, Any]  # the ODCS mapping as written
    file: str
    columns: list[ColumnSpec]
    schema_object: dict[str, Any]


@dataclass
class ProductSpec:
    folder: Path | None
    descriptor: dict[str, Any]
    ports: list[PortContract]
    build: BuildSpec | None = None
    descriptor_file: str = DESCRIPTOR_FILE
    warnings: list[str] = field(default_factory=list)

    @property
    def domain(self) -> str:
        return str(self.descriptor["domain"])

    @property
    def name(self) -> str:
        return str(self.descriptor["name"])

    @property
    def key(self) -> str:
        return f"{self.domain}.{self.name}"

    @property
    def version(self) -> str:
        return str(self.descriptor["version"])

    @property
    def description(self) -> str:
        return describe(self.descriptor.get("description"))

    @property
    def tags(self) -> list[str]:
        return [str(t) for t in self.descriptor.get("tags") or []]

    @property
    def owners(self) -> list[str]:
        return team_owners(self.descriptor.get("team"))

    def port(self, name: str) -> PortContract:
        for port in self.ports:
            if port.port == name:
                return port
        raise InvalidInput(
            f"{self.key} has no output port {name!r}",
            {"field": "port", "fix": f"use one of {[p.port for p in self.ports]}"},
        )


def describe(value: Any) -> str:
    """ODPS/ODCS descriptions are either text or {purpose, usage, limitations}."""
    if isinstance(value, dict):
        return " ".join(str(value[k]) for k in ("purpose", "usage", "limitations") if value.get(k))
    return str(value or "")


def team_owners(team: Any) -> list[str]:
    members = team.get("members", []) if isinstance(team, dict) else (team or [])
    owners = [
        str(m.get("username") or m.get("name"))
        for m in members
        if isinstance(m, dict) and str(m.get("role", "")).lower() in ("owner", "product owner")
    ]
    return [o for o in owners if o and o != "None"]


def columns_of(schema_object: dict[str, Any]) -> list[ColumnSpec]:
    columns = []
    for prop in schema_object.get("properties") or []:
        columns.append(
            ColumnSpec(
                name=str(prop.get("name")),
                logical_type=str(prop.get("logicalType") or "string"),
                physical_type=prop.get("physicalType"),
                required=bool(prop.get("required")),
                unique=bool(prop.get("unique")),
                primary_key=bool(prop.get("primaryKey")),
                classification=prop.get("classification"),
                description=str(prop.get("description") or ""),
                tags=[str(t) for t in prop.get("tags") or []],
            )
        )
    return columns


def _port_schema_object(doc: YamlDoc, port: str) -> dict[str, Any]:
    objects = doc.data.get("schema") or []
    for obj in objects:
        if obj.get("name") == port:
            return dict(obj)
    if len(objects) == 1:
        return dict(objects[0])
    raise doc.error(
        f"no schema object named {port!r}",
        ["schema"],
        f"name one schema object after the output port: `- name: {port}`",
    )


def _check_columns(doc: YamlDoc, obj_index: int, columns: list[ColumnSpec]) -> None:
    seen: set[str] = set()
    for i, column in enumerate(columns):
        location: list[str | int] = ["schema", obj_index, "properties", i, "name"]
        if column.name in ("", "None"):
            raise doc.error("a property has no name", location, "give every property a name")
        if column.name in seen:
            raise doc.error(
                f"property {column.name!r} is declared twice", location, "remove the duplicate"
            )
        seen.add(column.name)
        from meshops.mesh.contracts import LOGICAL_TYPES

        if column.logical_type not in LOGICAL_TYPES:
            raise doc.error(
                f"unknown logicalType {column.logical_type!r}",
                ["schema", obj_index, "properties", i, "logicalType"],
                f"use one of {sorted(LOGICAL_TYPES)}",
            )


def load_contract_for_port(doc: YamlDoc, port: str, contract_id: str) -> PortContract:
    validate_contract(doc)
    obj = _port_schema_object(doc, port)
    index = next(
        (i for i, o in enumerate(doc.data.get("schema") or []) if o.get("name") == obj.get("name")),
        0,
    )
    columns = columns_of(obj)
    if not columns:
        raise doc.error(
            "the schema object declares no properties",
            ["schema", index],
            "list the port's columns under `properties:`",
        )
    _check_columns(doc, index, columns)
    return PortContract(port, contract_id, doc.data, doc.path, columns, obj)


def check_descriptor_for_publish(doc: YamlDoc) -> None:
    """What meshops needs beyond ODPS: a domain, a name usable in SQL, a semver, ports."""
    data = doc.data
    for key in ("domain", "name", "version"):
        if not data.get(key):
            raise doc.error(f"{key} is missing", [key], f"add `{key}:` to the descriptor")
    for key, what in (("domain", "domain"), ("name", "product name")):
        try:
            check_name(str(data[key]), what, key)
        except InvalidInput as exc:
            raise doc.error(exc.message, [key], exc.detail["fix"]) from exc
    try:
        SemVer.parse(str(data["version"]))
    except InvalidInput as exc:
        raise doc.error(exc.message, ["version"], exc.detail["fix"]) from exc
    ports = data.get("outputPorts") or []
    if not ports:
        raise doc.error(
            "the product has no output ports",
            ["outputPorts"],
            "add `outputPorts: [{name: <port>, version: <semver>, contractId: <contract id>}]`",
        )
    for i, port in enumerate(ports):
        if not port.get("contractId"):
            raise doc.error(
                "the output port names no contract",
                ["outputPorts", i, "contractId"],
                "set contractId to the `id` of the port's ODCS contract file",
            )
        try:
            check_name(str(port["name"]), "port name", "name")
        except InvalidInput as exc:
            raise doc.error(exc.message, ["outputPorts", i, "name"], exc.detail["fix"]) from exc


def load_product(folder: str | Path) -> ProductSpec:
    """Load and validate a product folder (descriptor, contracts, build recipe)."""
    root = Path(folder)
    descriptor = load_yaml(root / DESCRIPTOR_FILE)
    validate_descriptor(descriptor)
    check_descriptor_for_publish(descriptor)
    contracts: dict[str, YamlDoc] = {}
    for path in sorted(root.rglob(CONTRACT_GLOB)):
        doc = load_yaml(path)
        contract_id = str(doc.data.get("id", ""))
        if contract_id in contracts:
            raise doc.error(
                f"contract id {contract_id!r} is also used by {contracts[contract_id].path}",
                ["id"],
                "give every contract its own id",
            )
        contracts[contract_id] = doc
    ports = []
    for i, port in enumerate(descriptor.data["outputPorts"]):
        doc_for_port = contracts.get(str(port["contractId"]))
        if doc_for_port is None:
            raise descriptor.error(
                f"no contract with id {port['contractId']!r} in {root}",
                ["outputPorts", i, "contractId"],
                f"add a {CONTRACT_GLOB} file with `id: {port['contractId']}` to the folder",
            )
        ports.append(
            load_contract_for_port(doc_for_port, str(port["name"]), str(port["contractId"]))
        )
    build = load_build(root / BUILD_FILE) if (root / BUILD_FILE).exists() else None
    spec = ProductSpec(root, descriptor.data, ports, build, str(root / DESCRIPTOR_FILE))
    if build is not None and build.transforms:
        unknown = set(build.transforms) - {p.port for p in ports}
        if unknown:
            raise InvalidInput(
                f"{root / BUILD_FILE}: transforms for unknown ports {sorted(unknown)}",
                {"file": str(root / BUILD_FILE), "field": "transforms", "fix": "match port names"},
            )
    return spec


def load_build(path: Path) -> BuildSpec:
    doc = load_yaml(path)
    try:
        build = BuildSpec.model_validate(doc.data)
    except PydanticValidationError as exc:
        first = exc.errors()[0]
        raise doc.error(
            first["msg"], list(first["loc"]), "see docs/mesh.md, section build.yaml"
        ) from exc
    for name, spec in build.inputs.items():
        kinds = [k for k in ("path", "product", "url") if getattr(spec, k)]
        if len(kinds) != 1:
            raise doc.error(
                "an input needs exactly one of path, product or url",
                ["inputs", name],
                "e.g. `path: data/*.csv`, `product: sales.orders@^1`, or `url:` + `query:`",
            )
        if spec.url and not spec.query:
            raise doc.error(
                "a SQL input needs a query", ["inputs", name], "add `query: SELECT ...`"
            )
    for port, transform in [("transform", build.transform), *build.transforms.items()]:
        if transform is not None:
            chosen = [k for k in ("sql", "sql_file", "python") if getattr(transform, k)]
            if len(chosen) != 1:
                location: list[str | int] = (
                    ["transform"] if port == "transform" else ["transforms", port]
                )
                raise doc.error(
                    "a transform needs exactly one of sql, sql_file or python",
                    location,
                    "e.g. `sql: select * from orders` or `python: transform.py:transform`",
                )
    return build


def spec_from_documents(
    descriptor: dict[str, Any], contracts: dict[str, dict[str, Any]]
) -> ProductSpec:
    """A spec from in-memory documents (programmatic publish); contracts keyed by port."""
    # Bounded before dump_yaml, which recurses per level (a request's 900-level document).
    check_nesting(descriptor, "descriptor")
    for port, contract in contracts.items():
        check_nesting(contract, f"contracts.{port}")
    desc_doc = parse_yaml(dump_yaml(descriptor), "<descriptor>")
    validate_descriptor(desc_doc)
    check_descriptor_for_publish(desc_doc)
    ports = []
    for port in desc_doc.data["outputPorts"]:
        name = str(port["name"])
        if name not in contracts:
            raise InvalidInput(
                f"no contract given for output port {name!r}",
                {"field": "contracts", "fix": f"pass contracts={{{name!r}: <ODCS mapping>}}"},
            )
        doc = parse_yaml(dump_yaml(contracts[name]), f"<contract {name}>")
        ports.append(load_contract_for_port(doc, name, str(port["contractId"])))
    return ProductSpec(None, desc_doc.data, ports, None, "<descriptor>")


def contract_model(document: dict[str, Any]) -> OpenDataContractStandard:
    return OpenDataContractStandard.model_validate(document)


def export_contract(document: dict[str, Any]) -> str:
    """ODCS YAML as the pydantic model writes it (what other ODCS tools read)."""
    return contract_model(document).to_yaml()


def export_descriptor(document: dict[str, Any]) -> str:
    return dump_yaml(document)
