"""Spec files of a data product folder: load, validate, export.

A product folder holds
  dataproduct.yaml   the ODPS descriptor (v0.9.0 or v1.0.0; `odps.py`)
  *.odcs.yaml        the ODCS contracts of the output ports (v3.0.0 to v3.1.0; `odcs.py`);
                     a port names its contract by `contractId` == contract `id`, and its
                     schema object by name (see `_port_schema_object`)
  build.yaml         the meshops build recipe (inputs and transform, see builds.py)

YAML is read with scalars as written (no implicit dates or times; `standards/documents.py`).
Errors name the file, the line (from the YAML node marks) and the field, and say how to fix it.
Documents are kept as written, so exporting them loses nothing; the contract checks read the
internal model (`PortContract.model`, the ODCS 3.1.0 shape).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic import ValidationError as PydanticValidationError

from meshops.kernel.bounds import check_nesting
from meshops.kernel.errors import InvalidInput
from meshops.mesh import odcs, odps
from meshops.mesh.models import ColumnSpec, SemVer, check_name
from meshops.mesh.standards.documents import (
    YamlDoc,
    dump_yaml,
    load_yaml,
    parse_yaml,
)

__all__ = [
    "YamlDoc",
    "dump_yaml",
    "load_yaml",
    "parse_yaml",
]

STANDARDS = Path(__file__).resolve().parent / "standards"
DESCRIPTOR_FILE = "dataproduct.yaml"
BUILD_FILE = "build.yaml"
CONTRACT_GLOB = "*.odcs.yaml"
# Output port names: what the standards' examples use (`processed-data`, `rawtransactions`),
# within what meshops uses a port name for: URNs (meshops:port:<product>:<port>), export file
# names (<port>.odcs.yaml), quoted DuckDB view names of contract rules, HTTP path segments.
PORT_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")


# --- validation ---


def validate_descriptor(doc: YamlDoc) -> odps.Descriptor:
    """Check an ODPS descriptor against its version's official JSON Schema."""
    return odps.read(doc)


def validate_contract(doc: YamlDoc) -> odcs.Contract:
    """Check an ODCS contract against its version's official JSON Schema and upgrade it."""
    return odcs.read(doc)


# --- the product folder ---


_OPTION_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


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

    @field_validator("options")
    @classmethod
    def _option_names(cls, options: dict[str, Any]) -> dict[str, Any]:
        # the names are written into the reader's SQL (values go in as literals)
        bad = [k for k in options if not _OPTION_NAME.fullmatch(k)]
        if bad:
            raise ValueError(f"reader option names must be identifiers, not {bad}")
        return options


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
    # Where the transform runs (mesh/ray_builds.py, docs/ray.md): "local" (this process) or
    # "ray" (Ray Data, per block, on the local Ray or the cluster at `ray_address`).
    engine: Literal["local", "ray"] = "local"
    ray_address: str | None = Field(default=None, max_length=500)
    block_rows: int | None = Field(default=None, ge=1, le=10_000_000)  # rows per block
    blocks: int | None = Field(default=None, ge=1, le=10_000)  # or: this many blocks
    block_retries: int = Field(default=2, ge=0, le=10)  # attempts after a block's failure
    block_input: str | None = None  # the input split into blocks (default: the first one)


@dataclass
class PortContract:
    port: str
    contract_id: str
    document: dict[str, Any]  # the ODCS mapping as written (what is published and exported)
    file: str
    columns: list[ColumnSpec]
    schema_object: dict[str, Any]  # the port's schema object, from `model`
    model: dict[str, Any] = field(default_factory=dict)  # internal model (ODCS 3.1.0 shape)
    api_version: str = odcs.LATEST  # the contract's apiVersion


@dataclass(frozen=True)
class Identity:
    """What meshops needs of a product beyond ODPS, and where each came from."""

    domain: str
    name: str
    version: str


@dataclass
class ProductSpec:
    folder: Path | None
    descriptor: dict[str, Any]
    ports: list[PortContract]
    build: BuildSpec | None = None
    descriptor_file: str = DESCRIPTOR_FILE
    warnings: list[str] = field(default_factory=list)
    identity: Identity | None = None

    @property
    def domain(self) -> str:
        return self.identity.domain if self.identity else str(self.descriptor["domain"])

    @property
    def name(self) -> str:
        return self.identity.name if self.identity else str(self.descriptor["name"])

    @property
    def key(self) -> str:
        return f"{self.domain}.{self.name}"

    @property
    def version(self) -> str:
        return self.identity.version if self.identity else str(self.descriptor["version"])

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


def _binding(descriptor: dict[str, Any], index: int) -> str | None:
    """The schema object an output port names explicitly: the port's customProperty
    `meshops.schemaObject` (ODPS 1.0.0), or the descriptor's `meshops.schemaObjects`
    mapping {port: object} (ODPS 0.9.0 ports have no customProperties)."""
    port = descriptor["outputPorts"][index]
    bound = odps.custom_property(port, odps.SCHEMA_OBJECT_PROPERTY)
    if bound is None:
        mapping = odps.custom_property(descriptor, odps.SCHEMA_OBJECTS_PROPERTY)
        if isinstance(mapping, dict):
            bound = mapping.get(port.get("name"))
    return None if bound is None else str(bound)


def _port_schema_object(
    doc: YamlDoc, model: dict[str, Any], port: str, bound: str | None
) -> tuple[int, dict[str, Any]]:
    """The port's schema object: the one the descriptor binds it to, else the one named
    like the port, else the only one."""
    objects = [o for o in model.get("schema") or [] if isinstance(o, dict)]
    names = [str(o.get("name")) for o in objects]
    if bound is not None:
        if bound not in names:
            raise doc.error(
                f"the output port {port!r} is bound to schema object {bound!r}, which the "
                f"contract does not declare (it declares {names})",
                ["schema"],
                f"set the port's `{odps.SCHEMA_OBJECT_PROPERTY}` to one of {names}",
            )
        return names.index(bound), objects[names.index(bound)]
    if port in names:
        return names.index(port), objects[names.index(port)]
    if len(objects) == 1:
        return 0, objects[0]
    raise doc.error(
        f"the contract has {len(objects)} schema objects {names} and none is named {port!r}",
        ["schema"],
        f"bind the port to one in dataproduct.yaml: under the output port add "
        f"`customProperties: [{{property: {odps.SCHEMA_OBJECT_PROPERTY}, value: <object>}}]`",
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


def load_contract_for_port(
    doc: YamlDoc, port: str, contract_id: str, bound: str | None = None
) -> PortContract:
    contract = validate_contract(doc)
    index, obj = _port_schema_object(doc, contract.model, port, bound)
    columns = columns_of(obj)
    if not columns:
        raise doc.error(
            "the schema object declares no properties",
            ["schema", index],
            "list the port's columns under `properties:`",
        )
    _check_columns(doc, index, columns)
    return PortContract(
        port, contract_id, doc.data, doc.path, columns, dict(obj), contract.model,
        contract.api_version,
    )  # fmt: skip


def _layout(folder: Path | None) -> tuple[str | None, str | None]:
    """(domain, product name) from a project repository's layout
    `domains/<domain>/products/<name>/dataproduct.yaml`; (None, folder name) elsewhere."""
    if folder is None:
        return None, None
    folder = folder.resolve()
    parent = folder.parent
    if parent.name == "products" and parent.parent.parent.name == "domains":
        return parent.parent.name, folder.name
    return None, folder.name


def resolve_identity(
    doc: YamlDoc, folder: Path | None = None, contracts: list[YamlDoc] | None = None
) -> Identity:
    """Domain, name and version of the product, and its output ports checked.

    ODPS makes `domain` and `version` optional and `name` free text; meshops needs all
    three as identifiers. Taken from the descriptor; where it has none, `domain` from the
    repository layout (domains/<domain>/products/<name>), `version` from the port contracts
    (when they all have the same `version`), `name` from the folder when the descriptor's
    name is a display name ("Customer Data Product"); else an error naming the field.
    """
    data = doc.data
    layout_domain, layout_name = _layout(folder)
    domain = data.get("domain") or layout_domain
    if not domain:
        raise doc.error(
            "domain is missing (ODPS makes it optional; meshops files every product in a domain)",
            ["domain"],
            "add `domain: <domain>` to the descriptor, or keep the product folder at "
            "domains/<domain>/products/<name>/ in a meshops project",
        )
    try:
        check_name(str(domain), "domain", "domain")
    except InvalidInput as exc:
        raise doc.error(exc.message, ["domain"], exc.detail["fix"]) from exc
    name = str(data.get("name") or "")
    given = odps.custom_property(data, odps.NAME_PROPERTY)
    if given is not None:
        if not _is_name(str(given)):
            raise doc.error(
                f"the customProperty {odps.NAME_PROPERTY} {given!r} is not an identifier",
                ["customProperties"],
                "use lower-case letters, digits and _ (starting with a letter)",
            )
        name = str(given)
    elif not _is_name(name):
        if layout_name and _is_name(layout_name):
            name = layout_name
        else:
            shown = repr(name) if name else "missing"
            raise doc.error(
                f"name is {shown}: meshops needs an identifier (lower-case letters, digits "
                "and _) and the product folder's name is not one either",
                ["name"],
                "set `name:` to an identifier such as `customer_data`, or keep the display "
                f"name and add `customProperties: [{{property: {odps.NAME_PROPERTY}, value: "
                "customer_data}]`, or name the product folder so",
            )
    version = data.get("version")
    if not version:
        versions = {str(c.data.get("version")) for c in contracts or [] if c.data.get("version")}
        if len(versions) != 1:
            found = f" (the port contracts have {sorted(versions)})" if versions else ""
            raise doc.error(
                f"version is missing{found} (ODPS makes it optional; meshops versions every "
                "release of a product)",
                ["version"],
                "add `version: 1.0.0` (MAJOR.MINOR.PATCH) to the descriptor",
            )
        version = versions.pop()
    try:
        SemVer.parse(str(version))
    except InvalidInput as exc:
        raise doc.error(exc.message, ["version"], exc.detail["fix"]) from exc
    _check_output_ports(doc)
    return Identity(str(domain), name, str(version))


def published_descriptor(data: dict[str, Any], identity: Identity) -> dict[str, Any]:
    """The descriptor as written, with what meshops derived for it written in: `domain` and
    `version` when absent, and the identifier in the customProperty `meshops.name` when the
    descriptor's `name` is a display name. This is what is published (and so exported) and
    what the SDK sends a server, which has no folder to derive them from; a descriptor that
    has all three is unchanged."""
    out = dict(data)
    if not out.get("domain"):
        out["domain"] = identity.domain
    if not out.get("version"):
        out["version"] = identity.version
    if out.get("name") != identity.name and odps.custom_property(out, odps.NAME_PROPERTY) is None:
        custom = list(out.get("customProperties") or [])
        out["customProperties"] = [
            *custom,
            {"property": odps.NAME_PROPERTY, "value": identity.name},
        ]
    return out


def _is_name(value: str) -> bool:
    try:
        check_name(value, "name", "name")
    except InvalidInput:
        return False
    return True


def _check_output_ports(doc: YamlDoc) -> None:
    ports = doc.data.get("outputPorts") or []
    if not ports:
        raise doc.error(
            "the product has no output ports",
            ["outputPorts"],
            "add `outputPorts: [{name: <port>, version: <semver>, contractId: <contract id>}]`",
        )
    seen: dict[str, int] = {}
    for i, port in enumerate(ports):
        name = str(port.get("name") or "")
        if not PORT_NAME.match(name):
            raise doc.error(
                f"output port name {name!r} is not one meshops can use",
                ["outputPorts", i, "name"],
                "use letters, digits, _ and - (starting with a letter, at most 64), e.g. "
                "`orders` or `processed-data`",
            )
        if name.lower() in seen:
            first = seen[name.lower()]
            raise doc.error(
                f"output port {name!r} is declared twice (outputPorts[{first}] and "
                f"outputPorts[{i}]); meshops publishes one snapshot per port and product "
                "version, and names the port in URNs, grants and exported files (letter case "
                "ignored)",
                ["outputPorts", i, "name"],
                "give each output port its own name, or publish the other port version as "
                "the next version of the product",
            )
        seen[name.lower()] = i
        if not port.get("contractId"):
            raise doc.error(
                "the output port names no contract",
                ["outputPorts", i, "contractId"],
                "set contractId to the `id` of the port's ODCS contract file",
            )


def check_descriptor_for_publish(doc: YamlDoc, folder: Path | None = None) -> Identity:
    """What meshops needs beyond ODPS (see `resolve_identity`), without the contracts."""
    return resolve_identity(doc, folder, None)


def load_product(folder: str | Path) -> ProductSpec:
    """Load and validate a product folder (descriptor, contracts, build recipe)."""
    root = Path(folder)
    descriptor = load_yaml(root / DESCRIPTOR_FILE)
    validate_descriptor(descriptor)
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
    port_docs = [
        contracts[str(p.get("contractId"))]
        for p in descriptor.data.get("outputPorts") or []
        if str(p.get("contractId")) in contracts
    ]
    identity = resolve_identity(descriptor, root, port_docs)
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
            load_contract_for_port(
                doc_for_port,
                str(port["name"]),
                str(port["contractId"]),
                _binding(descriptor.data, i),
            )
        )
    build = load_build(root / BUILD_FILE) if (root / BUILD_FILE).exists() else None
    published = published_descriptor(descriptor.data, identity)
    if published != descriptor.data:
        validate_descriptor(YamlDoc(descriptor.path, published, descriptor.node))
    spec = ProductSpec(
        root, published, ports, build, str(root / DESCRIPTOR_FILE), identity=identity
    )
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
    contract_docs = {
        name: parse_yaml(dump_yaml(contract), f"<contract {name}>")
        for name, contract in contracts.items()
    }
    port_names = [str(p.get("name")) for p in desc_doc.data.get("outputPorts") or []]
    identity = resolve_identity(
        desc_doc, None, [contract_docs[n] for n in port_names if n in contract_docs]
    )
    ports = []
    for i, port in enumerate(desc_doc.data["outputPorts"]):
        name = str(port["name"])
        if name not in contract_docs:
            raise InvalidInput(
                f"no contract given for output port {name!r}",
                {"field": "contracts", "fix": f"pass contracts={{{name!r}: <ODCS mapping>}}"},
            )
        ports.append(
            load_contract_for_port(
                contract_docs[name], name, str(port["contractId"]), _binding(desc_doc.data, i)
            )
        )
    published = published_descriptor(desc_doc.data, identity)
    if published != desc_doc.data:
        validate_descriptor(YamlDoc(desc_doc.path, published, desc_doc.node))
    return ProductSpec(None, published, ports, None, "<descriptor>", identity=identity)


def contract_model(document: dict[str, Any]) -> dict[str, Any]:
    """The internal model (ODCS 3.1.0 shape, see odcs.py) of a contract as written."""
    return odcs.upgrade(document)


def export_contract(document: dict[str, Any], version: str | None = None) -> str:
    """ODCS YAML: the contract as written (valid under its version's schema), or its 3.1.0
    form when `version` is "v3.1.0"."""
    return odcs.export(document, version)


def export_descriptor(document: dict[str, Any], lifecycle: str | None = None) -> str:
    """ODPS YAML: the descriptor as written, `status` following the product's lifecycle
    (`deprecated`, `retired`)."""
    return odps.export(document, lifecycle)
