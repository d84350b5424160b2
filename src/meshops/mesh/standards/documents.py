"""YAML documents of the standards: scalars read as written, errors with line numbers.

PyYAML's safe loader follows YAML 1.1: an unquoted `2022-10-03` becomes a `date`, `12:30:00`
the integer 45000 (base 60), `yes`/`on` the boolean True, `0755` the octal 493. The ODCS and
ODPS JSON Schemas then see values that were never written (a date where a string is required),
and an export writes something else back. `Loader` resolves plain scalars by the YAML 1.2 core
schema instead (null, true/false, decimal / 0o / 0x integers, floats; everything else is a
string; `<<` merge keys still merge), and `Dumper` quotes every string that either YAML
1.1 or 1.2 would read as something else, so a document read, exported and read again is
the same document, and other YAML readers (1.1 or 1.2) read the export the same way.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from meshops.kernel.bounds import check_yaml_node, yaml_too_large
from meshops.kernel.errors import InvalidInput

HERE = Path(__file__).resolve().parent

_NULL = re.compile(r"^(?:~|null|Null|NULL|)$")
_BOOL = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
_INT = re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$")
_FLOAT = re.compile(
    r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
)
_CORE = (
    ("tag:yaml.org,2002:null", _NULL, ["~", "n", "N", ""]),
    ("tag:yaml.org,2002:bool", _BOOL, list("tTfF")),
    ("tag:yaml.org,2002:int", _INT, list("-+0123456789")),
    ("tag:yaml.org,2002:float", _FLOAT, list("-+.0123456789")),
    ("tag:yaml.org,2002:merge", re.compile(r"^<<$"), ["<"]),  # `<<: *anchor`, as before
)


class Loader(yaml.SafeLoader):
    """The safe loader with the YAML 1.2 core schema's implicit types (no dates, no times,
    no base-60 numbers, no yes/no booleans)."""

    yaml_implicit_resolvers: dict[Any, list[tuple[str, re.Pattern[str]]]] = {}


for _tag, _regexp, _first in _CORE:
    Loader.add_implicit_resolver(_tag, _regexp, _first)


def _construct_int(loader: yaml.SafeLoader, node: yaml.Node) -> int:
    text = str(loader.construct_scalar(node))  # type: ignore[arg-type]
    if text.startswith("0o"):
        return int(text[2:], 8)
    if text.startswith("0x"):
        return int(text[2:], 16)
    return int(text, 10)


def _construct_float(loader: yaml.SafeLoader, node: yaml.Node) -> float:
    text = str(loader.construct_scalar(node)).lower()  # type: ignore[arg-type]
    if text.endswith(".inf"):
        return float("-inf") if text.startswith("-") else float("inf")
    if text == ".nan":
        return float("nan")
    return float(text)


Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)
Loader.add_constructor("tag:yaml.org,2002:float", _construct_float)


class Dumper(yaml.SafeDumper):
    """The safe dumper, quoting also the strings the YAML 1.2 core schema reads as numbers
    (its own YAML 1.1 resolvers already quote dates, times, yes/no ...)."""


for _tag, _regexp, _first in _CORE:
    Dumper.add_implicit_resolver(_tag, _regexp, _first)


_BREAKS = ("\x85", "\u2028", "\u2029", "\r")


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    # YAML folds the Unicode line breaks (NEL, LS, PS) and CR of a plain, single-quoted or
    # block scalar; only the double-quoted style escapes them (\N, \L, \P, \r).
    style = '"' if any(ch in value for ch in _BREAKS) else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


Dumper.add_representer(str, _represent_str)


# --- documents with line numbers ---


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
        dotted = dotted_path(location)
        line = self.line_of(location)
        where = f"{self.path}:{line}" if line else self.path
        return InvalidInput(
            f"{where}: {dotted or '(document)'}: {message}",
            {"file": self.path, "line": line, "field": dotted, "fix": fix},
        )


def dotted_path(location: list[str | int] | tuple[str | int, ...]) -> str:
    out = ""
    for part in location:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def parse_yaml(text: str, path: str) -> YamlDoc:
    """Parse one YAML mapping, scalars as written (see the module doc)."""
    try:
        loader = Loader(text)
        try:
            node = loader.get_single_node()
            check_yaml_node(node, path)  # depth and alias expansion, before data is built
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
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
    except yaml.YAMLError as exc:
        raise InvalidInput(
            f"{path}: malformed YAML: {exc}",
            {"file": path, "fix": "check the file is one YAML document"},
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
    """YAML that `parse_yaml` (and any YAML 1.1 or 1.2 reader) reads back as `data`."""
    return yaml.dump(data, Dumper=Dumper, sort_keys=False, allow_unicode=True)


# --- JSON Schema validation ---


@lru_cache(maxsize=16)
def schema_of(file_name: str) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((HERE / file_name).read_text(encoding="utf-8"))
    return schema


def validator_for(schema: dict[str, Any]) -> jsonschema.protocols.Validator:
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema, format_checker=None)


def schema_errors(
    validator: jsonschema.protocols.Validator, data: dict[str, Any]
) -> list[jsonschema.ValidationError]:
    return sorted(validator.iter_errors(data), key=lambda e: [str(p) for p in e.absolute_path])


def validate_versioned(
    doc: YamlDoc,
    version: str,
    validator: Callable[[str], jsonschema.protocols.Validator],
    latest: str,
    standard: str,
) -> tuple[str, str]:
    """(declared version, schema version the document is valid under), or InvalidInput.

    A document declaring an older version but written in the latest forms is accepted when
    the latest schema accepts it: the latest schemas list the older versions in their
    `apiVersion` enum, so the standard itself calls such a document valid."""
    errors = schema_errors(validator(version), doc.data)
    if not errors:
        return version, version
    if version != latest and not schema_errors(validator(latest), doc.data):
        return version, latest
    hint = "" if version == latest else f"it is not valid under the {latest} schema either"
    raise_schema_error(doc, errors, f"{standard} {version}", hint)
    raise AssertionError("unreachable")  # pragma: no cover


def raise_schema_error(
    doc: YamlDoc, errors: list[jsonschema.ValidationError], standard: str, hint: str = ""
) -> None:
    """InvalidInput for the first error (file, line, field, fix), all of them in the detail."""
    if not errors:
        return
    first = errors[0]
    location = list(first.absolute_path)
    fix = f"see the {standard} specification for the field; "
    if first.validator == "required":
        fix += "add the missing field"
    elif first.validator == "enum":
        fix += f"use one of {first.validator_value}"
    elif first.validator in ("additionalProperties", "unevaluatedProperties"):
        fix += "remove or rename the unknown field"
    else:
        fix += f"expected {first.validator}: {json.dumps(first.validator_value)[:200]}"
    if hint:
        fix += f"; {hint}"
    err = doc.error(f"{first.message} (under the {standard} JSON Schema)", location, fix)
    err.detail["errors"] = [
        {"field": dotted_path(list(e.absolute_path)), "problem": e.message} for e in errors[:20]
    ]
    raise err
