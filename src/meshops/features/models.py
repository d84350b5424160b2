"""Feature store types and pure logic: entities, feature views, feature services, on-demand
features, training sets, online responses. No I/O here.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field, field_validator

from meshops.kernel.bounds import TtlSeconds
from meshops.kernel.errors import InvalidInput

if TYPE_CHECKING:
    import pyarrow as pa

FeatureType = Literal["int64", "int32", "float64", "float32", "string", "bool", "timestamp", "date"]
FEATURE_TYPES: tuple[str, ...] = (
    "int64",
    "int32",
    "float64",
    "float32",
    "string",
    "bool",
    "timestamp",
    "date",
)
# Which contract logical types (ODCS) a declared feature type may read from.
COMPATIBLE_LOGICAL: dict[str, frozenset[str]] = {
    "int64": frozenset({"integer", "int", "long", "bigint"}),
    "int32": frozenset({"integer", "int"}),
    "float64": frozenset({"number", "double", "float", "decimal", "integer", "int", "long"}),
    "float32": frozenset({"number", "double", "float", "decimal", "integer", "int"}),
    "string": frozenset({"string", "text", "varchar"}),
    "bool": frozenset({"boolean", "bool"}),
    "timestamp": frozenset({"timestamp", "datetime", "date"}),
    "date": frozenset({"date"}),
}
TIME_LOGICAL = frozenset({"timestamp", "datetime", "date"})

NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)?\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
RowStatus = Literal["ok", "missing", "stale", "partial"]


def check_name(value: str, what: str, field: str) -> str:
    if not NAME_RE.match(value):
        raise InvalidInput(
            f"{what} {value!r} is not a valid name",
            {
                "field": field,
                "fix": "use lower-case letters, digits and _ starting with a letter, "
                "e.g. 'customer_stats'",
            },
        )
    return value


def parse_duration(value: Any, field: str = "ttl") -> int | None:
    """'30d', '12h', '90m', '3600s', 3600 or None -> seconds (None or 0 means no TTL)."""
    if value is None or value in {"", 0}:
        return None
    if isinstance(value, timedelta):
        return int(value.total_seconds()) or None
    if isinstance(value, bool):
        raise InvalidInput(f"{field}: {value!r} is not a duration", {"field": field})
    if isinstance(value, int | float):
        return int(value) or None
    match = _DURATION.match(str(value))
    if not match:
        raise InvalidInput(
            f"{field}: {value!r} is not a duration",
            {"field": field, "fix": "write a number with a unit s, m, h, d or w, e.g. 30d"},
        )
    return int(float(match[1]) * _UNIT_SECONDS[match[2] or "s"]) or None


def check_domain(value: str | None) -> str | None:
    if value is not None:
        check_name(value, "domain", "domain")
    return value


class Entity(BaseModel):
    """What features describe (a customer, a driver): named by its join keys.

    `domain` is the data-mesh domain it belongs to (roles bound in that domain may read and
    change it); left out, it is the domain of the feature views that use it (all of them
    when they come from several domains)."""

    name: str
    join_keys: list[str]
    description: str = ""
    tags: dict[str, str] = Field(default_factory=dict)
    domain: str | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return check_name(value, "entity", "name")

    @field_validator("domain")
    @classmethod
    def _domain(cls, value: str | None) -> str | None:
        return check_domain(value)

    @field_validator("join_keys")
    @classmethod
    def _keys(cls, value: list[str]) -> list[str]:
        if not value:
            raise InvalidInput(
                "an entity needs at least one join key",
                {"field": "join_keys", "fix": "name the key column(s), e.g. [customer_id]"},
            )
        return value


class Feature(BaseModel):
    name: str
    type: FeatureType
    description: str = ""
    # The source column when it differs from the feature's name.
    column: str | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return check_name(value, "feature", "name")

    @property
    def source_column(self) -> str:
        return self.column or self.name


class SourceRef(BaseModel):
    """A data product output port that a feature view reads (always its latest version in
    `version` range, e.g. '^1'; None means the latest published version)."""

    product: str  # "<domain>.<name>"
    port: str | None = None
    version: str | None = None

    @property
    def domain(self) -> str:
        return self.product.split(".", 1)[0]


class FeatureView(BaseModel):
    name: str
    entities: list[str]
    source: SourceRef
    event_time: str
    created_time: str | None = None
    features: list[Feature]
    ttl_seconds: TtlSeconds | None = None
    owner: str = ""
    description: str = ""
    tags: dict[str, str] = Field(default_factory=dict)
    online: bool = True

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return check_name(value, "feature view", "name")

    @property
    def domain(self) -> str:
        return self.source.domain

    def feature(self, name: str) -> Feature:
        for feature in self.features:
            if feature.name == name:
                return feature
        raise InvalidInput(
            f"feature view {self.name!r} has no feature {name!r}",
            {"field": "features", "fix": f"use one of {[f.name for f in self.features]}"},
        )


class OnDemandFeature(BaseModel):
    """A feature computed at request time by a Python function `module:function` from
    request fields and other features; the same function runs offline, row by row."""

    name: str
    function: str
    inputs: list[str] = Field(default_factory=list)  # feature refs "view:feature"
    request: list[str] = Field(default_factory=list)  # fields of the request / entity row
    type: FeatureType = "float64"
    description: str = ""

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return check_name(value, "on-demand feature", "name")


class FeatureServiceDef(BaseModel):
    """The features one model uses, by reference ('view:feature', 'view:*' or an on-demand
    feature's name). `domain` is the domain it belongs to; left out, the domain of the
    feature views it uses (all of them when they come from several domains)."""

    name: str
    features: list[str]
    description: str = ""
    owner: str = ""
    tags: dict[str, str] = Field(default_factory=dict)
    domain: str | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return check_name(value, "feature service", "name")

    @field_validator("domain")
    @classmethod
    def _domain(cls, value: str | None) -> str | None:
        return check_domain(value)


class FeatureRepo(BaseModel):
    """Everything `apply` registers, from YAML files or Python."""

    entities: list[Entity] = Field(default_factory=list)
    feature_views: list[FeatureView] = Field(default_factory=list)
    on_demand_features: list[OnDemandFeature] = Field(default_factory=list)
    feature_services: list[FeatureServiceDef] = Field(default_factory=list)
    # "<kind>:<name>" -> where it was defined ("features/x.yaml#feature_views[0]")
    origins: dict[str, str] = Field(default_factory=dict)


class ApplyResult(BaseModel):
    created: list[str] = Field(default_factory=list)
    updated: list[str] = Field(default_factory=list)
    unchanged: list[str] = Field(default_factory=list)


class SourceRead(BaseModel):
    """The exact product version a feature view's data came from."""

    view: str
    product: str
    version: str
    urn: str
    digest: str
    rows: int = 0


class TrainingSetInfo(BaseModel):
    id: str
    name: str
    urn: str
    digest: str  # over entities, feature definitions and the product versions read
    entities_digest: str  # blob holding the entity rows (Parquet)
    row_count: int
    features: list[str]
    columns: list[str]
    timestamp_column: str
    sources: list[SourceRead]
    created_by: str
    created_at: datetime


class MaterializeResult(BaseModel):
    view: str
    product: str
    version: str
    rows_read: int
    rows_written: int
    skipped: bool = False
    reason: str = ""
    watermark: datetime | None = None
    seconds: float = 0.0


class Watermark(BaseModel):
    view: str
    version: str
    digest: str
    event_time: datetime | None
    created_time: datetime | None
    rows: int
    updated_at: datetime


class OnlineRow(BaseModel):
    values: dict[str, Any]
    status: RowStatus
    missing: list[str] = Field(default_factory=list)  # views with no value for the entity
    stale: list[str] = Field(default_factory=list)  # views whose value is older than TTL
    event_times: dict[str, datetime | None] = Field(default_factory=dict)


class OnlineResponse(BaseModel):
    features: list[str]
    rows: list[OnlineRow]

    def to_dict(self) -> dict[str, list[Any]]:
        """Columns by feature name (like Feast's `OnlineResponse.to_dict()`)."""
        return {name: [row.values.get(name) for row in self.rows] for name in self.features}


class FeatureStats(BaseModel):
    name: str
    type: str
    nulls: int
    count: int
    min: Any = None
    max: Any = None
    mean: float | None = None
    distinct: int | None = None


class ViewStatus(BaseModel):
    """Freshness and basic statistics of one feature view."""

    view: str
    product: str
    latest_version: str | None
    materialized_version: str | None
    rows: int
    entities: int
    newest_event_time: datetime | None
    oldest_event_time: datetime | None
    materialized_at: datetime | None
    age_seconds: float | None
    ttl_seconds: int | None
    fresh: bool | None
    features: list[FeatureStats]


class ViewSummary(BaseModel):
    kind: Literal["entity", "feature_view", "feature_service", "on_demand_feature"]
    name: str
    definition: dict[str, Any]
    owner: str = ""
    # The one domain it belongs to (None when it spans several, see `domains`, or none)
    domain: str | None = None
    # Every domain whose roles govern it: declared, or those of the views it uses
    domains: list[str] = Field(default_factory=list)
    urn: str | None = None
    updated_at: datetime | None = None


class TrainingSet:
    """A recorded training set (`info`) and its rows, streamed when asked for."""

    def __init__(self, info: TrainingSetInfo, open_reader: Callable[[], pa.RecordBatchReader]):
        self.info = info
        self._open_reader = open_reader

    @property
    def digest(self) -> str:
        return self.info.digest

    @property
    def urn(self) -> str:
        return self.info.urn

    def reader(self) -> pa.RecordBatchReader:
        """The rows as a stream of Arrow record batches (for results bigger than memory)."""
        return self._open_reader()

    def to_arrow(self) -> pa.Table:
        return self.reader().read_all()

    def to_pandas(self) -> Any:
        return self.to_arrow().to_pandas()

    def __repr__(self) -> str:
        info = self.info
        return f"TrainingSet({info.name!r}, digest={info.digest[:12]}, rows={info.row_count})"
