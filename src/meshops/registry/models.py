"""Registry types shared by the service, the store, the HTTP API and the remote client.

Pure logic only (names, URIs, signatures as data); no I/O and no heavy imports, so the
SDK and the CLI can import this module cheaply.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import PurePosixPath
from typing import Literal

from pydantic import BaseModel, Field

from meshops.kernel.bounds import Dimension, Size
from meshops.kernel.errors import InvalidInput
from meshops.kernel.urn import model_version_urn

MODEL_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.\-]{0,127}$")
# Aliases never start with a digit, so `models:/m@3` cannot be mistaken for a version.
ALIAS_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_\-]{0,63}$")
MAX_DESCRIPTION = 10_000
MAX_MODEL_CARD = 1_000_000
MAX_TAG_KEY = 250
MAX_TAG_VALUE = 5_000

URI_FORMS = ["models:/<name>/<version>", "models:/<name>@<alias>", "models:/<name>/latest"]


class VersionStatus(StrEnum):
    READY = "READY"
    ARCHIVED = "ARCHIVED"


ColumnType = Literal["boolean", "integer", "float", "string", "datetime", "object"]


class ColumnSpec(BaseModel):
    name: str
    type: ColumnType
    # For tensors: the shape with -1 for the batch dimension, e.g. [-1, 4].
    shape: list[Dimension] | None = None


class Signature(BaseModel):
    """What goes in and what comes out. `kind` says how inputs are passed:
    `columns` (a table: DataFrame, dict of columns, one record, list of records) or
    `tensor` (a numeric array whose last dimension has the given width)."""

    kind: Literal["columns", "tensor"]
    inputs: list[ColumnSpec]
    outputs: list[ColumnSpec] = Field(default_factory=list)

    @property
    def input_names(self) -> list[str]:
        return [c.name for c in self.inputs]


class ModelFile(BaseModel):
    path: str  # relative path inside the model's directory
    digest: str  # sha256 of the bytes in the blob store
    size: Size


class DatasetRef(BaseModel):
    urn: str
    digest: str = ""


class RegisteredModel(BaseModel):
    name: str
    description: str = ""
    tags: dict[str, str] = Field(default_factory=dict)
    owner: str | None = None
    domain: str | None = None
    created_by: str
    created_at: datetime
    updated_at: datetime
    latest_version: int | None = None
    aliases: dict[str, int] = Field(default_factory=dict)


class ModelVersion(BaseModel):
    name: str
    version: int
    flavor: str
    signature: Signature | None = None
    files: list[ModelFile]
    metrics: dict[str, float] = Field(default_factory=dict)
    run_id: str | None = None
    input_datasets: list[DatasetRef] = Field(default_factory=list)
    status: VersionStatus = VersionStatus.READY
    created_by: str
    created_at: datetime
    tags: dict[str, str] = Field(default_factory=dict)
    description: str = ""
    aliases: list[str] = Field(default_factory=list)

    @property
    def urn(self) -> str:
        return model_version_urn(self.name, self.version)

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


class AliasMove(BaseModel):
    """One move of an alias; `from_version` is None for a new alias, `to_version` None
    when the alias was removed."""

    id: int
    name: str
    alias: str
    from_version: int | None
    to_version: int | None
    actor: str
    at: datetime
    reason: str = ""


@dataclass(frozen=True)
class ModelRef:
    """A parsed `models:/` URI: exactly one of `version`, `alias`, `latest` is set."""

    name: str
    version: int | None = None
    alias: str | None = None
    latest: bool = False


def check_model_name(name: str) -> str:
    if not isinstance(name, str) or not MODEL_NAME.match(name):
        raise InvalidInput(
            f"invalid model name {name!r}",
            {
                "field": "name",
                "fix": "start with a letter; use letters, digits, '.', '_' and '-' "
                "(at most 128 characters)",
            },
        )
    return name


def check_alias(alias: str) -> str:
    if not isinstance(alias, str) or not ALIAS_NAME.match(alias):
        raise InvalidInput(
            f"invalid alias {alias!r}",
            {
                "field": "alias",
                "fix": "start with a letter; use letters, digits, '_' and '-' "
                "(at most 64 characters), e.g. champion",
            },
        )
    if alias == "latest":
        raise InvalidInput(
            "'latest' is reserved: models:/<name>/latest always means the newest version",
            {"field": "alias", "fix": "pick another alias name"},
        )
    return alias


def check_version(version: object) -> int:
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise InvalidInput(
            f"invalid model version {version!r}",
            {"field": "version", "fix": "versions are whole numbers starting at 1"},
        )
    return version


def check_tags(tags: dict[str, str] | None) -> dict[str, str]:
    clean: dict[str, str] = {}
    for key, value in (tags or {}).items():
        if not isinstance(key, str) or not key or len(key) > MAX_TAG_KEY:
            raise InvalidInput(
                f"invalid tag key {key!r}",
                {"field": "tags", "fix": f"use a non-empty key of at most {MAX_TAG_KEY} chars"},
            )
        text = str(value)
        if len(text) > MAX_TAG_VALUE:
            raise InvalidInput(
                f"tag {key!r} is {len(text)} characters long",
                {"field": f"tags.{key}", "fix": f"keep tag values under {MAX_TAG_VALUE} chars"},
            )
        clean[key] = text
    return clean


def check_text(value: str, field: str, limit: int) -> str:
    if len(value) > limit:
        raise InvalidInput(
            f"{field} is {len(value)} characters long",
            {"field": field, "fix": f"keep it under {limit} characters"},
        )
    return value


def parse_model_uri(uri: str) -> ModelRef:
    """`models:/churn/3`, `models:/churn@champion` or `models:/churn/latest`."""
    bad = InvalidInput(
        f"not a model URI: {uri!r}",
        {"field": "uri", "accepted": URI_FORMS, "fix": "e.g. models:/churn@champion"},
    )
    if not isinstance(uri, str) or not uri.startswith("models:/"):
        raise bad
    rest = uri[len("models:/") :]
    if "@" in rest:
        name, _, alias = rest.partition("@")
        if not MODEL_NAME.match(name) or not ALIAS_NAME.match(alias):
            raise bad
        return ModelRef(name=name, alias=alias)
    name, sep, version = rest.partition("/")
    if not sep or not MODEL_NAME.match(name):
        raise bad
    if version == "latest":
        return ModelRef(name=name, latest=True)
    if not version.isdigit() or int(version) < 1:
        raise bad
    return ModelRef(name=name, version=int(version))


def check_relative(path: str) -> None:
    pure = PurePosixPath(path)
    if not path or pure.is_absolute() or ".." in pure.parts or "\\" in path:
        raise InvalidInput(
            f"invalid model file path {path!r}",
            {"field": "files", "fix": "use a relative path without '..', e.g. model.skops"},
        )


def check_metrics(metrics: dict[str, float] | None) -> dict[str, float]:
    clean: dict[str, float] = {}
    for key, value in (metrics or {}).items():
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise InvalidInput(
                f"metric {key!r} is not a number: {value!r}", {"field": f"metrics.{key}"}
            ) from None
        if not math.isfinite(number):
            raise InvalidInput(
                f"metric {key!r} is {number}; only finite values can be stored",
                {"field": f"metrics.{key}"},
            )
        clean[str(key)] = number
    return clean
